"""Background training jobs (used by the API): a run in its own process, its status read from disk.

Each job is ``secops-ai train run`` in a subprocess, so training never blocks the server's event loop or
competes with it for the GIL, and a crash of either side leaves the other standing. Status lives in
``storage/training/<run-id>/status.json`` (written by the runner) and ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from secops_ai.config import Settings
from secops_ai.config.atomic import atomic_write_text
from secops_ai.training.config import RunConfig
from secops_ai.training.runner import new_run_id, work_root


class JobNotFound(LookupError):
    pass


def start_run(config: RunConfig, settings: Settings, *, run_id: str | None = None) -> str:
    """Start training ``config`` in a background process; returns the run id immediately."""
    run_id = run_id or new_run_id(config)
    work = work_root(settings) / run_id
    if work.exists() or (settings.workspace.models / config.provider / run_id).exists():
        raise FileExistsError(f"run {run_id} already exists")
    work.mkdir(parents=True)
    job_config = work / "job.yaml"
    atomic_write_text(job_config, config.to_yaml())
    log = (work / "job.log").open("w")
    env = {**os.environ, "SECOPS_HOME": str(settings.workspace.root)}
    if settings.database_url:
        env["DATABASE_URL"] = settings.database_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "secops_ai.cli.main", "train", "run", str(job_config), "--run-id", run_id,
         "--no-progress"], stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    atomic_write_text(work / "status.json", json.dumps({"status": "queued", "run_name": f"{config.provider}/{run_id}",
                                                        "pid": proc.pid, "ts": time.time()}))
    _children[run_id] = proc
    return run_id


_children: dict[str, subprocess.Popen] = {}


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_status(run_id: str, settings: Settings, *, last: int = 50) -> dict[str, Any]:
    """``{"id", "status", "run_name", "metrics": [...], "summary": {...}, "error"?}`` for a run."""
    work = work_root(settings) / run_id
    status_file = work / "status.json"
    if not status_file.is_file():
        raise JobNotFound(f"no training run {run_id!r}")
    status = json.loads(status_file.read_text())
    proc = _children.get(run_id)
    if proc is not None and proc.poll() is not None:
        _children.pop(run_id, None)
        status = json.loads(status_file.read_text())  # the child may have finished writing meanwhile
        if status["status"] in ("queued", "running"):
            status["status"] = "failed"
            status["error"] = _tail(work / "job.log")
    elif status["status"] in ("queued", "running") and proc is None and not _alive(status.get("pid")):
        status["status"] = "failed"
        status["error"] = _tail(work / "job.log") or "the training process is gone"
    rows = []
    if (work / "metrics.jsonl").is_file():
        rows = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines() if line.strip()]
    losses = [r for r in rows if "loss" in r]
    summary = {"step": rows[-1]["step"] if rows else 0, "loss": losses[-1]["loss"] if losses else None,
               "tokens_per_second": losses[-1].get("tokens_per_second") if losses else None}
    out = {"id": run_id, "status": status["status"], "run_name": status.get("run_name"),
           "metrics": rows[-last:], "summary": summary}
    if status.get("error"):
        out["error"] = status["error"]
    if status["status"] == "completed":
        run_name = status.get("run_name") or ""
        run_json = settings.workspace.models / run_name / "run.json"
        if run_json.is_file():
            out["result"] = json.loads(run_json.read_text())["metrics"]
    return out


def list_runs(settings: Settings) -> list[dict[str, Any]]:
    root = work_root(settings)
    if not root.is_dir():
        return []
    return [run_status(p.parent.name, settings, last=0) for p in sorted(root.glob("*/status.json"))]


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text()[-chars:]
    except OSError:
        return ""
