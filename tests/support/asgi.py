"""Driving the app in-process with raw ASGI messages: a receive that behaves like a
server's, and a send that records what the app answered."""

from __future__ import annotations

import asyncio
from typing import Any

Message = dict[str, Any]


def receiver() -> Any:
    """An empty body, then (as a real server does) nothing until the client leaves."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    return receive


class Sink:
    """An ASGI send that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.messages[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages[1:])

    def response(self) -> tuple[int, dict[bytes, bytes], bytes]:
        return self.status, self.headers, self.body
