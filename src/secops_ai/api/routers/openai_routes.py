"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings.

Shapes follow OpenAI's API, streaming included (``chat.completion.chunk`` events, then ``data: [DONE]``),
so the ``openai`` client, LangChain, lm-eval-harness and garak work unchanged. In remote mode
(``SECOPS_LLM_BASE_URL``) every route forwards the request as is.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from secops_ai.api.errors import APIError
from secops_ai.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from secops_ai.inference.backend import GenerationParams
from secops_ai.inference.engine import QueueFullError
from secops_ai.inference.service import (
    Generation,
    ModelService,
    NotReadyError,
    PromptTooLongError,
    UnknownModelError,
)

router = APIRouter(tags=["openai"])


def _service(request: Request) -> ModelService:
    return request.app.state.models


def _sse(obj: dict[str, Any] | str) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _translate(exc: Exception) -> APIError:
    if isinstance(exc, NotReadyError):
        return APIError(503, f"The model is not ready yet: {exc}", code="model_not_ready",
                        headers={"Retry-After": "5"})
    if isinstance(exc, UnknownModelError):
        return APIError(404, str(exc), param="model", code="model_not_found")
    if isinstance(exc, PromptTooLongError):
        return APIError(400, str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, QueueFullError):
        return APIError(429, f"Too many requests are queued ({exc}); retry shortly.", code="queue_full",
                        headers={"Retry-After": "1"})
    raise exc


async def _forward(request: Request, path: str) -> Any:
    """Remote mode: send the same request to the configured OpenAI-compatible server."""
    return await request.app.state.remote.forward(request, path)


def _params(body: ChatCompletionRequest | CompletionRequest, max_tokens: int | None, settings, i: int
            ) -> GenerationParams:
    limit = settings.max_new_tokens
    if max_tokens is not None and max_tokens > limit:
        raise APIError(400, f"max_tokens={max_tokens} exceeds this server's limit of {limit} "
                            "(SECOPS_MAX_NEW_TOKENS).", param="max_tokens")
    return GenerationParams(max_tokens=max_tokens or limit, temperature=body.temperature, top_p=body.top_p,
                            seed=None if body.seed is None else body.seed + i, stop=list(body.stop or []))


async def _merged(streams: list[Generation]) -> AsyncIterator[tuple[int, str, Any]]:
    """Interleave several generation streams, tagging each event with its choice index."""
    queue: asyncio.Queue[tuple[int, str, Any] | None] = asyncio.Queue()

    async def pump(i: int, stream: AsyncIterator[tuple[str, Any]]) -> None:
        try:
            async for kind, payload in stream:
                await queue.put((i, kind, payload))
        except Exception as exc:
            await queue.put((i, "error", str(exc)))
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    remaining = len(tasks)
    try:
        while remaining:
            item = await queue.get()
            if item is None:
                remaining -= 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()


@router.get("/models")
async def list_models(request: Request) -> Any:
    if request.app.state.remote:
        return await _forward(request, "/models")
    try:
        entries = _service(request).list_models()
    except Exception as exc:
        raise _translate(exc) from exc
    return {"object": "list", "data": [
        {"id": e.id, "object": "model", "created": e.created, "owned_by": "secops-ai",
         "kind": e.kind, "parent": e.parent} for e in entries]}


@router.post("/chat/completions")
async def chat_completions(request: Request, body: ChatCompletionRequest) -> Any:
    if request.app.state.remote:
        return await _forward(request, "/chat/completions")
    service = _service(request)

    def submit() -> tuple[str | None, list[Generation], int]:
        adapter = service.resolve(body.model)
        ids = service.encode_chat([m.as_template_message() for m in body.messages])
        params = [_params(body, body.token_limit, request.app.state.settings, i) for i in range(body.n)]
        return adapter, [service.submit(ids, p, adapter) for p in params], len(ids)

    def chunk(i: int, delta: str | None, finish: str | None, first: bool) -> dict[str, Any]:
        d: dict[str, Any] = {} if delta is None else {"content": delta}
        if first:
            d = {"role": "assistant", **d}
        return {"index": i, "delta": d, "finish_reason": finish, "logprobs": None}

    def choice(i: int, text: str, finish: str) -> dict[str, Any]:
        return {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                "logprobs": None}

    return await _respond(request, body, submit, "chatcmpl", "chat.completion", chunk, choice, prefixes=None)


