"""Entry <-> bytes for the tiers below memory (Redis, disk).

Layout: magic (4) | meta length (4, big-endian) | meta (orjson) | body. The meta carries
the body length and a CRC-32 of the body, so a truncated or corrupted copy is detected
and dropped, never served. Derived fields (fresh_until, full_headers...) are rebuilt by
Entry.__post_init__, so they cannot drift from the stored facts.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

import orjson

from proxy.cache.entry import Entry
from proxy.http.freshness import Freshness

MAGIC = b"ESC1"
_HEAD = struct.Struct(">4sI")
HEAD_SIZE = _HEAD.size
# A meta block larger than this is corruption, not a real entry (headers are capped far lower).
MAX_META_BYTES = 1 << 20


class CorruptEntry(ValueError):
    """Stored bytes that do not decode to exactly the entry that was written."""


def encode_meta(entry: Entry, body_len: int, crc: int) -> bytes:
    f = entry.freshness
    meta: dict[str, Any] = {
        "s": entry.status,
        "h": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in entry.headers],
        "o": entry.origin_headers,
        "e": entry.etag,
        "lm": entry.last_modified,
        "ct": entry.content_type,
        "rt": entry.response_time,
        "f": [
            f.storable,
            f.reason,
            f.lifetime,
            f.initial_age,
            f.stale_while_revalidate,
            f.stale_if_error,
            f.must_revalidate,
            f.no_cache,
        ],
        "v": list(entry.vary),
        "u": entry.upstream_status.decode("latin-1") if entry.upstream_status else None,
        "n": body_len,
        "c": crc,
        "qt": entry.request_time,
        "tg": sorted(entry.tags),
    }
    raw = orjson.dumps(meta)
    return _HEAD.pack(MAGIC, len(raw)) + raw


def encode(entry: Entry) -> bytes:
    body = entry.body
    return encode_meta(entry, len(body), zlib.crc32(body)) + body


def decode_meta(blob: bytes | memoryview) -> tuple[dict[str, Any], int]:
    """Parse the header of a stored entry; returns (meta, offset of the body)."""
    if len(blob) < HEAD_SIZE:
        raise CorruptEntry("short header")
    magic, n = _HEAD.unpack_from(blob, 0)
    if magic != MAGIC or n > MAX_META_BYTES or len(blob) < HEAD_SIZE + n:
        raise CorruptEntry("bad header")
    try:
        meta = orjson.loads(bytes(blob[HEAD_SIZE : HEAD_SIZE + n]))
    except orjson.JSONDecodeError as exc:
        raise CorruptEntry("bad meta") from exc
    if not isinstance(meta, dict):
        raise CorruptEntry("bad meta")
    return meta, HEAD_SIZE + n


def entry_from_meta(meta: dict[str, Any], body: bytes) -> Entry:
    """Rebuild an Entry, checking the body against the recorded length and checksum."""
    try:
        if len(body) != meta["n"] or zlib.crc32(body) != meta["c"]:
            raise CorruptEntry("body length or checksum mismatch")
        f = meta["f"]
        upstream = meta["u"]
        return Entry(
            status=int(meta["s"]),
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in meta["h"]],
            origin_headers=[(str(k), str(v)) for k, v in meta["o"]],
            body=body,
            etag=meta["e"],
            last_modified=meta["lm"],
            content_type=meta["ct"],
            response_time=float(meta["rt"]),
            freshness=Freshness(
                storable=bool(f[0]),
                reason=str(f[1]),
                lifetime=float(f[2]),
                initial_age=float(f[3]),
                stale_while_revalidate=float(f[4]),
                stale_if_error=float(f[5]),
                must_revalidate=bool(f[6]),
                no_cache=bool(f[7]),
            ),
            vary=tuple(meta["v"]),
            upstream_status=upstream.encode("latin-1") if upstream else None,
            request_time=float(meta.get("qt", 0.0)),
            tags=frozenset(str(t) for t in meta.get("tg", ())),
        )
    except CorruptEntry:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise CorruptEntry(f"bad meta: {type(exc).__name__}") from exc


def decode(blob: bytes) -> Entry:
    meta, offset = decode_meta(blob)
    return entry_from_meta(meta, blob[offset:])


def ttl_for(entry: Entry, now: float) -> float:
    """Seconds a lower tier should keep the entry: until its last stale window closes."""
    until = max(entry.fresh_until, entry.stale_while_revalidate_until, entry.stale_if_error_until)
    return until - now
