"""Trajectories and event streams: one event a line, crash-safe, and the same objects on every channel."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secops_ai.agents.events import EventLog, EventType
from secops_ai.agents.trajectory import TrajectoryError, TrajectoryWriter, read_events, summarize

FIELDS = {"run_id", "seq", "ts", "type", "payload"}


def test_trajectory_is_one_event_per_line_and_never_reused(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    log = EventLog("r", TrajectoryWriter(path))
    log.emit(EventType.RUN_STARTED, {"task": "t"})
    log.custom("plan", {"steps": ["a\nb"]})  # newlines in payloads stay escaped inside one line
    log.emit(EventType.RUN_FINISHED, {"result": {"outcome": "succeeded"}})
    log.close()
    lines = path.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert len(lines) == 3 and all(set(e) == FIELDS for e in events)
    assert [e["seq"] for e in events] == [0, 1, 2] and events[1]["payload"]["value"]["steps"] == ["a\nb"]
    assert events == [e.model_dump(mode="json") for e in log.events]
    with pytest.raises(FileExistsError):  # a run id names one file forever: no overwrite, no mixing
        TrajectoryWriter(path)


def test_reader_skips_a_torn_last_line_and_names_a_corrupt_one(tmp_path: Path) -> None:
    good = json.dumps({"run_id": "r", "seq": 0, "ts": 1.0, "type": "RUN_STARTED", "payload": {}})
    torn = tmp_path / "torn.jsonl"
    torn.write_text(good + "\n" + good[:20])
    assert [e["seq"] for e in read_events(torn)] == [0]
    corrupt = tmp_path / "corrupt.jsonl"
    corrupt.write_text(good + "\n{oops\n" + good + "\n")
    with pytest.raises(TrajectoryError, match=r"corrupt\.jsonl:2: not valid JSON"):
        read_events(corrupt)


CRASH_SCRIPT = r"""
import sys
from pathlib import Path
from pydantic import BaseModel
from secops_ai.agents.actions import Budget
from secops_ai.agents.events import EventLog
from secops_ai.agents.loop import AgentConfig, AgentLoop
from secops_ai.agents.scripted import ScriptedBackend
from secops_ai.agents.tools.base import Tool, ToolArgs, ToolRegistry, ToolResult

class Args(ToolArgs):
    n: int

class Count(Tool):
    name = "count"; description = "count"; input_model = Args; risk = "low"
    def run(self, args, ctx):
        return ToolResult.success(str(args.n))

from secops_ai.agents.trajectory import TrajectoryWriter
path = Path(sys.argv[1])
backend = ScriptedBackend([{"tool": "count", "args": {"n": i}} for i in range(1000)], delay_s=0.02)
log = EventLog(path.stem, TrajectoryWriter(path))
config = AgentConfig(budget=Budget(max_steps=200, max_tokens=10**6))
AgentLoop(backend, ToolRegistry([Count()]), None, log, config).run("count")
"""


def test_killing_a_run_mid_way_leaves_valid_jsonl_up_to_the_last_event(workspace) -> None:
    path = workspace.agent_runs / "run-crash.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", CRASH_SCRIPT, str(path)], env={**os.environ})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not path.exists() or path.read_text().count("\n") < 40):
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # no chance to flush or close anything
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    events = read_events(path)
    assert len(events) >= 40
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert all(set(e) == FIELDS and e["run_id"] == "run-crash" for e in events)
    complete = path.read_bytes().split(b"\n")
    assert all(json.loads(line) for line in complete[:-1])  # every newline-terminated line is whole JSON
    assert events[0]["type"] == "RUN_STARTED" and events[-1]["type"] not in ("RUN_FINISHED", "RUN_ERROR")
    assert summarize("run-crash", events).status == "interrupted"

    from secops_ai.cli.main import app

    out = CliRunner().invoke(app, ["agent", "replay", "run-crash"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "count" in out.output and "without finishing" in out.output
    listed = CliRunner().invoke(app, ["agent", "list"], env={"COLUMNS": "200"})
    assert "run-crash" in listed.output and "interrupted" in listed.output


def _sse_events(text: str) -> list[dict]:
    out = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "data" in fields:
            event = json.loads(fields["data"])
            assert fields["id"] == str(event["seq"]) and fields["event"] == event["type"]
            out.append(event)
    return out


def test_jsonl_sse_and_websocket_carry_the_same_events_in_the_same_order(agent_client, workspace, tmp_path,
                                                                          note_tool, wait_for) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    script = {"actions": [{"tool": "run_command", "args": {"command": "echo hi"}},
                          {"tool": "run_scanner", "args": {"scanner": "bandit"}}], "delay_s": 0.05}
    run = agent_client.post("/agents/runs", json={"task": "stream", "workspace": str(repo), "script": script}).json()
    run_id = run["run_id"]
    wait_for(lambda: agent_client.get(f"/agents/runs/{run_id}").json()["status"] == "waiting_approval")

    sse: dict[str, str] = {}

    def read_sse() -> None:  # subscribes mid-run, while the run waits for approval
        with agent_client.stream("GET", f"/agents/runs/{run_id}/events") as resp:
            sse["text"] = "".join(resp.iter_text())

    reader = threading.Thread(target=read_sse)
    reader.start()
    ws_events = []
    with agent_client.websocket_connect(f"/agents/runs/{run_id}/ws") as ws:
        while True:
            event = json.loads(ws.receive_text())
            if event["type"] == "ack":
                assert event["payload"]["ok"], event
                continue
            ws_events.append(event)
            if event["type"] == "CUSTOM" and event["payload"]["name"] == "approval_requested":
                ws.send_json({"type": "approve", "approved": True, "reason": "looks safe"})  # approve over the WS
            if event["type"] in ("RUN_FINISHED", "RUN_ERROR"):
                break
    reader.join(timeout=60)
    file_events = read_events(workspace.agent_runs / f"{run_id}.jsonl")
    assert file_events[-1]["type"] == "RUN_FINISHED"
    assert ws_events == file_events
    assert _sse_events(sse["text"]) == file_events
    decided = [e for e in file_events if e["type"] == "CUSTOM" and e["payload"]["name"] == "approval_decided"]
    assert decided[0]["payload"]["value"]["approved"] is True and decided[0]["payload"]["value"]["by"] == "api"
    result = next(e for e in file_events if e["type"] == "TOOL_CALL_RESULT")["payload"]
    assert result["ok"] and "hi" in result["content"]  # the approved command really ran, in the sandbox

    # Resuming with Last-Event-ID sends only what came after it (here, from the file of a finished run).
    with agent_client.stream("GET", f"/agents/runs/{run_id}/events", headers={"Last-Event-ID": "5"}) as resp:
        resumed = _sse_events("".join(resp.iter_text()))
    assert resumed == file_events[6:]
    bad = agent_client.get(f"/agents/runs/{run_id}/events", headers={"Last-Event-ID": "x"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "Last-Event-ID"


@pytest.mark.parametrize("policy", ["event", "step", "off"])
def test_every_event_reaches_the_file_at_once_whatever_the_fsync_policy(tmp_path: Path, policy: str) -> None:
    path = tmp_path / f"{policy}.jsonl"
    log = EventLog(policy, TrajectoryWriter(path, fsync=policy))
    log.emit(EventType.STEP_STARTED, {"stepName": "act-1"})  # not a sync point under "step"
    assert [e["payload"] for e in read_events(path)] == [{"stepName": "act-1"}]  # readable before close
    log.close()
    with pytest.raises(ValueError, match="fsync must be"):
        TrajectoryWriter(tmp_path / "x.jsonl", fsync="sometimes")