@router.post("/completions")
async def completions(request: Request, body: CompletionRequest) -> Any:
    if request.app.state.remote:
        return await _forward(request, "/completions")
    service = _service(request)
    prompts = body.prompts
    # One choice per (prompt, n): choice index = prompt_index * n + c, as OpenAI numbers them.
    owners = [pi for pi in range(len(prompts)) for _ in range(body.n)]

    def submit() -> tuple[str | None, list[Generation], int]:
        adapter = service.resolve(body.model)
        encoded = [service.encode_text(p) for p in prompts]
        settings = request.app.state.settings
        gens = [service.submit(encoded[pi], _params(body, body.max_tokens, settings, c), adapter)
                for pi in range(len(prompts)) for c in range(body.n)]
        return adapter, gens, sum(len(e) for e in encoded)

    def chunk(i: int, delta: str | None, finish: str | None, first: bool) -> dict[str, Any]:
        text = delta or ""
        if first and body.echo:
            text = prompts[owners[i]] + text
        return {"index": i, "text": text, "logprobs": None, "finish_reason": finish}

    def choice(i: int, text: str, finish: str) -> dict[str, Any]:
        return {"index": i, "text": text, "logprobs": None, "finish_reason": finish}

    if body.logprobs is not None or body.max_tokens == 0:
        return await _scored_completions(request, body)
    prefixes = [prompts[o] if body.echo else "" for o in owners]
    return await _respond(request, body, submit, "cmpl", "text_completion", chunk, choice, prefixes=prefixes)


async def _scored_completions(request: Request, body: CompletionRequest) -> dict[str, Any]:
    """Completions with OpenAI's legacy ``logprobs`` object (tokens, token_logprobs, top_logprobs,
    text_offset): generate (unless max_tokens=0), then score prompt + completion in one forward pass."""
    service = _service(request)
    settings = request.app.state.settings
    try:
        adapter = service.resolve(body.model)
        encoded = [service.encode_text(p) for p in body.prompts]
    except Exception as exc:
        raise _translate(exc) from exc
    choices, prompt_tokens, completion_tokens = [], 0, 0
    for pi, ids in enumerate(encoded):
        prompt_tokens += len(ids)
        for c in range(body.n):
            generated: list[int] = []
            finish = "length"
            if body.max_tokens > 0:
                try:
                    gen = service.submit(ids, _params(body, body.max_tokens, settings, c), adapter)
                except Exception as exc:
                    raise _translate(exc) from exc
                async for ev, payload in gen:
                    if ev == "done":
                        generated, finish = payload["token_ids"], _finish(payload)
            completion_tokens += len(generated)
            scored = await asyncio.to_thread(service.score, ids + generated, adapter, body.logprobs or 0)
            shown = range(len(ids + generated)) if body.echo else range(len(ids), len(ids + generated))
            all_ids = ids + generated
            tokens = [service.tokenizer.decode([all_ids[k]]) for k in shown]
            text = service.tokenizer.decode([all_ids[k] for k in shown])
            offsets, pos = [], 0
            for tok in tokens:
                offsets.append(pos)
                pos += len(tok)
            choices.append({"index": pi * body.n + c, "text": text, "finish_reason": finish, "logprobs": {
                "tokens": tokens, "token_logprobs": [scored[k][0] for k in shown],
                "top_logprobs": [scored[k][1] or None for k in shown], "text_offset": offsets}})
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": service.public_id(adapter), "choices": choices,
            "usage": _usage(prompt_tokens, completion_tokens)}


