"""Evaluate an agent on held-out generated repositories (``secops-ai agent eval``, ``bench/agent_eval.py``).

For each held-out seed (:mod:`secops_ai.data.generators.vulnrepos`) a repository is generated, the agent runs
on it through :class:`~secops_ai.agents.runs.RunManager` (the same path as the CLI and the API: sandbox,
events, trajectory) with the default budget, and the outcome is then checked **independently of what the
run claims**:

1. the run's final patch applies to a fresh copy of the original;
2. bandit on the patched copy reports at least one finding fewer than on the original, and nothing as severe
   as the worst fixed finding appears (the same rule as ``propose_patch``'s ``verified``);
3. the repository's tests (``python -m unittest discover``), when it has some, pass on the patched copy;
4. the original folder is byte-for-byte unchanged.

A repo counts as succeeded only when the run's outcome is ``succeeded`` and all four hold. Works with any model
the loop can drive (local, adapter, remote via ``SECOPS_LLM_BASE_URL``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from secops_ai.agents.actions import Budget
from secops_ai.config import Settings
from secops_ai.data.generators.vulnrepos import TEST_COMMAND, check_seed, generate_repo, held_out_seeds

TASK = "Fix the bandit findings in this repository."
TestsStatus = Literal["passed", "failed", "none", "broken_before"]


class RepoResult(BaseModel):
    """One repository's run and the independent check of its patch."""

    seed: int
    package: str
    run_id: str
    outcome: str
    succeeded: bool = Field(description="Outcome succeeded and every check below holds.")
    reason: str = Field(description="Why it did not succeed (empty when it did).")
    run_seconds: float = Field(description="Wall time of the agent run itself.")
    cpu_seconds: float = Field(default=0.0, description="CPU time the run used (this process and the sandboxed "
                               "tools it waited for): what it costs without other load on the machine.")
    check_seconds: float
    steps: int
    completion_tokens: int
    findings_before: int
    findings_after: int | None = None
    fixed: list[str] = Field(default_factory=list, description="'rule file' of each finding the patch removed.")
    introduced: list[str] = Field(default_factory=list)
    tests: TestsStatus = "none"
    original_untouched: bool = True


class EvalReport(BaseModel):
    model: str
    mode: str
    task: str
    budget: Budget
    seeds: list[int]
    results: list[RepoResult]
    succeeded: int
    total: int
    run_seconds_mean: float
    run_seconds_max: float
    cpu_seconds_max: float = 0.0
    cpus: int = Field(default_factory=lambda: os.cpu_count() or 0)
    load_avg_1m: float | None = Field(default=None, description="Host load when the eval finished (contention).")


