"""CLI group ``secops-ai evolve``: run (or resume) a self-improvement loop, list runs, show one."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from secops_ai.cli.failure import fail

app = typer.Typer(no_args_is_help=True, help="Self-improving alignment: actor, judge, meta-judge, verifiers -> "
                                             "preference data -> DPO -> gate.")
console = Console()
_err = Console(stderr=True)


def _config_path(spec: str) -> Path:
    """A path, or a name under configs/evolve/."""
    path = Path(spec)
    if path.is_file() or path.suffix in (".yaml", ".yml"):
        return path
    return Path("configs") / "evolve" / f"{spec}.yaml"


@app.command("run", help="Run the loop for CONFIG (a YAML path or a name under configs/evolve/). Rerunning the same "
                         "config resumes it: finished stages are skipped. Exit 0 when the last iteration's "
                         "candidate passed the gate, 1 when it did not (or on error).")
def run(
    config: str = typer.Argument(..., help="configs/evolve/<name>.yaml, or just <name>."),
    iterations: int = typer.Option(None, "--iterations", "-k", min=1, max=20,
                                   help="Iterations to reach (default: the config's)."),
    as_json: bool = typer.Option(False, "--json", help="Print the final state as JSON."),
) -> None:
    from secops_ai.alignment.config import EvolveConfig, EvolveConfigError
    from secops_ai.alignment.pipeline import EvolveError, EvolvePipeline
    from secops_ai.alignment.report import run_markdown, summary

    try:
        cfg = EvolveConfig.from_yaml(_config_path(config))
    except EvolveConfigError as exc:
        fail(str(exc))
    pipeline = EvolvePipeline(cfg, progress=lambda msg: _err.print(f"[dim]{msg}[/dim]", highlight=False))
    _err.print(f"evolve run {pipeline.run_id} ({pipeline.dir})", highlight=False)
    try:
        state = pipeline.run(iterations)
    except EvolveError as exc:
        fail(str(exc))
    except (ValueError, FileNotFoundError, LookupError, RuntimeError) as exc:
        fail(f"{type(exc).__name__}: {exc} (rerun the same command to resume: finished stages are kept)")
    if as_json:
        console.print_json(json.dumps(state))
    else:
        console.print(Markdown(run_markdown(state)))
    rows = summary(state)
    raise typer.Exit(0 if rows and rows[-1]["gate_passed"] and rows[-1]["no_regression"] else 1)


@app.command("status", help="Every evolve run in the workspace, one row per iteration.")
def status(as_json: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    from secops_ai.alignment.report import list_runs, summary
    from secops_ai.config import get_settings

    rows = [r for state in list_runs(get_settings()) for r in (summary(state) or [{"run_id": state["run_id"],
                                                                                   "status": state.get("status")}])]
    if as_json:
        console.print_json(json.dumps(rows))
        return
    if not rows:
        console.print("no evolve runs yet: secops-ai evolve run configs/evolve/<name>.yaml")
        return
    table = Table("run", "it", "status", "from", "actor pairs", "judge pairs", "candidate", "gate", "no regr.",
                  "promoted", "seconds")
    for r in rows:
        table.add_row(*(str(r.get(k, "")) if r.get(k) is not None else "-" for k in (
            "run_id", "iteration", "status", "start_model", "actor_pairs", "judge_pairs", "candidate",
            "gate_passed", "no_regression", "promoted", "seconds")))
    console.print(table)


@app.command("show", help="One evolve run: every stage's artefact, wall time and statistics, and the gate's "
                          "before/after table.")
def show(run_id: str = typer.Argument(..., help="A run id from `evolve status`."),
         as_json: bool = typer.Option(False, "--json", help="Print the full state as JSON.")) -> None:
    from secops_ai.alignment.report import RunNotFound, get_run, run_markdown
    from secops_ai.config import get_settings

    try:
        state = get_run(get_settings(), run_id)
    except RunNotFound as exc:
        fail(str(exc))
    if as_json:
        console.print_json(json.dumps(state))
    else:
        console.print(Markdown(run_markdown(state)))
