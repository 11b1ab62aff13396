"""Issue 10.2, 10.9, 10.11 (agent side): what an API caller may choose, planted links, queued runs after a kill.

Reproducers of the outside attack: ``POST /agents/runs`` with ``"workspace": "/etc", "approval": "allow"`` read
/etc/shadow; ``"workspace": "~"`` copied a 5.9 GB home folder per run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secops_ai.agents.runs import RunManager, RunRequest
from secops_ai.config import get_settings

APPROVE_ME = [{"tool": "run_command", "args": {"command": "true"}}]


def _restart_runs(client) -> None:
    """A new run manager for settings a test changed (the app creates its own once, at startup)."""
    client.app.state.agent_runs.shutdown()
    client.app.state.agent_runs = RunManager(client.app.state.settings)


def _body(workspace: str, actions=None, **extra) -> dict:
    return {"task": "t", "workspace": workspace, "script": {"actions": actions or [], "delay_s": 0.01}, **extra}


def _nothing_created(client) -> None:
    assert client.get("/agents/runs").json()["data"] == []
    runs_dir = get_settings().workspace.agent_runs
    assert list(runs_dir.iterdir()) == []


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "app.py").write_text("print('hi')\n")
    return root


@pytest.fixture
def outside(tmp_path_factory) -> Path:
    """A folder outside the allowed roots holding a secret (stands in for /etc)."""
    folder = tmp_path_factory.mktemp("host-etc")
    (folder / "shadow").write_text("root:SECRET-HASH:1:0:99999:7:::\n")
    return folder


@pytest.mark.parametrize("where", ["/etc", "~", "outside", "link-out", "../..", "repo/../../.."])
def test_workspaces_outside_the_roots_are_refused(agent_client, repo, outside, where) -> None:
    if where == "outside":
        where = str(outside)
    elif where == "link-out":  # a link inside the root pointing out: resolved before the check
        (repo.parent / "link-out").symlink_to(outside)
        where = str(repo.parent / "link-out")
    resp = agent_client.post("/agents/runs", json=_body(where, approval="deny"))
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == "workspace"
    # '~' is never expanded to the server user's home: it is a (missing) folder name inside the root
    assert "SECOPS_AGENT_WORKSPACE_ROOTS" in error["message"] or where == "~"
    assert str(Path.home()) not in error["message"]
    _nothing_created(agent_client)


def test_refusal_does_not_reveal_whether_a_folder_exists(agent_client) -> None:
    a = agent_client.post("/agents/runs", json=_body("/etc")).json()["error"]["message"]
    b = agent_client.post("/agents/runs", json=_body("/no-such-folder-x")).json()["error"]["message"]
    assert a.replace("/etc", "X") == b.replace("/no-such-folder-x", "X")


def test_relative_workspaces_are_taken_inside_the_first_root(agent_client, repo, wait_for) -> None:
    resp = agent_client.post("/agents/runs", json=_body("repo"))
    assert resp.status_code == 201, resp.text
    assert resp.json()["workspace"] == "repo"


def test_default_root_is_a_folder_under_secops_home(workspace, monkeypatch) -> None:
    from secops_ai.agents.runs import resolve_workspace, workspace_roots

    monkeypatch.delenv("SECOPS_AGENT_WORKSPACE_ROOTS", raising=False)
    get_settings.cache_clear()
    settings = get_settings()
    assert workspace_roots(settings) == [workspace.root / "workspaces"]
    (workspace.root / "workspaces" / "proj").mkdir()
    assert resolve_workspace(settings, "proj", operator=False) == workspace.root / "workspaces" / "proj"
    with pytest.raises(ValueError, match="not inside"):
        resolve_workspace(settings, str(workspace.root), operator=False)  # SECOPS_HOME itself is not a root


def test_approval_allow_is_an_operator_setting(agent_client, repo, monkeypatch, wait_for) -> None:
    resp = agent_client.post("/agents/runs", json=_body(str(repo), approval="allow"))
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "approval"
    assert "SECOPS_AGENT_APPROVAL" in resp.json()["error"]["message"]
    _nothing_created(agent_client)
    # stricter than the server's floor is always fine
    ok = agent_client.post("/agents/runs", json=_body(str(repo), APPROVE_ME, approval="deny"))
    assert ok.status_code == 201
    run_id = ok.json()["run_id"]
    summary = wait_for(lambda: (s := agent_client.get(f"/agents/runs/{run_id}").json())["finished_at"] and s)
    assert summary["status"] == "failed" and summary["pending_approval"] is None  # refused, never waited


def test_operator_floor_deny_applies_to_requests_that_do_not_ask(agent_client, repo, monkeypatch, wait_for) -> None:
    agent_client.app.state.settings = agent_client.app.state.settings.model_copy(update={"agent_approval": "deny"})
    _restart_runs(agent_client)
    assert agent_client.post("/agents/runs", json=_body(str(repo), approval="ask")).status_code == 400
    resp = agent_client.post("/agents/runs", json=_body(str(repo), APPROVE_ME))
    assert resp.status_code == 201
    run_id = resp.json()["run_id"]
    summary = wait_for(lambda: (s := agent_client.get(f"/agents/runs/{run_id}").json())["finished_at"] and s)
    assert summary["status"] == "failed" and summary["pending_approval"] is None


def test_operator_may_allow(agent_client, repo, wait_for) -> None:
    agent_client.app.state.settings = agent_client.app.state.settings.model_copy(update={"agent_approval": "allow"})
    _restart_runs(agent_client)
    resp = agent_client.post("/agents/runs", json=_body(str(repo), APPROVE_ME, approval="allow"))
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]
    summary = wait_for(lambda: (s := agent_client.get(f"/agents/runs/{run_id}").json())["finished_at"] and s)
    assert summary["pending_approval"] is None


@pytest.mark.parametrize(("setting", "make"), [
    ({"agent_max_copy_bytes": 4096}, lambda r: (r / "blob.bin").write_bytes(b"x" * 10_000)),
    ({"agent_max_copy_files": 5}, lambda r: [(r / f"f{i}.txt").write_text("x") for i in range(10)]),
])
def test_too_large_workspaces_get_413_before_copying(agent_client, repo, setting, make) -> None:
    make(repo)
    agent_client.app.state.settings = agent_client.app.state.settings.model_copy(update=setting)
    _restart_runs(agent_client)
    before = {p.name for p in Path("/tmp").glob("secops-sandbox-*")}
    resp = agent_client.post("/agents/runs", json=_body(str(repo)))
    assert resp.status_code == 413, resp.text
    error = resp.json()["error"]
    assert error["param"] == "workspace" and error["code"] == "workspace_too_large"
    assert "SECOPS_AGENT_MAX_COPY_" in error["message"]
    _nothing_created(agent_client)
    assert {p.name for p in Path("/tmp").glob("secops-sandbox-*")} <= before  # nothing was copied


def test_git_folder_is_not_counted_or_copied(agent_client, repo) -> None:
    (repo / ".git").mkdir()
    (repo / ".git" / "pack.bin").write_bytes(b"x" * 10_000)
    agent_client.app.state.settings = agent_client.app.state.settings.model_copy(update={"agent_max_copy_bytes": 4096})
    _restart_runs(agent_client)
    assert agent_client.post("/agents/runs", json=_body(str(repo))).status_code == 201


def test_a_run_cannot_write_past_its_disk_quota(agent_client, repo, wait_for) -> None:
    settings = agent_client.app.state.settings.model_copy(update={"agent_disk_quota_bytes": 2 << 20,
                                                                  "agent_approval": "allow"})
    agent_client.app.state.settings = settings
    _restart_runs(agent_client)
    flood = "i=0; while [ $i -lt 200 ]; do head -c 1048576 /dev/zero > f$i; i=$((i+1)); done; echo done"
    resp = agent_client.post("/agents/runs", json=_body(str(repo), [{"tool": "run_command",
                                                                     "args": {"command": flood}}], approval="allow"))
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["run_id"]
    wait_for(lambda: agent_client.get(f"/agents/runs/{run_id}").json()["finished_at"], timeout=60)
    events = agent_client.get(f"/agents/runs/{run_id}/events").text
    result = next(json.loads(line[6:]) for line in events.splitlines()
                  if line.startswith("data: ") and '"TOOL_CALL_RESULT"' in line)["payload"]
    assert "disk quota" in json.dumps(result), result


def test_cli_is_the_operator_but_still_has_the_copy_limit(workspace, repo, monkeypatch, tmp_path) -> None:
    from secops_ai.cli.main import app

    script = tmp_path / "play.json"
    script.write_text(json.dumps({"actions": []}))
    monkeypatch.setenv("SECOPS_AGENT_WORKSPACE_ROOTS", str(tmp_path / "elsewhere"))  # repo is outside: fine here
    get_settings.cache_clear()
    ok = CliRunner().invoke(app, ["agent", "run", "t", "--workspace", str(repo), "--script", str(script)])
    assert "not inside" not in ok.output and "run-" in ok.output, ok.output
    (repo / "blob.bin").write_bytes(b"x" * 10_000)
    monkeypatch.setenv("SECOPS_AGENT_MAX_COPY_BYTES", "4096")
    get_settings.cache_clear()
    big = CliRunner().invoke(app, ["agent", "run", "t", "--workspace", str(repo), "--script", str(script)])
    assert big.exit_code != 0 and "SECOPS_AGENT_MAX_COPY_BYTES" in big.output, big.output


# -- 10.9: planted links in storage/agent_runs -------------------------------------------------------------------
def test_planted_trajectory_links_are_never_followed(agent_client, tmp_path_factory) -> None:
    elsewhere = tmp_path_factory.mktemp("other-tenant")
    foreign = elsewhere / "run-foreign.jsonl"
    event = {"run_id": "run-foreign", "seq": 0, "ts": 1.0, "type": "RUN_STARTED",
             "payload": {"task": "OUTSIDE-SECRET-TASK", "workspace": "/x", "model": "m"}}
    foreign.write_text(json.dumps(event) + "\n")
    runs_dir = get_settings().workspace.agent_runs
    (runs_dir / "run-planted.jsonl").symlink_to(foreign)
    (runs_dir / "run-shadow.jsonl").symlink_to("/etc/shadow")
    listing = agent_client.get("/agents/runs")
    assert listing.status_code == 200 and "OUTSIDE-SECRET-TASK" not in listing.text
    assert listing.json()["data"] == []
    for run_id in ("run-planted", "run-shadow"):
        for suffix in ("", "/events"):
            resp = agent_client.get(f"/agents/runs/{run_id}{suffix}")
            assert resp.status_code == 404, (run_id, suffix, resp.text)
            assert "OUTSIDE-SECRET-TASK" not in resp.text and str(elsewhere) not in resp.text


# -- 10.11: a server killed with queued runs -----------------------------------------------------------------------
def test_queued_runs_keep_their_request_and_read_interrupted_after_a_restart(workspace, repo, monkeypatch,
                                                                              wait_for) -> None:
    monkeypatch.setenv("SECOPS_AGENT_WORKSPACE_ROOTS", str(repo.parent))
    get_settings.cache_clear()
    settings = get_settings()
    first = RunManager(settings, max_concurrent=1)
    try:
        busy = first.start(RunRequest.model_validate(_body(str(repo), APPROVE_ME)))
        wait_for(lambda: busy.summary().status == "waiting_approval")  # holds the only slot
        queued = first.start(RunRequest.model_validate({**_body(str(repo)), "task": "audit the queued repo"}))
        assert queued.summary().status == "queued"
        runs_dir = settings.workspace.agent_runs
        assert not (runs_dir / f"{queued.run_id}.jsonl").exists()  # no empty trajectory for a run that never ran
        assert all(p.stat().st_size > 0 for p in runs_dir.iterdir())
        # what a kill -9 now leaves on disk is all a restarted server has: read it with a fresh manager
        after = RunManager(settings).summary(queued.run_id)
        assert after.status == "interrupted" and after.task == "audit the queued repo"
        assert after.workspace == str(repo) and after.request is not None
        assert after.request["script"]["actions"] == [] and after.request["approval"] == "ask"
        assert after.result is not None and after.result["code"] == "interrupted_while_queued"
        assert RunManager(settings).events(queued.run_id) == []
        listed = {s.run_id: s for s in RunManager(settings).list()}
        assert listed[queued.run_id].task == "audit the queued repo"
        assert listed[busy.run_id].status == "interrupted" and listed[busy.run_id].task == "t"
    finally:
        first.shutdown(timeout=10)
    assert os.path.getsize(settings.workspace.agent_runs / f"{queued.run_id}.request.json") > 0


def test_unusable_workspace_names_are_400_not_500(agent_client, repo) -> None:
    (repo.parent / "loop-a").symlink_to(repo.parent / "loop-b")
    (repo.parent / "loop-b").symlink_to(repo.parent / "loop-a")
    for where in ("n" * 300, str(repo.parent / "loop-a"), "x" * 5000, "repo\x00/etc"):
        resp = agent_client.post("/agents/runs", json=_body(where))
        assert resp.status_code == 400, (where[:20], resp.text)
        assert resp.json()["error"]["param"] == "workspace"
    _nothing_created(agent_client)


def test_queued_api_runs_are_bounded(agent_client, repo, wait_for) -> None:
    """A caller cannot pile up waiting runs (threads, files) without end: past the limit, 429."""
    settings = agent_client.app.state.settings.model_copy(update={"agent_max_queued": 1})
    agent_client.app.state.settings = settings
    agent_client.app.state.agent_runs = RunManager(settings, max_concurrent=1)
    busy = agent_client.post("/agents/runs", json=_body(str(repo), APPROVE_ME)).json()["run_id"]
    wait_for(lambda: agent_client.get(f"/agents/runs/{busy}").json()["status"] == "waiting_approval")
    queued = agent_client.post("/agents/runs", json=_body(str(repo)))
    assert queued.status_code == 201 and queued.json()["status"] == "queued"
    refused = agent_client.post("/agents/runs", json=_body(str(repo)))
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "agent_queue_full"
    assert refused.headers["retry-after"] == "10"
    assert len(agent_client.get("/agents/runs").json()["data"]) == 2
    agent_client.post(f"/agents/runs/{busy}/cancel")


@pytest.mark.parametrize(("extra", "param"), [
    ({"seed": 2**70}, "seed"),  # seeds past 2**64 once hung the engine
    ({"seed": -1}, "seed"),
    ({"budget": {"tokens_per_call": 10**9}}, "budget.tokens_per_call"),  # no more than a /v1 request may ask
])
def test_generation_settings_are_bounded_at_the_boundary(agent_client, repo, extra, param) -> None:
    resp = agent_client.post("/agents/runs", json={**_body(str(repo)), "model": None, "script": None, **extra})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == param
    _nothing_created(agent_client)
