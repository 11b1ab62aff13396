"""OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions, /v1/embeddings.

Thin by design: the protocol (choices, streaming chunks, usage, logprobs, hooks) lives in
:mod:`secops_ai.inference.serving`; a route only picks JSON or SSE (sse-starlette frames the stream and
ends it when the client leaves). In remote mode (``SECOPS_LLM_BASE_URL``) every route forwards the
request as is.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from secops_ai.api.deps import GuardrailsDep, RemoteDep, ServingDep, SettingsDep
from secops_ai.api.errors import APIError
from secops_ai.api.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest
from secops_ai.inference.serving import Result
from secops_ai.observability.tracing import genai_span, set_attributes

_ERROR = {"description": "OpenAI-shaped error", "content": {"application/json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {code: _ERROR for code in (400, 401, 404, 413, 429, 500, 502, 503)}
_STREAMED = {200: {"description": "A JSON body, or an SSE stream with stream=true",
                   "content": {"application/json": {}, "text/event-stream": {}}}, **_ERRORS}

router = APIRouter(tags=["openai"])


def _gone(request: Request):
    """``disconnected()`` for the serving layer: set by api.limits.DisconnectWatch when the client leaves."""
    event = request.scope.get("secops.disconnected")

    async def disconnected() -> bool:
        return event is not None and event.is_set()
    return disconnected


def _reply(result: Result) -> Any:
    if isinstance(result, dict):
        return result
    return EventSourceResponse(result, sep="\n", headers={"Cache-Control": "no-cache"})


@router.get("/models", responses=_ERRORS)
async def list_models(request: Request, serving: ServingDep, remote: RemoteDep) -> Any:
    if remote:
        return await remote.forward(request, "/models")
    return await serving.models()


@router.post("/chat/completions", responses=_STREAMED)
async def chat_completions(request: Request, body: ChatCompletionRequest, serving: ServingDep,
                           remote: RemoteDep) -> Any:
    if remote:
        return await remote.forward(request, "/chat/completions")
    return _reply(await serving.chat(body, _gone(request)))


@router.post("/completions", responses=_STREAMED)
async def completions(request: Request, body: CompletionRequest, serving: ServingDep, remote: RemoteDep,
                      guardrails: GuardrailsDep) -> Any:
    if remote:
        return await remote.forward(request, "/completions")
    if guardrails is not None:  # SECOPS_GUARDRAILS_POLICY (no hook point here)
        from secops_ai.guardrails.hooks import guarded_completions

        return _reply(await guarded_completions(serving, guardrails, body, _gone(request)))
    return _reply(await serving.completions(body, _gone(request)))


@router.post("/embeddings", responses=_ERRORS)
async def embeddings(request: Request, body: EmbeddingRequest, settings: SettingsDep, remote: RemoteDep) -> Any:
    if remote:
        return await remote.forward(request, "/embeddings")
    from secops_ai.knowledge.embeddings import EMBEDDING_DIM, count_tokens, embed

    if body.model not in ("default", settings.embedding_model, "all-MiniLM-L6-v2", "text-embedding-ada-002"):
        raise APIError(404, f"The embedding model '{body.model}' does not exist; use '{settings.embedding_model}'.",
                       param="model", code="model_not_found")
    if body.dimensions not in (None, EMBEDDING_DIM):
        raise APIError(400, f"dimensions must be {EMBEDDING_DIM} for this model", param="dimensions")
    texts = body.texts
    if not texts or not all(texts):
        raise APIError(400, "input must be a non-empty string or a list of non-empty strings", param="input")
    with genai_span("embeddings", settings.embedding_model,
                    attributes={"gen_ai.embeddings.dimension.count": EMBEDDING_DIM}) as span:
        vectors, tokens = await asyncio.to_thread(
            lambda: (embed(texts, spec=settings.embedding_model), count_tokens(texts, spec=settings.embedding_model)))
        set_attributes(span, {"gen_ai.usage.input_tokens": tokens, "gen_ai.response.model": settings.embedding_model})
    data = [{"object": "embedding", "index": i, "embedding": base64.b64encode(np.asarray(v, dtype="<f4").tobytes())
             .decode() if body.encoding_format == "base64" else v.tolist()} for i, v in enumerate(vectors)]
    return JSONResponse({"object": "list", "data": data, "model": settings.embedding_model,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
