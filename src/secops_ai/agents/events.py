"""Agent events: one object per thing that happened, the same object everywhere.

An :class:`EventLog` owns a run's sequence numbers. :meth:`EventLog.emit` builds the :class:`Event`, appends it
to the trajectory file (flushed and fsynced), keeps it in memory and hands it to every subscriber, all under one
lock, so the JSONL file, the SSE stream and the WebSocket see the same objects in the same order.

Event types use AG-UI's names where one corresponds (https://docs.ag-ui.com, "Events"), and AG-UI's camelCase
field names inside ``payload`` (``stepName``, ``toolCallId``, ``toolCallName``, ``messageId``, ``delta``...).
Agent-specific happenings (plans, critiques, approvals, usage) are ``CUSTOM`` events with ``name`` and ``value``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from secops_ai.agents.trajectory import TrajectoryWriter
from secops_ai.observability.tracing import current_ids


class EventType(StrEnum):
    RUN_STARTED = "RUN_STARTED"
    RUN_FINISHED = "RUN_FINISHED"
    RUN_ERROR = "RUN_ERROR"
    STEP_STARTED = "STEP_STARTED"
    STEP_FINISHED = "STEP_FINISHED"
    TEXT_MESSAGE_START = "TEXT_MESSAGE_START"
    TEXT_MESSAGE_CONTENT = "TEXT_MESSAGE_CONTENT"
    TEXT_MESSAGE_END = "TEXT_MESSAGE_END"
    TOOL_CALL_START = "TOOL_CALL_START"
    TOOL_CALL_ARGS = "TOOL_CALL_ARGS"
    TOOL_CALL_END = "TOOL_CALL_END"
    TOOL_CALL_RESULT = "TOOL_CALL_RESULT"
    STATE_SNAPSHOT = "STATE_SNAPSHOT"
    CUSTOM = "CUSTOM"


TERMINAL = frozenset({EventType.RUN_FINISHED, EventType.RUN_ERROR})
# Where a trajectory written with fsync="step" forces the disk: step ends, the run's ends, approvals.
_SYNC_POINTS = frozenset({EventType.RUN_STARTED, EventType.STEP_FINISHED, *TERMINAL})

# Names of CUSTOM events (payload {"name": ..., "value": ...}).
PLAN = "plan"
CRITIQUE = "critique"
APPROVAL_REQUESTED = "approval_requested"
APPROVAL_DECIDED = "approval_decided"
ACTION_INVALID = "action_invalid"
USAGE = "usage"
MEMORY_SAVED = "memory_saved"
_SYNC_CUSTOM = frozenset({APPROVAL_REQUESTED, APPROVAL_DECIDED})


class Event(BaseModel):
    """One line of a trajectory; one SSE message; one WebSocket frame."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    seq: int = Field(ge=0, description="0, 1, 2... within the run; the SSE id, for Last-Event-ID resumption.")
    ts: float = Field(description="Unix time in seconds.")
    type: EventType
    payload: dict[str, Any] = Field(default_factory=dict)
    trace_id: str | None = Field(default=None, description="OpenTelemetry trace of the run (only when tracing).")
    span_id: str | None = Field(default=None, description="The span the event happened in (only when tracing).")

    @model_serializer(mode="wrap")
    def _trace_ids_only_when_tracing(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if self.trace_id is None:  # tracing off: the event has exactly its five contract fields
            data.pop("trace_id", None)
            data.pop("span_id", None)
        return data

    def line(self) -> str:
        """The JSON text written to the trajectory and sent on the wire."""
        return self.model_dump_json()

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL


class Subscription:
    """Events for one async consumer (an SSE response, a WebSocket): backlog first, then live ones.

    Created with :meth:`EventLog.subscribe` inside the consumer's event loop; live events arrive through
    ``loop.call_soon_threadsafe`` because runs emit from worker threads.
    """

    def __init__(self, log: EventLog, loop: asyncio.AbstractEventLoop, backlog: list[Event]) -> None:
        self._log = log
        self._loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        for event in backlog:
            self.queue.put_nowait(event)

    def _push(self, event: Event) -> None:
        self._loop.call_soon_threadsafe(self.queue.put_nowait, event)

    async def get(self) -> Event:
        return await self.queue.get()

    def close(self) -> None:
        self._log._unsubscribe(self)


class EventLog:
    """The single writer of one run's events."""

    def __init__(self, run_id: str, writer: TrajectoryWriter | None = None, *, start_seq: int = 0) -> None:
        self.run_id = run_id
        self.writer = writer
        self.events: list[Event] = []
        self._seq = start_seq
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._changed = threading.Condition(self._lock)

    def emit(self, type: EventType, payload: dict[str, Any] | None = None) -> Event:
        with self._lock:
            trace_id, span_id = current_ids()  # joins a trajectory line to its trace
            event = Event(run_id=self.run_id, seq=self._seq, ts=time.time(), type=type, payload=payload or {},
                          trace_id=trace_id, span_id=span_id)
            if self.writer is not None:  # on disk before anyone is told
                self.writer.append(event.line(), sync=type in _SYNC_POINTS or (
                    type == EventType.CUSTOM and (payload or {}).get("name") in _SYNC_CUSTOM))
            self._seq += 1
            self.events.append(event)
            for sub in self._subs:
                sub._push(event)
            self._changed.notify_all()
            return event

    def custom(self, name: str, value: Any) -> Event:
        return self.emit(EventType.CUSTOM, {"name": name, "value": value})

    def subscribe(self, after_seq: int = -1) -> Subscription:
        """Events with ``seq > after_seq`` for the calling event loop (backlog and live, no gap, no repeat)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            sub = Subscription(self, loop, [e for e in self.events if e.seq > after_seq])
            self._subs.append(sub)
            return sub

    def wait(self, after_seq: int, timeout: float | None = None) -> list[Event]:
        """Block until there are events after ``after_seq`` (or the timeout); return them."""
        with self._changed:
            self._changed.wait_for(lambda: self._seq - 1 > after_seq, timeout=timeout)
            return [e for e in self.events if e.seq > after_seq]

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
