"""CLI group ``secops-ai train``: run a fine-tuning config, resume an interrupted run, list runs in progress.

Works unchanged under ``torchrun --nproc_per_node N -m secops_ai.cli.main train run CONFIG`` (or
``accelerate launch``) for data-parallel training.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from secops_ai.cli.failure import fail, warn
from secops_ai.cli.tables import fold_table

app = typer.Typer(no_args_is_help=True)
console = Console()


def _report(result) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    m = result.metrics
    console.print(f"[green]finished[/green] {result.run_name}  steps={m.get('global_step')}  "
                  f"loss {m.get('first_loss')} -> {m.get('final_loss')}  tokens={m.get('tokens_seen')}",
                  highlight=False)
    console.print(f"  folder: {result.run_dir}\n  serve:  SECOPS_ADAPTER={result.run_name} secops-ai serve\n"
                  f"  gate:   secops-ai eval gate {result.run_name}", highlight=False)


def _errors():
    from secops_ai.data.store import DatasetError
    from secops_ai.training import ConfigError, TrainingError
    from secops_ai.training.data import DatasetFormatError

    return (ConfigError, TrainingError, DatasetFormatError, DatasetError, FileNotFoundError, FileExistsError)


@app.command("run")
def run(
    config: Path = typer.Argument(..., help="Run config YAML (see configs/)."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. max_steps=20 lora_rank=16."),
    run_id: str | None = typer.Option(None, "--run-id", help="Run id (default: <stage>-<dataset>-<time>-<rand>)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the rich progress bar."),
) -> None:
    """Fine-tune from CONFIG; the result lands in models/<provider>/<run-id>/ and is registered as a candidate."""
    from secops_ai.training import RunConfig, train
    from secops_ai.training.runner import new_run_id

    try:
        cfg = RunConfig.from_yaml(config, overrides=list(overrides or []))
        run_id = run_id or new_run_id(cfg)  # chosen here so an interrupted run can be named in the hint
        result = train(cfg, run_id=run_id, progress=progress)
    except _errors() as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail(f"interrupted; nothing was registered. Continue with `secops-ai train resume {run_id}` "
              "(see `secops-ai train status`).")
    _report(result)


@app.command("resume")
def resume_cmd(
    run_id: str = typer.Argument(..., help="Id of an interrupted or failed run (see `secops-ai train status`)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Continue an interrupted run from its last checkpoint with the config it started with."""
    from secops_ai.training import resume

    try:
        result = resume(run_id, progress=progress)
    except _errors() as exc:
        fail(str(exc))
    _report(result)


@app.command("status")
def status(
    run_id: str | None = typer.Argument(None, help="One run's status and recent metrics as JSON."),
    as_json: bool = typer.Option(False, "--json", help="Print the listing as JSON."),
) -> None:
    """Runs started on this workspace: running, completed, failed or interrupted (a dead process = failed)."""
    from secops_ai.config import get_settings
    from secops_ai.training.jobs import JobNotFound, StatusUnreadable, list_runs, run_status
    from secops_ai.training.runner import last_checkpoint, work_root

    settings = get_settings()
    if run_id:
        try:
            typer.echo(json.dumps(run_status(run_id, settings), indent=2))
        except (JobNotFound, StatusUnreadable) as exc:
            fail(f"training run {run_id}: {exc}" if isinstance(exc, StatusUnreadable) else str(exc))
        return
    warnings: list[str] = []
    runs = list_runs(settings, warnings)
    for w in warnings:
        warn(w)
    if as_json:
        typer.echo(json.dumps(runs, indent=2))
        return
    table = Table("run id", "status", "step", "loss", "last checkpoint")
    for run in runs:
        ckpt = last_checkpoint(work_root(settings) / run["id"])
        loss = run["summary"]["loss"]
        table.add_row(run["id"], run["status"], str(run["summary"]["step"]),
                      f"{loss:.4f}" if loss is not None else "-", ckpt.name if ckpt else "-")
    console.print(fold_table(table))


@app.command("export")
def export(
    config: Path = typer.Argument(..., help="Run config YAML."),
    out: Path = typer.Argument(..., help="Folder to write LLaMA-Factory's YAML + dataset_info.json into."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides."),
) -> None:
    """Write the run as a LLaMA-Factory job (train YAML, dataset_info.json, data file) without running it."""
    from secops_ai.config import get_settings
    from secops_ai.training import RunConfig
    from secops_ai.training.providers.llamafactory import write_job

    try:
        cfg = RunConfig.from_yaml(config, overrides=list(overrides or []))
        job = write_job(cfg, get_settings(), out, output_dir=out / "output")
    except _errors() as exc:
        fail(str(exc))
    console.print(f"[green]wrote[/green] {job}  (run: llamafactory-cli train {job})", highlight=False)
