"""The guided workflow's parts: the vulnerable-repo generator and its held-out split, the fix templates (each
removes its finding on a real bandit rescan and keeps the repo's tests passing), and the guided loop driven by
a tiny real model (every slot answer is one of its options; tool calls follow the workflow)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from secops_ai.agents.events import EventLog
from secops_ai.agents.fixes import FixNotApplicable, applicable, replace_line, templates_for
from secops_ai.agents.guided import GuidedLoop, make_loop, pick_mode
from secops_ai.agents.loop import AgentConfig, AgentLoop, ApprovalGate
from secops_ai.agents.sandbox import Sandbox
from secops_ai.agents.scripted import ScriptedBackend
from secops_ai.agents.tools.base import ToolContext, idempotency_key
from secops_ai.agents.tools.default_tools import default_registry
from secops_ai.agents.tools.scanners import scan
from secops_ai.agents.trajectory import TrajectoryWriter, read_events
from secops_ai.data.generators.vulnrepos import (
    HELDOUT_SEEDS_END,
    MANIFEST,
    RULES,
    TEST_COMMAND,
    HeldOutSeedError,
    generate_repo,
    held_out_seeds,
    training_seeds,
)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generator_is_deterministic_and_refuses_held_out_seeds_for_training(tmp_path: Path) -> None:
    a, b = generate_repo(tmp_path / "a", 7), generate_repo(tmp_path / "b", 7)
    assert _tree(a.root) == _tree(b.root)
    assert _tree(generate_repo(tmp_path / "c", 8).root) != _tree(a.root)
    with pytest.raises(HeldOutSeedError, match="held out"):
        generate_repo(tmp_path / "d", 3, purpose="train")
    with pytest.raises(HeldOutSeedError, match="training seed"):
        generate_repo(tmp_path / "e", HELDOUT_SEEDS_END, purpose="eval")
    assert set(held_out_seeds(10)).isdisjoint(training_seeds(1000))
    with pytest.raises(HeldOutSeedError):
        held_out_seeds(5, start=HELDOUT_SEEDS_END - 2)
    with pytest.raises(HeldOutSeedError):
        training_seeds(3, start=10)
    with pytest.raises(FileExistsError):
        generate_repo(tmp_path / "a", 7)


def test_generated_repos_have_the_planted_bandit_findings_and_passing_tests(tmp_path: Path) -> None:
    import subprocess

    with Sandbox() as sandbox:
        for seed in range(6):
            spec = generate_repo(tmp_path / f"r{seed}", seed)
            findings = scan(sandbox, spec.root, "bandit").findings
            assert 2 <= len(findings) <= 5, (seed, [f.rule_id for f in findings])
            assert sorted(f.rule_id for f in findings) == sorted(p.rule for p in spec.planted)
            manifest = json.loads((spec.root / MANIFEST).read_text())
            assert manifest["seed"] == seed and len(manifest["planted"]) == len(findings)
            if spec.has_tests:
                done = subprocess.run([sys.executable, *TEST_COMMAND[1:]], cwd=spec.root, capture_output=True,
                                      text=True, timeout=120)
                assert done.returncode == 0, done.stderr


def test_every_fix_template_removes_its_finding_and_keeps_the_tests_passing(tmp_path: Path) -> None:
    """On training-seed repos covering every planted rule: apply each applicable template, rescan, run tests."""
    import shutil
    import subprocess

    from secops_ai.agents.tools.reports import diff_findings

    seen: set[str] = set()
    checked = 0
    with Sandbox() as sandbox:
        for seed in training_seeds(40):
            if set(RULES) <= seen:
                break
            spec = generate_repo(tmp_path / f"r{seed}", seed, purpose="train")
            before = scan(sandbox, spec.root, "bandit").findings
            for f in before:
                if f.rule_id in seen or not templates_for(f.rule_id):
                    continue
                text = (spec.root / f.file).read_text()
                fixes = applicable(f.rule_id, text, f.line or 0)
                if f.rule_id in ("B403", "B404"):  # the import is still used: no template applies
                    assert fixes == []
                    continue
                assert fixes, (seed, f.rule_id, f.file, f.line)
                for template, fixed in fixes:
                    copy = tmp_path / f"fix-{seed}-{template.id}-{f.line}"
                    shutil.copytree(spec.root, copy)
                    (copy / f.file).write_text(fixed)
                    compile(fixed, f.file, "exec")
                    gone, _new = diff_findings(before, scan(sandbox, copy, "bandit").findings)
                    assert any(g.rule_id == f.rule_id and g.file == f.file for g in gone), (seed, template.id)
                    if spec.has_tests:
                        done = subprocess.run([sys.executable, *TEST_COMMAND[1:]], cwd=copy, capture_output=True,
                                              text=True, timeout=120)
                        assert done.returncode == 0, (template.id, done.stderr)
                    checked += 1
                seen.add(f.rule_id)
    assert set(RULES) <= seen | {"B403", "B404"}, set(RULES) - seen
    assert checked >= len(RULES)


def test_templates_refuse_code_they_do_not_recognise() -> None:
    text = "import os\n\n\ndef f(x):\n    return x + 1\n"
    for rule in RULES:
        assert applicable(rule, text, 5) == []
    with pytest.raises(FixNotApplicable):
        replace_line(text, 99, "x")
    assert replace_line(text, 5, "return x + 2") == text.replace("x + 1", "x + 2")  # indentation kept


def test_auto_mode_is_guided_for_small_local_models_and_free_for_playbooks(tiny_llama_dir: Path) -> None:
    from secops_ai.inference.backend import LocalBackend

    tiny = LocalBackend.load(tiny_llama_dir)
    scripted = ScriptedBackend([])
    assert pick_mode(tiny) == "guided" and pick_mode(scripted) == "free"
    assert pick_mode(tiny, "free") == "free" and pick_mode(scripted, "guided") == "guided"


def _run_guided(backend, repo: Path, tmp_path: Path, **config) -> tuple[object, list[dict]]:
    with Sandbox() as sandbox:
        copy = sandbox.working_copy(repo)
        ctx = ToolContext(run_id="guided", workspace=copy, original=repo, sandbox=sandbox)
        log = EventLog("guided", TrajectoryWriter(tmp_path / "guided.jsonl"))
        loop = make_loop(backend, default_registry(), ctx, log, AgentConfig(**config), gate=ApprovalGate("deny"),
                         idempotency_key=idempotency_key)
        assert isinstance(loop, GuidedLoop)
        result = loop.run("Fix the bandit findings")
    return result, read_events(tmp_path / "guided.jsonl")


def test_a_tiny_model_drives_the_guided_workflow_with_valid_slot_answers(tiny_llama_dir: Path,
                                                                          tmp_path: Path) -> None:
    from secops_ai.inference.backend import LocalBackend

    repo = generate_repo(tmp_path / "repo", 0).root
    original = _tree(repo)
    result, events = _run_guided(LocalBackend.load(tiny_llama_dir), repo, tmp_path)

    assert events[0]["payload"]["mode"] == "guided"
    customs = [e["payload"] for e in events if e["type"] == "CUSTOM"]
    assert not [c for c in customs if c["name"] == "action_invalid"]
    choices = [c["value"] for c in customs if c["name"] == "choice"]
    assert choices, "the model filled no slot"
    for c in choices:
        assert c["slot"] == "line" or c["choice"] in c["options"]
        assert c["messages"][0]["role"] == "system" and json.loads(c["answer"])  # replayable as a training chat
    tools = [e["payload"]["toolCallName"] for e in events if e["type"] == "TOOL_CALL_START"]
    assert tools[0] == "run_scanner" and "propose_patch" in tools
    assert set(tools) <= {"run_scanner", "lookup_knowledge", "propose_patch"}
    results = [e["payload"] for e in events if e["type"] == "TOOL_CALL_RESULT"]
    assert all(r["ok"] or r["error"] for r in results)  # a failure always says why
    assert result.usage.steps <= AgentConfig().budget.max_steps
    # A template fix verifies whatever else the model picks, so a tiny model either succeeds or has tried them all.
    if result.outcome == "succeeded":
        assert result.patch and result.patch.startswith("--- a/")
    assert _tree(repo) == original


def test_a_fix_that_does_not_verify_is_not_offered_again(tmp_path: Path, tiny_llama_dir: Path) -> None:
    """Every propose_patch of a guided run tries a different (finding, fix) pair: no repeated failure."""
    from secops_ai.inference.backend import LocalBackend

    repo = generate_repo(tmp_path / "repo", 2).root
    result, events = _run_guided(LocalBackend.load(tiny_llama_dir), repo, tmp_path)
    diffs = [e["payload"]["delta"] for e in events if e["type"] == "TOOL_CALL_ARGS"
             and '"diff"' in e["payload"]["delta"]]
    assert len(diffs) == len(set(diffs))
    assert result.usage.blocked == 0


def test_the_free_planner_is_still_there_for_playbooks(tmp_path: Path, vulnerable_repo: Path,
                                                        fix_playbook) -> None:
    backend = ScriptedBackend.from_script(fix_playbook())
    with Sandbox() as sandbox:
        copy = sandbox.working_copy(vulnerable_repo)
        ctx = ToolContext(run_id="free", workspace=copy, original=vulnerable_repo, sandbox=sandbox)
        loop = make_loop(backend, default_registry(), ctx, EventLog("free"), AgentConfig(reflect=False))
        assert type(loop) is AgentLoop
        assert loop.run("fix").outcome == "succeeded"


def test_the_scanner_follows_the_repositorys_languages_or_the_task(tmp_path: Path) -> None:
    c_repo = tmp_path / "c"
    c_repo.mkdir()
    (c_repo / "main.c").write_text("#include <string.h>\nvoid f(char *d, char *s) { strcpy(d, s); }\n")
    (c_repo / "escape").symlink_to("/usr/lib", target_is_directory=True)  # never walked into
    with Sandbox() as sandbox:
        copy = sandbox.working_copy(c_repo)
        ctx = ToolContext(run_id="c", workspace=copy, original=c_repo, sandbox=sandbox)
        loop = GuidedLoop(ScriptedBackend([]), default_registry(), ctx, EventLog("c"), AgentConfig())
        loop.task = "Fix the findings"
        assert loop._pick_scanner() == "flawfinder"
        loop.task = "Fix the semgrep findings"
        assert loop._pick_scanner() == "semgrep"


def test_a_run_over_the_api_on_the_served_small_model_is_guided_by_default(workspace, monkeypatch,
                                                                          tiny_llama_dir: Path, tmp_path: Path,
                                                                          wait_for) -> None:
    from fastapi.testclient import TestClient

    from secops_ai.api.app import create_app
    from secops_ai.config import get_settings

    monkeypatch.setenv("SECOPS_BASE_MODEL", str(tiny_llama_dir))
    monkeypatch.setenv("SECOPS_AGENT_WORKSPACE_ROOTS", str(tmp_path))
    get_settings.cache_clear()
    repo = generate_repo(tmp_path / "repo", 5).root
    with TestClient(create_app(get_settings(), load_model=True)) as client:
        resp = client.post("/agents/runs", json={"task": "Fix the bandit findings", "workspace": str(repo),
                                                 "approval": "deny", "budget": {"max_steps": 3}})
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["run_id"]
        wait_for(lambda: client.get(f"/agents/runs/{run_id}").json()["status"] not in ("queued", "running"),
                 timeout=300)
        client.app.state.agent_runs.shutdown()
    events = read_events(workspace.agent_runs / f"{run_id}.jsonl")
    assert next(e for e in events if e["type"] == "RUN_STARTED")["payload"]["mode"] == "guided"
    assert next(e["payload"]["toolCallName"] for e in events if e["type"] == "TOOL_CALL_START") == "run_scanner"
    assert any(e["type"] == "CUSTOM" and e["payload"]["name"] == "choice" for e in events)
