"""CLI group `secops-ai eval`: run evaluation gates, show results, list suites, check contamination."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from secops_ai.cli.failure import EXIT_USAGE, fail

app = typer.Typer(no_args_is_help=True, help="Evaluation suites and promotion gates.")
console = Console()
err = Console(stderr=True)

TARGET_HELP = "'<provider>/<run-id>', 'production' or 'base' (the base model)."


class ItemsPerSecond(ProgressColumn):
    """Items per second of one suite's bar (rich's speed columns speak bytes)."""

    def render(self, task) -> Text:
        # done / elapsed: batches can take longer than rich's speed window, which would leave its estimate empty
        elapsed = task.finished_time if task.finished else task.elapsed
        if not task.completed or not elapsed:
            return Text("… items/s", style="progress.data.speed")
        return Text(f"{task.completed / elapsed:.2f} items/s", style="progress.data.speed")


def gate_progress() -> Progress:
    """One bar per suite: items done of total, items/s, elapsed and ETA."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), ItemsPerSecond(),
                    TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err)


@app.command("run", help="Evaluate a model on the gate's suites, compare with production and base, record the "
                         "verdict. Exit code 0 when the gate passes, 1 when it fails.")
def run(
    target: str = typer.Argument(..., help=TARGET_HELP),
    gate: str = typer.Option(None, "--gate", "-g", help="Gate config: a YAML path or a name under configs/gates/ "
                                                        "(default: default)."),
    endpoint: str = typer.Option(None, "--endpoint", help="Evaluate through this OpenAI-compatible server "
                                                          "(e.g. http://127.0.0.1:8000) instead of loading locally."),
    api_key: str = typer.Option(None, "--api-key", envvar="SECOPS_EVAL_API_KEY", help="Bearer key for --endpoint."),
    base: bool = typer.Option(True, "--base/--no-base", help="Also measure the base model for the report."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse stored measurements made with the same gate "
                                                                "fingerprint (never for remote endpoints)."),
    record: bool = typer.Option(True, "--record/--no-record", help="Write evals.json, the model card section and "
                                                                  "the registry verdict."),
    as_json: bool = typer.Option(False, "--json", help="Print the verdict as JSON instead of the report."),
    self_correct: str = typer.Option("off", "--self-correct", help="Also score the model with self-correction on "
                                     "(intrinsic | verified), written to evals-<mode>.json; the plain run decides."),
) -> None:
    from secops_ai.config import get_settings
    from secops_ai.evals.gate import GateConfigError
    from secops_ai.evals.runner import EvalsError, run_gate

    if self_correct not in ("off", "intrinsic", "verified"):
        fail(f"--self-correct must be off, intrinsic or verified; got {self_correct!r}", EXIT_USAGE)
    corrected = None

    with gate_progress() as progress:
        tasks: dict[str, int] = {}

        def on_progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = progress.add_task(label, total=total)
            progress.update(tasks[label], completed=done)

        try:
            report = run_gate(get_settings(), target, gate, endpoint=endpoint, api_key=api_key, compare_base=base,
                              reuse=cache, record=record, progress=on_progress)
            if self_correct != "off":  # docs/self_correction.md
                from secops_ai.alignment.selfcorrect.gate import evaluate_self_corrected

                corrected = evaluate_self_corrected(get_settings(), target, self_correct, gate, endpoint=endpoint,
                                                    api_key=api_key, progress=on_progress, record=record)
        except (EvalsError, GateConfigError, FileNotFoundError, ValueError) as exc:
            fail(str(exc))
    if corrected is not None:
        for suite, metrics in corrected.metrics().items():
            plain = report.candidate.metrics().get(suite, {})
            err.print(f"{suite} with self-correction {self_correct}: " + ", ".join(
                f"{k} {plain.get(k, float('nan')):.3f} -> {v:.3f}" for k, v in metrics.items()))
    if as_json:
        console.print_json(json.dumps(report.verdict.model_dump() | {"message": report.verdict.message}))
    else:
        console.print(Markdown(report.report_markdown))
        if record:
            err.print(f"results written to evals.json and evals.md for {report.target}")
    raise typer.Exit(0 if report.verdict.passed else 1)


app.command("gate", help="Same as `eval run`: evaluate and record the gate verdict.")(run)


