"""What every origin kind offers the pipeline: fetch a request, stream the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol


class OriginError(Exception):
    """A failure talking to an origin. `status` is what the client gets if nothing stale
    can be served; `reason` is short, safe to show, and goes into the log line."""

    status = 502

    def __init__(self, origin: str, reason: str) -> None:
        super().__init__(f"{origin}: {reason}")
        self.origin = origin
        self.reason = reason


class OriginUnavailable(OriginError):
    """Connection refused/reset, DNS or TLS failure, invalid response head."""


class OriginTimeout(OriginError):
    status = 504


class OriginBodyError(OriginError):
    """The body broke off: reset mid-body, fewer/more bytes than Content-Length, a stall
    longer than the read timeout. Raised from `OriginResponse.body()`."""


class OriginBodyTimeout(OriginBodyError, OriginTimeout):
    """The body stalled longer than the read timeout, or the total deadline passed while
    the body was streaming. Both an OriginBodyError and an OriginTimeout (status 504)."""


class BadOriginPath(OriginError):
    """The request path cannot map to this origin (e.g. escapes an fs root)."""

    status = 400


@dataclass(slots=True)
class OriginRequest:
    method: str
    # Normalised, still percent-encoded path and raw query (no leading '?').
    path: str
    query: str = ""
    # Lower-case names; hop-by-hop headers already removed by the pipeline.
    headers: list[tuple[str, str]] = field(default_factory=list)
    # Request body for pass-through methods (read in full by the pipeline); b"" = none.
    body: bytes = b""


class OriginResponse(Protocol):
    status: int
    # Lower-case names, in the order received; hop-by-hop headers removed.
    headers: list[tuple[str, str]]
    # Declared length (Content-Length), None when unknown (chunked).
    content_length: int | None

    def body(self) -> AsyncIterator[bytes]:
        """The body as it arrives. Raises OriginBodyError/OriginTimeout on a broken body."""
        ...

    async def aclose(self) -> None:
        """Release the connection; safe to call twice, and before the body is read."""
        ...


class Origin(Protocol):
    name: str

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        """Send the request and return once the response head arrived.
        Raises OriginError subclasses; never returns a half-built response."""
        ...

    async def aclose(self) -> None: ...
