"""deliver_entry decides once, whatever holds the bytes: the same request answered over
the entry's bytes in memory and over the same object streamed from a real disk-tier file
gives the same status, fields and body; large bodies leave in bounded pieces."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy.cache.collapse import Fetch, Head
from proxy.cache.disk import CHUNK_BYTES, DiskTier
from proxy.cache.entry import Entry
from proxy.deliver import SEND_SLICE, InMemory, deliver_entry, deliver_fetch, send_sliced
from proxy.http.freshness import Freshness
from tests.support.asgi import Sink

NOW = 1_700_000_000.0
ETAG = '"v1"'
EXTRA = [(b"age", b"3"), (b"cache-status", b"edgeshield; hit")]


def make_entry(body: bytes) -> Entry:
    return Entry(
        status=200,
        headers=[(b"content-type", b"video/mp4"), (b"etag", ETAG.encode())],
        origin_headers=[("content-type", "video/mp4"), ("etag", ETAG)],
        body=body,
        etag=ETAG,
        last_modified=NOW - 100,
        content_type="video/mp4",
        response_time=NOW,
        freshness=Freshness(True, "", 3600.0, 0.0, 0.0, 0.0, False, False),
    )


BODY = os.urandom(3 * CHUNK_BYTES + 1234)


@pytest.fixture
async def tier(tmp_path: Path) -> AsyncIterator[DiskTier]:
    t = DiskTier(tmp_path / "disk", max_bytes=64 << 20, max_object_bytes=32 << 20)
    await t.open(now=NOW)
    assert await t.put("k", make_entry(BODY), NOW)
    yield t
    await t.close()


def _normalised(sink: Sink) -> tuple[int, dict[bytes, bytes], bytes]:
    """The response with a multipart boundary (random per response) made fixed."""
    status, headers, body = sink.response()
    found = re.search(rb"boundary=(\S+)", headers.get(b"content-type", b""))
    if found:
        boundary = found.group(1)
        headers[b"content-type"] = headers[b"content-type"].replace(boundary, b"B")
        body = body.replace(boundary, b"B")
    return status, headers, body


async def _both(tier: DiskTier, method: str, req: dict[str, str]) -> tuple[Sink, Sink]:
    memory = Sink()
    await deliver_entry(memory, method, req, make_entry(BODY), EXTRA)
    stream = await tier.open_body("k", now=NOW)
    assert stream is not None
    await stream.verify()
    disk = Sink()
    async with stream:
        await deliver_entry(disk, method, req, stream.entry, EXTRA, stream)
    return memory, disk


CASES = [
    ("GET", {}, 200),
    ("HEAD", {}, 200),
    ("GET", {"range": "bytes=10-99"}, 206),
    ("GET", {"range": f"bytes={CHUNK_BYTES - 5}-{2 * CHUNK_BYTES + 5}"}, 206),
    ("GET", {"range": "bytes=-100"}, 206),
    ("HEAD", {"range": "bytes=0-0"}, 206),
    ("GET", {"range": "bytes=0-9,500-599,-7"}, 206),
    ("GET", {"range": f"bytes={len(BODY) + 10}-"}, 416),
    ("GET", {"range": "bytes=0-9", "if-range": '"other"'}, 200),
    ("GET", {"range": "bytes=0-9", "if-range": ETAG}, 206),
    ("GET", {"if-none-match": ETAG}, 304),
    ("HEAD", {"if-none-match": '"other"'}, 200),
    ("GET", {"if-match": '"other"'}, 412),
]


@pytest.mark.parametrize(("method", "req", "status"), CASES)
async def test_memory_and_disk_bodies_get_the_same_answer(
    tier: DiskTier, method: str, req: dict[str, str], status: int
) -> None:
    memory, disk = await _both(tier, method, req)
    assert memory.status == status
    assert _normalised(memory) == _normalised(disk)
    if status == 206 and "," not in req["range"] and method == "GET":
        found = re.match(rb"bytes (\d+)-(\d+)/", memory.headers[b"content-range"])
        assert found is not None
        assert memory.body == BODY[int(found[1]) : int(found[2]) + 1]
    if status == 200 and method == "GET":
        assert memory.body == BODY
        assert memory.headers[b"content-length"] == str(len(BODY)).encode()
    # every body message but the last says more is coming; nothing after the last
    for sink in (memory, disk):
        flags = [m.get("more_body", False) for m in sink.messages[1:]]
        assert flags == [True] * (len(flags) - 1) + [False]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, len(BODY) + 50), st.integers(0, len(BODY) + 50)),
        min_size=1,
        max_size=4,
    )
)
async def test_any_range_header_is_cut_the_same_from_either_source(
    tier: DiskTier, spans: list[tuple[int, int]]
) -> None:
    value = "bytes=" + ",".join(f"{min(a, b)}-{max(a, b)}" for a, b in spans)
    memory, disk = await _both(tier, "GET", {"range": value})
    assert _normalised(memory) == _normalised(disk)
    assert memory.status in (200, 206, 416)
    declared = memory.headers.get(b"content-length")
    assert declared is not None and int(declared) == len(memory.body)


async def test_a_large_memory_body_leaves_as_bytes_of_bounded_size() -> None:
    body = os.urandom(5 * SEND_SLICE + 3)
    sink = Sink()
    await send_sliced(sink, body)
    pieces = [m["body"] for m in sink.messages]
    assert all(type(p) is bytes for p in pieces)  # ASGI's type; granian is slow on views
    assert [len(p) for p in pieces] == [SEND_SLICE] * 5 + [3]
    assert b"".join(pieces) == body
    assert [m["more_body"] for m in sink.messages] == [True] * 5 + [False]
    sink = Sink()
    await deliver_entry(sink, "GET", {}, make_entry(body), EXTRA)
    assert max(len(m["body"]) for m in sink.messages[1:]) == SEND_SLICE
    assert sink.body == body


async def test_an_empty_body_still_ends_the_response() -> None:
    sink = Sink()
    await deliver_entry(sink, "GET", {}, make_entry(b""), EXTRA)
    assert sink.messages[1:] == [{"type": "http.response.body", "body": b""}]
    assert InMemory(b"").size == 0


async def test_disk_pieces_are_read_one_at_a_time(tier: DiskTier) -> None:
    # Nothing is read ahead of what the sender took: a stalled client holds one piece.
    stream = await tier.open_body("k", now=NOW)
    assert stream is not None
    async with stream:
        pieces = stream.pieces(0, stream.size)
        first = await anext(pieces)
        read = tier.stats()["bytes_read"]
        assert len(first) == CHUNK_BYTES
        await anext(pieces)
        assert tier.stats()["bytes_read"] == read + CHUNK_BYTES
        await pieces.aclose()
    assert first == BODY[:CHUNK_BYTES]


async def _from_a_stream(method: str, req: dict[str, str]) -> Sink:
    """The same object answered from a collapsing fetch while its producer is still
    appending (one CHUNK_BYTES piece per turn of the loop): the third body source."""
    entry = make_entry(BODY)
    head = Head(
        status=200,
        headers=entry.headers,
        content_length=len(BODY),
        etag=entry.etag,
        last_modified=entry.last_modified,
        content_type=entry.content_type,
        shareable=True,
        vary=(),
        fwd="miss",
        fwd_status=200,
        origin_ms=1.0,
    )
    fetch = Fetch("k", window=256 * 1024)
    cid = fetch.subscribe()
    fetch.set_head(head)

    async def produce() -> None:
        for at in range(0, len(BODY), CHUNK_BYTES):
            await fetch.append(BODY[at : at + CHUNK_BYTES])
            await asyncio.sleep(0)
        fetch.finish()

    producer = asyncio.create_task(produce())
    sink = Sink()
    await deliver_fetch(sink, method, req, fetch, EXTRA, cid)
    await producer
    return sink


@pytest.mark.parametrize(("method", "req", "status"), CASES)
async def test_a_collapsing_stream_gets_the_same_answer_as_memory(
    method: str, req: dict[str, str], status: int
) -> None:
    memory = Sink()
    await deliver_entry(memory, method, req, make_entry(BODY), EXTRA)
    stream = await _from_a_stream(method, req)
    assert _normalised(stream) == _normalised(memory)