@app.command("show", help="Show the stored results of a model's last gate run.")
def show(
    target: str = typer.Argument(..., help="'<provider>/<run-id>' or 'base/<name>'."),
    items: bool = typer.Option(False, "--items", help="Also list every flagged item with its reply."),
    as_json: bool = typer.Option(False, "--json", help="Print evals.json as is."),
) -> None:
    from secops_ai.config import get_settings
    from secops_ai.evals.runner import load_results

    provider, _, run_id = target.partition("/")
    report = load_results(get_settings(), provider, run_id) if run_id else None
    if report is None:
        fail(f"no evaluation results for {target!r}; run `secops-ai eval run {target}` first")
    if as_json:
        console.print_json(report.model_dump_json())
        return
    console.print(Markdown(report.report_markdown))
    if items:
        for name, result in report.candidate.suites.items():
            for rec in result.items:
                if rec.flagged:
                    console.print(f"[bold]{name}[/bold] {rec.id}: {rec.prompt[:100]!r}\n  -> {rec.response[:200]!r}")


@app.command("suites", help="List the suites, their metrics and which direction is better.")
def suites() -> None:
    from secops_ai.evals.result import HIGHER_IS_BETTER
    from secops_ai.evals.suites import SUITES

    table = Table("suite", "metrics (↑ higher is better, ↓ lower)", "what it measures")
    for name, suite in SUITES.items():
        metrics = ", ".join(f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}" for m in suite.metrics)
        table.add_row(name, metrics, suite.description)
    console.print(table)


@app.command("contamination", help="Check that no training dataset in the workspace uses a held-out evaluation "
                                   "item (held-out CWE/ATT&CK ids or an evaluation prompt). Exit 1 if one does.")
def contamination(
    gate: str = typer.Option(None, "--gate", "-g", help="Gate whose prompts are checked (default: default)."),
) -> None:
    from secops_ai.config import get_settings
    from secops_ai.evals.gate import GateConfigError, load_gate
    from secops_ai.evals.runner import check_contamination

    try:
        config, _ = load_gate(gate)
    except GateConfigError as exc:
        fail(str(exc))
    check = check_contamination(get_settings(), config)  # the same check every `eval run` reports
    if not check.found:
        console.print(check.summary())
        return
    for finding in check.found[:50]:
        console.print(finding, soft_wrap=True)
    fail(f"{len(check.found)} contaminated record(s)")


@app.command("diff", help="Items whose outcome differs between two models' stored gate results, with the paired "
                          "test per metric (run `eval run` on both first, with the same gate).")
def diff(
    a: str = typer.Argument(..., help="'<provider>/<run-id>' or 'base/<name>' (A)."),
    b: str = typer.Argument(..., help="'<provider>/<run-id>' or 'base/<name>' (B)."),
    suite: str = typer.Option(None, "--suite", "-s", help="Only this suite."),
    as_json: bool = typer.Option(False, "--json", help="Print the tests and the differing items as JSON."),
) -> None:
    from secops_ai.config import get_settings
    from secops_ai.evals.compare import item_diffs, paired_tests, suite_outcomes
    from secops_ai.evals.runner import load_measured, load_results

    settings = get_settings()
    loaded = []
    for spec in (a, b):
        provider, _, run_id = spec.partition("/")
        report = load_results(settings, provider, run_id) if run_id else None
        if report is None:
            fail(f"no evaluation results for {spec!r}; run `secops-ai eval run {spec}` first")
        loaded.append(report.candidate)
    ea, eb = loaded
    if ea.fingerprint != eb.fingerprint:  # B (or A) may have been measured as a reference under the other's gate
        (pa, _, ra), (pb, _, rb) = a.partition("/"), b.partition("/")
        if (other := load_measured(settings, pb, rb, ea.fingerprint)) is not None:
            eb = other
        elif (other := load_measured(settings, pa, ra, eb.fingerprint)) is not None:
            ea = other
    if ea.fingerprint != eb.fingerprint:
        fail(f"{a} and {b} were measured with different gate settings ({ea.gate} {ea.fingerprint} vs "
             f"{eb.gate} {eb.fingerprint}); re-run both with the same gate")
    tests = [t for t in paired_tests(suite_outcomes(ea.suites), suite_outcomes(eb.suites))
             if not suite or t.suite == suite]
    diffs = item_diffs(ea.suites, eb.suites, suite=suite)
    if as_json:
        console.print_json(json.dumps({"a": a, "b": b, "tests": [t.model_dump() for t in tests],
                                       "items": [d.model_dump() for d in diffs]}))
        return
    # one line per metric (never truncated, unlike a table at 80 columns): A's value vs B's on the same items
    console.print(f"A = {a}\nB = {b}\npaired tests on the same items (exact McNemar), A vs B:")
    for t in tests:
        console.print(f"  {t.describe('B')}", soft_wrap=True)
    for d in diffs:
        console.print(f"[bold]{d.suite}[/bold] {d.item} {d.metric}: A={d.a} B={d.b} "
                      f"(better: {'A' if d.better == 'a' else 'B'})\n  prompt: {d.prompt[:160]!r}\n"
                      f"  A: {d.reply_a[:200]!r}\n  B: {d.reply_b[:200]!r}")
    if not diffs:
        console.print("no item differs")
