"""Continuous batching for a local transformers model.

One background thread owns the model. Requests wait in a queue; at every decode step the thread admits
waiting requests (same adapter as the running batch) into the batch: their prompts are prefilled
separately, their KV caches are left-padded to the running length and concatenated on the batch axis.
Finished rows leave the batch at once. So eight concurrent streams share each forward pass, and a
stream's first token goes out right after its prefill, long before the whole answer exists.

Every decoder in the project (``/v1``, evals, agents, constrained JSON, the terminal chat) submits here,
so greedy output is the same whoever asks. Tokens reach each request through its ``emit`` callback (called
on the engine thread): ``emit("delta", text)`` for new text, then exactly one ``emit("done", {...})`` or
``emit("error", msg)``.

Failure rules: a request's rows are admitted all-or-nothing (:meth:`BatchEngine.submit_many`); a cancelled
row (client gone, request rejected) leaves at the next step; an exception inside a step ends every row of
that step with ``error`` and the thread goes on serving the queue.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from secops_ai.inference.types import GenerationParams

log = logging.getLogger(__name__)

Emit = Callable[[str, Any], None]
# (prompt + generated token ids, this row's next-token logits) -> logits to sample from (e.g. a JSON mask)
LogitsProcessor = Callable[[list[int], torch.Tensor], torch.Tensor]


class QueueFullError(RuntimeError):
    """More requests are waiting than ``max_queue`` allows (the API answers 429)."""


@dataclass
class GenRequest:
    """One sequence to generate. ``adapter`` is a loaded adapter name, or ``None`` for the base."""

    prompt_ids: list[int]
    params: GenerationParams
    emit: Emit
    adapter: str | None = None
    logits_processor: LogitsProcessor | None = None
    # The same constraint as a JSON schema, for engines that enforce one natively (llama.cpp's grammar); an
    # engine that does not ignores it and applies ``logits_processor``.
    json_schema: dict[str, Any] | None = None
    # Reproducible rows (evolve's generator): the caller sends them one at a time to an engine whose batches are
    # not reproducible (llama.cpp), which then decodes each from a clean state, so its tokens depend on nothing
    # but prompt, params and ``reuse_prompt``: the previous reproducible row (same caller, same adapter) had this
    # very prompt, and its cached pass may be reused (deterministic; saves N-1 prompt passes for N samples).
    reproducible: bool = False
    reuse_prompt: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.monotonic)
    ended: bool = False  # set once done/error went out: nothing is emitted after it


@dataclass
class _Row:
    req: GenRequest
    generator: torch.Generator | None
    tokens: list[int] = field(default_factory=list)
    text: str = ""  # decoded so far (incrementally: see _detokenize)
    prefix_offset: int = 0
    read_offset: int = 0
    emitted: int = 0  # characters of text already sent
    finish: str | None = None
    eos: int | None = None  # the end-of-sequence token that ended the row, if one did


class BatchEngine:
    """Owns a model (optionally a peft model with several adapters) and batches generation on a thread."""

    # Rows submitted together while ``model_lock`` is held get a schedule (which rows share each forward pass)
    # that is a pure function of those rows, so a chunk of them decodes the same on every run.
    reproducible_chunks = True

    def __init__(self, model: Any, tokenizer: Any, *, max_batch_size: int = 8, max_queue: int = 64,
                 on_queue_depth: Callable[[int], None] | None = None,
                 on_step: Callable[[int], None] | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self._on_queue_depth = on_queue_depth or (lambda _n: None)
        self._on_step = on_step or (lambda _rows: None)  # rows in each decode step (batching metric)
        self._waiting: deque[GenRequest] = deque()
        self._active: list[GenRequest] = []  # rows of the step in progress (ended with an error if it fails)
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        # Held for a whole batch; adapter loading takes it so the model never changes mid-batch.
        self.model_lock = threading.Lock()
        self.eos_ids = _eos_ids(model, tokenizer)
        self.vocab_size = len(tokenizer)
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)

    # -- public API -------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="secops-batch-engine", daemon=True)
        self._thread.start()
        # A daemon thread still inside torch when the interpreter finalises aborts the process
        # ("terminate called without an active exception"): stop it first, whoever forgot to.
        atexit.register(self.stop)

    def stop(self) -> None:
        atexit.unregister(self.stop)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread and self._thread is not threading.current_thread():  # a finalizer may run on it
            self._thread.join(timeout=30)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping

    def submit(self, req: GenRequest) -> None:
        self.submit_many([req])

    def submit_many(self, reqs: list[GenRequest], *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Queue every row of one request, or none of them (QueueFullError) when they do not all fit.

        ``loop`` (the caller's running event loop) is accepted as every engine's is; this engine always
        decodes on its own thread."""
        for req in reqs:
            self._check(req)
        with self._cond:
            if self._stopping:
                raise RuntimeError("the engine is stopped")
            if len(self._waiting) + len(reqs) > self.max_queue:
                raise QueueFullError(f"{len(self._waiting)} sequences are already waiting and this request needs "
                                     f"{len(reqs)}; at most {self.max_queue} may wait (SECOPS_MAX_QUEUE)")
            self._waiting.extend(reqs)
            self._on_queue_depth(len(self._waiting))
            self._cond.notify()

    def _check(self, req: GenRequest) -> None:
        """Refuse what would fail inside a step (callers validate first; this guards the engine)."""
        if not req.prompt_ids:
            raise ValueError("the prompt is empty")
        if min(req.prompt_ids) < 0 or max(req.prompt_ids) >= self.vocab_size:
            raise ValueError(f"token ids must lie in 0..{self.vocab_size - 1}")
        if req.params.seed is not None and not 0 <= req.params.seed < 2**64:
            raise ValueError("seed must lie in 0..2**63-1")
        if req.params.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    # -- engine thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        torch.set_grad_enabled(False)
        while True:
            with self._cond:
                while not self._waiting and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    pending, self._waiting = list(self._waiting), deque()
                    for req in pending:
                        self._end(req, "error", "server is shutting down")
                    return
            try:
                # inference_mode, not only no-grad: no version counters or view tracking on the cache tensors
                # (measured: ~3 % of a decode step of the bundled model on 2 CPU cores, docs/BENCHMARKS.md)
                with self.model_lock, torch.inference_mode():
                    self._run_batch()
            except Exception as exc:  # a bug, OOM or hostile input ends this step's rows, never the thread
                log.exception("generation step failed; ending its %d rows", len(self._active))
                for req in self._active:
                    self._end(req, "error", f"generation failed: {type(exc).__name__}: {exc}")
            finally:
                self._active = []

    @staticmethod
    def _end(req: GenRequest, kind: str, payload: Any) -> None:
        if req.ended:
            return
        req.ended = True
        _emit(req, kind, payload)

    def _take(self, adapter: str | None, room: int, *, first: bool = False) -> list[GenRequest]:
        """Pop up to ``room`` waiting requests for ``adapter`` (the oldest request's adapter if ``first``)."""
        taken: list[GenRequest] = []
        with self._cond:
            if first and self._waiting:
                adapter = self._waiting[0].adapter
            keep: deque[GenRequest] = deque()
            while self._waiting:
                req = self._waiting.popleft()
                if req.cancelled.is_set():
                    self._end(req, "done", {"finish_reason": "cancelled", "completion_tokens": 0,
                                            "token_ids": [], "eos_token": None})
                elif len(taken) < room and req.adapter == adapter:
                    taken.append(req)
                else:
                    keep.append(req)
            self._waiting = keep
            self._on_queue_depth(len(self._waiting))
        return taken

    def _adapter_ctx(self, adapter: str | None):
        """Select the adapter for this batch; the base model runs with adapters disabled."""
        if not hasattr(self.model, "peft_config"):
            return contextlib.nullcontext()
        if adapter is None:
            return self.model.disable_adapter()
        self.model.set_adapter(adapter)
        return contextlib.nullcontext()

    def _run_batch(self) -> None:
        first = self._take(None, self.max_batch_size, first=True)
        if not first:
            return
        self._active = list(first)
        adapter = first[0].adapter
        with self._adapter_ctx(adapter):
            rows, cache, mask, logits = self._prefill(first)
            while rows:
                if self._stopping:
                    for row in rows:
                        self._end(row.req, "error", "server is shutting down")
                    return
                self._on_step(len(rows))
                next_tokens = self._sample(logits, rows)
                picked = next_tokens.tolist()  # one transfer, not one tensor index per row
                keep = [i for i, row in enumerate(rows) if not self._advance(row, picked[i])]
                if len(keep) < len(rows):
                    rows = [rows[i] for i in keep]
                    if not rows:
                        cache = None
                    else:
                        idx = torch.tensor(keep)
                        cache.batch_select_indices(idx.to(mask.device))
                        mask, next_tokens = mask[idx.to(mask.device)], next_tokens[idx]
                room = self.max_batch_size - len(rows)
                joined = self._take(adapter, room) if room > 0 else []
                self._active = [r.req for r in rows] + joined
                if not rows and not joined:
                    break
                if rows:
                    mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
                    positions = mask.sum(dim=1, keepdim=True) - 1
                    # one unpadded row needs no mask: the model then skips building one every step
                    step_mask = None if len(rows) == 1 and bool(mask.all()) else mask
                    out = self.model(input_ids=next_tokens[:, None].to(mask.device), attention_mask=step_mask,
                                     position_ids=positions, cache=cache, use_cache=True)
                    logits = out.logits[:, -1, :].float()
                if joined:
                    new_rows, new_cache, new_mask, new_logits = self._prefill(joined)
                    if rows:
                        cache, mask = _merge_caches(cache, mask, new_cache, new_mask)
                        logits = torch.cat([logits, new_logits], dim=0)
                        rows = rows + new_rows
                    else:
                        rows, cache, mask, logits = new_rows, new_cache, new_mask, new_logits

    def _prefill(self, reqs: list[GenRequest]):
        from transformers import DynamicCache

        device = self.model.device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]
        width = max(len(r.prompt_ids) for r in reqs)
        ids = torch.full((len(reqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(reqs), width), dtype=torch.long)
        for i, r in enumerate(reqs):
            ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids):] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache()
        # logits_to_keep=1: only the last position's logits are needed, not prompt x vocabulary.
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache,
                         use_cache=True, logits_to_keep=1)
        rows = []
        for r in reqs:
            gen = None
            if r.params.temperature > 0:
                gen = torch.Generator(device="cpu")
                gen.manual_seed(r.params.seed if r.params.seed is not None else int(time.time_ns() % 2**62))
            rows.append(_Row(req=r, generator=gen))
        return rows, cache, mask, out.logits[:, -1, :].float()

    def _sample(self, logits: torch.Tensor, rows: list[_Row]) -> torch.Tensor:
        """Greedy for temperature 0, else temperature + nucleus sampling with each row's own generator."""
        for i, row in enumerate(rows):
            if row.req.logits_processor is not None:
                logits[i] = row.req.logits_processor(row.req.prompt_ids + row.tokens, logits[i])
        out = logits.argmax(dim=-1).cpu()
        for i, row in enumerate(rows):
            p = row.req.params
            if p.temperature <= 0:
                continue
            probs = F.softmax(logits[i].float().cpu() / p.temperature, dim=-1)
            if p.top_p < 1.0:
                sorted_p, order = probs.sort(descending=True)
                cum = sorted_p.cumsum(0)
                sorted_p[(cum - sorted_p) > p.top_p] = 0.0
                probs = torch.zeros_like(probs).scatter_(0, order, sorted_p)
            out[i] = torch.multinomial(probs / probs.sum(), 1, generator=row.generator)[0]
        return out

    def _detokenize(self, row: _Row, *, final: bool = False) -> None:
        """Extend ``row.text`` from the new tokens only (TGI/vLLM's prefix-offset scheme): decode a short window
        before and after the newest tokens and keep the difference, holding back an incomplete character."""
        decode = self.tokenizer.decode
        prefix = decode(row.tokens[row.prefix_offset:row.read_offset], skip_special_tokens=True)
        full = decode(row.tokens[row.prefix_offset:], skip_special_tokens=True)
        if len(full) > len(prefix) and (final or not full.endswith("\ufffd")):
            row.text += full[len(prefix):]
            row.prefix_offset, row.read_offset = row.read_offset, len(row.tokens)

    def _advance(self, row: _Row, token: int) -> bool:
        """Append ``token`` to ``row``, emit new text; return True when the row is finished."""
        req = row.req
        if req.cancelled.is_set():
            row.finish = "cancelled"
        elif token in self.eos_ids:
            row.finish, row.eos = "stop", token
        else:
            row.tokens.append(token)
            if (len(row.tokens) >= req.params.max_tokens
                    or len(req.prompt_ids) + len(row.tokens) >= self.max_positions):
                row.finish = "length"
        self._detokenize(row, final=row.finish is not None)
        text = row.text
        stops = req.params.stop
        if stops and row.finish != "cancelled":
            hit = min((i for i in (text.find(s, max(0, row.emitted - len(s))) for s in stops if s) if i != -1),
                      default=-1)
            if hit != -1:
                text, row.finish = text[:hit], "stop"
        # Hold back anything that could still become a stop string.
        end = len(text)
        if row.finish is None and stops:
            end = min(end, len(text) - max(len(s) for s in stops) + 1)
        if end > row.emitted:
            _emit(req, "delta", text[row.emitted:end])
            row.emitted = end
        if row.finish is not None:
            self._end(req, "done", {"finish_reason": row.finish, "completion_tokens": len(row.tokens),
                                    "token_ids": list(row.tokens), "eos_token": row.eos})
            return True
        return False


