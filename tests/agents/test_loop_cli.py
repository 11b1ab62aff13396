"""`secops-ai agent run / replay / list` on a real repo with a scripted playbook."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from secops_ai.agents.trajectory import read_events
from secops_ai.cli.main import app


def test_agent_run_fixes_the_repo_and_replay_shows_the_same_run(workspace, vulnerable_repo: Path, fix_playbook,
                                                                tmp_path: Path) -> None:
    playbook = fix_playbook()
    playbook["actions"].insert(1, {"tool": "run_command", "args": {"command": "rm -rf /workspace"}})
    script = tmp_path / "playbook.json"
    script.write_text(json.dumps(playbook))
    runner = CliRunner()
    env = {"COLUMNS": "200"}

    out = runner.invoke(app, ["agent", "run", "fix the bandit findings", "--workspace", str(vulnerable_repo),
                              "--script", str(script), "--max-steps", "4"], env=env)
    assert out.exit_code == 0, out.output
    assert "high-risk actions will be refused" in out.output  # no terminal to ask: refuse, never allow
    assert "refused" in out.output and "succeeded" in out.output and "literal_eval" in out.output
    assert (vulnerable_repo / "app.py").exists()  # the refused rm never ran (and only a copy was ever used)

    runs = list(workspace.agent_runs.glob("*.jsonl"))
    assert len(runs) == 1
    events = read_events(runs[0])
    assert events[-1]["payload"]["result"]["outcome"] == "succeeded"
    replay = runner.invoke(app, ["agent", "replay", runs[0].stem, "--json"], env=env)
    assert [json.loads(line) for line in replay.output.splitlines()] == events
    listed = runner.invoke(app, ["agent", "list"], env=env)
    assert runs[0].stem in listed.output and "succeeded" in listed.output


def test_agent_run_reports_bad_input_by_name(workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"actions": [}')
    out = CliRunner().invoke(app, ["agent", "run", "x", "--workspace", str(tmp_path), "--script", str(bad)],
                             env={"COLUMNS": "300"})
    assert out.exit_code == 1 and "bad.json: line 1" in out.output and out.output.startswith("error: --script")
    missing = CliRunner().invoke(app, ["agent", "replay", "run-missing"], env={"COLUMNS": "300"})
    assert missing.exit_code == 1 and "no trajectory" in missing.output
    bad_mode = CliRunner().invoke(app, ["agent", "run", "x", "--workspace", str(tmp_path), "--mode", "fast"])
    assert bad_mode.exit_code == 2 and "--mode: 'fast': choose auto, guided or free" in bad_mode.output


def test_the_final_patch_is_printed_as_a_coloured_unified_diff(monkeypatch) -> None:
    import io

    from rich.console import Console

    from secops_ai.cli import agent as agent_cli
    from tests.agents.conftest import FIX_DIFF

    buf = io.StringIO()
    monkeypatch.setattr(agent_cli, "console", Console(file=buf, force_terminal=True, color_system="truecolor",
                                                      width=120))
    agent_cli.render({"type": "RUN_FINISHED", "payload": {"result": {
        "outcome": "succeeded", "summary": "fixed", "usage": {}, "patch": FIX_DIFF}}})
    out = buf.getvalue()
    added = next(line for line in out.splitlines() if "+    return ast.literal_eval(expr)" in line)
    removed = next(line for line in out.splitlines() if "-    return eval(expr)" in line)
    assert "\x1b[" in added and "\x1b[" in removed  # coloured
    assert added.split("+    return")[0] != removed.split("-    return")[0]  # additions and removals differ
    assert "verified patch" in out
