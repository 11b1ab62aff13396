"""The run manager: agent runs in background threads, with approvals, cancellation and live subscribers.

The API and the CLI both go through :class:`RunManager`: :meth:`~RunManager.start` validates the request,
creates the trajectory file and the run's :class:`~secops_ai.agents.events.EventLog`, and runs the loop in a
worker thread over a sandboxed working copy of the target folder (the original is only read). Finished runs
stay listable after a restart because everything is read back from ``storage/agent_runs/*.jsonl``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import stat
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from secops_ai.agents.actions import ApprovalDecision, ApprovalRequest, Budget
from secops_ai.agents.events import EventLog
from secops_ai.agents.loop import AgentConfig, ApprovalGate, ApprovalPolicy, ClaimChecker, RunResult
from secops_ai.agents.safe_paths import tree_usage
from secops_ai.agents.scripted import Script, ScriptedBackend
from secops_ai.agents.trajectory import (
    RUN_ID_RE,
    RunSummary,
    TrajectoryError,
    TrajectoryWriter,
    read_events,
    read_request,
    request_path,
    summarize,
    trajectory_path,
)
from secops_ai.config import Settings

log = logging.getLogger(__name__)

SCRIPTED = "scripted"


class RunRequest(BaseModel):
    """What starts a run (the body of ``POST /agents/runs``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"task": "fix the bandit findings", "workspace": "repo", "approval": "deny", "budget": {"max_steps": 3},
         "script": {"plan": ["Scan with bandit"], "actions": [{"thought": "Scan first.", "tool": "run_scanner",
                                                                "args": {"scanner": "bandit"}}]}},
    ]})

    task: str = Field(min_length=1, max_length=4000, description="What the agent should do.")
    workspace: str = Field(min_length=1, max_length=4096,
                           description="Folder to work on (over the API: under SECOPS_AGENT_WORKSPACE_ROOTS); the "
                           "agent only ever changes a copy.")
    model: str | None = Field(default=None, description="Model/adapter name, or 'scripted' to run `script`.")
    script: Script | None = Field(default=None, description="The playbook a 'scripted' model answers from.")
    budget: Budget = Field(default_factory=Budget)
    approval: ApprovalPolicy | None = Field(
        default=None,
        description="High-risk tools: ask a person, deny, or allow. Over the API a request may only be as strict as "
        "the server's SECOPS_AGENT_APPROVAL or stricter (allow < ask < deny); default 'ask' (or the server's, if "
        "stricter).",
    )
    approval_timeout_s: float | None = Field(default=None, gt=0, description="Refuse if nobody decides in time.")
    reflect: bool = True
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int | None = Field(default=0, ge=0, le=2**63 - 1, description="Sampling seed (0..2**63-1).")
    mode: Literal["auto", "guided", "free"] = Field(
        default="auto", description="'guided' (small models fill slots of a scan-fix workflow), 'free' (the model "
        "plans), 'auto' (guided for local models under 2B parameters).")

    @model_validator(mode="after")
    def _script_needs_scripted(self) -> RunRequest:
        if self.script is not None and self.model not in (None, SCRIPTED):
            raise ValueError(f"'script' is only used with model '{SCRIPTED}', not {self.model!r}")
        if self.script is not None:
            self.model = SCRIPTED
        return self


BackendFactory = Callable[[str | None], Any]

_STRICTNESS = {"allow": 0, "ask": 1, "deny": 2}


class WorkspaceRefused(ValueError):
    """The workspace is outside the operator's roots (or not a folder): a 400 naming ``workspace``."""


class WorkspaceTooLarge(ValueError):
    """The workspace holds more than a run may copy: a 413 naming ``workspace``."""


class RunQueueFull(RuntimeError):
    """Too many API runs already wait for a slot: a 429."""


def workspace_roots(settings: Settings) -> list[Path]:
    """Folders API callers may point agents at (``SECOPS_AGENT_WORKSPACE_ROOTS``), links resolved."""
    raw = settings.agent_workspace_roots
    if raw is None:
        default = settings.workspace.root / "workspaces"
        default.mkdir(parents=True, exist_ok=True)
        return [default.resolve()]
    return [Path(p.strip()).expanduser().resolve() for p in raw.split(",") if p.strip()]


