"""CLI group ``secops-ai agent``: run a security agent with live output, replay a run, list runs.

Commands parse arguments and call :class:`secops_ai.agents.runs.RunManager`; the only code here renders
events (the same events the API streams) for a terminal.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from secops_ai.cli.failure import EXIT_USAGE, fail

app = typer.Typer(no_args_is_help=True)
console = Console()

_OUTCOME_STYLE = {"succeeded": "bold green", "failed": "bold red", "error": "bold red", "interrupted": "red",
                  "budget_exhausted": "yellow", "cancelled": "yellow", "running": "cyan",
                  "waiting_approval": "magenta", "queued": "cyan"}


@app.command("run")
def run(
    task: str = typer.Argument(..., help="What the agent should do, e.g. 'fix the bandit findings'."),
    workspace: Path = typer.Option(..., "--workspace", "-w", exists=True, file_okay=False, resolve_path=True,
                                   help="Folder to work on. The agent only changes a sandboxed copy."),
    model: str | None = typer.Option(None, help="Adapter '<provider>/<run-id>' or 'production' (default: "
                                                "SECOPS_ADAPTER / the base model, or SECOPS_LLM_BASE_URL)."),
    script: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                       help="JSON playbook {plan, actions, critiques} for a scripted run."),
    max_steps: int = typer.Option(8, min=1, help="Most actions."),
    max_tokens: int = typer.Option(4096, min=1, help="Most tokens the model may generate in the run."),
    max_seconds: float = typer.Option(600.0, min=1, help="Wall-clock limit of the run."),
    tokens_per_call: int = typer.Option(256, min=8, help="Most tokens for one model answer."),
    approve: str = typer.Option("ask", help="High-risk tools: 'ask' (prompt here; refused when not a TTY), "
                                            "'deny' or 'allow'."),
    reflect: bool = typer.Option(True, help="Self-critique after each observation."),
    mode: str = typer.Option("auto", help="'guided' (the model fills the slots of a scan → fix → rescan "
                                          "workflow), 'free' (the model plans), 'auto' (guided for small local "
                                          "models)."),
    json_events: bool = typer.Option(False, "--json", help="Print raw events (JSONL) instead of rendering."),
) -> None:
    """Run an agent on TASK over a sandboxed copy of --workspace, showing each step live."""
    from secops_ai.agents.actions import Budget
    from secops_ai.agents.runs import RunManager
    from secops_ai.config import get_settings

    if approve not in ("ask", "deny", "allow"):
        fail(f"--approve: {approve!r}: choose ask, deny or allow", EXIT_USAGE)
    _check_mode(mode)
    _check_model(model if not script else None)
    interactive = approve == "ask" and sys.stdin.isatty()
    budget = Budget(max_steps=max_steps, max_tokens=max_tokens, max_seconds=max_seconds,
                    tokens_per_call=tokens_per_call)
    request = _run_request(task, workspace, model, script, budget,
                           approval=approve if approve != "ask" or interactive else "deny", reflect=reflect, mode=mode)
    if approve == "ask" and not interactive:
        console.print("[yellow]stdin is not a terminal: high-risk actions will be refused (use --approve).[/]")

    from secops_ai.alignment.selfcorrect import check_claims

    manager = RunManager(get_settings(), claim_checker=check_claims)  # plans and reports checked vs the catalogs
    try:
        handle = manager.start(request, operator=True)  # the CLI is the operator: any folder, any policy
    except ValueError as exc:
        fail(str(exc))
    console.print(f"run [bold]{handle.run_id}[/] → {manager.runs_dir / (handle.run_id + '.jsonl')}")
    _follow(manager, handle, interactive=interactive, json_events=json_events)
    outcome = handle.result.outcome if handle.result else "error"
    raise typer.Exit(0 if outcome == "succeeded" else 1)


def _run_request(task: str, workspace: Path, model: str | None, script: Path | None, budget: Any, *,
                 approval: str, reflect: bool, mode: str) -> Any:
    """The run request the options describe; a bad playbook or value fails naming where."""
    from pydantic import ValidationError

    from secops_ai.agents.runs import RunRequest

    try:
        playbook = json.loads(script.read_text()) if script else None
        return RunRequest(task=task, workspace=str(workspace), model="scripted" if script else model, script=playbook,
                          budget=budget, approval=approval, reflect=reflect, mode=mode)  # type: ignore[arg-type]
    except json.JSONDecodeError as exc:
        fail(f"--script {script}: line {exc.lineno}: {exc.msg}")
    except ValidationError as exc:
        fail(f"{'--script ' + str(script) if script else 'options'}: {_first_error(exc)}")


def _follow(manager: Any, handle: Any, *, interactive: bool, json_events: bool) -> None:
    """Show the run's events as they come, asking at the terminal for approvals, until its last one.

    Ctrl-C cancels the run cleanly and shows the events that lead to its end."""
    seq = -1
    try:
        while True:
            for event in handle.log.wait(seq, timeout=0.5):
                seq = event.seq
                data = event.model_dump(mode="json")
                if json_events:
                    print(event.line(), flush=True)
                else:
                    render(data)
                if interactive and _is(data, "approval_requested"):
                    value = data["payload"]["value"]
                    ok = typer.confirm(f"Allow {value['tool']} {json.dumps(value['args'])}?", default=False)
                    manager.decide_pending(handle.run_id, approved=ok, tool_call_id=value["tool_call_id"],
                                           reason="" if ok else "refused at the terminal", by="cli")
            if handle.done and seq == handle.log.events[-1].seq:
                return
    except KeyboardInterrupt:
        console.print("[yellow]cancelling…[/]")
        manager.cancel(handle.run_id)
        if handle.thread is not None:
            handle.thread.join()
        for event in handle.log.events[seq + 1:]:
            render(event.model_dump(mode="json"))


@app.command("replay")
def replay(
    run_id: str = typer.Argument(..., help="Run id (see `secops-ai agent list`)."),
    json_events: bool = typer.Option(False, "--json", help="Print the raw JSONL events."),
) -> None:
    """Re-render a recorded run from storage/agent_runs/<run-id>.jsonl."""
    from secops_ai.agents.trajectory import TrajectoryError, read_events, summarize, trajectory_path
    from secops_ai.config import get_settings

    try:
        events = read_events(trajectory_path(get_settings().workspace.agent_runs, run_id))
    except TrajectoryError as exc:
        fail(str(exc))
    for event in events:
        if json_events:
            print(json.dumps(event, ensure_ascii=False))
        else:
            render(event)
    summary = summarize(run_id, events)
    if summary.status == "interrupted" and not json_events:
        console.print(Panel(f"run stopped after {len(events)} events without finishing (crash or kill)",
                            style="red"))


@app.command("list")
def list_runs(limit: int = typer.Option(50, min=1, help="Newest runs to show.")) -> None:
    """List agent runs in this workspace (newest first)."""
    from secops_ai.agents.runs import RunManager
    from secops_ai.config import get_settings

    runs = RunManager(get_settings()).list()[:limit]
    if not runs:
        console.print("no agent runs yet: try `secops-ai agent run \"<task>\" --workspace DIR`")
        return
    table = Table("run id", "started", "status", "steps", "model", "task")
    for r in runs:
        started = datetime.fromtimestamp(r.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S") if r.started_at else ""
        table.add_row(r.run_id, started, Text(r.status, style=_OUTCOME_STYLE.get(r.status, "")), str(r.steps),
                      r.model, r.task[:60])
    console.print(table)


@app.command("eval")
def eval_agent(
    model: str | None = typer.Option(None, help="Model to evaluate (default: the configured one)."),
    n: int = typer.Option(10, "--n", min=1, max=1000, help="Held-out repositories to run on."),
    start: int = typer.Option(0, min=0, max=999, help="First held-out seed (held-out seeds are 0..999)."),
    mode: str = typer.Option("auto", help="auto, guided or free (see `agent run --help`)."),
    max_steps: int = typer.Option(8, min=1, help="Most actions per run (default budget)."),
    max_tokens: int = typer.Option(4096, min=1, help="Most generated tokens per run."),
    max_seconds: float = typer.Option(600.0, min=1, help="Wall-clock limit per run."),
    tokens_per_call: int = typer.Option(256, min=8, help="Most tokens for one model answer."),
    min_success: int | None = typer.Option(None, min=0, help="Exit 1 when fewer repositories succeed."),
    out: Path | None = typer.Option(None, help="Write the JSON report here."),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON report instead of a table."),
) -> None:
    """Run the agent on N held-out generated vulnerable repositories and check every patch independently.

    A repository counts when the run succeeded, its patch applies to the original and removes a bandit finding
    on rescan (nothing as severe added), the repository's tests still pass and the original is unchanged.
    """
    from secops_ai.agents.actions import Budget
    from secops_ai.agents.evaluation import RepoResult, evaluate
    from secops_ai.config import get_settings

    _check_mode(mode)
    _check_model(model)
    if start + n > 1000:
        fail(f"held-out seeds are 0..999; --start {start} --n {n} goes past them", EXIT_USAGE)
    budget = Budget(max_steps=max_steps, max_tokens=max_tokens, max_seconds=max_seconds,
                    tokens_per_call=tokens_per_call)

    def progress(r: RepoResult) -> None:
        if not json_out:
            mark = "[green]ok[/]" if r.succeeded else f"[red]no[/] {_esc(r.reason)}"
            console.print(f"seed {r.seed:3d} {r.package:16s} {r.outcome:16s} {r.run_seconds:6.1f}s  {mark}")

    report = evaluate(get_settings(), model=model, n=n, start=start, mode=mode, budget=budget, on_result=progress)
    text = report.model_dump_json(indent=2)
    if out is not None:
        out.write_text(text + "\n")
    if json_out:
        print(text)
    else:
        table = Table("seed", "outcome", "ok", "run s", "cpu s", "steps", "fixed", "tests", "why not")
        for r in report.results:
            table.add_row(str(r.seed), r.outcome, "yes" if r.succeeded else "no", f"{r.run_seconds:.1f}",
                          f"{r.cpu_seconds:.1f}",
                          str(r.steps), ", ".join(r.fixed)[:40], r.tests, r.reason[:60])
        console.print(table)
        console.print(f"[bold]{report.succeeded}/{report.total} succeeded[/] with {report.model} ({report.mode}); "
                      f"run time mean {report.run_seconds_mean:.1f}s, max {report.run_seconds_max:.1f}s "
                      f"(CPU max {report.cpu_seconds_max:.1f}s) "
                      f"on {report.cpus} CPUs (load {report.load_avg_1m})")
    if min_success is not None and report.succeeded < min_success:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------------- rendering
def render(event: dict[str, Any]) -> None:
    """Print one event for a person (shared by `run` and `replay`)."""
    t, p = event["type"], event["payload"]
    if t == "RUN_STARTED":
        tools = ", ".join(f"{x['name']}({x['risk']})" for x in p.get("tools", []))
        console.print(Panel(f"[bold]{_esc(p.get('task', ''))}[/]\nmodel: {_esc(p.get('model', ''))}   "
                            f"workspace: {_esc(p.get('workspace', ''))}\ntools: {tools}", title="agent run"))
    elif t == "STEP_STARTED":
        console.rule(f"[bold blue]{p.get('stepName')}")
    elif t == "TEXT_MESSAGE_CONTENT":
        console.print(Text(p.get("delta", ""), style="italic"))
    elif t == "TOOL_CALL_START":
        style = {"high": "bold red", "medium": "yellow"}.get(p.get("risk", ""), "green")
        console.print(Text.assemble(("→ ", "bold"), (p.get("toolCallName", ""), "bold"), (f"  [{p.get('risk')} risk]",
                                                                                         style)))
    elif t == "TOOL_CALL_ARGS":
        console.print(Text("  args " + p.get("delta", ""), style="dim"))
    elif t == "TOOL_CALL_RESULT":
        label = "refused" if p.get("refused") else "reused" if p.get("reused") else "ok" if p.get("ok") else "failed"
        style = "green" if p.get("ok") else "red"
        body = (p.get("content") or "").strip()
        if p.get("error") and not p.get("refused"):
            body = f"{body}\n{p['error']}".strip()
        console.print(Text(f"  ← {label}", style=style))
        if body:
            console.print(Text(_clip(body, 1200), style="dim"))
    elif t == "CUSTOM":
        name, value = p.get("name"), p.get("value") or {}
        if name == "approval_requested":
            console.print(Panel(f"{_esc(value.get('tool'))} {_esc(json.dumps(value.get('args')))}\n"
                                f"{_esc(value.get('thought', ''))}", title="approval needed", style="magenta"))
        elif name == "approval_decided":
            verdict = "[green]approved[/]" if value.get("approved") else "[red]refused[/]"
            console.print(f"  {verdict} by {_esc(value.get('by'))} {_esc(value.get('reason', ''))}")
        elif name == "critique":
            console.print(f"  [cyan]critique {value.get('score', 0):.2f}[/] {_esc(value.get('critique', ''))}"
                          + (" [yellow](revising plan)[/]" if value.get("revise") else ""))
        elif name == "action_invalid":
            console.print(f"  [red]invalid action:[/] {_esc(value.get('error', ''))}")
    elif t == "RUN_FINISHED":
        r = p.get("result") or {}
        u = r.get("usage") or {}
        console.print(Panel(f"{_esc(r.get('summary', ''))}\nsteps {u.get('steps')} · tokens "
                            f"{u.get('completion_tokens')} generated / {u.get('prompt_tokens')} prompt · "
                            f"{u.get('seconds')}s", title=r.get("outcome", "finished"),
                            style=_OUTCOME_STYLE.get(r.get("outcome", ""), "")))
        if r.get("patch"):
            print_patch(str(r["patch"]))
    elif t == "RUN_ERROR":
        console.print(Panel(_esc(p.get("message", "")), title="error", style="bold red"))


def print_patch(patch: str) -> None:
    """The verified patch as a coloured unified diff (plain text when the output is not a terminal)."""
    from rich.syntax import Syntax

    syntax = Syntax(patch.rstrip("\n"), "diff", theme="ansi_dark", word_wrap=True, background_color="default")
    console.print(Panel(syntax, title="verified patch (not applied: review, then `git apply`)", border_style="green"))


def _check_mode(mode: str) -> None:
    if mode not in ("auto", "guided", "free"):
        fail(f"--mode: {mode!r}: choose auto, guided or free", EXIT_USAGE)


def _check_model(model: str | None) -> None:
    """An unknown --model fails before anything loads (a run never falls back to the base model silently)."""
    from secops_ai.agents.models import UnknownModelError, check_model
    from secops_ai.config import get_settings

    try:
        check_model(get_settings(), model)
    except UnknownModelError as exc:
        fail(f"--model: {exc}")


def _is(event: dict[str, Any], name: str) -> bool:
    return event["type"] == "CUSTOM" and event["payload"].get("name") == name


def _esc(value: Any) -> str:
    from rich.markup import escape

    return escape(str(value if value is not None else ""))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def _first_error(exc: Any) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
