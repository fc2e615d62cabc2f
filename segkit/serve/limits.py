"""Request body size limit as ASGI middleware: the declared length and the bytes actually read."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "BodyTooLargeError"]


class BodyTooLargeError(HTTPException):
    """The request body exceeds ``max_body_bytes`` (HTTP 413)."""

    def __init__(self, detail: str) -> None:
        super().__init__(status_code=413, detail=detail)


class BodyLimitMiddleware:
    """Refuses request bodies larger than ``max_body_bytes`` with 413.

    A ``Content-Length`` above the limit is refused before anything is read. A body without one
    (``Transfer-Encoding: chunked``), or longer than it claims, is counted as it is received:
    the read that crosses the limit raises :class:`BodyTooLargeError` inside whatever parses the
    body, and the client gets 413. Starlette and uvicorn have no body limit of their own.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = int(max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _send_error(send, 400, f"invalid Content-Length header {declared!r}")
                return
            if length > limit:
                await _send_error(send, 413, _too_large(limit, f"Content-Length is {length}"))
                return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError(_too_large(limit, f"more than {limit} bytes received"))
            return message

        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLargeError as err:  # raised outside a route's exception handling
            if response_started:
                raise
            await _send_error(send, 413, err.detail)


def _too_large(limit: int, what: str) -> str:
    return f"request body too large: {what}; the limit is {limit} bytes (serve.max_body_bytes)"


async def _send_error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