def _emit(req: GenRequest, kind: str, payload: Any) -> None:
    """Deliver an event; a receiver that fails (its event loop closed) must not fail the step."""
    try:
        req.emit(kind, payload)
    except Exception as exc:
        log.warning("dropping a %s event for a gone receiver: %s", kind, exc)
        req.cancelled.set()


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list):
            ids.update(v for v in value if isinstance(v, int))
    return sorted(ids) or [0]


def _left_pad(t: torch.Tensor, amount: int, dim: int) -> torch.Tensor:
    if amount == 0:
        return t
    shape = list(t.shape)
    shape[dim] = amount
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _merge_caches(cache: Any, mask: torch.Tensor, new_cache: Any, new_mask: torch.Tensor):
    """Concatenate two left-padded batches (caches and masks) on the batch axis, padding the shorter."""
    width = max(mask.shape[1], new_mask.shape[1])
    pad_old, pad_new = width - mask.shape[1], width - new_mask.shape[1]
    for old_layer, new_layer in zip(cache.layers, new_cache.layers, strict=True):
        old_layer.keys = torch.cat([_left_pad(old_layer.keys, pad_old, 2), _left_pad(new_layer.keys, pad_new, 2)])
        old_layer.values = torch.cat([_left_pad(old_layer.values, pad_old, 2),
                                      _left_pad(new_layer.values, pad_new, 2)])
    merged_mask = torch.cat([_left_pad(mask, pad_old, 1), _left_pad(new_mask, pad_new, 1)])
    return cache, merged_mask


