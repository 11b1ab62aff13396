"""The OpenAI protocol over the local engine: what ``/v1/chat/completions``, ``/v1/completions`` and
``/v1/models`` answer, kept apart from HTTP the way vLLM keeps ``serving_chat.py`` apart from its router.

:class:`OpenAIServing` turns a validated request (:mod:`secops_ai.inference.protocol`) into either a
response body (a dict) or an async iterator of SSE ``data`` payloads (JSON strings, ending with
``"[DONE]"``); the routes only pick the HTTP response type. It owns the protocol details: one engine row per
choice, admitted all-or-nothing; stream merging; usage; logprob offsets; time-to-first-token metrics;
dropping every row when the client goes away (streaming or not).

Chat hooks (guardrails, self-correction)
----------------------------------------
``serving.chat_hooks`` (a :class:`ChatHooks`) is the one place to pre-screen a chat request and
post-process its answer. Register hooks when the app is built (``app.state.serving.chat_hooks``):

* ``before``: ``async def hook(ctx: ChatContext) -> None``, run in order before any model work. A hook may
  raise :class:`~secops_ai.inference.protocol.OpenAIError` (e.g. 400 ``content_policy``) to refuse,
  replace ``ctx.body`` (a ``ChatCompletionRequest``; ``body.secops`` holds the ``extra_body={"secops":
  {...}}`` extension, ``body.model`` may carry a ``+intrinsic`` suffix to strip), or set ``ctx.response``
  to a complete ``chat.completion`` body (a canned refusal): generation and the ``after`` hooks are then
  skipped and, for ``stream=true``, that body is sent as chunks (through the ``stream`` hooks).
* ``after``: ``async def hook(ctx, response: dict) -> dict`` for non-streamed answers: gets the
  ``chat.completion`` body and returns it (possibly changed: redacted content, an extension field).
* ``stream``: ``def hook(ctx, chunks: AsyncIterator[dict]) -> AsyncIterator[dict]`` wraps the stream of
  ``chat.completion.chunk`` dicts (before SSE framing); it may hold back, rewrite or append chunks.

``ctx.serving.generate_chat(messages, params, model)`` runs extra generations on the same engine (a
critique, a revision) and ``ctx.extra`` is free scratch space shared by a request's hooks. Hooks run
only in local mode: with ``SECOPS_LLM_BASE_URL`` the routes forward requests unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from secops_ai.config import Settings
from secops_ai.inference.engine import QueueFullError
from secops_ai.inference.protocol import ChatCompletionRequest, CompletionRequest, OpenAIError
from secops_ai.inference.service import (
    ModelService,
    NotReadyError,
    PromptTooLongError,
    Submission,
    UnknownModelError,
)
from secops_ai.inference.types import GenerationParams, Message
from secops_ai.observability import tracing

log = logging.getLogger(__name__)

Disconnected = Callable[[], Awaitable[bool]]
Result = dict[str, Any] | AsyncIterator[str]  # a JSON body, or SSE data payloads


@dataclass
class ChatContext:
    """One chat request as hooks see it (see the module docstring)."""

    body: ChatCompletionRequest
    serving: OpenAIServing
    response: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


BeforeChat = Callable[[ChatContext], Awaitable[None]]
AfterChat = Callable[[ChatContext, dict[str, Any]], Awaitable[dict[str, Any]]]
StreamChat = Callable[[ChatContext, AsyncIterator[dict[str, Any]]], AsyncIterator[dict[str, Any]]]


@dataclass
class ChatHooks:
    before: list[BeforeChat] = field(default_factory=list)
    after: list[AfterChat] = field(default_factory=list)
    stream: list[StreamChat] = field(default_factory=list)


@dataclass
class ServingMetrics:
    """Callbacks into the app's metrics (no-ops by default, so in-process users need none)."""

    ttft: Callable[[str, float], None] = lambda _model, _seconds: None


