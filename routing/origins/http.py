"""An HTTP(S) server as an origin, through one pooled httpx.AsyncClient per origin.

Timeouts (a value of 0 means "no limit"):
- connect_timeout: TCP connect + TLS handshake (httpx).
- first_byte_timeout: from the moment the connection is ready until the response head
  has arrived (httpx read timeout while waiting for the head, plus an asyncio deadline of
  connect_timeout + first_byte_timeout around the whole head exchange as a backstop
  against pool waits and heads that trickle in).
- read_timeout: the longest silence between two body reads (httpx read timeout, switched
  over from first_byte_timeout once the head is in).
- total_timeout: a deadline for head + body together.

Bodies are passed through undecoded (`aiter_raw`): Content-Encoding stays untouched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from config.schema import HttpOrigin as HttpOriginSettings
from config.schema import _HttpClientSettings
from proxy.http.headers import HOP_BY_HOP, hop_by_hop
from proxy.http.origin_answer import final_status
from routing.origins.base import (
    BadOriginPath,
    OriginBodyError,
    OriginBodyTimeout,
    OriginError,
    OriginRequest,
    OriginTimeout,
    OriginUnavailable,
)
from routing.origins.read_ahead import bound_client_reads

# Request headers never copied from the client request: httpx frames the body itself,
# and the body is sent at once (the pipeline already has it), so no Expect either.
# Request-Range is Netscape's Range: origins that still honour it would answer a full
# request with a part.
_REQUEST_DROP = HOP_BY_HOP | {"host", "content-length", "expect", "request-range"}
# Idle pooled connections are dropped after this long (below common origin keep-alive
# timeouts such as Apache's 5 s, so we rarely reuse a connection the origin just closed).
KEEPALIVE_EXPIRY = 4.0

_PATH_SAFE = "!$%&'()*+,/:;=@[]~"
_QUERY_SAFE = _PATH_SAFE + "?"


def _limit(value: float | None) -> float | None:
    return value if value else None


def strip_hop_by_hop(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Lower-case names, decode as latin-1, drop hop-by-hop and Connection-listed fields."""
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw]
    drop = hop_by_hop(headers)
    return [(k, v) for k, v in headers if k not in drop]


def parse_content_length(headers: list[tuple[str, str]]) -> int | None:
    """The declared length; None when absent. ValueError when invalid or conflicting."""
    values: set[str] = set()
    for name, value in headers:
        if name == "content-length":
            values.update(v.strip() for v in value.split(","))
    if not values:
        return None
    if len(values) != 1:
        raise ValueError("conflicting content-length")
    (value,) = values
    if not value.isdigit() or not value.isascii():
        raise ValueError("invalid content-length")
    return int(value)


def _head_error(origin: str, exc: Exception) -> OriginError:
    """Map an httpx failure before the response head to a short, safe origin error."""
    if isinstance(exc, httpx.ConnectTimeout):
        return OriginTimeout(origin, "connect timeout")
    if isinstance(exc, httpx.PoolTimeout):
        return OriginTimeout(origin, "connection pool timeout")
    if isinstance(exc, httpx.WriteTimeout):
        return OriginTimeout(origin, "write timeout")
    if isinstance(exc, httpx.TimeoutException):
        return OriginTimeout(origin, "first byte timeout")
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "ssl" in text or "certificate" in text or "tls" in text:
            return OriginUnavailable(origin, "tls handshake failed")
        if "name or service" in text or "nodename" in text or "getaddrinfo" in text:
            return OriginUnavailable(origin, "dns lookup failed")
        return OriginUnavailable(origin, "connect failed")
    if isinstance(exc, httpx.RemoteProtocolError):
        if "disconnected" in str(exc).lower():
            return OriginUnavailable(origin, "connection closed")
        return OriginUnavailable(origin, "invalid response")
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return OriginUnavailable(origin, "connection reset")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return OriginUnavailable(origin, "invalid url")
    return OriginUnavailable(origin, "request failed")