def resolve_workspace(settings: Settings, workspace: str, *, operator: bool) -> Path:
    """The folder a run works on. API callers: inside a root, checked after every link is resolved.

    The root check comes before the existence check and messages quote only the caller's own text, so the
    answer tells nothing about folders outside the roots.
    """
    if "\0" in workspace:
        raise WorkspaceRefused("workspace: must not contain a NUL byte")
    try:
        return _resolve_workspace(settings, workspace, operator=operator)
    except (OSError, RuntimeError) as exc:  # a name too long, a link loop (RuntimeError), a folder we may not enter
        reason = getattr(exc, "strerror", None) or "a symlink loop"
        raise WorkspaceRefused(f"workspace: {workspace!r} cannot be used ({reason})") from None


def _resolve_workspace(settings: Settings, workspace: str, *, operator: bool) -> Path:
    if operator:
        folder = Path(workspace).expanduser().resolve()
    else:
        roots = workspace_roots(settings)
        given = Path(workspace)
        base = roots[0] if roots else Path("/nonexistent")
        folder = (given if given.is_absolute() else base / given).resolve()
        if not any(folder == root or root in folder.parents for root in roots):
            raise WorkspaceRefused(
                f"workspace: {workspace!r} is not inside the folders this server lets API callers use "
                "(SECOPS_AGENT_WORKSPACE_ROOTS; a relative path is taken inside the first one)")
    if not folder.is_dir():
        raise WorkspaceRefused(f"workspace: {workspace} is not a directory")
    return folder


def effective_approval(settings: Settings, asked: ApprovalPolicy | None, *, operator: bool) -> ApprovalPolicy:
    """The policy a run gets: operators choose freely; API requests never less strict than the server's."""
    if operator:
        return asked or "ask"
    floor = settings.agent_approval
    if asked is None:
        return "ask" if _STRICTNESS["ask"] >= _STRICTNESS[floor] else floor
    if _STRICTNESS[asked] < _STRICTNESS[floor]:
        raise ValueError(f"approval: {asked!r} is less strict than this server allows (SECOPS_AGENT_APPROVAL="
                         f"{floor!r}); ask for {floor!r} or stricter (allow < ask < deny)")
    return asked


@dataclass
class RunHandle:
    """A run in this process: its log, approval gate, cancel flag and thread."""

    run_id: str
    request: RunRequest
    log: EventLog
    gate: ApprovalGate
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    result: RunResult | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.thread is not None and not self.thread.is_alive()

    def summary(self) -> RunSummary:
        s = summarize(self.run_id, [e.model_dump(mode="json") for e in list(self.log.events)], live=not self.done)
        if not s.task:  # no RUN_STARTED yet: waiting for a slot, or the setup failed (RUN_ERROR only)
            s.task, s.workspace, s.model = self.request.task, self.request.workspace, self.request.model or ""
            if not self.log.events:
                s.status = "queued"
        return s


class NothingPending(LookupError):
    """The run has no action waiting for approval."""


class RunNotFound(LookupError):
    pass