@dataclass
class RowResult:
    text: str
    token_ids: list[int]
    finish: str  # "stop", "length" or "cancelled"


def _submit_when_room(engine: BatchEngine, req: GenRequest) -> None:
    while True:
        try:
            engine.submit(req)
            return
        except QueueFullError:
            time.sleep(0.05)


def submit_reproducibly(engine: BatchEngine, rows: list[tuple[GenRequest, threading.Event]],
                        wait: Callable[[threading.Event], Any] = threading.Event.wait) -> None:
    """Decode ``rows`` (requests and the events their ends set) so that no row's tokens depend on timing.

    An engine with ``reproducible_chunks`` (transformers) gets up to ``max_queue`` rows at once while its model
    lock is held, so which rows share each forward pass is a function of the rows; the next chunk waits for
    this one. Any other engine (llama.cpp, whose server batches whatever arrives) gets one row at a time, each
    once the previous one ended; mark such rows ``reproducible`` so each starts from a clean state. Returns
    when every row has ended.
    """
    if engine.reproducible_chunks:
        for start in range(0, len(rows), engine.max_queue):
            chunk = rows[start:start + engine.max_queue]
            with engine.model_lock:
                for req, _ in chunk:
                    engine.submit(req)
            for _, event in chunk:
                wait(event)
    else:
        for req, event in rows:
            _submit_when_room(engine, req)
            wait(event)


