"""Hostile playlists and large-file answers against the streaming policy and automatic
slicing, through a real edgeshield with no slice_bytes anywhere: playlists that lie,
never end, nest entities or are not playlists at all are relayed untouched (never a 5xx);
an origin that claims Accept-Ranges and then ignores or fakes ranges never gets a wrong
byte to a client nor a wrong slice kept; hostile Range fields on a sliced object get the
answers they get on any stored one."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

KIB = 1024
LIMIT = 256 * KIB  # memory_max_object_bytes
SLICE = 64 * KIB
SIZE = 1024 * KIB
HLS = "application/vnd.apple.mpegurl"
LARGE = {"accept-ranges": "bytes", "cache-control": "max-age=60", "etag": '"v1"'}


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    settings = {"memory_max_object_bytes": LIMIT, "auto_slice_bytes": SLICE}
    config = proxy_config(
        origin_server.url,
        cache_settings=settings,
        origin={"first_byte_timeout": 2.0, "read_timeout": 2.0},
    )
    with running_proxy(config) as server:
        yield server


@pytest.fixture
def client(proxy: ProxyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=30) as c:
        yield c


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE MPD [<!ENTITY a "aaaaaaaaaa">'
    + b"".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode() for i in range(8)
    )
    + b']><MPD type="&i;"/>'
)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("nul.m3u8", b"#EXTM3U\n\x00\x00#EXT-X-TARGETDURATION:\x00\n"),
        ("huge-target.m3u8", b"#EXTM3U\n#EXT-X-TARGETDURATION:99999999999999999999\n"),
        ("both.m3u8", b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-STREAM-INF:B=1\nx.m3u8\n"),
        ("lines.m3u8", b"#EXTM3U\n#EXT-X-TARGETDURATION:2\n" + b"#EXTINF:2,\na.ts\n" * 100_000),
        ("nested.m3u8", b"#EXTM3U\n" + b"#EXT-X-STREAM-INF:BANDWIDTH=1\nnested.m3u8\n" * 5000),
        ("laughs.mpd", BILLION_LAUGHS),
        ("open.mpd", b'<MPD type="dynamic" minimumUpdatePeriod="PT2S"' + b" x='y'" * 20_000),
        ("html.m3u8", b"<html><body>502 from somewhere</body></html>"),
    ],
)
def test_hostile_playlists_are_relayed_untouched(
    origin: OriginServer, client: httpx.Client, name: str, body: bytes
) -> None:
    path = f"/{uuid.uuid4().hex}/{name}"
    ctype = "application/dash+xml" if name.endswith(".mpd") else HLS
    origin.script(
        path, body_base64=base64.b64encode(body).decode(), headers={"content-type": ctype}
    )
    for _ in range(2):
        r = client.get(path)
        assert r.status_code == 200 and r.content == body
        assert "Traceback" not in r.text


def test_accept_ranges_then_ignoring_them(origin: OriginServer, client: httpx.Client) -> None:
    """The origin says Accept-Ranges but answers every slice request with the whole
    object: the seek is served from that stream, right bytes, and works again."""
    path = f"/{uuid.uuid4().hex}/liar.mp4"
    origin.script(path, size=SIZE, headers=LARGE)  # honor_range off
    for _ in range(2):
        r = client.get(path, headers={"range": f"bytes={SIZE - 1000}-"})
        assert r.status_code == 206 and r.content == gen_bytes(SIZE - 1000, 1000)


def test_a_fake_206_for_a_slice_is_a_502_never_wrong_bytes(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = f"/{uuid.uuid4().hex}/fake.mp4"
    origin.script(path, size=SIZE, honor_range=True, headers=LARGE)
    assert client.head(path).status_code == 200  # sliced from now on
    # Now every request gets slice 0's bytes, labelled as slice 0.
    wrong = {**LARGE, "content-range": f"bytes 0-{SLICE - 1}/{SIZE}"}
    origin.script(path, status=206, size=SLICE, headers=wrong)
    r = client.get(path, headers={"range": f"bytes={5 * SLICE}-{5 * SLICE + 9}"})
    assert r.status_code == 502 and "Traceback" not in r.text
    origin.script(path, size=SIZE, honor_range=True, headers=LARGE)
    ok = client.get(path, headers={"range": f"bytes={5 * SLICE}-{5 * SLICE + 9}"})
    assert ok.status_code == 206 and ok.content == gen_bytes(5 * SLICE, 10)


@pytest.mark.parametrize(
    ("field", "status"),
    [
        ("bytes=999999999999-", 416),
        (f"bytes={SIZE}-", 416),
        ("bytes=0-0," * 200 + "0-0", 200),  # too many ranges: ignored, the whole object
        ("bytes=abc", 200),
        ("bytes=-0", 416),
        ("items=0-10", 200),
        ("bytes=0-1,100-101", 206),
    ],
)
def test_hostile_ranges_on_a_sliced_object(
    origin: OriginServer, client: httpx.Client, field: str, status: int
) -> None:
    path = f"/{uuid.uuid4().hex}/movie.mp4"
    origin.script(path, size=SIZE, honor_range=True, headers=LARGE)
    r = client.get(path, headers={"range": field})
    assert r.status_code == status
    if status == 200:
        assert r.content == gen_bytes(0, SIZE)
    if status == 416:
        assert r.headers["content-range"] == f"bytes */{SIZE}"
