"""The run manager: agent runs in background threads, with approvals, cancellation and live subscribers.

The API and the CLI both go through :class:`RunManager`: :meth:`~RunManager.start` validates the request,
creates the trajectory file and the run's :class:`~secops_ai.agents.events.EventLog`, and runs the loop in a
worker thread over a sandboxed working copy of the target folder (the original is only read). Finished runs
stay listable after a restart because everything is read back from ``storage/agent_runs/*.jsonl``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from secops_ai.agents.actions import ApprovalDecision, ApprovalRequest, Budget
from secops_ai.agents.events import EventLog
from secops_ai.agents.loop import AgentConfig, AgentLoop, ApprovalGate, ApprovalPolicy, RunResult
from secops_ai.agents.scripted import Script, ScriptedBackend
from secops_ai.agents.trajectory import (
    RunSummary,
    TrajectoryError,
    TrajectoryWriter,
    read_events,
    summarize,
    trajectory_path,
)
from secops_ai.config import Settings

log = logging.getLogger(__name__)

SCRIPTED = "scripted"


class RunRequest(BaseModel):
    """What starts a run (the body of ``POST /agents/runs``)."""

    model_config = ConfigDict(extra="forbid")

    task: str = Field(min_length=1, max_length=4000, description="What the agent should do.")
    workspace: str = Field(min_length=1, description="Folder to work on; the agent only ever changes a copy.")
    model: str | None = Field(default=None, description="Model/adapter name, or 'scripted' to run `script`.")
    script: Script | None = Field(default=None, description="The playbook a 'scripted' model answers from.")
    budget: Budget = Field(default_factory=Budget)
    approval: ApprovalPolicy = Field(default="ask", description="High-risk tools: ask a person, deny, or allow.")
    approval_timeout_s: float | None = Field(default=None, gt=0, description="Refuse if nobody decides in time.")
    reflect: bool = True
    temperature: float = Field(default=0.0, ge=0, le=2)
    seed: int | None = 0

    @model_validator(mode="after")
    def _script_needs_scripted(self) -> RunRequest:
        if self.script is not None and self.model not in (None, SCRIPTED):
            raise ValueError(f"'script' is only used with model '{SCRIPTED}', not {self.model!r}")
        if self.script is not None:
            self.model = SCRIPTED
        return self


BackendFactory = Callable[[str | None], Any]


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


class RunNotFound(LookupError):
    pass


class RunManager:
    """Starts, tracks and controls agent runs of one workspace (``storage/agent_runs``)."""

    def __init__(self, settings: Settings, *, backend_factory: BackendFactory | None = None,
                 registry_factory: Callable[[], Any] | None = None, max_concurrent: int = 2,
                 sandbox_factory: Callable[[], Any] | None = None, fsync: str = "event") -> None:
        self.settings = settings
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
    def start(self, request: RunRequest, *, gate: ApprovalGate | None = None) -> RunHandle:
        """Create the run (its trajectory exists when this returns) and start it in a worker thread."""
        folder = Path(request.workspace).expanduser()
        if not folder.is_dir():
            raise ValueError(f"workspace: {request.workspace} is not a directory")
        if request.model == SCRIPTED and request.script is None:
            raise ValueError("script: a 'scripted' run needs a playbook (plan, actions)")
        run_id = f"run-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"
        writer = TrajectoryWriter(trajectory_path(self.runs_dir, run_id), fsync=self.fsync)
        handle = RunHandle(run_id, request, EventLog(run_id, writer),
                           gate or ApprovalGate(request.approval, timeout=request.approval_timeout_s))
        with self._lock:
            self._runs[run_id] = handle
        handle.thread = threading.Thread(target=self._run, args=(handle, folder.resolve()), name=run_id, daemon=True)
        handle.thread.start()
        return handle

    def _run(self, handle: RunHandle, folder: Path) -> None:
        req = handle.request
        with self._slots:
            sandbox = None
            try:
                backend = self._backend(req)
                registry, ctx, sandbox = self._tools(handle.run_id, folder)
                from secops_ai.agents.tools.base import idempotency_key

                config = AgentConfig(budget=req.budget, temperature=req.temperature, seed=req.seed,
                                     reflect=req.reflect)
                cache = self._shared("critiques", _critique_cache)
                loop = AgentLoop(backend, registry, ctx, handle.log, config, gate=handle.gate, cancel=handle.cancel,
                                 idempotency_key=idempotency_key, critique_cache=cache)
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
        from secops_ai.agents.tools.base import ToolContext, default_registry

        registry = self._registry_factory() if self._registry_factory else default_registry()
        sandbox = self._sandbox_factory() if self._sandbox_factory else Sandbox()
        copy = sandbox.working_copy(folder)
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
            stat = path.stat()
        except OSError:
            raise RunNotFound(f"no agent run {run_id!r}") from None
        stamp = (stat.st_size, stat.st_mtime_ns)
        cached = self._summaries.get(run_id)
        if cached is None or cached[0] != stamp:  # a file only changes while its run is live: cache the fold
            cached = (stamp, summarize(run_id, self.events(run_id)))
            self._summaries[run_id] = cached
        return cached[1].model_copy()

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """Every event of a run so far (live or from its file)."""
        handle = self.get(run_id)
        if handle is not None:
            return [e.model_dump(mode="json") for e in list(handle.log.events)]
        try:
            return read_events(trajectory_path(self.runs_dir, run_id))
        except TrajectoryError as exc:
            raise RunNotFound(f"no agent run {run_id!r}") from exc

    def list(self) -> list[RunSummary]:
        """Every run in this workspace, newest first."""
        out = []
        for path in sorted(self.runs_dir.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True):
            run_id = path.stem
            try:
                out.append(self.summary(run_id))
            except (TrajectoryError, RunNotFound) as exc:
                log.warning("skipping unreadable trajectory %s: %s", path, exc)
        return out

    def approve(self, run_id: str, decision: ApprovalDecision) -> ApprovalRequest:
        """Approve or refuse the run's pending action; LookupError when none (or another) is pending."""
        handle = self._live(run_id)
        pending = handle.gate.pending
        handle.gate.decide(decision)
        assert pending is not None
        return pending

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
