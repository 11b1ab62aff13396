"""The ``secops-ai`` command: one Typer app; each sub-command group lives in its own module.

Commands only parse arguments and call into the packages; they hold no logic of their own.
"""

from __future__ import annotations

import typer

from secops_ai.cli import agent, chat, data, db, evals, evolve, guardrails, models, pretrain, serve, train

app = typer.Typer(
    name="secops-ai",
    help="SecOps AI: fine-tune, evaluate, serve and align security language models and agents, offline.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

@app.callback()
def _observability() -> None:
    # Every command traces to the collector named by OTEL_* (off when unset) and honours SECOPS_LOG_FORMAT.
    import atexit
    import os

    from secops_ai.observability.logging import setup_logging
    from secops_ai.observability.tracing import setup_tracing, shutdown_tracing

    _check_settings()
    if os.environ.get("SECOPS_LOG_FORMAT", "").lower() == "json":
        setup_logging(os.environ.get("SECOPS_LOG_LEVEL", "INFO"), "json")
    if setup_tracing():
        atexit.register(shutdown_tracing)
    _record_gguf_in_cards()


def _check_settings() -> None:
    # A bad SECOPS_* value fails every command the same way, naming the variable, before any work starts.
    from pydantic import ValidationError

    from secops_ai.cli.failure import fail
    from secops_ai.config import get_settings

    try:
        get_settings()
    except ValidationError as exc:
        fail("; ".join(f"SECOPS_{'_'.join(map(str, e['loc'])).upper()}={e.get('input')!r}: {e['msg']}"
                       for e in exc.errors()))


def _record_gguf_in_cards() -> None:
    # An adapter converted for the llama.cpp engine gets its GGUF's sha256 in its model card (inference may
    # not import the registry, so the wiring is here).
    from secops_ai.inference import gguf
    from secops_ai.registry.model_card import record_gguf

    if record_gguf not in gguf.converted_hooks:
        gguf.converted_hooks.append(record_gguf)


app.command("serve", help="Start the OpenAI-compatible API server (and web UI).")(serve.serve)
app.command("chat", help="Streaming terminal chat with the configured model, local or remote.")(chat.chat)
app.add_typer(serve.base_app, name="base", help="Prepare and inspect the base model.")
app.add_typer(data.app, name="data", help="Versioned, immutable datasets: import, generate, verify, export.")
app.add_typer(train.app, name="train", help="Fine-tune with LoRA/QLoRA SFT, DPO or ORPO from a run config.")
app.add_typer(models.app, name="models", help="Model registry: list, show, promote, archive, rollback, merge.")
app.add_typer(evals.app, name="eval", help="Evaluation suites and promotion gates.")
app.add_typer(agent.app, name="agent", help="Run and replay security agents.")
app.add_typer(pretrain.app, name="pretrain", help="Pretrain small GPTs from scratch, nanoGPT-style.")
app.add_typer(db.app, name="db", help="The metadata database: migrate the registry from SQLite to PostgreSQL.")
app.add_typer(evolve.app, name="evolve", help="Self-improving alignment loop: preference data -> DPO -> gate.")
app.add_typer(guardrails.app, name="guardrails", help="Serving-time guardrails: intent classifier, policies, checks.")


if __name__ == "__main__":
    app()
