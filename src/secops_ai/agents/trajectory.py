"""Trajectories on disk: ``storage/agent_runs/<run-id>.jsonl``, one event a line, append-only.

Each line is written with a single ``write`` of the whole line, then flushed and fsynced, so a crash (even
``kill -9``) leaves every earlier event intact. A reader tolerates one torn final line (what a crash in the
middle of a write leaves) and reports any other broken line with its file and line number.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class TrajectoryError(ValueError):
    """A trajectory file is missing or corrupt (the message names the file and line)."""


class TrajectoryWriter:
    """Append lines to one trajectory file; refuses to reuse an existing file (runs never overwrite).

    Every line reaches the kernel with one ``write`` before :meth:`append` returns, so a killed process loses
    nothing. ``fsync`` decides when the disk is forced too (what survives a power cut): ``True``/``"event"``
    after every line, ``"step"`` only when :meth:`append` is called with ``sync=True`` (the event log does so at
    step boundaries, approvals and the end of a run), ``False``/``"off"`` never.
    """

    def __init__(self, path: Path, *, fsync: bool | str = True) -> None:
        self.path = path
        policy = {True: "event", False: "off"}.get(fsync, fsync) if isinstance(fsync, bool) else fsync
        if policy not in ("event", "step", "off"):
            raise ValueError(f"fsync must be 'event', 'step' or 'off', not {fsync!r}")
        self.fsync = policy
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: a run id names one file forever.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)

    def append(self, line: str, *, sync: bool = True) -> None:
        if "\n" in line:
            raise ValueError("a trajectory line may not contain a newline")
        data = (line + "\n").encode("utf-8")
        written = os.write(self._fd, data)
        while written < len(data):  # os.write may be partial on some filesystems
            written += os.write(self._fd, data[written:])
        if self.fsync == "event" or (self.fsync == "step" and sync):
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def trajectory_path(runs_dir: Path, run_id: str) -> Path:
    if not RUN_ID_RE.match(run_id):
        raise TrajectoryError(f"invalid run id {run_id!r}: letters, digits, '.', '_' and '-' only")
    return runs_dir / f"{run_id}.jsonl"


def request_path(runs_dir: Path, run_id: str) -> Path:
    """Where a run's request is kept from before it is acknowledged (``<run-id>.request.json``)."""
    return trajectory_path(runs_dir, run_id).with_suffix(".request.json")


def _read_regular(path: Path) -> bytes | None:
    """The bytes of ``path`` when it is a regular file; ``None`` when absent, a link or anything else.

    ``O_NOFOLLOW``: a link planted in ``storage/agent_runs`` is never followed out of ``SECOPS_HOME``.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


def read_request(path: Path) -> dict[str, Any] | None:
    """A stored run request, or ``None`` when missing or unreadable."""
    raw = _read_regular(path)
    try:
        record = json.loads(raw) if raw is not None else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every complete event in ``path``, in order. A torn last line (a crash mid-write) is skipped."""
    raw = _read_regular(path)
    if raw is None:
        raise TrajectoryError(f"no trajectory for run {path.stem!r}")
    lines = raw.split(b"\n")
    events = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        last = number == len(lines)  # no newline after it: possibly torn by a crash
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            if last:
                break
            raise TrajectoryError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(event, dict) or not {"run_id", "seq", "ts", "type", "payload"} <= set(event):
            raise TrajectoryError(f"{path}:{number}: not an event (needs run_id, seq, ts, type, payload)")
        events.append(event)
    return events


class RunSummary(BaseModel):
    """What ``agent list`` and ``GET /agents/runs`` show about a run, derived from its events."""

    run_id: str
    task: str = ""
    model: str = ""
    workspace: str = ""
    status: str = "running"  # queued | running | waiting_approval | succeeded | failed | budget_exhausted | ...
    started_at: float | None = None
    finished_at: float | None = None
    steps: int = 0
    events: int = 0
    result: dict[str, Any] | None = None
    pending_approval: dict[str, Any] | None = None
    request: dict[str, Any] | None = None  # the stored request of a run that never started (queued, interrupted)


def summarize(run_id: str, events: list[dict[str, Any]], *, live: bool = False) -> RunSummary:
    """Fold events into a :class:`RunSummary`. ``live=False`` marks an unfinished file as ``interrupted``."""
    s = RunSummary(run_id=run_id, events=len(events))
    for ev in events:
        t, p = ev["type"], ev["payload"]
        if t == "RUN_STARTED":
            s.task, s.model, s.workspace = p.get("task", ""), p.get("model", ""), p.get("workspace", "")
            s.started_at = ev["ts"]
        elif t == "STEP_STARTED" and str(p.get("stepName", "")).startswith("act-"):
            s.steps += 1
        elif t == "CUSTOM" and p.get("name") == "approval_requested":
            s.pending_approval = p.get("value")
            s.status = "waiting_approval"
        elif t == "CUSTOM" and p.get("name") == "approval_decided":
            s.pending_approval = None
            s.status = "running"
        elif t == "RUN_FINISHED":
            s.result = p.get("result")
            s.status = (p.get("result") or {}).get("outcome", "finished")
            s.finished_at = ev["ts"]
        elif t == "RUN_ERROR":
            s.result = {"outcome": "error", "message": p.get("message"), "code": p.get("code")}
            s.status = "error"
            s.finished_at = ev["ts"]
    if s.finished_at is None and not live:
        s.status = "interrupted"
        s.pending_approval = None
    return s