def _body_error(origin: str, exc: Exception) -> OriginError:
    if isinstance(exc, httpx.TimeoutException):
        return OriginBodyTimeout(origin, "read timeout")
    if isinstance(exc, httpx.RemoteProtocolError):
        return OriginBodyError(origin, "incomplete body")
    if isinstance(exc, httpx.ReadError):
        return OriginBodyError(origin, "connection reset")
    return OriginBodyError(origin, "body failed")


# httpx and httpcore stream wrappers, outermost first, down to httpcore's HTTP/1.1 connection.
_WRAPPERS = ("_stream", "_httpcore_stream", "_connection")


def _unread_bytes(response: httpx.Response) -> bool:
    """True when the connection holds received bytes the current response has not used
    (h11's `trailing_data`). httpx exposes no such check, so this walks its private
    stream wrappers to the h11 state; if their shape changes it answers False (the
    previous behaviour) and tests/integration/attacks/test_responses.py fails."""
    node: object = response.stream
    for _ in range(6):
        state = getattr(node, "_h11_state", None)
        if state is not None:
            return bool(state.trailing_data[0])
        node = next((getattr(node, a) for a in _WRAPPERS if hasattr(node, a)), None)
    return False


class HttpResponse:
    """An OriginResponse streaming from an httpx response."""

    def __init__(
        self,
        origin: str,
        response: httpx.Response,
        headers: list[tuple[str, str]],
        content_length: int | None,
        *,
        expects_body: bool,
        deadline: float | None,
    ) -> None:
        self.status = response.status_code
        self.headers = headers
        self.content_length = content_length
        self._origin = origin
        self._response = response
        self._expects_body = expects_body
        self._deadline = deadline

    async def body(self) -> AsyncIterator[bytes]:
        received = 0
        declared = self.content_length if self._expects_body else None
        chunks = self._response.aiter_raw()
        try:
            while True:
                if received == declared and _unread_bytes(self._response):
                    # The body ends at Content-Length (RFC 9112 6.3); the bytes past it
                    # would be read as the next response on this connection. Stopping
                    # before h11 ends the message makes closing the response close the
                    # connection instead of pooling it.
                    break
                try:
                    if self._deadline is None:
                        chunk = await anext(chunks)
                    else:
                        async with asyncio.timeout_at(self._deadline):
                            chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise OriginBodyTimeout(self._origin, "total timeout") from None
                except httpx.HTTPError as exc:
                    raise _body_error(self._origin, exc) from None
                except httpx.StreamError:  # read after aclose(), or read twice
                    raise OriginBodyError(self._origin, "body already closed") from None
                received += len(chunk)
                if declared is not None and received > declared:
                    raise OriginBodyError(self._origin, "body longer than content-length")
                if chunk:
                    yield chunk
            if declared is not None and received < declared:
                raise OriginBodyError(self._origin, "incomplete body")
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
            await self.aclose()

    async def aclose(self) -> None:
        await self._response.aclose()


def new_client(
    settings: _HttpClientSettings, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """The pooled client of one origin (http and s3 kinds). `transport` is for tests."""
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=settings.max_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )
    client = httpx.AsyncClient(
        verify=settings.verify_tls,
        limits=limits,
        follow_redirects=False,
        trust_env=False,
        transport=transport,
    )
    bound_client_reads(client)  # a stalled client's origin stream holds ~256 KiB, not MiBs
    return client


