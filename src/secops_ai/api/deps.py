"""Dependencies shared by routers (as the FastAPI full-stack template's ``api/deps.py``): settings, the model
service and its OpenAI serving layer, the remote proxy, guardrails, the agent run manager, API-key auth.

The objects live on ``app.state``: settings, the model service, the serving layer and guardrails from
:func:`~secops_ai.api.app.create_app`; the remote proxy and the run manager from the app's ``lifespan`` (created
once, at startup, and closed with the app). Routers ask for them with the ``Annotated`` aliases below instead
of reaching into ``request.app.state``.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends
from starlette.requests import HTTPConnection  # a Request or a WebSocket: auth covers /agents/runs/{id}/ws too

from secops_ai.agents.runs import RunManager
from secops_ai.config import Settings
from secops_ai.inference.protocol import OpenAIError as APIError
from secops_ai.inference.remote import RemoteProxy
from secops_ai.inference.service import ModelService
from secops_ai.inference.serving import OpenAIServing


def get_app_settings(request: HTTPConnection) -> Settings:
    return request.app.state.settings


def get_run_manager(request: HTTPConnection) -> RunManager:
    manager = getattr(request.app.state, "agent_runs", None)
    if manager is None:  # only when the app's lifespan did not run (a TestClient used without `with`)
        raise APIError(503, "agent runs start with the server; it has not started", code="not_started")
    return manager


def get_models(request: HTTPConnection) -> ModelService:
    return request.app.state.models


def get_serving(request: HTTPConnection) -> OpenAIServing:
    return request.app.state.serving


def get_remote(request: HTTPConnection) -> RemoteProxy | None:
    """The proxy to ``SECOPS_LLM_BASE_URL`` (remote mode), or None when this server runs the model."""
    return getattr(request.app.state, "remote", None)


def get_guardrails(request: HTTPConnection) -> Any:
    """The app's :class:`~secops_ai.guardrails.Guardrails`, or None without ``SECOPS_GUARDRAILS_POLICY``."""
    return getattr(request.app.state, "guardrails", None)


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RunManagerDep = Annotated[RunManager, Depends(get_run_manager)]
ModelsDep = Annotated[ModelService, Depends(get_models)]
ServingDep = Annotated[OpenAIServing, Depends(get_serving)]
RemoteDep = Annotated[RemoteProxy | None, Depends(get_remote)]
GuardrailsDep = Annotated[Any, Depends(get_guardrails)]  # typed loosely: guardrails loads only when configured


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