class EngineBackend:
    """A blocking client of a :class:`BatchEngine`: the ChatBackend evals, agents and constrained decoding use.

    It submits to the same engine (and so the same decode code) as ``/v1``; in the server it is the
    server's own engine, so agent and API rows share decode steps.
    """

    def __init__(self, engine: BatchEngine, *, adapter: str | None = None, name: str = "local",
                 reproducible: bool = False) -> None:
        self.engine = engine
        self.adapter = adapter  # the peft key the engine selects (None: the base model)
        self.name = name
        # Evals: a row's tokens depend only on its prompt and params, never on which rows share its forward
        # passes (the gate's verdict must not change between two runs of the same model); see
        # submit_reproducibly. Costs throughput on llama.cpp, whose rows then go one at a time.
        self.reproducible = reproducible
        self.model = engine.model
        self.tokenizer = engine.tokenizer

    def encode_chat(self, conversation: list[dict[str, str]]) -> list[int]:
        from secops_ai.inference.chat_template import apply_chat_template

        return self.tokenizer(apply_chat_template(self.tokenizer, conversation), add_special_tokens=False)["input_ids"]

    def chat(self, conversations: list[list[dict[str, str]]], params: GenerationParams | None = None) -> list[str]:
        return [r.text for r in self.generate([self.encode_chat(c) for c in conversations],
                                              params or GenerationParams())]

    def generate(self, prompts: list[list[int]], params: GenerationParams, *,
                 processors: list[LogitsProcessor | None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 json_schema: dict[str, Any] | None = None) -> list[RowResult]:
        """Generate one continuation per prompt (token ids); ``should_stop()`` true cancels the rest."""
        done = [threading.Event() for _ in prompts]
        results: list[RowResult | None] = [None] * len(prompts)
        texts: list[list[str]] = [[] for _ in prompts]
        errors: list[str] = []

        def emitter(i: int) -> Emit:
            def emit(kind: str, payload: Any) -> None:
                if kind == "delta":
                    texts[i].append(payload)
                    return
                if kind == "error":
                    errors.append(str(payload))
                else:
                    results[i] = RowResult("".join(texts[i]), payload["token_ids"], payload["finish_reason"])
                done[i].set()
            return emit

        reqs = [GenRequest(ids, params, emitter(i), adapter=self.adapter, reproducible=self.reproducible,
                           logits_processor=processors[i] if processors else None, json_schema=json_schema)
                for i, ids in enumerate(prompts)]

        def wait(event: threading.Event) -> None:
            while not event.wait(0.05 if should_stop else None):
                if should_stop is not None and should_stop():
                    for req in reqs:
                        req.cancelled.set()

        try:
            if self.reproducible:
                submit_reproducibly(self.engine, list(zip(reqs, done, strict=True)), wait)
            else:
                for req in reqs:  # one at a time: a long eval suite may hold more rows than the queue
                    _submit_when_room(self.engine, req)
            for event in done:
                wait(event)
        finally:
            for req in reqs:  # an interrupted caller frees its rows
                if not req.ended:
                    req.cancelled.set()
        if errors:
            raise RuntimeError(errors[0])
        return [r for r in results if r is not None]
