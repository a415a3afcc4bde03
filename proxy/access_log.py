"""One JSON line per request (orjson), buffered in memory and flushed by a background
task: like nginx's `access_log ... buffer= flush=`, the request path never does I/O."""

from __future__ import annotations

import sys
from typing import IO, Any

import orjson

FLUSH_BYTES = 64 * 1024


class AccessLog:
    def __init__(self, target: str) -> None:
        self.enabled = target != "off"
        self._stream: IO[bytes] | None = None
        self._owned = False
        if target == "-":
            self._stream = sys.stdout.buffer
        elif self.enabled:
            self._stream = open(target, "ab")  # noqa: SIM115 - closed in close()
            self._owned = True
        self._buffer: list[bytes] = []
        self._size = 0

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        self._buffer.append(line)
        self._size += len(line)
        if self._size > FLUSH_BYTES * 16:
            # Never unbounded: if the flusher falls behind, drop and count the line.
            self._buffer.pop()
            self._size -= len(line)
            self.dropped += 1

    dropped = 0

    def flush(self) -> None:
        if not self._buffer or self._stream is None:
            return
        data = b"".join(self._buffer)
        self._buffer.clear()
        self._size = 0
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError):
            pass  # a closed stdout must not take the proxy down

    def close(self) -> None:
        self.flush()
        if self._owned and self._stream is not None:
            self._stream.close()
