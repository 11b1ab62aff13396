"""Forwarding to a remote OpenAI-compatible engine (vLLM, Ollama, llama.cpp's server, another SecOps AI).

With ``SECOPS_LLM_BASE_URL`` set the ``/v1`` routes send the request body unchanged to that server and
stream its answer back, status and error bodies included: the way a team scales serving past one box.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

_HOP_HEADERS = {"content-length", "transfer-encoding", "connection", "content-encoding", "keep-alive"}


def v1_url(base_url: str, path: str) -> str:
    """Join ``SECOPS_LLM_BASE_URL`` (with or without a trailing ``/v1``) and a ``/v1``-relative path."""
    base = base_url.rstrip("/")
    if not base.endswith("/v1"):
        base += "/v1"
    return base + path


class RemoteProxy:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.base_url = base_url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(timeout, connect=5.0))

    async def ready(self) -> tuple[bool, str]:
        try:
            resp = await self.client.get(v1_url(self.base_url, "/models"), timeout=3.0)
        except httpx.HTTPError as exc:
            return False, f"remote engine {self.base_url} unreachable: {exc}"
        return resp.status_code == 200, f"remote engine answered {resp.status_code}"

    async def forward(self, request: Request, path: str) -> Response:
        body = await request.body()
        url = v1_url(self.base_url, path)
        req = self.client.build_request(request.method, url, content=body,
                                        headers={"content-type": request.headers.get("content-type",
                                                                                     "application/json")})
        try:
            resp = await self.client.send(req, stream=True)
        except httpx.HTTPError as exc:
            return JSONResponse({"error": {"message": f"remote engine {self.base_url} unreachable: {exc}",
                                           "type": "server_error", "param": None, "code": "upstream_unreachable"}},
                                status_code=502)
        headers = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_HEADERS}
        if resp.headers.get("content-type", "").startswith("text/event-stream"):
            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for piece in resp.aiter_raw():
                        yield piece
                finally:
                    await resp.aclose()

            return StreamingResponse(relay(), status_code=resp.status_code, headers=headers)
        content = await resp.aread()
        await resp.aclose()
        return Response(content, status_code=resp.status_code, headers=headers)

    async def aclose(self) -> None:
        await self.client.aclose()
