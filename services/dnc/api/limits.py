"""Request body limit, enforced while the body streams in.

A chunked upload has no Content-Length, and Starlette spools a multipart body to disk
before any route runs; without this, a client could make the API write gigabytes before
the import's own 15 MB check refuses the file.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dnc.files.read import megabytes

ENVELOPE = 1024 * 1024  # multipart headers and form fields around the file
_HEAD = 16384  # how much of a body is read to find the file's name
_FILENAME = re.compile(rb'filename="([^"\r\n]{1,255})"')


def file_name_in(head: bytes) -> str:
    """The uploaded file's name in the first bytes of a multipart body (its part's
    headers come first), so a refusal before reading the file can still name it."""
    found = _FILENAME.search(head[:_HEAD])
    return found.group(1).decode("utf-8", "replace") if found else "upload"


async def upload_name(request: Request) -> str:
    """``file_name_in`` the start of the request's body (the rest is not read)."""
    head = b""
    async for chunk in request.stream():
        head += chunk
        if _FILENAME.search(head) or len(head) >= _HEAD:
            break
    return file_name_in(head)


async def _head_of(receive: Receive) -> bytes:
    head = b""
    while len(head) < _HEAD:
        message = await receive()
        head += message.get("body", b"")
        if message["type"] != "http.request" or not message.get("more_body"):
            break
        if _FILENAME.search(head):
            break
    return head


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, file_limit: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.file_limit = file_limit  # what the message names: the limit people know

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send, file_name_in(await _head_of(receive)))
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, "upload")

    async def _refuse(self, send: Send, name: str) -> None:
        reason = (
            f"is larger than the {megabytes(self.file_limit)} limit for a file: "
            "compress it into a .zip (with the one file inside) and upload the .zip"
        )
        body: dict[str, Any] = {
            "error": f"file: {name!r} {reason}",
            "field": "file",
            "value": name,
            "reason": reason,
        }
        payload = orjson.dumps(body)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
