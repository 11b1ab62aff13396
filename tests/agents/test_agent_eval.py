"""`secops-ai agent eval`: every run is checked independently of what it claims (the patch applies to the
original, a rescan shows a fix, the repo's tests pass, the original is unchanged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from secops_ai.agents.evaluation import evaluate, tree_digest
from secops_ai.agents.fixes import applicable, replace_line, unified_diff
from secops_ai.agents.sandbox import Sandbox
from secops_ai.agents.scripted import ScriptedBackend
from secops_ai.agents.tools.scanners import scan
from secops_ai.data.generators.vulnrepos import HeldOutSeedError, generate_repo

TESTED_RULES = {"B602", "B506", "B324", "B307", "B306", "B608", "B605"}  # the generator writes tests for these


def _seed_with_tests(tmp_path: Path) -> tuple[int, Path]:
    for seed in range(50):
        spec = generate_repo(tmp_path / f"probe-{seed}", seed)
        if spec.has_tests and any(p.rule in TESTED_RULES for p in spec.planted):
            return seed, spec.root
    raise AssertionError("no held-out seed with tests in 0..49")


def _playbook(diff: str) -> ScriptedBackend:
    return ScriptedBackend([{"tool": "run_scanner", "args": {"scanner": "bandit"}},
                            {"tool": "propose_patch", "args": {"diff": diff, "scanner": "bandit"}}])


def _finding_diff(root: Path, *, break_it: bool) -> str:
    with Sandbox() as sandbox:
        findings = scan(sandbox, root, "bandit").findings
    f = next(f for f in findings if f.rule_id in TESTED_RULES)
    text = (root / f.file).read_text()
    if break_it:  # removes the finding, and the function with it: the repo's tests must catch this
        fixed = replace_line(text, f.line, "raise RuntimeError('gone')")
    else:
        fixed = applicable(f.rule_id, text, f.line)[0][1]
    return unified_diff(f.file, text, fixed)


def test_a_verified_fix_that_keeps_the_tests_passing_counts(workspace, tmp_path: Path) -> None:
    from secops_ai.config import get_settings

    seed, probe = _seed_with_tests(tmp_path)
    report = evaluate(get_settings(), seeds=[seed], backend=_playbook(_finding_diff(probe, break_it=False)),
                      mode="free")
    (r,) = report.results
    assert r.succeeded and r.reason == "" and r.outcome == "succeeded", r
    assert r.tests == "passed" and r.original_untouched and r.fixed and r.findings_after is not None
    assert report.succeeded == report.total == 1 and report.mode == "free"
    assert (workspace.agent_runs / f"{r.run_id}.jsonl").is_file()  # a real run with a trajectory


def test_a_fix_that_breaks_the_repos_tests_does_not_count(workspace, tmp_path: Path) -> None:
    from secops_ai.config import get_settings

    seed, probe = _seed_with_tests(tmp_path)
    report = evaluate(get_settings(), seeds=[seed], backend=_playbook(_finding_diff(probe, break_it=True)),
                      mode="free")
    (r,) = report.results
    assert r.outcome == "succeeded"  # the run's own rescan saw the finding go ...
    assert not r.succeeded and r.tests == "failed" and "tests fail" in r.reason  # ... the eval's tests did not
    assert report.succeeded == 0


def test_a_run_without_a_patch_fails_with_a_reason(workspace) -> None:
    from secops_ai.config import get_settings

    report = evaluate(get_settings(), seeds=[1], backend=ScriptedBackend([]), mode="free")
    (r,) = report.results
    assert not r.succeeded and r.outcome == "failed" and "no patch" in r.reason and r.findings_before >= 2


def test_training_seeds_are_refused(workspace) -> None:
    from secops_ai.config import get_settings

    with pytest.raises(HeldOutSeedError):
        evaluate(get_settings(), seeds=[1000], backend=ScriptedBackend([]))


def test_tree_digest_sees_any_change(tmp_path: Path) -> None:
    root = generate_repo(tmp_path / "r", 4).root
    before = tree_digest(root)
    assert tree_digest(root) == before
    (root / "README.md").write_text("changed")
    assert tree_digest(root) != before


def test_the_cli_evaluates_a_tiny_model_and_writes_a_json_report(workspace, monkeypatch, tiny_llama_dir: Path,
                                                                   tmp_path: Path) -> None:
    from secops_ai.cli.main import app
    from secops_ai.config import get_settings

    monkeypatch.setenv("SECOPS_BASE_MODEL", str(tiny_llama_dir))
    get_settings.cache_clear()
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["agent", "eval", "--n", "1", "--start", "3", "--max-steps", "3",
                                      "--out", str(out), "--min-success", "0"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["total"] == 1 and report["seeds"] == [3] and report["mode"] == "guided"
    (r,) = report["results"]
    assert r["steps"] <= 3 and r["original_untouched"] and (r["succeeded"] or r["reason"])
    assert "succeeded with" in result.output

    bad = CliRunner().invoke(app, ["agent", "eval", "--n", "5", "--start", "998"])
    assert bad.exit_code == 2 and "held-out seeds are 0..999" in bad.output
