"""CLI group ``secops-ai models``: the registry (list, show, promote, archive, rollback, merge, export-gguf)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from secops_ai.cli.failure import fail
from secops_ai.cli.tables import fold_table

app = typer.Typer(no_args_is_help=True)
console = Console()


def _registry():
    from secops_ai.registry import Registry, RegistryError

    try:
        return Registry()
    except RegistryError as exc:  # e.g. DATABASE_URL names PostgreSQL without its driver installed
        fail(str(exc))


def _call(fn, *args, **kwargs):
    from secops_ai.registry import RegistryError
    from secops_ai.registry.model_card import ModelCardError

    try:
        return fn(*args, **kwargs)
    except (RegistryError, ModelCardError, FileNotFoundError) as exc:
        fail(str(exc))


@app.command("list")
def list_cmd(
    stage: str | None = typer.Option(None, help="Only this stage: candidate | production | archived."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Every registered run with its stage, training stage, dataset, final loss and gate verdict."""
    records = _call(_registry().list, stage=stage)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in records], indent=2))
        return
    table = Table("name", "stage", "kind", "trained", "dataset", "final loss", "gate", "created")
    for r in records:
        gate = "-" if r.gate is None else ("[green]passed[/green]" if r.gate["passed"] else "[red]failed[/red]")
        stage_txt = f"[bold green]{r.stage}[/bold green]" if r.stage == "production" else r.stage
        table.add_row(r.name, stage_txt, r.kind, r.training_stage or "-", r.dataset or "-",
                      str(r.metrics.get("final_loss", "-")), gate,
                      r.created_at.strftime("%Y-%m-%d %H:%M") if r.created_at else "-")
    console.print(fold_table(table))


@app.command("show")
def show(name: str = typer.Argument(..., help="<provider>/<run-id>")) -> None:
    """A run's record, gate result and stage history (JSON)."""
    typer.echo(json.dumps(_call(_registry().get, name).to_dict(), indent=2))


@app.command("promote")
def promote(
    name: str = typer.Argument(..., help="<provider>/<run-id>"),
    force: bool = typer.Option(False, "--force", help="Promote without a passing evaluation gate (audited)."),
    reason: str | None = typer.Option(None, "--reason", help="Why (required with --force; recorded)."),
    actor: str | None = typer.Option(None, "--actor", help="Who (default: the login name)."),
) -> None:
    """Make NAME the production model (SECOPS_ADAPTER=production). Needs a passing gate, or --force --reason."""
    record = _call(_registry().promote, name, force=force, reason=reason, actor=actor)
    forced = " [yellow](forced: recorded in the registry and the model card)[/yellow]" if force else ""
    console.print(f"[green]promoted[/green] {record.name} to production{forced}", highlight=False)


@app.command("archive")
def archive(
    name: str = typer.Argument(..., help="<provider>/<run-id>"),
    reason: str | None = typer.Option(None, "--reason"),
) -> None:
    """Move NAME to archived (its files are kept)."""
    record = _call(_registry().archive, name, reason=reason)
    console.print(f"[green]archived[/green] {record.name} (files kept at {record.path})")


@app.command("rollback")
def rollback(
    to: str | None = typer.Option(None, "--to", help="Restore this model (it must have been in production)."),
    reason: str | None = typer.Option(None, "--reason"),
) -> None:
    """Restore the model that was in production before the current one (skipping models archived on
    purpose); the current one is archived. With no model in production, restore the last one that qualifies."""
    name = _call(_registry().rollback, to=to, reason=reason)
    console.print(f"[green]rolled back[/green]: {name} is in production again")


@app.command("merge")
def merge(name: str = typer.Argument(..., help="<provider>/<run-id> of a LoRA adapter")) -> None:
    """Merge the adapter into its base weights as a NEW run (the base model is never modified)."""
    record = _call(_registry().merge, name)
    console.print(f"[green]merged[/green] {name} -> {record.name} ({record.path})")


@app.command("export-gguf")
def export_gguf(
    name: str = typer.Argument(..., help="'base', or <provider>/<run-id> (an adapter is merged on the fly)"),
    out: Path = typer.Option(..., "--out", help="GGUF file to write (must not exist)."),
    quant: str = typer.Option("q8_0", "--quant", help="q8_0, f16 or f32."),
) -> None:
    """Write a standalone GGUF (llama.cpp, Ollama) with llama.cpp's own converter from the pinned source."""
    from secops_ai.config import get_settings
    from secops_ai.inference.gguf import GGUFError, export_adapter, export_merged
    from secops_ai.inference.loader import AdapterError, ModelNotFoundError, resolve_base_model

    out = out.expanduser().resolve()
    try:
        if name == "base":
            path = export_merged(resolve_base_model(get_settings()), out, quant)
        else:
            record = _call(_registry().get, name)
            if record.kind == "adapter":
                path = export_adapter(Path(record.path), resolve_base_model(get_settings()), out, quant)
            else:
                path = export_merged(Path(record.path), out, quant)
    except (GGUFError, AdapterError, ModelNotFoundError) as exc:
        fail(str(exc))
    console.print(f"[green]exported[/green] {name} -> {path} ({path.stat().st_size / 1e6:.1f} MB, {quant})")
