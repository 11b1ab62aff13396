"""Dependencies shared by routers: settings, API-key auth."""

from __future__ import annotations

import secrets

from fastapi import Depends
from starlette.requests import HTTPConnection  # a Request or a WebSocket: auth covers /agents/runs/{id}/ws too

from secops_ai.config import Settings
from secops_ai.inference.protocol import OpenAIError as APIError


def get_app_settings(request: HTTPConnection) -> Settings:
    return request.app.state.settings


def require_api_key(request: HTTPConnection, settings: Settings = Depends(get_app_settings)) -> None:
    """With ``SECOPS_API_KEYS`` set, demand ``Authorization: Bearer <key>``; otherwise allow all."""
    keys = settings.api_key_set
    if not keys:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    # Compared as bytes: compare_digest refuses non-ASCII str (a TypeError, once a 500 before auth).
    given = token.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not any(secrets.compare_digest(given, k.encode("utf-8")) for k in keys):
        raise APIError(401, "Invalid or missing API key: send 'Authorization: Bearer <key>'.",
                       type="invalid_request_error", code="invalid_api_key")