class RunManager:
    """Starts, tracks and controls agent runs of one workspace (``storage/agent_runs``)."""

    def __init__(self, settings: Settings, *, backend_factory: BackendFactory | None = None,
                 registry_factory: Callable[[], Any] | None = None, max_concurrent: int = 2,
                 sandbox_factory: Callable[[], Any] | None = None, fsync: str = "event",
                 claim_checker: ClaimChecker | None = None) -> None:
        self.settings = settings
        self.claim_checker = claim_checker  # checks plans and final reports (see AgentConfig.claim_checker)
        self.fsync = fsync  # trajectory durability: "event" (every event on disk), "step" or "off"
        self.runs_dir = settings.workspace.agent_runs
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self._backend_factory = backend_factory
        self._registry_factory = registry_factory
        self._sandbox_factory = sandbox_factory
        self._runs: dict[str, RunHandle] = {}
        self._stores: dict[str, Any] = {}
        self._summaries: dict[str, tuple[tuple[int, int], RunSummary]] = {}
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrent)

    # ---------------------------------------------------------------------------------------------- start
    def start(self, request: RunRequest, *, gate: ApprovalGate | None = None, operator: bool = False) -> RunHandle:
        """Create the run (its request is on disk when this returns) and start it in a worker thread.

        ``operator=False`` (the API) confines the workspace to :func:`workspace_roots` and the approval policy to
        the server's floor; the CLI passes ``operator=True``. Both are refused a folder larger than a run may copy
        (:class:`WorkspaceTooLarge`) before anything is copied or created.
        """
        if request.model == SCRIPTED and request.script is None:
            raise ValueError("script: a 'scripted' run needs a playbook (plan, actions)")
        if not operator and request.budget.tokens_per_call > self.settings.max_new_tokens:
            raise ValueError(f"budget.tokens_per_call: at most {self.settings.max_new_tokens} (SECOPS_MAX_NEW_TOKENS), "
                             f"not {request.budget.tokens_per_call}")
        folder = resolve_workspace(self.settings, request.workspace, operator=operator)
        policy = effective_approval(self.settings, request.approval, operator=operator)
        self._check_size(request.workspace, folder)
        request = request.model_copy(update={"approval": policy})
        with self._lock:
            waiting = sum(1 for h in self._runs.values() if not h.done and not h.log.events)
        if not operator and waiting >= self.settings.agent_max_queued:
            raise RunQueueFull(f"{waiting} agent runs are already waiting for a slot (SECOPS_AGENT_MAX_QUEUED="
                               f"{self.settings.agent_max_queued}); retry when one has started")
        run_id = f"run-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        # The request is durable before the run is acknowledged: a server killed while the run waits for a slot
        # leaves it listed as interrupted with its task and workspace. Its trajectory file is created when the
        # run gets a slot, so a queued run never leaves an empty one.
        _write_request(request_path(self.runs_dir, run_id), request, folder)
        handle = RunHandle(run_id, request, EventLog(run_id),
                           gate or ApprovalGate(policy, timeout=request.approval_timeout_s))
        with self._lock:
            self._runs[run_id] = handle
        # The thread runs in a copy of the caller's context, so an API run's spans join the request's trace.
        handle.thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run, handle, folder),
                                         name=run_id, daemon=True)
        handle.thread.start()
        return handle

    def _check_size(self, given: str, folder: Path) -> None:
        max_bytes, max_files = self.settings.agent_max_copy_bytes, self.settings.agent_max_copy_files
        used, files = tree_usage(folder, max_bytes=max_bytes, max_files=max_files, skip=frozenset({".git"}))
        if used > max_bytes:
            raise WorkspaceTooLarge(f"workspace: {given!r} holds more than {max_bytes} bytes, the most an agent run "
                                    "copies (SECOPS_AGENT_MAX_COPY_BYTES)")
        if files > max_files:
            raise WorkspaceTooLarge(f"workspace: {given!r} holds more than {max_files} files and folders, the most "
                                    "an agent run copies (SECOPS_AGENT_MAX_COPY_FILES)")

    def _run(self, handle: RunHandle, folder: Path) -> None:
        req = handle.request
        with self._slots:
            sandbox = None
            try:
                handle.log.writer = TrajectoryWriter(trajectory_path(self.runs_dir, handle.run_id), fsync=self.fsync)
                backend = self._backend(req)
                registry, ctx, sandbox = self._tools(handle.run_id, folder)
                from secops_ai.agents.tools.base import idempotency_key

                config = AgentConfig(budget=req.budget, temperature=req.temperature, seed=req.seed,
                                     reflect=req.reflect, claim_checker=self.claim_checker)
                cache = self._shared("critiques", _critique_cache)
                from secops_ai.agents.guided import make_loop

                loop = make_loop(backend, registry, ctx, handle.log, config, mode=req.mode, gate=handle.gate,
                                 cancel=handle.cancel, idempotency_key=idempotency_key, critique_cache=cache)
                handle.result = loop.run(req.task, workspace=str(folder))
            except Exception as exc:  # already a RUN_ERROR event when the loop raised; else record one now
                handle.error = f"{type(exc).__name__}: {exc}"
                log.exception("agent run %s failed", handle.run_id)
                if not handle.log.events or not handle.log.events[-1].terminal:
                    from secops_ai.agents.events import EventType

                    handle.log.emit(EventType.RUN_ERROR, {"message": handle.error, "code": "run_setup_failed"})
            finally:
                handle.log.close()
                if sandbox is not None:
                    sandbox.cleanup()

    def _backend(self, req: RunRequest) -> Any:
        if req.model == SCRIPTED:
            return ScriptedBackend.from_script(req.script or Script())
        if self._backend_factory is not None:
            return self._backend_factory(req.model)
        from secops_ai.inference.backend import backend_from_settings

        return backend_from_settings(self.settings, req.model)

    def _tools(self, run_id: str, folder: Path) -> tuple[Any, Any, Any]:
        from secops_ai.agents.sandbox import Sandbox
        from secops_ai.agents.tools.base import ToolContext
        from secops_ai.agents.tools.default_tools import default_registry

        registry = self._registry_factory() if self._registry_factory else default_registry()
        quota = self.settings.agent_disk_quota_bytes
        sandbox = self._sandbox_factory() if self._sandbox_factory else Sandbox(disk_quota=quota)
        if getattr(sandbox, "disk_quota", quota) is None:
            sandbox.disk_quota = quota
        copy = sandbox.working_copy(folder, max_bytes=min(quota, self.settings.agent_max_copy_bytes),
                                    max_files=self.settings.agent_max_copy_files)
        ctx = ToolContext(run_id=run_id, workspace=copy, original=folder, sandbox=sandbox,
                          memory=self._shared("memory", _long_term_memory), settings=self.settings)
        return registry, ctx, sandbox

    def _shared(self, name: str, open_: Callable[[Settings], Any]) -> Any:
        """One long-term memory and one critique cache per manager: their locks serialise concurrent runs."""
        with self._lock:
            if name not in self._stores:
                self._stores[name] = open_(self.settings)
            return self._stores[name]

    # ------------------------------------------------------------------------------------------- control
    def get(self, run_id: str) -> RunHandle | None:
        with self._lock:
            return self._runs.get(run_id)

    def summary(self, run_id: str) -> RunSummary:
        handle = self.get(run_id)
        if handle is not None:
            return handle.summary()
        path = trajectory_path(self.runs_dir, run_id)
        try:
            st = path.lstat()  # a planted link is no run: never followed out of the workspace
        except OSError:
            record = read_request(request_path(self.runs_dir, run_id))
            if record is None:
                raise RunNotFound(f"no agent run {run_id!r}") from None
            # accepted but never started, and no longer live here: the server stopped while it was queued
            return _from_request(RunSummary(run_id=run_id, status="interrupted"), record)
        if not stat.S_ISREG(st.st_mode):
            raise RunNotFound(f"no agent run {run_id!r}")
        stamp = (st.st_size, st.st_mtime_ns)
        cached = self._summaries.get(run_id)
        if cached is None or cached[0] != stamp:  # a file only changes while its run is live: cache the fold
            summary = summarize(run_id, self.events(run_id))
            if not summary.started_at:  # never started (queued when the server stopped): its request tells what
                summary = _from_request(summary, read_request(request_path(self.runs_dir, run_id)))
            cached = (stamp, summary)
            self._summaries[run_id] = cached
        return cached[1].model_copy()

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of a run so far (live or from its file)."""
        handle = self.get(run_id)
        if handle is not None:
            return [e.model_dump(mode="json") for e in list(handle.log.events)]
        path = trajectory_path(self.runs_dir, run_id)
        try:
            return read_events(path)
        except TrajectoryError as exc:
            if not os.path.lexists(path) and read_request(request_path(self.runs_dir, run_id)) is not None:
                return []  # accepted, never started
            raise RunNotFound(f"no agent run {run_id!r}") from exc

    def list(self) -> list[RunSummary]:
        """Every run in this workspace, newest first."""
        out = []
        found: dict[str, float] = {}  # run id -> newest mtime of its trajectory or stored request
        for pattern, suffix in (("*.jsonl", ".jsonl"), ("*.request.json", ".request.json")):
            for path in self.runs_dir.glob(pattern):
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):  # links (planted or not) are never followed out of SECOPS_HOME
                    log.warning("skipping %s: not a regular file", path.name)
                    continue
                run_id = path.name[: -len(suffix)]
                found[run_id] = max(found.get(run_id, 0.0), st.st_mtime)
        for run_id, _ in sorted(found.items(), key=lambda item: item[1], reverse=True):
            path = trajectory_path(self.runs_dir, run_id) if RUN_ID_RE.match(run_id) else None
            if path is None:
                continue
            try:
                out.append(self.summary(run_id))
            except (TrajectoryError, RunNotFound) as exc:
                log.warning("skipping unreadable trajectory %s: %s", path.name, exc)
        return out

    def approve(self, run_id: str, decision: ApprovalDecision) -> ApprovalRequest:
        """Approve or refuse the run's pending action; LookupError when none (or another) is pending."""
        handle = self._live(run_id)
        pending = handle.gate.pending
        handle.gate.decide(decision)
        assert pending is not None
        return pending

    def decide_pending(self, run_id: str, *, approved: bool, tool_call_id: str | None = None, reason: str = "",
                       by: str = "api") -> ApprovalRequest:
        """Approve or refuse the action the run waits on (``tool_call_id`` defaults to whichever is pending).

        :class:`NothingPending` when none waits; :class:`LookupError` when another call is pending or the run is
        not live here; :class:`RunNotFound` for an unknown run. Used by the REST route and the WebSocket alike.
        """
        handle = self.get(run_id)
        pending = handle.gate.pending if handle is not None else None
        if pending is None:
            self.events(run_id)  # RunNotFound for unknown ids
            raise NothingPending(f"run {run_id} has no action waiting for approval")
        return self.approve(run_id, ApprovalDecision(tool_call_id=tool_call_id or pending.tool_call_id,
                                                     approved=approved, reason=reason, by=by))

    def cancel(self, run_id: str) -> RunHandle:
        handle = self._live(run_id)
        handle.cancel.set()
        handle.gate.wake()
        return handle

    def _live(self, run_id: str) -> RunHandle:
        handle = self.get(run_id)
        if handle is None:
            self.events(run_id)  # RunNotFound for unknown ids
            raise LookupError(f"run {run_id} is not running in this server")
        events = handle.log.events
        # Finished once its terminal event is written, even if the worker thread is still cleaning up.
        if handle.done or (events and events[-1].terminal):
            raise LookupError(f"run {run_id} has already finished")
        return handle

    def shutdown(self, timeout: float = 10.0) -> None:
        """Cancel every live run and wait for the workers (server shutdown)."""
        with self._lock:
            handles = list(self._runs.values())
        for h in handles:
            if not h.done:
                h.cancel.set()
                h.gate.wake()
        for h in handles:
            if h.thread is not None:
                h.thread.join(timeout=timeout)


