"""Request-size limit as plain ASGI middleware: bodies over ``SECOPS_MAX_REQUEST_BYTES`` get 413.

Checks ``Content-Length`` up front and counts streamed (chunked) bodies as they arrive, so an
oversized upload is refused without being held in memory.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from secops_ai.api.errors import error_body


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._reject(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(error_body(413, f"Request body exceeds {self.max_bytes} bytes (SECOPS_MAX_REQUEST_BYTES).",
                                     code="request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class DisconnectWatch:
    """Outermost ASGI middleware: one task reads the server's ``receive`` for the whole request and hands the
    messages on, so a client that leaves is seen at once (``scope["secops.disconnected"]``, an asyncio.Event)
    even by a non-streaming endpoint still computing its answer. Starlette's ``is_disconnected()`` cannot see
    it through ``BaseHTTPMiddleware``; this lets the serving layer drop an abandoned request's rows.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        import asyncio

        gone = asyncio.Event()
        inbox: asyncio.Queue[Message] = asyncio.Queue()

        async def pump() -> None:
            while True:
                message = await receive()
                await inbox.put(message)
                if message["type"] == "http.disconnect":
                    gone.set()
                    return

        scope["secops.disconnected"] = gone
        task = asyncio.create_task(pump())
        try:
            await self.app(scope, inbox.get, send)
        finally:
            task.cancel()
