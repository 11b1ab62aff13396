"""The OpenAPI document says what the routes really answer (checked by tests/test_conformance.py).

FastAPI documents a 422 for every route with parameters, but validation errors here are OpenAI-shaped 400s
(:mod:`secops_ai.api.errors`); the API-key dependency (401) and the body-size middleware (413) apply to routes
that do not declare them. :func:`install_openapi` fixes the generated document once, centrally:

- ``422`` is replaced by ``400`` (validation), and every error response gets the OpenAI error schema;
- ``401`` is added to every operation behind ``require_api_key`` (with a bearer security scheme when
  ``SECOPS_API_KEYS`` is set), ``413`` to every operation with a body, ``404`` to every path with a parameter;
- routes declare their own statuses (404, 409, 413, 429, 503) with ``responses=errors(...)``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

_DESCRIPTIONS = {
    400: "Invalid request (a field, header or parameter); `param` names it",
    401: "Missing or wrong API key (when SECOPS_API_KEYS is set)",
    403: "Forbidden",
    404: "No such resource",
    409: "The resource is not in a state that allows this",
    413: "The request body, or what it asks the server to copy, is too large",
    429: "Too many requests queued: retry later",
    500: "Unexpected server error (a bug; see the server log)",
    502: "The upstream model server failed",
    503: "The model is not loaded (yet)",
}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(BaseModel):
    """Every error body: ``{"error": {"message", "type", "param", "code"}}`` (OpenAI's shape)."""

    error: ErrorDetail = Field(description="What went wrong.")


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route that answers these error statuses."""
    return {code: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(code, "Error")} for code in codes}


# One SSE event of an agent run (OpenAPI < 3.2: ``schema`` of an event-stream describes each event).
_AGENT_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "description": "The event's seq (resume with Last-Event-ID)."},
        "event": {"type": "string", "description": "The event type (RUN_STARTED, TOOL_CALL_RESULT, ...)."},
        "data": {"type": "string", "contentMediaType": "application/json",
                 "contentSchema": {"type": "object", "required": ["run_id", "seq", "ts", "type", "payload"]}},
    },
}
SSE_200 = {200: {"description": "A Server-Sent Events stream (one `id`/`event`/`data` frame per event)",
                 "content": {"text/event-stream": {"schema": _AGENT_EVENT}}}}

_REF = "#/components/schemas/ErrorResponse"


def _error_spec(code: int) -> dict[str, Any]:
    return {"description": _DESCRIPTIONS.get(code, "Error"),
            "content": {"application/json": {"schema": {"$ref": _REF}}}}


def _keyed_operations(app: FastAPI) -> set[tuple[str, str]]:
    """(path, method) of every operation whose dependencies include ``require_api_key``.

    Router-level dependencies (``include_router(..., dependencies=auth)``) live on the effective route of the
    include in recent FastAPI, on the route itself in older ones: both are looked at.
    """
    from fastapi import routing

    from secops_ai.api.deps import require_api_key

    if hasattr(routing, "iter_route_contexts"):
        contexts = [getattr(c, "_effective_route", c.route) for c in routing.iter_route_contexts(app.routes)]
    else:
        contexts = [r for r in app.routes if isinstance(r, APIRoute)]
    out = set()
    for route in contexts:
        dependant = getattr(route, "dependant", None)
        stack = list(dependant.dependencies) if dependant is not None else []
        while stack:
            dep = stack.pop()
            if dep.call is require_api_key:
                out.update((route.path_format, m.lower()) for m in (getattr(route, "methods", None) or ()))
                break
            stack.extend(dep.dependencies)
    return out


def fix_schema(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("ErrorDetail", ErrorDetail.model_json_schema())
    components["ErrorResponse"] = {
        "type": "object", "title": "ErrorResponse", "required": ["error"],
        "properties": {"error": {"$ref": "#/components/schemas/ErrorDetail"}},
    }
    keyed = _keyed_operations(app)
    settings = getattr(app.state, "settings", None)
    keys_required = bool(settings is not None and settings.api_key_set)
    if keys_required:
        schema["components"]["securitySchemes"] = {"bearer": {
            "type": "http", "scheme": "bearer", "description": "One of the keys in SECOPS_API_KEYS."}}
    for path, operations in schema.get("paths", {}).items():
        for method, op in operations.items():
            responses = op.setdefault("responses", {})
            if responses.pop("422", None) is not None or op.get("parameters") or op.get("requestBody"):
                responses.setdefault("400", _error_spec(400))
            if (path, method) in keyed:
                responses.setdefault("401", _error_spec(401))
                if keys_required:
                    op["security"] = [{"bearer": []}]
            if "{" in path:  # a path parameter names something that may not exist
                responses.setdefault("404", _error_spec(404))
            if op.get("requestBody"):
                responses.setdefault("413", _error_spec(413))
            for code, spec in responses.items():
                if code.isdigit() and int(code) >= 400:
                    content = spec.setdefault("content", {}).setdefault("application/json", {})
                    if not content.get("schema"):
                        content["schema"] = {"$ref": _REF}
    _link_created_runs(schema)
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return schema


def _link_created_runs(schema: dict[str, Any]) -> None:
    """OpenAPI links from a created agent run to the routes that take its ``run_id`` (clients and fuzzers
    such as schemathesis' stateful phase follow them)."""
    paths = schema.get("paths", {})
    created = paths.get("/agents/runs", {}).get("post", {}).get("responses", {}).get("201")
    if created is None:
        return
    links = {}
    for path, method in (("/agents/runs/{run_id}", "get"), ("/agents/runs/{run_id}/events", "get"),
                         ("/agents/runs/{run_id}/approve", "post"), ("/agents/runs/{run_id}/cancel", "post")):
        op_id = paths.get(path, {}).get(method, {}).get("operationId")
        if op_id:
            links[op_id] = {"operationId": op_id, "parameters": {"run_id": "$response.body#/run_id"}}
    if links:
        created["links"] = links


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the corrected document (built once, then cached like FastAPI's)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = fix_schema(app, plain())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def allowed_methods(app: FastAPI, scope: dict[str, Any]) -> list[str]:
    """Every method some route serves at this request's path (for a 405's ``Allow`` header).

    Starlette stops at the first route whose path matches and lists only its methods; ``GET`` and ``POST``
    on ``/agents/runs`` are two routes, so its ``Allow`` named one of them.
    """
    from fastapi import routing
    from starlette.routing import Match

    if hasattr(routing, "iter_route_contexts"):
        routes = [getattr(c, "_effective_route", c.route) for c in routing.iter_route_contexts(app.routes)]
    else:
        routes = list(app.routes)
    methods: set[str] = set()
    for route in routes:
        route_methods = getattr(route, "methods", None)
        if not route_methods or not hasattr(route, "matches"):
            continue
        probe = {**scope, "method": next(iter(route_methods))}
        try:
            match, _ = route.matches(probe)
        except Exception:  # a route type that cannot match this scope
            continue
        if match == Match.FULL:
            methods.update(route_methods)
    return sorted(methods)
