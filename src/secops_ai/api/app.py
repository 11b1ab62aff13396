"""The FastAPI application: wires settings, the model service and every router together.

Routers only translate HTTP into calls to the packages; state lives on ``app.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from secops_ai import __version__
from secops_ai.agents.models import backend_factory
from secops_ai.agents.runs import RunManager
from secops_ai.alignment.selfcorrect import check_claims
from secops_ai.api.deps import require_api_key
from secops_ai.api.errors import install_error_handlers
from secops_ai.api.limits import BodySizeLimit, DisconnectWatch
from secops_ai.api.openapi_doc import install_openapi
from secops_ai.api.routers import agents, datasets, evals, evolve, health, openai_routes, training
from secops_ai.config import Settings, get_settings
from secops_ai.inference.remote import RemoteProxy
from secops_ai.inference.service import ModelService
from secops_ai.inference.serving import OpenAIServing, ServingMetrics
from secops_ai.observability.logging import setup_logging
from secops_ai.observability.metrics import install_metrics
from secops_ai.observability.tracing import instrument_fastapi, setup_tracing, shutdown_tracing

STATIC_DIR = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None, *, load_model: bool = True) -> FastAPI:
    """Build the app. ``load_model=False`` skips loading the model (routes that need it answer 503)."""
    settings = settings or get_settings()
    setup_logging(settings.log_level, settings.log_format)
    setup_tracing()  # only when OTEL_* variables ask for it

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = app.state.models
        app.state.remote = RemoteProxy(settings.llm_base_url, settings.llm_api_key) if settings.llm_base_url else None
        if load_model:
            await service.start()
        # Agent runs decode on the served model (secops_ai.agents.models.backend_factory); plans and reports are
        # checked against the catalogs. Routers get the manager through api.deps.RunManagerDep.
        app.state.agent_runs = RunManager(settings, backend_factory=backend_factory(settings, service),
                                          claim_checker=check_claims)
        if app.state.guardrails is not None:  # the intent classifier loads after the model; /readyz waits
            app.state.guardrails_load = asyncio.create_task(_load_guardrails(service, app.state.guardrails))
        try:
            yield
        finally:
            # cancel live agent runs before the model goes away
            await asyncio.to_thread(app.state.agent_runs.shutdown)
            await service.stop()
            if app.state.remote is not None:
                await app.state.remote.aclose()
            shutdown_tracing()

    # The schema and its viewers are routes of their own below, behind the same API key as the data.
    app = FastAPI(title="SecOps AI", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.settings = settings
    app.state.remote = None
    install_error_handlers(app)
    install_openapi(app)  # 400 not 422, 401/413 where they apply, the OpenAI error schema (tests/test_conformance.py)
    metrics = install_metrics(app)
    service = ModelService(settings, production_resolver=lambda: _production_adapter(settings))
    service.on_queue_depth = metrics.queue_depth.set
    service.on_step = metrics.batch_size.observe
    service.on_tokens = metrics.record_tokens
    app.state.models = service
    # Chat hooks (guardrails, self-correction) register on app.state.serving.chat_hooks: see inference/serving.py.
    app.state.serving = OpenAIServing(service, settings,
                                      ServingMetrics(ttft=lambda m, s: metrics.ttft.labels(m).observe(s)))
    from secops_ai.alignment.selfcorrect.hooks import install as install_self_correction

    install_self_correction(app.state.serving)  # extra_body secops.self_correct / '+verified' model ids
    app.state.guardrails = _guardrails(app, settings, metrics)  # SECOPS_GUARDRAILS_POLICY; docs/guardrails.md
    instrument_fastapi(app)  # HTTP server spans (no-op while tracing is off)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(DisconnectWatch)  # added last = outermost: sees the client leave first

    auth = [Depends(require_api_key)]
    _docs_routes(app, auth)
    app.include_router(health.router)
    app.include_router(openai_routes.router, prefix="/v1", dependencies=auth)
    app.include_router(datasets.router, dependencies=auth)
    app.include_router(training.router, dependencies=auth)
    app.include_router(evals.router, dependencies=auth)
    app.include_router(agents.router, dependencies=auth)
    app.include_router(evolve.router, dependencies=auth)
    if STATIC_DIR.is_dir():
        app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")

        @app.get("/", include_in_schema=False)
        def _root() -> RedirectResponse:
            return RedirectResponse("/ui/")
    return app


async def _load_guardrails(service: ModelService, guardrails: Any) -> None:
    while service.loading:  # one at a time: transformers' lazy imports are not thread-safe
        await asyncio.sleep(0.2)
    await asyncio.to_thread(guardrails.load)


def _guardrails(app: FastAPI, settings: Settings, metrics: Any) -> Any:
    """The policy's screens on the chat path, or None when ``SECOPS_GUARDRAILS_POLICY`` is unset. An invalid
    policy raises here (start-up fails naming the file and line)."""
    if not settings.guardrails_policy:
        return None
    from secops_ai.guardrails import Guardrails
    from secops_ai.guardrails.hooks import install

    if settings.llm_base_url:
        raise ValueError("SECOPS_GUARDRAILS_POLICY is set but SECOPS_LLM_BASE_URL forwards requests to a remote "
                         "engine unscreened; unset one of them")
    guardrails = Guardrails.from_env(settings.guardrails_policy, settings.workspace.models,
                                     embedding_model=settings.embedding_model, metrics=metrics)
    install(app.state.serving, guardrails, production=lambda: _production_adapter(settings))
    return guardrails


def _docs_routes(app: FastAPI, auth: list[Any]) -> None:
    """/openapi.json, /docs and /redoc, which need the API key when ``SECOPS_API_KEYS`` is set (the schema
    maps every route an attacker could try). /ui/ stays open: static files holding no data, whose every
    call sends the key the user typed."""
    @app.get("/openapi.json", include_in_schema=False, dependencies=auth)
    def _openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=auth)
    def _docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="SecOps AI - Swagger UI")

    @app.get("/redoc", include_in_schema=False, dependencies=auth)
    def _redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="SecOps AI - ReDoc")


def _production_adapter(settings: Settings) -> str | None:
    """The registry's production run (``<provider>/<run-id>``), for ``SECOPS_ADAPTER=production``."""
    from secops_ai.registry import Registry

    return Registry(settings).production()
