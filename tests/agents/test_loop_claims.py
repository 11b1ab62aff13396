"""Agents check the knowledge claims of their plans and final reports with the verified corrector."""

from __future__ import annotations

from pathlib import Path

from secops_ai.agents.events import EventLog
from secops_ai.agents.loop import CLAIMS_CHECKED, AgentConfig, AgentLoop, ApprovalGate
from secops_ai.agents.sandbox import Sandbox
from secops_ai.agents.scripted import ScriptedBackend
from secops_ai.agents.tools.base import ToolContext, ToolRegistry, idempotency_key
from secops_ai.agents.trajectory import TrajectoryWriter, read_events
from secops_ai.alignment.selfcorrect import check_claims


def _run(tmp_path: Path, note_tool, checker) -> tuple[object, list[dict]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    backend = ScriptedBackend([
        {"tool": "note", "args": {"text": "a"}},
        {"tool": "finish", "args": {"summary": "Patched app.py so the shell is not used. The flaw is CWE-99999."}},
    ], plan=["Scan app.py for OS command injection (CWE-78).", "Patch the call."])
    sandbox = Sandbox()
    ctx = ToolContext(run_id="r", workspace=sandbox.working_copy(repo), original=repo, sandbox=sandbox)
    log = EventLog("r", TrajectoryWriter(tmp_path / "r.jsonl"))
    loop = AgentLoop(backend, ToolRegistry([note_tool()]), ctx, log,
                     AgentConfig(reflect=False, claim_checker=checker), gate=ApprovalGate("deny"),
                     idempotency_key=idempotency_key)
    with sandbox:
        result = loop.run("fix the shell=True finding")
    return result, read_events(tmp_path / "r.jsonl")


def test_invented_ids_leave_the_report_and_real_ones_are_cited(tmp_path: Path, note_tool) -> None:
    result, events = _run(tmp_path, note_tool, check_claims)
    assert "CWE-99999" not in result.summary  # the invented id is struck, never shipped
    assert "Patched app.py" in result.summary  # the rest of the report stays
    checked = [e["payload"]["value"] for e in events if e["payload"].get("name") == CLAIMS_CHECKED]
    report = next(c for c in checked if c["what"] == "report")
    assert any(c["ref"] == "CWE-99999" and c["status"] == "not_found" for c in report["checks"])
    plan = next(e["payload"]["value"] for e in events if e["payload"].get("name") == "plan")
    assert "[CWE-78]" in plan["steps"][0]  # a real id in the plan is cited from the catalog
    finished = next(e for e in events if e["type"] == "RUN_FINISHED")["payload"]["result"]
    assert finished["summary"] == result.summary


def test_without_a_checker_the_report_is_untouched(tmp_path: Path, note_tool) -> None:
    result, events = _run(tmp_path, note_tool, None)
    assert result.summary.endswith("CWE-99999.")
    assert not [e for e in events if e["payload"].get("name") == CLAIMS_CHECKED]
