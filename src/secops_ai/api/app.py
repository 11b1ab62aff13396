"""The FastAPI application: wires settings, the model service and every router together.

Routers only translate HTTP into calls to the packages; state lives on ``app.state``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from secops_ai import __version__
from secops_ai.api.deps import require_api_key
from secops_ai.api.errors import install_error_handlers
from secops_ai.api.limits import BodySizeLimit
from secops_ai.api.routers import agents, datasets, evals, health, openai_routes, training
from secops_ai.config import Settings, get_settings
from secops_ai.inference.remote import RemoteProxy
from secops_ai.inference.service import ModelService
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
        service = ModelService(settings, production_resolver=lambda: _production_adapter(settings))
        service.on_queue_depth = app.state.metrics.queue_depth.set
        service.on_step = app.state.metrics.batch_size.observe
        service.on_tokens = app.state.metrics.record_tokens
        app.state.models = service
        app.state.remote = RemoteProxy(settings.llm_base_url, settings.llm_api_key) if settings.llm_base_url else None
        if load_model:
            await service.start()
        try:
            yield
        finally:
            runs = getattr(app.state, "agent_runs", None)
            if runs is not None:  # cancel live agent runs before the model goes away
                await asyncio.to_thread(runs.shutdown)
            await service.stop()
            if app.state.remote is not None:
                await app.state.remote.aclose()
            shutdown_tracing()

    app = FastAPI(title="SecOps AI", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.remote = None
    install_error_handlers(app)
    install_metrics(app)
    instrument_fastapi(app)  # HTTP server spans (no-op while tracing is off)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)

    auth = [Depends(require_api_key)]
    app.include_router(health.router)
    app.include_router(openai_routes.router, prefix="/v1", dependencies=auth)
    app.include_router(datasets.router, dependencies=auth)
    app.include_router(training.router, dependencies=auth)
    app.include_router(evals.router, dependencies=auth)
    app.include_router(agents.router, dependencies=auth)
    if STATIC_DIR.is_dir():
        app.mount("/ui", StaticFiles(directory=STATIC_DIR, html=True), name="ui")

        @app.get("/", include_in_schema=False)
        def _root() -> RedirectResponse:
            return RedirectResponse("/ui/")
    return app


def _production_adapter(settings: Settings) -> str | None:
    """The registry's production run (``<provider>/<run-id>``), for ``SECOPS_ADAPTER=production``."""
    from secops_ai.registry import Registry

    return Registry(settings).production()