async def _respond(request: Request, body: ChatCompletionRequest | CompletionRequest,
                   submit: Callable[[], tuple[str | None, list[Generation], int]], id_prefix: str, kind: str,
                   chunk: Callable[[int, str | None, str | None, bool], dict[str, Any]],
                   choice: Callable[[int, str, str], dict[str, Any]], prefixes: list[str] | None) -> Any:
    """Queue the generations, then answer as one JSON body or as an SSE stream of chunks."""
    service = _service(request)
    metrics = request.app.state.metrics
    started = time.perf_counter()
    try:
        adapter, gens, prompt_tokens = submit()
    except APIError:
        raise
    except Exception as exc:
        raise _translate(exc) from exc
    model_id = service.public_id(adapter)
    rid, created = f"{id_prefix}-{uuid.uuid4().hex}", int(time.time())
    base = {"id": rid, "object": kind, "created": created, "model": model_id}
    state = {"ttft": False, "completion_tokens": 0}

    async def events() -> AsyncIterator[tuple[int, str, Any]]:
        try:
            async for i, ev, payload in _merged(gens):
                if ev == "delta" and not state["ttft"]:
                    state["ttft"] = True
                    metrics.ttft.labels(model_id).observe(time.perf_counter() - started)
                if ev == "done":
                    state["completion_tokens"] += payload["completion_tokens"]
                yield i, ev, payload
        finally:  # a client that left frees its rows at the next decode step
            for gen in gens:
                gen.cancel()

    if body.stream:
        chunk_kind = f"{kind}.chunk" if kind == "chat.completion" else kind

        async def sse() -> AsyncIterator[bytes]:
            head = {**base, "object": chunk_kind}
            opened: set[int] = set()
            async for i, ev, payload in events():
                first = i not in opened
                opened.add(i)
                if ev == "delta":
                    yield _sse({**head, "choices": [chunk(i, payload, None, first)]})
                elif ev == "done":
                    yield _sse({**head, "choices": [chunk(i, None, _finish(payload), first)]})
                else:
                    yield _sse({"error": {"message": payload, "type": "server_error", "param": None, "code": None}})
            if body.include_usage:
                yield _sse({**head, "choices": [], "usage": _usage(prompt_tokens, state["completion_tokens"])})
            yield _sse("[DONE]")

        return StreamingResponse(sse(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    texts = list(prefixes) if prefixes else [""] * len(gens)
    finish = ["stop"] * len(gens)
    async for i, ev, payload in events():
        if ev == "delta":
            texts[i] += payload
        elif ev == "done":
            finish[i] = _finish(payload)
        else:
            raise APIError(500, f"generation failed: {payload}")
    return {**base, "choices": [choice(i, texts[i], finish[i]) for i in range(len(gens))],
            "usage": _usage(prompt_tokens, state["completion_tokens"])}


@router.post("/embeddings")
async def embeddings(request: Request, body: EmbeddingRequest) -> Any:
    if request.app.state.remote:
        return await _forward(request, "/embeddings")
    from secops_ai.knowledge.embeddings import EMBEDDING_DIM, count_tokens, embed

    settings = request.app.state.settings
    if body.model not in ("default", settings.embedding_model, "all-MiniLM-L6-v2", "text-embedding-ada-002"):
        raise APIError(404, f"The embedding model '{body.model}' does not exist; use '{settings.embedding_model}'.",
                       param="model", code="model_not_found")
    if body.dimensions not in (None, EMBEDDING_DIM):
        raise APIError(400, f"dimensions must be {EMBEDDING_DIM} for this model", param="dimensions")
    texts = body.texts
    if not texts or any(not isinstance(t, str) or not t for t in texts):
        raise APIError(400, "input must be a non-empty string or a list of non-empty strings", param="input")
    vectors, tokens = await asyncio.to_thread(
        lambda: (embed(texts, spec=settings.embedding_model), count_tokens(texts, spec=settings.embedding_model)))
    data = []
    for i, vec in enumerate(vectors):
        value: Any = (base64.b64encode(np.asarray(vec, dtype="<f4").tobytes()).decode()
                      if body.encoding_format == "base64" else vec.tolist())
        data.append({"object": "embedding", "index": i, "embedding": value})
    return JSONResponse({"object": "list", "data": data, "model": settings.embedding_model,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


def _finish(info: dict[str, Any]) -> str:
    return "length" if info.get("finish_reason") == "length" else "stop"


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