def translate(exc: Exception) -> OpenAIError:
    """The OpenAI error for a failure of the model service (anything else is re-raised as a bug)."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, NotReadyError):
        return OpenAIError(503, f"The model is not ready yet: {exc}", code="model_not_ready",
                           headers={"Retry-After": "5"})
    if isinstance(exc, UnknownModelError):
        return OpenAIError(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, PromptTooLongError):
        return OpenAIError(400, str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, QueueFullError):
        return OpenAIError(429, f"Too many requests are queued ({exc}); retry shortly.", code="queue_full",
                           headers={"Retry-After": "1"})
    raise exc


class OpenAIServing:
    """OpenAI's chat, completions and models endpoints over a :class:`ModelService`."""

    def __init__(self, service: ModelService, settings: Settings, metrics: ServingMetrics | None = None) -> None:
        self.service = service
        self.settings = settings
        self.metrics = metrics or ServingMetrics()
        self.chat_hooks = ChatHooks()

    # -- models -----------------------------------------------------------------------------------
    async def models(self) -> dict[str, Any]:
        try:
            entries = await asyncio.to_thread(self.service.list_models)
        except Exception as exc:
            raise translate(exc) from exc
        return {"object": "list", "data": [
            {"id": e.id, "object": "model", "created": e.created, "owned_by": "secops-ai",
             "kind": e.kind, "parent": e.parent} | ({"resolves_to": e.parent} if e.kind == "alias" else {})
            for e in entries]}

    # -- chat -------------------------------------------------------------------------------------
    async def chat(self, body: ChatCompletionRequest, disconnected: Disconnected | None = None) -> Result:
        ctx = ChatContext(body=body, serving=self)
        for hook in self.chat_hooks.before:
            await hook(ctx)
        body = ctx.body
        if ctx.response is not None:
            return _as_stream(ctx, ctx.response, self.chat_hooks) if body.stream else ctx.response
        messages = [m.as_template_message() for m in body.messages]
        adapter, ids = await self._prepare(body.model, lambda: self.service.encode_chat(messages))
        params = [self._params(body, body.token_limit, i) for i in range(body.n)]
        run = self._start(adapter, [(ids, p) for p in params], prompt_tokens=len(ids),
                          id_prefix="chatcmpl", kind="chat.completion")
        tracing.record_content(run.span, messages=messages)  # only with the content opt-in
        if run.span is not None:
            run.span.set_attribute("gen_ai.request.stream", body.stream)
        if body.stream:
            chunks = run.chat_chunks()
            for hook in self.chat_hooks.stream:
                chunks = hook(ctx, chunks)
            return _sse(chunks, run.usage_chunk if body.include_usage else None)
        texts, finishes = await run.collect(disconnected)
        response = {**run.head, "choices": [
            {"index": i, "message": {"role": "assistant", "content": texts[i]}, "finish_reason": finishes[i],
             "logprobs": None} for i in range(len(texts))], "usage": run.usage()}
        for hook in self.chat_hooks.after:
            response = await hook(ctx, response)
        return response

    async def generate_chat(self, messages: list[Message], params: GenerationParams | None = None,
                            model: str | None = None) -> str:
        """One assistant reply from the same engine (for hooks that need extra passes)."""
        adapter, ids = await self._prepare(model, lambda: self.service.encode_chat(messages))
        run = self._start(adapter, [(ids, params or GenerationParams())], prompt_tokens=len(ids),
                          id_prefix="chatcmpl", kind="chat.completion")
        texts, _ = await run.collect(None)
        return texts[0]

    # -- completions ------------------------------------------------------------------------------
    async def completions(self, body: CompletionRequest, disconnected: Disconnected | None = None) -> Result:
        prompts = body.prompts
        adapter, encoded = await self._prepare(body.model, lambda: [self._encode_prompt(p) for p in prompts])
        # echo shows the prompt as sent (text), or decoded (token ids)
        shown = [p if isinstance(p, str) else self.service.tokenizer.decode(p) for p in prompts]
        if body.logprobs is not None or body.max_tokens == 0:
            return await self._scored(body, adapter, encoded, shown, disconnected)
        rows = [(encoded[pi], self._params(body, body.max_tokens, c)) for pi in range(len(prompts))
                for c in range(body.n)]
        # One choice per (prompt, n): choice index = prompt_index * n + c, as OpenAI numbers them.
        prefixes = [shown[pi] if body.echo else "" for pi in range(len(prompts)) for _ in range(body.n)]
        run = self._start(adapter, rows, prompt_tokens=sum(map(len, encoded)), id_prefix="cmpl",
                          kind="text_completion")
        if body.stream:
            return _sse(run.text_chunks(prefixes), run.usage_chunk if body.include_usage else None)
        texts, finishes = await run.collect(disconnected)
        return {**run.head, "choices": [
            {"index": i, "text": prefixes[i] + texts[i], "logprobs": None, "finish_reason": finishes[i]}
            for i in range(len(texts))], "usage": run.usage()}

    async def _scored(self, body: CompletionRequest, adapter: str | None, encoded: list[list[int]],
                      shown: list[str], disconnected: Disconnected | None) -> dict[str, Any]:
        """OpenAI's legacy ``logprobs`` object (tokens, token_logprobs, top_logprobs, text_offset): generate
        (unless max_tokens=0), then score prompt + completion in one forward pass. The generated tokens
        include an end-of-sequence token when one ended the row, with its logprob (as vLLM does), so
        lm-eval-harness' ``token_logprobs[ctxlen:-1]`` always drops the generated token, never an answer's."""
        tok = self.service.tokenizer
        rows = [(ids, self._params(body, body.max_tokens, c)) for ids in encoded for c in range(body.n)]
        generated: list[list[int]] = [[] for _ in rows]
        finishes = ["length"] * len(rows)
        run = self._start(adapter, rows if body.max_tokens > 0 else [], prompt_tokens=sum(map(len, encoded)),
                          id_prefix="cmpl", kind="text_completion", scoring=True)
        if body.max_tokens > 0:
            _, finishes = await run.collect(disconnected)
            generated = [ids + ([eos] if eos is not None else []) for ids, eos in run.token_ids]
        eos_ids = set(self.service.engine.eos_ids if self.service.engine else ())
        choices = []
        for i, (ids, _) in enumerate(rows):
            all_ids = ids + generated[i]
            scored = await asyncio.to_thread(self.service.score, all_ids, adapter, body.logprobs or 0)
            positions = range(len(all_ids)) if body.echo else range(len(ids), len(all_ids))
            tokens = [tok.decode([all_ids[k]]) for k in positions]
            prompt_text = shown[i // body.n]
            # Offsets into prompt + text, as OpenAI counts them; an end-of-sequence token adds no text.
            offsets, pos = [], 0 if body.echo else len(prompt_text)
            for k, piece in zip(positions, tokens, strict=True):
                offsets.append(pos)
                pos += 0 if k >= len(ids) and all_ids[k] in eos_ids else len(piece)
            text = tok.decode(generated[i], skip_special_tokens=True)
            choices.append({"index": i, "text": (prompt_text if body.echo else "") + text,
                            "finish_reason": finishes[i], "logprobs": {
                                "tokens": tokens, "token_logprobs": [scored[k][0] for k in positions],
                                "top_logprobs": [scored[k][1] or None for k in positions], "text_offset": offsets}})
        run.end_trace()  # max_tokens=0 runs no rows, so nothing else closes the span
        return {**run.head, "choices": choices, "usage": run.usage()}

    # -- shared -----------------------------------------------------------------------------------
    async def _prepare(self, model: str | None, encode: Callable[[], Any]) -> tuple[str | None, Any]:
        """Resolve the model and tokenize (in a thread: resolving may load an adapter)."""
        def work() -> tuple[str | None, Any]:
            adapter = self.service.resolve(model)
            return adapter, encode()
        try:
            return await asyncio.to_thread(work)
        except ValueError as exc:
            if isinstance(exc, PromptTooLongError):
                raise translate(exc) from exc
            raise OpenAIError(400, str(exc), param="prompt") from exc
        except Exception as exc:
            raise translate(exc) from exc

    def _encode_prompt(self, prompt: str | list[int]) -> list[int]:
        ids = self.service.encode_text(prompt) if isinstance(prompt, str) else self.service.check_token_ids(prompt)
        if not ids:
            raise ValueError("the prompt encodes to no tokens")
        return ids

    def _params(self, body: ChatCompletionRequest | CompletionRequest, max_tokens: int | None, i: int
                ) -> GenerationParams:
        limit = self.settings.max_new_tokens
        if max_tokens is not None and max_tokens > limit:
            raise OpenAIError(400, f"max_tokens={max_tokens} exceeds this server's limit of {limit} "
                                   "(SECOPS_MAX_NEW_TOKENS).", param="max_tokens")
        return GenerationParams(max_tokens=max_tokens or limit, temperature=body.temperature, top_p=body.top_p,
                                seed=None if body.seed is None else body.seed + i, stop=list(body.stop or []))

    def _start(self, adapter: str | None, rows: list[tuple[list[int], GenerationParams]], *, prompt_tokens: int,
               id_prefix: str, kind: str, scoring: bool = False) -> _Run:
        engine = self.service.engine
        if engine is not None and len(rows) > engine.max_queue:
            raise OpenAIError(400, f"This request needs {len(rows)} sequences (prompts x n); the server queues at "
                                   f"most {engine.max_queue} (SECOPS_MAX_QUEUE).", param="n")
        try:
            sub = self.service.submit(rows, adapter, scoring=scoring) if rows else None
        except Exception as exc:
            raise translate(exc) from exc
        model_id = self.service.public_id(adapter)
        run = _Run(sub, len(rows), model_id, prompt_tokens, id_prefix, kind,
                   lambda seconds: self.metrics.ttft(model_id, seconds))
        run.trace(rows[0][1] if rows else None)
        return run


class _Run:
    """The rows of one request on their way out: merged events, usage, TTFT."""

    def __init__(self, sub: Submission | None, n: int, model_id: str, prompt_tokens: int, id_prefix: str,
                 kind: str, on_ttft: Callable[[float], None]) -> None:
        self.sub = sub
        self.started = time.perf_counter()
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.token_ids: list[tuple[list[int], int | None]] = [([], None)] * n
        self.head = {"id": f"{id_prefix}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
                     "model": model_id}
        self.chunk_head = {**self.head, "object": f"{kind}.chunk" if kind == "chat.completion" else kind}
        self._on_ttft = on_ttft
        self._first = True
        self.span: Any = None
        self._finishes: list[str] = []
        self._text = ""  # choice 0's text, kept only when content capture is on

    def trace(self, params: GenerationParams | None) -> None:
        """Open this request's GenAI span (a child of the HTTP server span); :meth:`end_trace` closes it."""
        operation = "chat" if self.head["object"] == "chat.completion" else "text_completion"
        self.span = tracing.start_genai_span(operation, self.head["model"], attributes={
            "gen_ai.request.choice.count": len(self.token_ids),
            "gen_ai.request.max_tokens": params.max_tokens if params else 0,
            "gen_ai.request.temperature": params.temperature if params else None,
            "gen_ai.request.top_p": params.top_p if params else None,
            "gen_ai.request.seed": params.seed if params else None})

    def end_trace(self, error: str | None = None) -> None:
        if self.span is None:
            return
        span, self.span = self.span, None
        tracing.record_usage(span, response_model=self.head["model"], response_id=self.head["id"],
                             finish_reasons=self._finishes or None, input_tokens=self.prompt_tokens,
                             output_tokens=self.completion_tokens,
                             ttft_s=None if self._first else round(self._ttft, 6))
        if self._text:
            tracing.record_content(span, output=self._text)
        if error:
            tracing.mark_error(span, "generation_failed", error)
        span.end()

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    def usage_chunk(self) -> dict[str, Any]:
        return {**self.chunk_head, "choices": [], "usage": self.usage()}

    async def events(self) -> AsyncIterator[tuple[int, str, Any]]:
        if self.sub is None:
            self.end_trace()
            return
        error = None
        capture = self.span is not None and self.span.is_recording() and tracing.capture_content()
        try:
            async for i, kind, payload in self.sub:
                if kind == "delta" and self._first:
                    self._first = False
                    self._ttft = time.perf_counter() - self.started
                    self._on_ttft(self._ttft)
                if kind == "delta" and capture and i == 0:
                    self._text += payload
                if kind == "done":
                    self.completion_tokens += payload["completion_tokens"]
                    self.token_ids[i] = (payload["token_ids"], payload.get("eos_token"))
                    self._finishes.append(_finish(payload))
                elif kind == "error":
                    error = str(payload)
                yield i, kind, payload
        finally:  # a client that left frees its rows at the next decode step
            self.sub.cancel()
            self.end_trace(error)

    async def collect(self, disconnected: Disconnected | None) -> tuple[list[str], list[str]]:
        """Every row's text and finish reason; rows are dropped as soon as the client disconnects."""
        n = len(self.token_ids)
        texts, finishes = [""] * n, ["stop"] * n
        watcher = asyncio.create_task(self._watch(disconnected)) if disconnected else None
        try:
            async for i, kind, payload in self.events():
                if kind == "delta":
                    texts[i] += payload
                elif kind == "done":
                    finishes[i] = _finish(payload)
                else:
                    raise OpenAIError(500, str(payload), code="generation_failed")
        finally:
            if watcher:
                watcher.cancel()
        return texts, finishes

    async def _watch(self, disconnected: Disconnected) -> None:
        while True:
            await asyncio.sleep(0.25)
            if await disconnected():
                log.info("client left: dropping %d rows of %s", len(self.token_ids), self.head["id"])
                if self.sub is not None:
                    self.sub.cancel()
                return

    async def chat_chunks(self) -> AsyncIterator[dict[str, Any]]:
        opened: set[int] = set()
        async for i, kind, payload in self.events():
            delta: dict[str, Any] = {}
            if i not in opened:
                opened.add(i)
                delta["role"] = "assistant"
            if kind == "error":
                yield _stream_error(payload)
                continue
            if kind == "delta":
                delta["content"] = payload
            yield {**self.chunk_head, "choices": [{"index": i, "delta": delta, "logprobs": None,
                                                   "finish_reason": _finish(payload) if kind == "done" else None}]}

    async def text_chunks(self, prefixes: list[str]) -> AsyncIterator[dict[str, Any]]:
        opened: set[int] = set()
        async for i, kind, payload in self.events():
            if kind == "error":
                yield _stream_error(payload)
                continue
            text = payload if kind == "delta" else ""
            if i not in opened:
                opened.add(i)
                text = prefixes[i] + text
            yield {**self.chunk_head, "choices": [{"index": i, "text": text, "logprobs": None,
                                                   "finish_reason": _finish(payload) if kind == "done" else None}]}


async def _sse(chunks: AsyncIterator[dict[str, Any]], usage: Callable[[], dict[str, Any]] | None
               ) -> AsyncIterator[str]:
    """SSE ``data`` payloads: each chunk as compact JSON, the usage chunk when asked, then ``[DONE]``."""
    import json

    async for chunk in chunks:
        yield json.dumps(chunk, separators=(",", ":"), ensure_ascii=False)
    if usage is not None:
        yield json.dumps(usage(), separators=(",", ":"))
    yield "[DONE]"


def _as_stream(ctx: ChatContext, response: dict[str, Any], hooks: ChatHooks) -> AsyncIterator[str]:
    """A complete chat.completion (set by a hook) sent as one role+content chunk and one finish chunk."""
    async def chunks() -> AsyncIterator[dict[str, Any]]:
        head = {k: response[k] for k in ("id", "created", "model") if k in response}
        head["object"] = "chat.completion.chunk"
        for choice in response.get("choices", []):
            msg = choice.get("message", {})
            yield {**head, "choices": [{"index": choice.get("index", 0), "logprobs": None, "finish_reason": None,
                                        "delta": {"role": "assistant", "content": msg.get("content") or ""}}]}
            yield {**head, "choices": [{"index": choice.get("index", 0), "delta": {}, "logprobs": None,
                                        "finish_reason": choice.get("finish_reason", "stop")}]}

    stream = chunks()
    for hook in hooks.stream:
        stream = hook(ctx, stream)
    usage = response.get("usage")
    return _sse(stream, (lambda: {"object": "chat.completion.chunk", "choices": [], "usage": usage})
                if usage and ctx.body.include_usage else None)


def _stream_error(message: Any) -> dict[str, Any]:
    return {"error": {"message": str(message), "type": "server_error", "param": None, "code": "generation_failed"}}


def _finish(info: dict[str, Any]) -> str:
    return "length" if info.get("finish_reason") == "length" else "stop"
