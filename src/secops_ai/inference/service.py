"""The model service behind the API: one loaded base model, its adapters, and the batching engine.

Local mode loads ``SECOPS_BASE_MODEL`` and every valid adapter under ``models/`` onto one peft model
(several adapters on one base, as vLLM serves LoRA); each request's ``model`` field picks one. Remote
mode (``SECOPS_LLM_BASE_URL``) loads nothing and the routes forward to that server instead.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from secops_ai.config import Settings
from secops_ai.inference.chat_template import apply_chat_template
from secops_ai.inference.engine import BatchEngine, EngineBackend, GenRequest
from secops_ai.inference.engines import build_engine
from secops_ai.inference.loader import (
    AdapterInfo,
    check_adapter_base,
    discover_adapters,
    load_model_and_tokenizer,
    pick_device,
    read_adapter,
    resolve_adapter,
    resolve_base_model,
)
from secops_ai.inference.types import GenerationParams, Message

log = logging.getLogger(__name__)

DEFAULT_ALIAS = "default"
_ADAPTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}/[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class NotReadyError(RuntimeError):
    """The model is still loading (or failed to load); the API answers 503."""


class UnknownModelError(LookupError):
    """The request named a model that is neither the base nor an adapter found under models/."""


class PromptTooLongError(ValueError):
    """The prompt does not fit the model's context (or SECOPS_MAX_PROMPT_TOKENS)."""


@dataclass
class ModelEntry:
    id: str
    kind: str  # "base" or "adapter"
    created: int
    parent: str | None = None


class Submission:
    """The queued rows of one request: iterate for ``(row, "delta", text)`` events and one ``(row, "done",
    info)`` per row; an engine failure arrives as ``(row, "error", message)``.

    Leaving the iteration early (a client disconnect) or calling :meth:`cancel` frees every row at the
    engine's next step.
    """

    def __init__(self, reqs: list[GenRequest], queue: asyncio.Queue[tuple[int, str, Any]]) -> None:
        self.reqs = reqs
        self.queue = queue

    def cancel(self) -> None:
        for req in self.reqs:
            req.cancelled.set()

    async def __aiter__(self) -> AsyncIterator[tuple[int, str, Any]]:
        left = len(self.reqs)
        try:
            while left:
                i, kind, payload = await self.queue.get()
                if kind in ("done", "error"):
                    left -= 1
                yield i, kind, payload
        finally:
            self.cancel()


