"""Health routes: always open, even when API keys are set."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from secops_ai.api.deps import GuardrailsDep, ModelsDep, RemoteDep
from secops_ai.api.errors import error_body
from secops_ai.api.openapi_doc import errors

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up (the model may still be loading)."""
    return {"status": "ok"}


@router.get("/readyz", responses=errors(503))
async def readyz(service: ModelsDep, remote: RemoteDep, guardrails: GuardrailsDep) -> JSONResponse:
    """200 once requests can be served: the local model is loaded, or the remote engine answers."""
    if remote is not None:
        ok, detail = await remote.ready()
        if ok:
            return JSONResponse({"status": "ready", "engine": "remote", "base_url": remote.base_url})
        return JSONResponse(error_body(503, detail, code="model_not_ready"), status_code=503)
    if guardrails is not None:  # a policy that cannot screen must not look ready (requests would get 503)
        ok, detail = guardrails.status()
        if not ok:
            return JSONResponse(error_body(503, f"not ready: {detail}", code="guardrails_unavailable"),
                                status_code=503, headers={"Retry-After": "5"})
    if service.ready.is_set():
        return JSONResponse({"status": "ready", "engine": "local", "model": service.base_id,
                             "adapter": service.default_adapter,
                             **({"guardrails": guardrails.status()[1]} if guardrails is not None else {})})
    detail = service.load_error or "model is still loading"
    return JSONResponse(error_body(503, f"not ready: {detail}", code="model_not_ready"), status_code=503,
                        headers={"Retry-After": "5"})
