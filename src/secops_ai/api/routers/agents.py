"""Agent runs over HTTP: start, list, inspect, stream (SSE and WebSocket), approve, cancel.

Routes only translate HTTP into calls to :class:`secops_ai.agents.runs.RunManager`. The SSE stream and the
WebSocket send the very :class:`~secops_ai.agents.events.Event` objects the trajectory file holds, in ``seq``
order; SSE ids are the ``seq``, so a client reconnecting with ``Last-Event-ID: N`` gets events after ``N``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from secops_ai.agents.runs import (
    NothingPending,
    RunManager,
    RunNotFound,
    RunQueueFull,
    RunRequest,
    WorkspaceTooLarge,
)
from secops_ai.agents.trajectory import RUN_ID_RE, RunSummary
from secops_ai.api.deps import RunManagerDep, SettingsDep
from secops_ai.api.errors import APIError
from secops_ai.api.openapi_doc import SSE_200, errors

router = APIRouter(prefix="/agents", tags=["agents"])

KEEPALIVE_S = 15.0
class ApproveBody(BaseModel):
    tool_call_id: str | None = Field(default=None, description="The pending call; default: whatever is pending.")
    approved: bool
    reason: str = Field(default="", max_length=1000)
    by: str = Field(default="api", max_length=200)


def _check_id(run_id: str) -> None:
    if not RUN_ID_RE.match(run_id):
        raise APIError(404, f"no agent run {run_id!r}", param="run_id", code="run_not_found")


def _summary(mgr: RunManager, run_id: str) -> RunSummary:
    _check_id(run_id)
    try:
        return mgr.summary(run_id)
    except RunNotFound as exc:
        raise APIError(404, str(exc), param="run_id", code="run_not_found") from None


@router.post("/runs", status_code=201, response_model=RunSummary, responses=errors(400, 404, 413, 429))
def start_run(body: RunRequest, mgr: RunManagerDep, settings: SettingsDep) -> RunSummary:
    from secops_ai.agents.models import UnknownModelError, check_model

    try:  # an unknown model fails now, not as a run that silently uses the base model
        check_model(settings, body.model)
    except UnknownModelError as exc:
        raise APIError(404, str(exc), param="model", code="model_not_found") from None
    try:
        handle = mgr.start(body)
    except WorkspaceTooLarge as exc:
        raise APIError(413, str(exc), param="workspace", code="workspace_too_large") from None
    except RunQueueFull as exc:
        raise APIError(429, str(exc), code="agent_queue_full", headers={"Retry-After": "10"}) from None
    except ValueError as exc:
        field, _, _ = str(exc).partition(":")
        raise APIError(400, str(exc), param=field if field.split(".")[0] in RunRequest.model_fields else None) from None
    return handle.summary()


@router.get("/runs")
def list_runs(mgr: RunManagerDep) -> dict[str, Any]:
    return {"object": "list", "data": [s.model_dump() for s in mgr.list()]}


@router.get("/runs/{run_id}", response_model=RunSummary, responses=errors(404))
def get_run(run_id: str, mgr: RunManagerDep) -> RunSummary:
    return _summary(mgr, run_id)


@router.post("/runs/{run_id}/approve", responses=errors(404, 409))
def approve(run_id: str, body: ApproveBody, mgr: RunManagerDep) -> dict[str, Any]:
    _summary(mgr, run_id)
    try:
        req = mgr.decide_pending(run_id, **body.model_dump())
    except NothingPending as exc:
        raise APIError(409, str(exc), code="nothing_pending") from None
    except LookupError as exc:
        raise APIError(409, str(exc), param="tool_call_id", code="not_pending") from None
    return {"run_id": run_id, "tool_call_id": req.tool_call_id, "tool": req.tool, "approved": body.approved}


@router.post("/runs/{run_id}/cancel", responses=errors(404, 409))
def cancel(run_id: str, mgr: RunManagerDep) -> dict[str, Any]:
    _summary(mgr, run_id)
    try:
        mgr.cancel(run_id)
    except LookupError as exc:
        raise APIError(409, str(exc), code="not_running") from None
    return {"run_id": run_id, "cancelling": True}


async def _events(mgr: RunManager, run_id: str, after: int) -> AsyncIterator[dict[str, Any] | None]:
    """Events with ``seq > after`` (JSON dicts, exactly as in the file), ending after the terminal one.

    Yields ``None`` every :data:`KEEPALIVE_S` seconds of silence so callers can send a keep-alive.
    """
    handle = mgr.get(run_id)
    if handle is None:  # finished in an earlier process: replay the file
        for event in mgr.events(run_id):
            if event["seq"] > after:
                yield event
        return
    sub = handle.log.subscribe(after)
    try:
        while True:
            try:
                event = await asyncio.wait_for(sub.get(), timeout=KEEPALIVE_S)
            except TimeoutError:
                yield None
                continue
            yield json.loads(event.line())
            if event.terminal:
                return
    finally:
        sub.close()


def _last_id(header: str | None, query: int | None) -> int:
    if query is not None:
        return query
    if header is None or not header.strip():
        return -1
    try:
        return int(header)
    except ValueError:
        raise APIError(400, f"Last-Event-ID must be an event seq (an integer), not {header!r}",
                       param="Last-Event-ID") from None


@router.get("/runs/{run_id}/events", response_class=StreamingResponse, responses={**SSE_200, **errors(400, 404)})
async def stream_events(run_id: str, mgr: RunManagerDep, last_event_id: str | None = Header(default=None),
                        after: int | None = Query(default=None, ge=-1,
                                                  description="Resume after this seq (as Last-Event-ID).")
                        ) -> StreamingResponse:
    _summary(mgr, run_id)
    start = _last_id(last_event_id, after)

    async def body() -> AsyncIterator[str]:
        async for event in _events(mgr, run_id, start):
            if event is None:
                yield ": keep-alive\n\n"
                continue
            data = json.dumps(event, ensure_ascii=False, separators=(",", ":"))
            yield f"id: {event['seq']}\nevent: {event['type']}\ndata: {data}\n\n"

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.websocket("/runs/{run_id}/ws")
async def websocket_events(websocket: WebSocket, run_id: str, mgr: RunManagerDep, after: int = -1) -> None:
    """Events as JSON text frames; the client may send ``{"type": "approve"|"cancel", ...}``."""
    if not RUN_ID_RE.match(run_id):
        await websocket.close(code=4404, reason="no such run")
        return
    try:
        mgr.summary(run_id)
    except RunNotFound:
        await websocket.close(code=4404, reason="no such run")
        return
    await websocket.accept()

    async def send() -> None:
        async for event in _events(mgr, run_id, after):
            if event is None:
                continue
            await websocket.send_text(json.dumps(event, ensure_ascii=False, separators=(",", ":")))

    async def receive() -> None:
        while True:
            message = await websocket.receive_json()
            await websocket.send_text(json.dumps({"type": "ack", "payload": _ws_command(mgr, run_id, message)}))

    sender = asyncio.create_task(send())
    receiver = asyncio.create_task(receive())
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    except WebSocketDisconnect:
        pass
    finally:
        for task in (sender, receiver):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
    if sender.done() and not sender.cancelled() and sender.exception() is None:
        with contextlib.suppress(Exception):
            await websocket.close(code=1000)


def _ws_command(mgr: RunManager, run_id: str, message: Any) -> dict[str, Any]:
    """Apply one client command; the answer is an ``ack`` frame (``ok`` or ``error``)."""
    if not isinstance(message, dict):
        return {"ok": False, "error": "send a JSON object with 'type'"}
    try:
        if message.get("type") == "cancel":
            mgr.cancel(run_id)
            return {"ok": True, "type": "cancel"}
        if message.get("type") == "approve":
            body = ApproveBody.model_validate({k: v for k, v in message.items() if k != "type"})
            req = mgr.decide_pending(run_id, **body.model_dump())
            return {"ok": True, "type": "approve", "tool_call_id": req.tool_call_id}
        return {"ok": False, "error": f"unknown command type {message.get('type')!r}: use 'approve' or 'cancel'"}
    except (LookupError, ValidationError) as exc:
        return {"ok": False, "type": message.get("type"), "error": str(exc)}
