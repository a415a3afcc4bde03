"""Tokenized playlists on the way out: the response of a signed playlist request, held
whole, rewritten with child tokens (proxy/auth/playlist_tokens.py), then sent.

The cache keeps the playlist as the origin sent it; the rewrite happens per response,
as the body leaves, so hits, stale hits and misses all get it and nothing shared ever
holds a viewer's tokens. What a rewritten answer is (decided like nginx-secure-token-
module, which clears the length, Accept-Ranges and ETag of the bodies it rewrites):

* always the whole body, 200: Range and preconditions are dropped from a playlist's
  request before the lookup (a range of a body that differs per request would be
  meaningless), and no validator goes out (no ETag, no Last-Modified: a 304 would make
  a player keep tokens that expire), with `Cache-Control: private` so no shared cache
  downstream stores it;
* compressed after the rewrite, per request, in the coding the client takes when the
  route compresses such a body (Accept-Encoding is kept away from the lookup, so the
  body comes in identity form and no stored compressed form is decoded to rewrite it);
* bounded: a body over `max_bytes` (by Content-Length, or while it arrives) or with
  more than `max_uris` URIs, and anything that does not read as a playlist, is relayed
  untouched, never half rewritten, with a log line.

A request whose path has no playlist extension is recognised by its response's media
type; its Range and Accept-Encoding were not set aside, so its answer may come
compressed (proxy/compress.py) or as a 206: a compressed one is decoded (bounded by
`max_bytes`), rewritten and encoded again in the same coding when the route compresses
such bodies; a 206 of the whole body is rewritten and goes out as a 200 (ffmpeg asks
for `bytes=0-`). Only a 206 of part of it is relayed as is: its bytes cannot be
rewritten alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from proxy.auth.common import AuthResult
from proxy.auth.playlist_tokens import ChildSigner, Tokenizer, child_ip
from proxy.auth.policy import AuthPolicy
from proxy.compress import Unacceptable, decode, encode
from proxy.deliver import PRECONDITION_FIELDS, InMemory, Send
from proxy.http.encoding import Policy, negotiate
from proxy.http.playlist_uris import decode_text, kind_by_path, playlist_kind
from proxy.http.vary import merge_vary

if TYPE_CHECKING:
    from config.compression import CompressionSettings
    from proxy.exchange import Exchange

Header = tuple[bytes, bytes]
log = logging.getLogger("edgeshield.auth")

# Request fields set aside for a playlist that will be rewritten (see the docstring).
SET_ASIDE = frozenset({"range", "if-range", "accept-encoding", *PRECONDITION_FIELDS})
# Response fields that describe the stored bytes, not the rewritten ones.
DROPPED = frozenset(
    {
        b"content-length",
        b"etag",
        b"last-modified",
        b"accept-ranges",
        b"content-md5",
        b"digest",
        b"repr-digest",
        b"content-encoding",
        b"content-range",
    }
)
# Where each scheme's token shows it came in the query (the others: any of its names).
QUERY_MARKERS = {"cloudfront": frozenset({"Signature"}), "bunny": frozenset({"token"})}


def query_token(policy: AuthPolicy, scheme: str, query: str) -> bool:
    """Did the request carry a token of `scheme` in its query (`query` as it came)?"""
    if not query:
        return False
    names = QUERY_MARKERS.get(scheme)
    if names is None:
        names = frozenset().union(*(v.query_params for v in policy.verifiers if v.scheme == scheme))
    for part in query.split("&"):
        name = part.partition("=")[0]
        if name in names or unquote_plus(name) in names:
            return True
    return False


def set_aside(req_headers: dict[str, str], header_list: list[tuple[str, str]]) -> str | None:
    """Take Range, preconditions and Accept-Encoding off the request (in place); the
    Accept-Encoding it had."""
    accept = req_headers.get("accept-encoding")
    for name in SET_ASIDE.intersection(req_headers):
        del req_headers[name]
    header_list[:] = [(k, v) for k, v in header_list if k not in SET_ASIDE]
    return accept


def tokenizing_send(
    ex: Exchange,
    send: Send,
    signer: ChildSigner,
    policy: AuthPolicy,
    result: AuthResult,
    query: str,
) -> Send:
    """`send`, or one that rewrites the playlist this request gets: when it is a
    GET or HEAD whose token verified from the query (`query`: as it came, before the
    token was stripped)."""
    req = ex.req
    if req.method not in ("GET", "HEAD") or not result.ok:
        return send
    scheme = signer.scheme_for(result.scheme)
    if scheme is None or not query_token(policy, result.scheme, query):
        return send
    accept = None
    if kind_by_path(req.path) is not None:
        accept = set_aside(req.headers, req.header_list)
    tokenizer = Tokenizer(
        signer,
        scheme,
        host=req.headers.get("host") or req.host,
        url_scheme=req.scheme,
        path=req.path,
        ip=child_ip(scheme, result.claims, req.client),
        now=req.now,
    )
    out = PlaylistOut(
        send,
        tokenizer,
        head_only=req.method == "HEAD",
        accept=accept,
        compression=ex.route.compression,
        settings=ex.state.settings.compression,
    )
    return out.send


class PlaylistOut:
    """The send of one response: relays what is not a rewritable playlist, holds and
    rewrites what is."""

    def __init__(
        self,
        send: Send,
        tokenizer: Tokenizer,
        *,
        head_only: bool,
        accept: str | None,
        compression: Policy | None,
        settings: CompressionSettings,
    ) -> None:
        self.inner = send
        self.tokenizer = tokenizer
        self.head_only = head_only
        self.accept = accept
        self.compression = compression
        self.settings = settings
        limits = tokenizer.signer.settings
        self.max_bytes = limits.max_bytes
        self.max_uris = limits.max_uris
        self.relay = False
        self.start: dict[str, Any] | None = None
        self.kind = ""
        self.coding = "identity"  # of the body held (an extensionless playlist's)
        self.content_type: str | None = None
        self.chunks: list[bytes] = []
        self.size = 0

    async def send(self, message: dict[str, Any]) -> None:
        if self.relay:
            await self.inner(message)
        elif message["type"] == "http.response.start":
            await self._head(message)
        elif message["type"] == "http.response.body":
            await self._body(message)
        else:
            await self.inner(message)

    async def _head(self, message: dict[str, Any]) -> None:
        fields = _fields(message["headers"])
        self.content_type = fields.get("content-type")
        kind = playlist_kind(self.content_type, self.tokenizer.path)
        length = fields.get("content-length")
        declared = int(length) if length and length.isdigit() else None
        status = message["status"]
        if status == 206 and _whole(fields.get("content-range")):
            message = {**message, "status": 200}  # the whole body, rewritten: a 200
        elif status != 200:
            kind = None
        coding = fields.get("content-encoding", "identity").strip().lower()
        if kind is None or (coding != "identity" and kind_by_path(self.tokenizer.path)):
            # (Accept-Encoding was set aside: a coded body is the origin's own, relayed)
            self.relay = True
            await self.inner(message)
            return
        if declared is not None and declared > self.max_bytes:
            log.info("playlist relayed untouched: %d bytes, over max_bytes", declared)
            self.relay = True
            await self.inner(message)
            return
        if self.head_only:
            self.relay = True
            await self.inner({**message, "headers": _rewritten_headers(message["headers"])})
            return
        self.kind = kind
        self.start = message
        if coding != "identity":
            self.coding = self.accept = coding  # the client takes it: encoded again in it

    async def _body(self, message: dict[str, Any]) -> None:
        piece = bytes(message.get("body", b""))
        self.chunks.append(piece)
        self.size += len(piece)
        more = message.get("more_body", False)
        if self.size > self.max_bytes:
            log.info("playlist relayed untouched: over max_bytes while arriving")
            await self._flush(more)
            return
        if more:
            return
        body = b"".join(self.chunks)
        self.chunks = []
        new = await self._decoded(body)
        new = self._rewrite(new) if new is not None else None
        if new is None:
            await self._flush_body(body)
            return
        headers = _rewritten_headers(self.start["headers"] if self.start else [])
        new, coding = await self._compress(new, headers)
        if coding is not None:
            headers = merge_vary(
                [*headers, (b"content-encoding", coding.encode()), (b"vary", b"Accept-Encoding")]
            )
        headers.append((b"content-length", str(len(new)).encode()))
        assert self.start is not None
        await self.inner({**self.start, "headers": headers})
        memory = InMemory(new)
        sent = 0
        async for part in memory.pieces(0, len(new)):
            sent += len(part)
            await self.inner(
                {"type": "http.response.body", "body": part, "more_body": sent < len(new)}
            )
        if not new:
            await self.inner({"type": "http.response.body", "body": b""})

    async def _decoded(self, body: bytes) -> bytes | None:
        """The held body without its coding (None: relayed as it came)."""
        if self.coding == "identity":
            return body
        try:
            if len(body) <= self.settings.inline_bytes:
                return decode(body, self.coding, self.max_bytes)
            return await asyncio.to_thread(decode, body, self.coding, self.max_bytes)
        except Unacceptable as exc:
            log.info("playlist relayed untouched: %s", exc)
            return None

    def _rewrite(self, body: bytes) -> bytes | None:
        text = decode_text(body)
        if text is None:
            log.info("playlist relayed untouched: not UTF-8")
            return None
        try:
            new = self.tokenizer.rewrite(self.kind, text, self.max_uris)
        except Exception:  # a bug must cost the tokens, never the answer
            log.exception("playlist relayed untouched: rewriting failed")
            return None
        if new is None:
            log.info("playlist relayed untouched: not a readable %s playlist", self.kind)
            return None
        return new.encode("utf-8")

    async def _compress(self, body: bytes, headers: list[Header]) -> tuple[bytes, str | None]:
        policy, accept = self.compression, self.accept
        if policy is None or accept is None:
            return body, None
        coding = negotiate(accept, policy.codings)
        cache_control = _fields(headers).get("cache-control")
        if coding is None or coding == "identity":
            return body, None
        if not policy.applies(200, self.content_type, None, cache_control, len(body)):
            return body, None
        settings = self.settings
        if len(body) <= settings.inline_bytes:
            return encode(body, coding, settings), coding
        return await asyncio.to_thread(encode, body, coding, settings), coding

    async def _flush(self, more: bool) -> None:
        """Over the bound: the held head and body go out as they came; the rest is
        relayed."""
        self.relay = True
        assert self.start is not None
        await self.inner(self.start)
        body = b"".join(self.chunks)
        self.chunks = []
        await self.inner({"type": "http.response.body", "body": body, "more_body": more})

    async def _flush_body(self, body: bytes) -> None:
        self.relay = True
        assert self.start is not None
        await self.inner(self.start)
        await self.inner({"type": "http.response.body", "body": body, "more_body": False})


def _whole(content_range: str | None) -> bool:
    """Does a 206's Content-Range cover the whole body (`bytes 0-<n-1>/<n>`)?"""
    if not content_range:
        return False
    unit, _, spec = content_range.strip().partition(" ")
    span, _, total = spec.partition("/")
    first, _, last = span.partition("-")
    if unit.lower() != "bytes" or not (first.isdigit() and last.isdigit() and total.isdigit()):
        return False
    return int(first) == 0 and int(last) + 1 == int(total)


def _fields(headers: list[Header]) -> Mapping[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in headers}


def _rewritten_headers(headers: list[Header]) -> list[Header]:
    """The head of a rewritten playlist: no stored validators or length, private."""
    out: list[Header] = []
    cache_control = b""
    for name, value in headers:
        if name == b"cache-control":
            cache_control = value
        elif name not in DROPPED:
            out.append((name, value))
    out.append((b"cache-control", private(cache_control)))
    return out


def private(cache_control: bytes) -> bytes:
    """Cache-Control for a per-viewer body: `private` instead of what let shared caches
    keep it (public, s-maxage, proxy-revalidate)."""
    kept = [b"private"]
    for part in cache_control.split(b","):
        directive = part.strip()
        name = directive.partition(b"=")[0].strip().lower()
        if directive and name not in (b"public", b"private", b"s-maxage", b"proxy-revalidate"):
            kept.append(directive)
    return b", ".join(kept)