class _Mailbox:
    """Hands engine events from worker threads to one event loop with one wakeup per burst, not one per token.

    ``call_soon_threadsafe`` writes to the loop's self-pipe and wakes it every call; at 8 streams the engine
    emits 8 tokens per step almost at once, so batching them saves most of those wakeups (a per-token CPU cost
    that competes with the decoder on a small CPU)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._items: collections.deque[tuple[asyncio.Queue, Any]] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, target: asyncio.Queue, item: Any) -> None:
        with self._lock:
            self._items.append((target, item))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: its receivers are gone (the engine cancels the row)
            with self._lock:
                self._scheduled = False
            raise

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, collections.deque()
            self._scheduled = False
        for target, item in items:
            target.put_nowait(item)


class ModelService:
    """Loads the model in the background and turns prompts into streamed completions."""

    def __init__(self, settings: Settings, *, production_resolver: Callable[[], str | None] | None = None) -> None:
        self.settings = settings
        self.remote_url = settings.llm_base_url
        self._production = production_resolver or (lambda: None)
        self.ready = threading.Event()
        self.settled = threading.Event()  # loading has ended, ready or failed (see wait_loaded)
        self.load_error: str | None = None
        self.base_dir: Path | None = None
        self.base_id = "base"
        self.model: Any = None
        self.tokenizer: Any = None
        self.engine: BatchEngine | None = None
        self.default_adapter: str | None = None
        self._adapter_keys: dict[str, str] = {}  # public name -> peft adapter key
        self._adapter_dirs: dict[str, Path] = {}  # peft adapter key -> its folder (the llama.cpp engine's LoRAs)
        self._scoring_logged = False
        self._mailboxes: dict[asyncio.AbstractEventLoop, _Mailbox] = {}
        self._load_lock = threading.Lock()
        self._load_task: asyncio.Task | None = None
        self.on_queue_depth: Callable[[int], None] = lambda _n: None
        self.on_step: Callable[[int], None] = lambda _rows: None
        self.on_tokens: Callable[[str, int, int], None] = lambda _model, _prompt, _completion: None

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Begin loading in a worker thread; health routes answer meanwhile, /readyz says 503."""
        if self.remote_url:
            self.ready.set()
            self.settled.set()
            return
        self._load_task = asyncio.create_task(asyncio.to_thread(self._load))

    async def stop(self) -> None:
        if self._load_task:
            await asyncio.gather(self._load_task, return_exceptions=True)
        if self.engine:
            await asyncio.to_thread(self.engine.stop)
            close_loop = getattr(self.engine, "close_loop", None)
            if close_loop is not None:  # connections the engine opened on this loop close with it
                await close_loop()

    @property
    def loading(self) -> bool:
        """True while the background load started by :meth:`start` is still running."""
        return self._load_task is not None and not self._load_task.done()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until loading has ended (ready or failed) or ``timeout``; True when the model is ready."""
        self.settled.wait(timeout)
        return self.ready.is_set()

    def load_sync(self) -> None:
        """Load in the calling thread (CLI chat, evals, agents outside the server)."""
        if not self.remote_url:
            self._load()
        else:
            self.ready.set()
            self.settled.set()

    def _load(self) -> None:
        t0 = time.monotonic()
        try:
            self.base_dir = resolve_base_model(self.settings)
            self.base_id = self.base_dir.name
            device = pick_device(self.settings.device)
            self.model, self.tokenizer = load_model_and_tokenizer(self.base_dir, device=device)
            for info in discover_adapters(self.settings.workspace):
                self._load_adapter(info)
            spec = self.settings.adapter
            if spec:
                info = resolve_adapter(self.settings.workspace, spec, self.base_dir,
                                       production=self._safe_production() if spec == "production" else None)
                if info is not None and info.name in self._adapter_keys:
                    self.default_adapter = info.name
                elif info is not None:
                    log.warning("SECOPS_ADAPTER=%s could not be loaded; serving the base model", spec)
            self.engine = build_engine(self.model, self.tokenizer, settings=self.settings, device=device,
                                       base_dir=self.base_dir, adapters=self._adapter_dirs,
                                       max_batch_size=self.settings.max_batch_size, max_queue=self.settings.max_queue,
                                       on_queue_depth=self.on_queue_depth, on_step=self.on_step)
            log.info("Model ready: %s%s (%d adapters) in %.1fs", self.base_id,
                     f" + {self.default_adapter}" if self.default_adapter else "", len(self._adapter_keys),
                     time.monotonic() - t0)
            self.ready.set()
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.error("Model failed to load: %s", self.load_error)
        finally:
            self.settled.set()

    def _safe_production(self) -> str | None:
        try:
            return self._production()
        except Exception as exc:  # a broken registry must not stop the server from serving the base
            log.warning("Could not read the production adapter from the registry: %s", exc)
            return None

    def _load_adapter(self, info: AdapterInfo) -> bool:
        """Attach ``info`` to the loaded model; warn and skip when it does not fit the base."""
        from peft import PeftModel

        assert self.base_dir is not None
        if info.name in self._adapter_keys:
            return True
        try:
            check_adapter_base(info, self.base_dir)
            _check_weights_readable(info.path)  # before peft touches the model: a bad file must not half-load
            key = f"adapter_{len(self._adapter_keys)}"  # peft keys may not contain '.' or '/'
            lock = self.engine.model_lock if self.engine else threading.Lock()
            with lock:
                if isinstance(self.model, PeftModel):
                    self.model.load_adapter(str(info.path), adapter_name=key)
                else:
                    self.model = PeftModel.from_pretrained(self.model, str(info.path), adapter_name=key).eval()
                    if self.engine:
                        self.engine.model = self.model
            self._adapter_keys[info.name] = key
            self._adapter_dirs[key] = info.path
            if hasattr(self.engine, "add_adapter"):  # the llama.cpp engine serves it as a GGUF LoRA too
                try:
                    self.engine.add_adapter(key, info.path, self.base_dir)
                except Exception as exc:  # its rows then run on the transformers fallback (logged there)
                    log.warning("Adapter %s not added to llama.cpp (%s)", info.name, exc)
            return True
        except Exception as exc:
            log.warning("Adapter %s not loaded (%s); requests for it get the base model or 404", info.name, exc)
            return False

    # -- models -----------------------------------------------------------------------------------
    def check_ready(self) -> None:
        if not self.ready.is_set():
            raise NotReadyError(self.load_error or "model is still loading")

    def list_models(self) -> list[ModelEntry]:
        self.check_ready()
        created = int(self.base_dir.stat().st_mtime) if self.base_dir else 0
        entries = [ModelEntry(self.base_id, "base", created)]
        for info in discover_adapters(self.settings.workspace):
            if info.name in self._adapter_keys or self._try_load(info):
                entries.append(ModelEntry(info.name, "adapter", int(info.path.stat().st_mtime), self.base_id))
        # aliases a request may name, with what each resolves to right now (kind "alias", parent = target)
        served = {e.id: e for e in entries}
        target = self.public_id(self.default_adapter)
        entries.append(ModelEntry(DEFAULT_ALIAS, "alias", served[target].created if target in served else created,
                                  target))
        prod = self._safe_production()
        if prod in served:
            entries.append(ModelEntry("production", "alias", served[prod].created, prod))
        return entries

    def _try_load(self, info: AdapterInfo) -> bool:
        with self._load_lock:
            return self._load_adapter(info)

    def resolve(self, model: str | None) -> str | None:
        """Map a request's ``model`` to an adapter name (``None`` = base). Unknown names raise."""
        self.check_ready()
        if model in (None, "", DEFAULT_ALIAS):
            return self.default_adapter
        if model == self.base_id or model == "base":
            return None
        if model == "production":
            prod = self._safe_production()
            if prod is None:
                raise UnknownModelError("no adapter is in production")
            model = prod
        if model in self._adapter_keys:
            return model
        missing = UnknownModelError(f"The model '{model}' does not exist; GET /v1/models lists the served models.")
        # Only '<provider>/<run-id>' names inside models/: the answer never depends on (or names) anything
        # outside SECOPS_HOME, whatever '..', absolute paths or symlinks the name holds.
        if not _ADAPTER_NAME.fullmatch(model):
            raise missing
        root = self.settings.workspace.models.resolve()
        path = (root / model).resolve()
        if not path.is_relative_to(root) or path.parent.parent != root or not path.is_dir():
            raise missing
        try:
            info = read_adapter(root / model)  # named as asked, checked where it really lies
        except Exception as exc:
            log.warning("model %s requested but not usable: %s", model, exc)
            raise UnknownModelError(f"The model '{model}' is not a usable adapter (the server log says why); "
                                    "GET /v1/models lists the served models.") from None
        if self._try_load(info):
            return model
        raise UnknownModelError(f"The model '{model}' is not a usable adapter (the server log says why); "
                                "GET /v1/models lists the served models.")

    def engine_key(self, adapter: str | None) -> str | None:
        """The peft key the engine selects for a resolved adapter name (``None``: the base)."""
        return self._adapter_keys.get(adapter) if adapter else None

    def public_id(self, adapter: str | None) -> str:
        return adapter or self.base_id

    # -- generation -------------------------------------------------------------------------------
    def encode_chat(self, messages: list[Message]) -> list[int]:
        return self._check_length(self.tokenizer(apply_chat_template(self.tokenizer, messages),
                                                 add_special_tokens=False)["input_ids"])

    def encode_text(self, prompt: str) -> list[int]:
        return self._check_length(self.tokenizer(prompt)["input_ids"])

    def _check_length(self, ids: list[int]) -> list[int]:
        assert self.engine is not None
        limit = min(self.settings.max_prompt_tokens, self.engine.max_positions - 1)
        if len(ids) > limit:
            raise PromptTooLongError(f"The prompt has {len(ids)} tokens; this server accepts at most {limit}.")
        return ids

    def check_token_ids(self, ids: list[int]) -> list[int]:
        """A client's token-id prompt: every id inside the vocabulary, and not too long."""
        size = len(self.tokenizer)
        bad = next((t for t in ids if not 0 <= t < size), None)
        if bad is not None:
            raise ValueError(f"token id {bad} is outside this model's vocabulary (0..{size - 1})")
        return self._check_length(ids)

    def submit(self, rows: list[tuple[list[int], GenerationParams]], adapter: str | None, *,
               scoring: bool = False) -> Submission:
        """Queue every row of one request at once, or none (QueueFullError / NotReadyError raise at once).

        ``scoring``: the rows' tokens will be scored by :meth:`score` (the transformers model), so they are
        generated by the same model: on the llama.cpp engine they go to its transformers fallback."""
        self.check_ready()
        assert self.engine is not None
        engine = self.engine
        if scoring and getattr(engine, "fallback", None) is not None:
            if not self._scoring_logged:
                self._scoring_logged = True
                log.warning("logprobs/echo requests run on the transformers engine: llama.cpp returns no "
                            "teacher-forced prompt logprobs")
            engine = engine.fallback
        loop = asyncio.get_running_loop()
        mailbox = self._mailboxes.get(loop)
        if mailbox is None:  # one per loop (the server has one; tests may make several)
            self._mailboxes = {lp: mb for lp, mb in self._mailboxes.items() if not lp.is_closed()}
            mailbox = self._mailboxes[loop] = _Mailbox(loop)
        queue: asyncio.Queue[tuple[int, str, Any]] = asyncio.Queue()
        model_id = self.public_id(adapter)
        key = self.engine_key(adapter)

        loop_thread = threading.get_ident()

        def emitter(i: int, prompt_tokens: int):
            def emit(kind: str, payload: Any) -> None:
                if kind == "done":  # counted here so abandoned streams (client gone) are counted too
                    self.on_tokens(model_id, prompt_tokens, payload["completion_tokens"])
                if threading.get_ident() == loop_thread:  # a row streaming as a task on this loop
                    queue.put_nowait((i, kind, payload))
                else:  # an engine thread
                    mailbox.post(queue, (i, kind, payload))
            return emit

        reqs = [GenRequest(prompt_ids=ids, params=params, adapter=key, emit=emitter(i, len(ids)))
                for i, (ids, params) in enumerate(rows)]
        engine.submit_many(reqs, loop=loop)
        return Submission(reqs, queue)

    def stream_sync(self, prompt_ids: list[int], params: GenerationParams, adapter: str | None) -> Iterator[str]:
        """Blocking variant for callers without an event loop (the terminal chat): yields text pieces."""
        self.check_ready()
        assert self.engine is not None
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        req = GenRequest(prompt_ids, params, lambda kind, payload: events.put((kind, payload)),
                         adapter=self.engine_key(adapter))
        self.engine.submit(req)
        try:
            while True:
                kind, payload = events.get()
                if kind == "error":
                    raise RuntimeError(payload)
                if kind == "done":
                    return
                yield payload
        finally:
            req.cancelled.set()

    def score(self, token_ids: list[int], adapter: str | None, top_k: int = 0
              ) -> list[tuple[float | None, dict[str, float]]]:
        """Log-probability of each token given the ones before it (teacher forcing), plus the top ``top_k``
        alternatives: what ``/v1/completions`` returns as ``logprobs`` (lm-eval-harness' loglikelihood)."""
        import torch

        self.check_ready()
        assert self.engine is not None
        key = self.engine_key(adapter)
        with self.engine.model_lock, self.engine._adapter_ctx(key), torch.inference_mode():
            ids = torch.tensor([token_ids], device=self.model.device)
            logits = self.model(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        out: list[tuple[float | None, dict[str, float]]] = [(None, {})]
        for pos in range(1, len(token_ids)):
            row = logp[pos - 1]
            top: dict[str, float] = {}
            if top_k:
                values, idx = row.topk(top_k)
                top = {self.tokenizer.decode([int(i)]): float(v) for v, i in zip(values, idx, strict=True)}
            out.append((float(row[token_ids[pos]]), top))
        return out

    # -- in-process backend for agents and evals --------------------------------------------------
    def backend(self, model: str | None = None) -> ServiceBackend:
        """A :class:`~secops_ai.inference.backend.ChatBackend` sharing this service's batching engine."""
        return ServiceBackend(self, self.resolve(model))


def _check_weights_readable(path: Path) -> None:
    from safetensors import safe_open

    weights = path / "adapter_model.safetensors"
    if weights.is_file():
        with safe_open(str(weights), framework="pt") as fh:
            if not list(fh.keys()):
                raise ValueError(f"{weights} holds no tensors")


class ServiceBackend(EngineBackend):
    """ChatBackend over a running ModelService: agent and eval calls batch with API traffic."""

    def __init__(self, service: ModelService, adapter: str | None) -> None:
        assert service.engine is not None
        super().__init__(service.engine, adapter=service.engine_key(adapter), name=service.public_id(adapter))
        self.service = service

    def encode_chat(self, conversation: list[Message]) -> list[int]:
        return self.service.encode_chat(conversation)
