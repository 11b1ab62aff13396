"""`secops-ai serve` and `secops-ai base prepare|info`."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from secops_ai.cli.failure import fail

base_app = typer.Typer(no_args_is_help=True)
console = Console()


def _apply(env: dict[str, str | None]) -> None:
    """Command-line options win over the environment: write them into it before settings are read."""
    from secops_ai.config import get_settings

    for key, value in env.items():
        if value is not None:
            os.environ[key] = value
    get_settings.cache_clear()


def serve(
    host: str = typer.Option(None, help="Bind address (SECOPS_HOST, default 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (SECOPS_PORT, default 8000)."),
    base_model: str = typer.Option(None, "--base-model", help="Base model (SECOPS_BASE_MODEL)."),
    adapter: str = typer.Option(None, help="Adapter '<provider>/<run-id>' or 'production' (SECOPS_ADAPTER)."),
    llm_base_url: str = typer.Option(None, "--llm-base-url", help="Forward to a remote engine (SECOPS_LLM_BASE_URL)."),
) -> None:
    """Serve the OpenAI-compatible API (+ web UI at /ui) on the configured model."""
    import uvicorn

    from secops_ai.api.app import create_app
    from secops_ai.config import get_settings

    _apply({"SECOPS_HOST": host, "SECOPS_PORT": None if port is None else str(port),
            "SECOPS_BASE_MODEL": base_model, "SECOPS_ADAPTER": adapter, "SECOPS_LLM_BASE_URL": llm_base_url})
    settings = get_settings()
    settings.workspace.ensure()
    if not settings.llm_base_url:
        # Fail fast with a clear message (path + fix) instead of a server that is never ready.
        from secops_ai.inference.loader import ModelNotFoundError, resolve_base_model

        try:
            with console.status("preparing the base model (first run converts the bundled GGUF, ~20 s)..."):
                resolve_base_model(settings)
        except ModelNotFoundError as exc:
            fail(str(exc))
    console.print(f"[bold]SecOps AI[/] serving on http://{settings.host}:{settings.port}  "
                  f"(workspace {settings.workspace.root}; UI at /ui, docs at /docs)")
    # JSON logs: uvicorn's own handlers would print plain text, so its loggers propagate to ours instead.
    log_config = None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG
    try:
        app = create_app(settings)
    except ValueError as exc:  # e.g. an invalid guardrails policy: the message names the file and line
        fail(str(exc))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level.lower(),
                log_config=log_config, timeout_graceful_shutdown=5)


@base_app.command("prepare")
def prepare(
    gguf: Path = typer.Option(None, help="A GGUF file to convert instead of the bundled SmolLM2."),
) -> None:
    """Convert the base model once into models/base/<name>/ (safetensors + tokenizer with chat template)."""
    from secops_ai.config import get_settings
    from secops_ai.inference.loader import ModelNotFoundError, prepare_base_model, resolve_base_model

    settings = get_settings()
    try:
        path = (prepare_base_model(settings.workspace.ensure(), name=gguf.stem, gguf=gguf.resolve())
                if gguf else resolve_base_model(settings))
    except ModelNotFoundError as exc:
        fail(str(exc))
    console.print(f"base model ready at [bold]{path}[/]")


@base_app.command("info")
def info() -> None:
    """Show the configured base model, default adapter and the adapters found under models/."""
    from secops_ai.config import get_settings
    from secops_ai.inference.loader import discover_adapters

    settings = get_settings()
    console.print(f"SECOPS_HOME      {settings.workspace.root}")
    console.print(f"SECOPS_BASE_MODEL {settings.base_model}")
    console.print(f"SECOPS_ADAPTER   {settings.adapter or '(base)'}")
    for adapter in discover_adapters(settings.workspace):
        console.print(f"  adapter {adapter.name}  ({adapter.path})")
