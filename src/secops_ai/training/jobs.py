"""Background training jobs (used by the API): a run in its own process, its status read from disk.

Each job is ``secops-ai train run`` in a subprocess, so training never blocks the server's event loop or
competes with it for the GIL, and a crash of either side leaves the other standing. Status lives in
``storage/training/<run-id>/status.json`` (written by the runner) and ``metrics.jsonl``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from secops_ai.config import Settings
from secops_ai.config.atomic import atomic_write_text
from secops_ai.config.confine import is_inside
from secops_ai.training.config import RunConfig
from secops_ai.training.runs import new_run_id, work_root

log = logging.getLogger(__name__)


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


class StatusUnreadable(ValueError):
    """A run's ``status.json`` is missing fields, not JSON, or lies outside the workspace."""


def _read_json(path: Path, root: Path) -> Any:
    """Parse a JSON file that must really live under ``root`` (a planted symlink out of it is refused)."""
    if not is_inside(path, root):
        raise StatusUnreadable(f"{path.name} is not a file inside the workspace")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StatusUnreadable(f"{path.name} is not valid JSON ({type(exc).__name__})") from None


def _read_status(path: Path, root: Path) -> dict[str, Any]:
    status = _read_json(path, root)
    if not isinstance(status, dict) or status.get("status") not in _STATES:
        raise StatusUnreadable(f"{path.name} has no valid 'status' (one of {', '.join(_STATES)})")
    return status


_STATES = ("queued", "running", "completed", "failed")


def _metrics(path: Path, root: Path) -> list[dict[str, Any]]:
    """Rows of metrics.jsonl; a torn or garbled line (a crash mid-write) is skipped, not fatal."""
    if not path.is_file() or not is_inside(path, root):
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def run_status(run_id: str, settings: Settings, *, last: int = 50) -> dict[str, Any]:
    """``{"id", "status", "run_name", "metrics": [...], "summary": {...}, "error"?}`` for a run.

    Raises :class:`JobNotFound` for an unknown id and :class:`StatusUnreadable` for a broken status file.
    """
    root = settings.workspace.root
    work = work_root(settings) / run_id
    status_file = work / "status.json"
    if "/" in run_id or run_id in ("", ".", "..") or not status_file.exists():
        raise JobNotFound(f"no training run {run_id!r}")
    status = _read_status(status_file, root)
    proc = _children.get(run_id)
    if proc is not None and proc.poll() is not None:
        _children.pop(run_id, None)
        status = _read_status(status_file, root)  # the child may have finished writing meanwhile
        if status["status"] in ("queued", "running"):
            status["status"] = "failed"
            status["error"] = _tail(work / "job.log", root)
    elif status["status"] in ("queued", "running") and proc is None and not _alive(status.get("pid")):
        status["status"] = "failed"
        status["error"] = _tail(work / "job.log", root) or "the training process is gone"
    rows = _metrics(work / "metrics.jsonl", root)
    losses = [r for r in rows if isinstance(r.get("loss"), int | float)]
    summary = {"step": rows[-1]["step"] if rows else 0, "loss": losses[-1]["loss"] if losses else None,
               "tokens_per_second": losses[-1].get("tokens_per_second") if losses else None}
    run_name = status.get("run_name") if isinstance(status.get("run_name"), str) else None
    out = {"id": run_id, "status": status["status"], "run_name": run_name,
           "metrics": rows[-last:] if last else [], "summary": summary}
    if status.get("error"):
        out["error"] = str(status["error"])
    if status["status"] == "completed" and run_name and ".." not in run_name.split("/"):
        run_json = settings.workspace.models / run_name / "run.json"
        try:
            result = _read_json(run_json, root) if run_json.is_file() else None
        except StatusUnreadable:
            result = None
        if isinstance(result, dict) and isinstance(result.get("metrics"), dict):
            out["result"] = result["metrics"]
    return out


def list_runs(settings: Settings, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    """Every training run's status, oldest id first. A run whose status cannot be read is skipped with a
    warning (logged, and appended to ``warnings`` when given) so one broken file never fails the listing."""
    root = work_root(settings)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.glob("*/status.json")):
        try:
            out.append(run_status(p.parent.name, settings, last=0))
        except (StatusUnreadable, JobNotFound) as exc:
            msg = f"training run {p.parent.name}: skipped, {exc}"
            log.warning(msg)
            if warnings is not None:
                warnings.append(msg)
    return out


def _tail(path: Path, root: Path, chars: int = 2000) -> str:
    if not is_inside(path, root):
        return ""
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-chars:]
    except OSError:
        return ""
