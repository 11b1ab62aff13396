"""Dependencies shared by routers (as the FastAPI full-stack template's ``api/deps.py``): settings, the agent
run manager, API-key auth.

The objects live on ``app.state``: settings from :func:`~secops_ai.api.app.create_app`, the run manager from
the app's ``lifespan`` (so it is created once, at startup, and shut down with the app). Routers ask for them
with the ``Annotated`` aliases below instead of reaching into ``request.app.state``.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection  # a Request or a WebSocket: auth covers /agents/runs/{id}/ws too

from secops_ai.agents.runs import RunManager
from secops_ai.config import Settings
from secops_ai.inference.protocol import OpenAIError as APIError


def get_app_settings(request: HTTPConnection) -> Settings:
    return request.app.state.settings


def get_run_manager(request: HTTPConnection) -> RunManager:
    manager = getattr(request.app.state, "agent_runs", None)
    if manager is None:  # only when the app's lifespan did not run (a TestClient used without `with`)
        raise APIError(503, "agent runs start with the server; it has not started", code="not_started")
    return manager


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RunManagerDep = Annotated[RunManager, Depends(get_run_manager)]


def require_api_key(request: HTTPConnection, settings: SettingsDep) -> None:
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
