"""The other workers of this instance hear every purge, without Redis.

With `--workers N` every worker has its own memory tier, and a purge reaches the one
worker the kernel gave its connection to. With `[redis]` the purge bus (bus.py) reaches
them all; without it, the worker that accepted a purge tells the others itself, over a
unix socket each listens on in the instance's private folder (`[server] metrics_dir`,
made 0700 by `serve` when not configured): `purge-<pid>.sock`, mode 0600. The accepting
worker answers its client once every live worker has applied the purge (or a timeout
passed, reported in the answer), so a 200 means no worker of this instance serves the
object any more.

Frame: a 4-byte big-endian length, then the bus's JSON encoding of the purge; the
receiver answers one byte once it applied it. A frame larger than MAX_FRAME, or one that
does not decode to a purge, closes the connection unanswered (logged). A name in the
folder that is not a socket, or a socket nobody listens on, is no worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

from proxy.purge.bus import decode, encode
from proxy.purge.request import PurgeRequest
from proxy.serve.liveness import alive

log = logging.getLogger("edgeshield.purge")

PREFIX, SUFFIX = "purge-", ".sock"
MAX_FRAME = 256 * 1024 * 1024  # a purge of 100,000 long URLs is ~20 MB of JSON
_LEN = struct.Struct(">I")
DONE = b"\x01"

Apply = Callable[[PurgeRequest, float], Awaitable[None]]


class Siblings:
    def __init__(self, folder: Path, apply: Apply, *, timeout: float = 5.0) -> None:
        self.folder = folder
        self.apply = apply
        self.timeout = timeout
        self.pid = os.getpid()
        self.path = folder / f"{PREFIX}{self.pid}{SUFFIX}"
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by an earlier process with this pid
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # others stop telling this worker at once
            await self._server.wait_closed()

    def others(self) -> list[Path]:
        """The sockets of the other live workers of this instance."""
        found = []
        with contextlib.suppress(OSError), os.scandir(self.folder) as entries:
            for entry in entries:
                name = entry.name
                pid = name[len(PREFIX) : -len(SUFFIX)]
                ours = name.startswith(PREFIX) and name.endswith(SUFFIX) and pid.isdigit()
                ours = ours and _is_socket(entry)  # not a file or folder of that name
                if ours and int(pid) != self.pid and alive(int(pid)):
                    found.append(Path(entry.path))
        return found

    async def tell(self, req: PurgeRequest, now: float) -> tuple[int, int]:
        """Apply `req` on every other worker: (workers that did, workers there were)."""
        frame = encode(req, now, str(self.pid))
        done = await asyncio.gather(*(self._tell(t, frame) for t in self.others()))
        told = [d for d in done if d is not None]
        return sum(told), len(told)

    async def _tell(self, socket: Path, frame: bytes) -> bool | None:
        """Whether the worker at `socket` applied the frame; None when nothing listens
        there (a socket left by a killed worker whose pid is in use again)."""
        writer = None
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    reader, writer = await asyncio.open_unix_connection(str(socket))
                except (ConnectionRefusedError, FileNotFoundError):
                    return None
                writer.write(_LEN.pack(len(frame)) + frame)
                await writer.drain()
                return await reader.readexactly(1) == DONE
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.warning("purge: worker %s was not told (%s)", socket.name, type(exc).__name__)
            return False
        finally:
            if writer is not None:
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                (size,) = _LEN.unpack(await reader.readexactly(_LEN.size))
                if size > MAX_FRAME:
                    raise ValueError(f"a frame of {size} bytes")
                req, when, _ = decode(await reader.readexactly(size))
            await self.apply(req, when)
            writer.write(DONE)
            await writer.drain()
        except (OSError, TimeoutError, ValueError, KeyError, TypeError) as exc:
            log.warning("purge: unreadable purge from a worker (%s)", exc)
        except asyncio.IncompleteReadError:
            log.warning("purge: a worker's purge was cut off")
        finally:
            writer.close()


def _is_socket(entry: os.DirEntry[str]) -> bool:
    try:
        return stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode)
    except OSError:
        return False
