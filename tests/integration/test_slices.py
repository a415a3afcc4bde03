"""Slices (proxy/slices/): a real edgeshield in front of the scriptable origin, on routes
with `slice_bytes`; what the client gets, and which ranges the origin was asked for."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import ProxyServer, running_proxy

KIB = 1024
MIB = 1024 * KIB
SMALL = 64 * KIB  # the /s route's slice size
BIG = MIB  # the /b route's slice size


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    config = f"""
[server]
access_log = "off"
[origins.main]
kind = "http"
url = "{origin_server.url}"
first_byte_timeout = 2.0
read_timeout = 2.0
[[routes]]
path_prefix = "/s"
origin = "main"
[routes.cache]
slice_bytes = {SMALL}
[[routes]]
path_prefix = "/b"
origin = "main"
[routes.cache]
slice_bytes = {BIG}
"""
    with running_proxy(config) as server:
        yield server


def _path(prefix: str) -> str:
    return f"{prefix}/{uuid.uuid4().hex}.mp4"


def _slice_field(index: int, size: int) -> str:
    return f"bytes={index * size}-{(index + 1) * size - 1}"


def _ranges(origin: OriginServer, path: str) -> list[str]:
    ranges: list[str] = origin.stats()["ranges"].get(path, [])
    return ranges


def _get(proxy: ProxyServer, path: str, **headers: str) -> httpx.Response:
    return httpx.get(proxy.url + path, headers=headers, timeout=10)


def _script(origin: OriginServer, path: str, size: int, **fields: object) -> None:
    fields.setdefault("headers", {"cache-control": "max-age=60", "etag": '"v1"'})
    origin.script(path, size=size, honor_range=True, **fields)


def test_cold_range_is_a_206_at_once_from_the_covering_slice_only(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path("/b")
    size = 5 * MIB + 123
    _script(origin, path, size)
    r = _get(proxy, path, range="bytes=2500000-2600000")
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes 2500000-2600000/{size}"
    assert r.content == gen_bytes(2500000, 100001)
    assert r.headers["accept-ranges"] == "bytes"
    assert "fwd=miss" in r.headers["cache-status"]
    assert "detail=slices" in r.headers["cache-status"]
    assert _ranges(origin, path) == [_slice_field(2, BIG)]
    assert origin.stats()["last_headers"][path]["accept-encoding"] == "identity"

    # the same range again: a hit (or a join of the slice fetch if it is still being
    # stored on a busy machine), nothing new at the origin
    again = _get(proxy, path, range="bytes=2500000-2600000")
    assert again.status_code == 206
    assert again.content == r.content
    status = again.headers["cache-status"]
    assert "; hit" in status or "collapsed" in status, status
    assert origin.requests(path) == 1

    # a range across slices 2 and 3 costs only slice 3
    across = _get(proxy, path, range=f"bytes={3 * BIG - 10}-{3 * BIG + 9}")
    assert across.status_code == 206
    assert across.content == gen_bytes(3 * BIG - 10, 20)
    assert _ranges(origin, path) == [_slice_field(2, BIG), _slice_field(3, BIG)]


def test_full_get_streams_every_slice_once_then_hits(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path("/b")
    size = 5 * MIB
    _script(origin, path, size)
    r = _get(proxy, path)
    assert r.status_code == 200
    assert int(r.headers["content-length"]) == size
    assert r.content == gen_bytes(0, size)
    assert sorted(_ranges(origin, path)) == sorted(_slice_field(i, BIG) for i in range(5))
    again = _get(proxy, path)
    assert again.content == r.content
    assert "hit" in again.headers["cache-status"]
    assert origin.requests(path) == 5


def test_suffix_and_multipart_ranges(origin: OriginServer, proxy: ProxyServer) -> None:
    path = _path("/s")
    size = 5 * SMALL + 77
    _script(origin, path, size)
    tail = _get(proxy, path, range="bytes=-100")  # cold: the length comes from slice 0
    assert tail.status_code == 206
    assert tail.headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
    assert tail.content == gen_bytes(size - 100, 100)
    multi = _get(proxy, path, range=f"bytes=0-9,{2 * SMALL + 5}-{2 * SMALL + 14}")
    assert multi.status_code == 206
    assert multi.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert int(multi.headers["content-length"]) == len(multi.content)
    assert gen_bytes(0, 10) in multi.content
    assert gen_bytes(2 * SMALL + 5, 10) in multi.content
    assert f"Content-Range: bytes 0-9/{size}".encode() in multi.content


def test_validator_change_drops_the_slices_and_never_mixes_versions(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path("/s")
    size = 4 * SMALL
    one, two = bytes([1]) * size, bytes([2]) * size
    v1 = {"cache-control": "max-age=60", "etag": '"v1"'}
    v2 = {"cache-control": "max-age=60", "etag": '"v2"'}
    origin.script(path, body_base64=_b64(one), headers=v1, honor_range=True)
    assert _get(proxy, path, range="bytes=0-9").content == one[:10]  # slice 0 of v1 cached
    origin.script(path, body_base64=_b64(two), headers=v2, honor_range=True)

    # Slice 0 is a v1 hit, so the head goes out; slice 1 comes back as v2: cut off.
    with pytest.raises(httpx.HTTPError):
        _get(proxy, path)
    # The next response is all v2 (slice 0 was dropped and fetched again).
    fresh = _get(proxy, path)
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == '"v2"'
    assert fresh.content == two
    assert _ranges(origin, path).count(_slice_field(0, SMALL)) == 2


def test_change_found_before_the_head_restarts_the_response(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path("/s")
    size = 4 * SMALL
    one, two = bytes([1]) * size, bytes([2]) * (size + 5)
    origin.script(
        path,
        body_base64=_b64(one),
        headers={"cache-control": "max-age=60", "etag": '"v1"'},
        honor_range=True,
    )
    assert _get(proxy, path, range="bytes=0-9").content == one[:10]  # record v1
    origin.script(
        path,
        body_base64=_b64(two),
        headers={"cache-control": "max-age=60", "etag": '"v2"'},
        honor_range=True,
    )
    # slice 2 is not cached: it comes back as v2 before anything was sent
    r = _get(proxy, path, range=f"bytes={2 * SMALL}-{2 * SMALL + 9}")
    assert r.status_code == 206
    assert r.headers["etag"] == '"v2"'
    assert r.headers["content-range"] == f"bytes {2 * SMALL}-{2 * SMALL + 9}/{size + 5}"
    assert r.content == two[:10]
    full = _get(proxy, path)
    assert full.content == two


def test_origin_ignoring_range_is_served_from_its_200(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path("/s")
    size = 5 * SMALL + 3
    origin.script(path, size=size, headers={"cache-control": "max-age=60", "etag": '"v1"'})
    r = _get(proxy, path, range=f"bytes={SMALL + 1}-{3 * SMALL}")
    assert r.status_code == 206
    assert r.headers["content-range"] == f"bytes {SMALL + 1}-{3 * SMALL}/{size}"
    assert r.content == gen_bytes(SMALL + 1, 2 * SMALL)
    assert origin.requests(path) == 1
    # The whole slices that streamed past were stored: this range is a hit now.
    hit = _get(proxy, path, range="bytes=10-19")
    assert hit.content == gen_bytes(10, 10)
    assert "hit" in hit.headers["cache-status"]
    full = _get(proxy, path)
    assert full.status_code == 200
    assert full.content == gen_bytes(0, size)


def test_range_beyond_the_end_is_416_cold_and_warm(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path("/s")
    size = 3 * SMALL
    _script(origin, path, size)
    cold = _get(proxy, path, range="bytes=99999999-")
    assert cold.status_code == 416
    assert cold.headers["content-range"] == f"bytes */{size}"
    assert _get(proxy, path, range="bytes=0-0").status_code == 206  # record stored now
    before = origin.requests(path)
    warm = _get(proxy, path, range=f"bytes={size}-")
    assert warm.status_code == 416
    assert warm.headers["content-range"] == f"bytes */{size}"
    assert origin.requests(path) == before


def test_small_and_empty_objects(origin: OriginServer, proxy: ProxyServer) -> None:
    small = _path("/s")
    _script(origin, small, 1000)
    r = _get(proxy, small)
    assert (r.status_code, r.content) == (200, gen_bytes(0, 1000))
    part = _get(proxy, small, range="bytes=990-")
    assert (part.status_code, part.content) == (206, gen_bytes(990, 10))
    assert part.headers["content-range"] == "bytes 990-999/1000"
    empty = _path("/s")
    _script(origin, empty, 0)
    e = _get(proxy, empty)
    assert (e.status_code, e.content) == (200, b"")


def test_head_and_preconditions_answered_from_the_record(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path("/b")
    size = 3 * MIB
    _script(origin, path, size)
    cold = httpx.head(proxy.url + path, timeout=10)
    assert cold.status_code == 200
    assert int(cold.headers["content-length"]) == size
    assert cold.headers["accept-ranges"] == "bytes"
    assert cold.headers["etag"] == '"v1"'
    assert origin.requests(path) == 1  # slice 0, which fills the cache
    warm = httpx.head(proxy.url + path, headers={"range": "bytes=100-199"}, timeout=10)
    assert warm.status_code == 206
    assert warm.headers["content-range"] == f"bytes 100-199/{size}"
    assert "hit" in warm.headers["cache-status"]
    not_modified = _get(proxy, path, **{"if-none-match": '"v1"'})
    assert not_modified.status_code == 304
    assert not_modified.headers["etag"] == '"v1"'
    assert not_modified.content == b""
    failed = _get(proxy, path, **{"if-match": '"other"'})
    assert failed.status_code == 412
    assert origin.requests(path) == 1


def test_stale_slices_are_served_while_one_background_304_refreshes_them(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path("/s")
    size = 3 * SMALL
    headers = {"cache-control": "max-age=1, stale-while-revalidate=30", "etag": '"v1"'}
    _script(origin, path, size, headers=headers)
    assert _get(proxy, path, range="bytes=0-99").status_code == 206
    time.sleep(1.3)
    stale = _get(proxy, path, range="bytes=0-99")
    assert stale.status_code == 206
    assert stale.content == gen_bytes(0, 100)
    assert "ttl=-" in stale.headers["cache-status"]  # served stale
    stats = origin.wait_for(lambda s: s["not_modified"].get(path, 0) >= 1)
    assert stats["last_headers"][path]["if-none-match"] == '"v1"'
    assert stats["last_headers"][path]["range"] == _slice_field(0, SMALL)
    fresh = _get(proxy, path, range="bytes=0-99")
    assert "ttl=-" not in fresh.headers["cache-status"]
    assert origin.requests(path) == 2


def test_concurrent_requests_for_a_slice_collapse(origin: OriginServer, proxy: ProxyServer) -> None:
    path = _path("/b")
    size = 3 * MIB
    _script(origin, path, size, delay=0.3)

    async def many() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=10) as client:
            return await asyncio.gather(
                *(
                    client.get(proxy.url + path, headers={"range": f"bytes={MIB + i}-{MIB + 999}"})
                    for i in range(20)
                )
            )

    responses = asyncio.run(many())
    assert all(r.status_code == 206 for r in responses)
    assert all(r.content == gen_bytes(MIB + i, 1000 - i) for i, r in enumerate(responses))
    assert _ranges(origin, path) == [_slice_field(1, BIG)]


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def test_a_404_is_stored_in_place_of_the_record(origin: OriginServer, proxy: ProxyServer) -> None:
    path = _path("/s")  # unscripted: 404, max-age=5
    first = _get(proxy, path, range="bytes=0-9")
    assert first.status_code == 404
    again = _get(proxy, path)
    assert again.status_code == 404
    assert "hit" in again.headers["cache-status"]
    assert origin.requests(path) == 1


def test_origin_failure_on_a_cold_slice_is_a_502(origin: OriginServer, proxy: ProxyServer) -> None:
    path = _path("/s")
    origin.script(path, size=1000, mode="reset")
    r = _get(proxy, path)
    assert r.status_code == 502
    assert "fwd=miss" in r.headers["cache-status"]