async def send_streaming(
    client: httpx.AsyncClient,
    origin: str,
    settings: _HttpClientSettings,
    method: str,
    url: httpx.URL,
    headers: list[tuple[bytes, bytes]],
    content: bytes | None = None,
) -> HttpResponse:
    """Send one request with the origin's timeouts (module docstring) and return once the
    response head is in; failures become OriginError subclasses. Shared by the http and
    s3 kinds. `headers` are sent exactly as given (httpx adds only Host when missing)."""
    s = settings
    loop = asyncio.get_running_loop()
    start = loop.time()
    total_deadline = start + s.total_timeout if s.total_timeout else None
    head_deadline = (
        start + s.connect_timeout + s.first_byte_timeout if s.first_byte_timeout else None
    )
    deadlines = [d for d in (head_deadline, total_deadline) if d is not None]
    deadline = min(deadlines) if deadlines else None

    timeouts: dict[str, Any] = {
        "connect": _limit(s.connect_timeout),
        "read": _limit(s.first_byte_timeout),
        "write": _limit(s.read_timeout),
        "pool": _limit(s.first_byte_timeout),
    }
    req = httpx.Request(
        method,
        url,
        headers=headers,
        content=content,
        extensions={"timeout": timeouts},
    )
    try:
        async with asyncio.timeout_at(deadline):
            response = await client.send(req, stream=True)
    except TimeoutError:
        if deadline == total_deadline:
            raise OriginTimeout(origin, "total timeout") from None
        raise OriginTimeout(origin, "first byte timeout") from None
    except httpx.HTTPError as exc:
        raise _head_error(origin, exc) from None

    # From now on the per-read limit is the body's between-bytes timeout; httpcore
    # reads this dict when the body starts streaming.
    timeouts["read"] = _limit(s.read_timeout)
    response_headers = strip_hop_by_hop(response.headers.raw)
    try:
        content_length = parse_content_length(response_headers)
    except ValueError:
        await response.aclose()
        raise OriginUnavailable(origin, "invalid content-length") from None
    status = response.status_code
    if not final_status(status):  # e.g. 999: the server would refuse it mid-response
        await response.aclose()
        raise OriginUnavailable(origin, "invalid status")
    expects_body = method != "HEAD" and status >= 200 and status not in (204, 304)
    return HttpResponse(
        origin,
        response,
        response_headers,
        content_length,
        expects_body=expects_body,
        deadline=total_deadline,
    )


class HttpOrigin:
    def __init__(self, name: str, settings: HttpOriginSettings) -> None:
        self.name = name
        self.settings = settings
        url = httpx.URL(str(settings.url))
        self._prefix = url.path.rstrip("/")
        self._base = url.copy_with(raw_path=b"/", fragment=None)
        extra = [(k.lower(), v) for k, v in settings.headers.items()]
        # A Host in `headers` counts as the Host override unless host_header is set.
        self._host = settings.host_header or next((v for k, v in extra if k == "host"), None)
        self._extra = [(k, v) for k, v in extra if k not in _REQUEST_DROP]
        self._extra_names = {k for k, _ in self._extra}
        self._client = new_client(settings)

    def _url(self, request: OriginRequest) -> httpx.URL:
        path = request.path if request.path.startswith("/") else "/" + request.path
        try:
            target = self._prefix + quote(path, safe=_PATH_SAFE)
            if request.query:
                target += "?" + quote(request.query, safe=_QUERY_SAFE)
            return self._base.copy_with(raw_path=target.encode("ascii"))
        except (UnicodeError, httpx.InvalidURL) as exc:
            raise BadOriginPath(self.name, "invalid path") from exc

    def _headers(self, request: OriginRequest) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        if self._host:
            out.append((b"host", self._host.encode("latin-1")))
        for name, value in request.headers:
            lname = name.lower()
            if lname in _REQUEST_DROP or lname in self._extra_names:
                continue
            out.append((lname.encode("latin-1"), value.encode("latin-1", "replace")))
        for name, value in self._extra:
            out.append((name.encode("latin-1"), value.encode("latin-1", "replace")))
        return out

    async def fetch(self, request: OriginRequest) -> HttpResponse:
        return await send_streaming(
            self._client,
            self.name,
            self.settings,
            request.method.upper(),
            self._url(request),
            self._headers(request),
            request.body or None,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