def tree_digest(root: Path) -> str:
    """sha256 over every file's relative path, mode and bytes (links by their target): any change shows."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            h.update(rel.encode() + b"\0")
            if path.is_symlink():
                h.update(b"L" + os.readlink(path).encode())
            else:
                h.update(oct(path.stat().st_mode).encode() + path.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def evaluate(settings: Settings, *, model: str | None = None, n: int = 10, start: int = 0,
             seeds: list[int] | None = None, mode: str = "auto", budget: Budget | None = None,
             task: str = TASK, backend: Any = None, work_dir: Path | None = None,
             on_result: Callable[[RepoResult], None] | None = None) -> EvalReport:
    """Run the agent on held-out repositories and check each result (see the module docstring).

    ``backend``: an already loaded chat backend (default: :func:`backend_from_settings` for ``model``, loaded
    once for all repositories). ``work_dir``: where repositories are generated (default: a temporary folder,
    removed afterwards).
    """
    from secops_ai.agents.events import EventType
    from secops_ai.agents.models import check_model
    from secops_ai.agents.runs import RunManager, RunRequest

    seeds = list(seeds) if seeds is not None else held_out_seeds(n, start)
    for s in seeds:
        check_seed(s, "eval")
    check_model(settings, model)
    if backend is None:
        from secops_ai.inference.backend import backend_from_settings

        backend = backend_from_settings(settings, model)
    budget = budget or Budget()
    manager = RunManager(settings, backend_factory=lambda _name: backend, max_concurrent=1)
    own_dir = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="secops-agent-eval-")) if own_dir else Path(work_dir)
    results: list[RepoResult] = []
    resolved_mode = mode
    try:
        for seed in seeds:
            repo = root / f"seed-{seed}"
            spec = generate_repo(repo, seed, purpose="eval")
            digest = tree_digest(repo)
            request = RunRequest(task=task, workspace=str(repo), model=model, budget=budget, approval="deny",
                                 mode=mode)  # type: ignore[arg-type]
            cpu0 = _cpu()
            handle = manager.start(request, operator=True)
            assert handle.thread is not None
            handle.thread.join()
            cpu = round(_cpu() - cpu0, 2)
            started = next((e.payload for e in handle.log.events if e.type == EventType.RUN_STARTED), {})
            resolved_mode = str(started.get("mode", mode))
            t0 = time.monotonic()
            result = check_run(repo, handle.result, spec.has_tests)
            result.update(seed=seed, package=spec.package, run_id=handle.run_id, cpu_seconds=cpu,
                          original_untouched=tree_digest(repo) == digest,
                          check_seconds=round(time.monotonic() - t0, 2))
            if handle.result is None:
                result["reason"] = handle.error or "the run crashed"
            elif not result["original_untouched"]:
                result.update(succeeded=False, reason="the original repository was changed")
            item = RepoResult(**result)
            results.append(item)
            if on_result is not None:
                on_result(item)
    finally:
        manager.shutdown()
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    times = [r.run_seconds for r in results] or [0.0]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return EvalReport(model=model or getattr(backend, "name", "default"), mode=resolved_mode, task=task,
                      budget=budget, seeds=seeds, results=results, succeeded=sum(r.succeeded for r in results),
                      total=len(results), run_seconds_mean=round(sum(times) / len(times), 2),
                      run_seconds_max=round(max(times), 2),
                      cpu_seconds_max=round(max([r.cpu_seconds for r in results] or [0.0]), 2),
                      load_avg_1m=round(load, 2) if load is not None else None)


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def check_run(original: Path, run: Any, has_tests: bool) -> dict[str, Any]:
    """The independent checks of one finished run (``run``: its :class:`RunResult`, or ``None``)."""
    from secops_ai.agents.sandbox import Sandbox
    from secops_ai.agents.tools.patch import PatchError, apply_diff, diff_paths, is_verified
    from secops_ai.agents.tools.reports import diff_findings
    from secops_ai.agents.tools.scanners import ScanError, scan

    out: dict[str, Any] = {
        "outcome": run.outcome if run is not None else "error", "succeeded": False, "reason": "",
        "run_seconds": run.usage.seconds if run is not None else 0.0,
        "steps": run.usage.steps if run is not None else 0,
        "completion_tokens": run.usage.completion_tokens if run is not None else 0,
        "findings_before": 0, "tests": "none",
    }
    with Sandbox() as sandbox:
        baseline = sandbox.working_copy(original)
        try:
            before = scan(sandbox, baseline, "bandit").findings
        except ScanError as exc:
            out["reason"] = f"could not scan the original: {exc}"
            return out
        out["findings_before"] = len(before)
        tests_before = _run_tests(sandbox, baseline) if has_tests else None
        patch = run.patch if run is not None else None
        if run is None or run.outcome != "succeeded" or not patch:
            out["reason"] = f"run ended {out['outcome']}" + (f": {run.summary}" if run is not None and run.summary
                                                             else "") + ("" if patch else " (no patch)")
            return out
        patched = baseline.parent / "patched"
        shutil.copytree(original, patched, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        sandbox.adopt(patched)
        try:
            _files, strip = diff_paths(patch)
        except PatchError as exc:
            out["reason"] = f"the final patch is not a usable diff: {exc}"
            return out
        applied, log = apply_diff(sandbox, patched, patch, strip)
        if not applied:
            out["reason"] = f"the final patch does not apply to the original: {log[-300:]}"
            return out
        try:
            after = scan(sandbox, patched, "bandit").findings
        except ScanError as exc:
            out["reason"] = f"could not scan the patched copy: {exc}"
            return out
        fixed, introduced = diff_findings(before, after)
        out.update(findings_after=len(after), fixed=[f"{f.rule_id} {f.file}" for f in fixed],
                   introduced=[f"{f.rule_id} {f.file}" for f in introduced])
        if not is_verified(fixed, introduced):
            out["reason"] = "the rescan does not show a fix" + (" (it removed nothing)" if not fixed else
                                                                " (it introduced a finding as severe)")
            return out
        if has_tests:
            if tests_before is not None and not tests_before:
                out["tests"] = "broken_before"
            else:
                out["tests"] = "passed" if _run_tests(sandbox, patched) else "failed"
                if out["tests"] == "failed":
                    out["reason"] = "the repository's tests fail after the patch"
                    return out
        out["succeeded"] = True
        return out


def _run_tests(sandbox: Any, root: Path) -> bool:
    from secops_ai.agents.sandbox import SandboxLimits

    argv = [sys.executable, *TEST_COMMAND[1:]]
    result = sandbox.run(argv, root=root, limits=SandboxLimits(wall_timeout=120, cpu_seconds=60))
    return result.ok
