"""Errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}`` with the right status.

Every failure the API can produce ends here as JSON: our own errors, validation errors, Starlette's HTTP
errors (404 on an unknown path, 405) and, last, any unexpected exception (a 500 without internals).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from secops_ai.inference.protocol import OpenAIError, error_body

log = logging.getLogger(__name__)

APIError = OpenAIError  # the routers' name for it

__all__ = ["APIError", "error_body", "install_error_handlers"]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OpenAIError)
    async def _api_error(_: Request, exc: OpenAIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = f"{loc}: {first.get('msg', 'invalid request')}" if loc else first.get("msg", "invalid request")
        return JSONResponse(error_body(400, _printable(msg), param=_printable(loc) or None), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:  # Allow lists every method of the path, not only the first route's
            from secops_ai.api.openapi_doc import allowed_methods

            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope)) or headers.get("Allow", "")
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), status_code=exc.status_code,
                            headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse(error_body(500, "The server failed to handle this request; see its log.",
                                       code="internal_error"), status_code=500)


def _printable(text: str) -> str:
    """Messages may quote client input: drop what JSON cannot encode (lone surrogates)."""
    return text.encode("utf-8", "replace").decode("utf-8")
