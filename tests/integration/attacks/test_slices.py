"""Hostile origin answers to slice requests (proxy/slices/, routes with `slice_bytes`):
a 206 that is not the slice asked for, lengths that lie, bodies cut short or too long,
an origin that goes away. Each ends in a clean answer (or, once bytes went out, a broken
transfer, never a wrong byte), nothing wrong is stored, and an honest origin afterwards
gets a clean client the right bytes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

S = 64 * 1024  # the route's slice size
SIZE = 200_000  # four slices, the last one short
HEADERS = {"cache-control": "max-age=60", "etag": '"v1"'}


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    config = proxy_config(
        origin_server.url,
        route={"path_prefix": "/s"},
        cache={"slice_bytes": S},
        origin={"first_byte_timeout": 2.0, "read_timeout": 2.0},
    )
    with running_proxy(config) as server:
        yield server


def _path() -> str:
    return f"/s/{uuid.uuid4().hex}.mp4"


def _get(proxy: ProxyServer, path: str, rng: str | None = None) -> httpx.Response:
    headers = {"range": rng} if rng else {}
    return httpx.get(proxy.url + path, headers=headers, timeout=10)


def _slice_requests(origin: OriginServer, path: str, index: int) -> int:
    field = f"bytes={index * S}-{(index + 1) * S - 1}"
    ranges: list[str] = origin.stats()["ranges"].get(path, [])
    return ranges.count(field)


def _honest_afterwards(origin: OriginServer, proxy: ProxyServer, path: str, index: int) -> None:
    """Nothing of the hostile answer was kept: the slice is asked for again, and a clean
    client gets exactly the object's bytes, then a hit."""
    before = _slice_requests(origin, path, index)
    origin.script(path, size=SIZE, honor_range=True, headers=HEADERS)
    lo = index * S + 100
    r = _get(proxy, path, f"bytes={lo}-{lo + 999}")
    assert r.status_code == 206
    assert r.content == gen_bytes(lo, 1000)
    assert _slice_requests(origin, path, index) == before + 1
    again = _get(proxy, path, f"bytes={lo}-{lo + 999}")
    assert again.content == r.content
    assert "hit" in again.headers["cache-status"]


def test_a_206_of_another_slice_is_a_502_and_not_kept(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path()
    # Slice 0's bytes and Content-Range, whatever was asked for.
    wrong = {**HEADERS, "content-range": f"bytes 0-{S - 1}/{SIZE}"}
    origin.script(path, status=206, size=S, headers=wrong)
    r = _get(proxy, path, f"bytes={S + 100}-{S + 199}")
    assert r.status_code == 502
    assert "206 is not the slice asked for" in r.text
    assert "Traceback" not in r.text
    _honest_afterwards(origin, proxy, path, 1)


def test_a_206_whose_length_contradicts_its_range_is_a_502(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path()
    lying = {**HEADERS, "content-range": f"bytes {S}-{2 * S - 1}/{SIZE}", "content-length": "100"}
    origin.script(path, status=206, size=100, headers=lying)
    r = _get(proxy, path, f"bytes={S + 10}-{S + 19}")
    assert r.status_code == 502
    assert "Traceback" not in r.text
    _honest_afterwards(origin, proxy, path, 1)


def test_a_chunked_206_longer_than_its_slice_is_never_stored(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path()
    # The right Content-Range, no length, then the whole object's worth of bytes.
    overlong = {**HEADERS, "content-range": f"bytes {S}-{2 * S - 1}/{SIZE}"}
    origin.script(path, status=206, size=SIZE, chunked=True, headers=overlong)
    try:
        r = _get(proxy, path, f"bytes={S}-{2 * S - 1}")
    except httpx.RemoteProtocolError:
        pass  # the overflow was found after the head: the transfer is cut off
    else:  # or before it: a clean error, never the extra bytes
        assert r.status_code == 502
    _honest_afterwards(origin, proxy, path, 1)


def test_a_slice_body_cut_short_breaks_the_transfer_and_is_not_kept(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path()
    origin.script(path, size=SIZE, honor_range=True, headers=HEADERS, mode="short")
    with pytest.raises(httpx.RemoteProtocolError):
        _get(proxy, path, f"bytes={2 * S}-{3 * S - 1}")  # the head went out first
    _honest_afterwards(origin, proxy, path, 2)


def test_a_slice_body_longer_than_declared_is_cut_at_its_length(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    path = _path()
    origin.script(path, size=SIZE, honor_range=True, headers=HEADERS, mode="long")
    lo = 3 * S
    r = _get(proxy, path, f"bytes={lo}-")
    assert r.status_code == 206
    assert r.content == gen_bytes(lo, SIZE - lo)
    again = _get(proxy, path, f"bytes={lo}-")
    assert again.content == r.content
    assert "hit" in again.headers["cache-status"]


def test_an_origin_that_resets_is_answered_from_the_stale_slice(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    """The route's `use_stale` (default error, timeout) holds for slices as for whole
    objects: one decision in proxy/fetch.py."""
    path = _path()
    origin.script(path, size=SIZE, honor_range=True, headers={"cache-control": "max-age=1"})
    first = _get(proxy, path, "bytes=0-99")
    assert first.status_code == 206
    time.sleep(1.3)  # let the record and the slice expire (no stale-while-revalidate)
    origin.script(path, size=SIZE, honor_range=True, mode="reset")
    stale = _get(proxy, path, "bytes=0-99")
    assert stale.status_code == 206
    assert stale.content == first.content
    assert "detail=origin-error" in stale.headers["cache-status"]
    missing = _get(proxy, path, f"bytes={S}-{S + 99}")  # no stale copy of slice 1
    assert missing.status_code == 502
    assert "Traceback" not in missing.text