def _write_request(path: Path, request: RunRequest, folder: Path) -> None:
    """The run's request, fsynced before the run is acknowledged (O_EXCL: never over another file or link)."""
    record = {"request": request.model_dump(mode="json"), "folder": str(folder), "created_at": time.time()}
    data = json.dumps(record, ensure_ascii=False).encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):  # the folder entry too, so the file survives a power cut
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _from_request(summary: RunSummary, record: dict[str, Any] | None) -> RunSummary:
    """A run that never started: task, workspace and model from its stored request, marked honestly."""
    if record is None:
        return summary
    req = record.get("request") if isinstance(record.get("request"), dict) else {}
    summary.task, summary.workspace = str(req.get("task", "")), str(req.get("workspace", ""))
    summary.model = str(req.get("model") or "")
    summary.request = req
    if summary.status == "interrupted":
        summary.result = {"outcome": "interrupted", "code": "interrupted_while_queued",
                          "message": "the server stopped before this run started; its request is kept and can be "
                                     "submitted again"}
    return summary


def _long_term_memory(settings: Settings) -> Any:
    """The workspace's long-term memory when the memory package can open it (runs work without it)."""
    try:
        from secops_ai.agents.memory import LongTermMemory

        return LongTermMemory.open(settings.workspace.memory)
    except Exception as exc:
        log.info("long-term memory unavailable: %s", exc)
        return None


def _critique_cache(settings: Settings) -> Any:
    try:
        from secops_ai.agents.memory import CritiqueCache

        return CritiqueCache.from_settings(settings)
    except Exception as exc:
        log.info("critique cache unavailable: %s", exc)
        return None
