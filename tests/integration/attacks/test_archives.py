"""Hostile batch-download manifests (proxy/archive/) against a real edgeshield: each is
refused with a 502 and a reason before the archive starts, or, when a member turns out
unlike its manifest line after the head went out, the response is cut off (never a
complete-looking corrupt archive); no traceback reaches the client or the log."""

from __future__ import annotations

import base64
import io
import uuid
import zipfile
import zlib
from collections.abc import Iterator

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy

DATA = b"member bytes\n" * 1000
ON_EVERY_ENGINE = True  # a cut-off response is the engine's to close


@pytest.fixture(scope="module")
def edge(origin_server: OriginServer, engine: str | None) -> Iterator[ProxyServer]:
    config = f"""
[server]
access_log = "off"
[origins.main]
kind = "http"
url = "{origin_server.url}"
read_timeout = 5.0
[[routes]]
path_prefix = "/plain"
origin = "main"
[routes.cache]
archives = false
[[routes]]
path_prefix = "/pass"
origin = "main"
[routes.cache]
enabled = false
[[routes]]
path_prefix = "/files"
origin = "main"
[[routes]]
path_prefix = "/zip"
origin = "main"
[routes.cache]
archive_max_entries = 100
archive_max_manifest_bytes = 8192
"""
    with running_proxy(config, engine=engine) as server:
        yield server


def _object(origin: OriginServer, location: str, data: bytes = DATA, **fields: object) -> None:
    fields.setdefault("headers", {"cache-control": "max-age=300"})
    origin.script(location, body_base64=base64.b64encode(data).decode(), **fields)


def _manifest(origin: OriginServer, text: str, prefix: str = "/zip") -> str:
    path = f"{prefix}/{uuid.uuid4().hex}"
    origin.script(
        path, body=text, headers={"x-archive-files": "zip", "cache-control": "max-age=300"}
    )
    return path


def _line(location: str, name: str, data: bytes = DATA, size: int | None = None) -> str:
    return f"{zlib.crc32(data):08x} {len(data) if size is None else size} {location} {name}\n"


def _refused(edge: ProxyServer, path: str, reason: str) -> None:
    r = httpx.get(edge.url + path, timeout=30)
    assert r.status_code == 502
    assert reason in r.text
    assert r.headers["content-type"].startswith("text/plain")
    assert "Traceback" not in edge.log()


def _cut_off(edge: ProxyServer, path: str) -> bytes:
    """The archive's head went out, then the transfer broke: the client can tell."""
    got = bytearray()
    with (
        pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)),
        httpx.stream("GET", edge.url + path, timeout=30) as r,
    ):
        assert r.status_code == 200
        for chunk in r.iter_raw():
            got += chunk
    assert "cut off" in edge.log() and "Traceback" not in edge.log()
    return bytes(got)


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://evil.example/x", "location must be a path on this host"),
        ("//evil.example/x", "location must be a path on this host"),
        ("/nowhere/x", "no route"),
        ("/files/%2F..%2Fx", "bad path"),
    ],
)
def test_location_elsewhere_refused(
    origin: OriginServer, edge: ProxyServer, location: str, reason: str
) -> None:
    _refused(edge, _manifest(origin, _line(location, "x.bin")), reason)
    assert not any("evil" in k for k in origin.stats()["requests"])


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "C:/x", "a\\..\\x"])
def test_name_outside_the_folder_refused(
    origin: OriginServer, edge: ProxyServer, name: str
) -> None:
    _object(origin, "/files/a")
    _refused(edge, _manifest(origin, _line("/files/a", name)), "bad archive manifest")
    assert "GET /files/a" not in origin.stats()["requests"]  # refused before any member


def test_too_many_entries_and_too_large_manifests(origin: OriginServer, edge: ProxyServer) -> None:
    many = "".join(f"- 1 /files/{i} f{i}\n" for i in range(101))
    _refused(edge, _manifest(origin, many), "more than 100 entries")
    large = "".join(f"- 1 /files/{i} {'n' * 100}{i}\n" for i in range(99))
    _refused(edge, _manifest(origin, large), "archive manifest too large")


@pytest.mark.parametrize(
    "kind", ["shorter", "longer", "shorter-chunked", "crc", "missing", "error"]
)
def test_member_unlike_its_manifest_cuts_the_archive_off(
    origin: OriginServer, edge: ProxyServer, kind: str
) -> None:
    location = f"/files/{uuid.uuid4().hex}"
    line = _line(location, "m.bin")
    if kind == "shorter":
        _object(origin, location, DATA[:-100])
    elif kind == "longer":
        _object(origin, location, DATA + b"more")
    elif kind == "shorter-chunked":
        _object(origin, location, DATA[:-100], mode="chunked")
    elif kind == "crc":
        _object(origin, location, DATA.replace(b"member", b"MEMBER", 1))
    elif kind == "error":
        _object(origin, location, status=500)
    # "missing": unscripted, the origin answers 404
    got = _cut_off(edge, _manifest(origin, _line("/files/ok", "first.bin") + line))
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(got))
    # The proxy still serves the same objects correctly afterwards.
    assert httpx.get(edge.url + "/files/ok", timeout=10).status_code in (200, 404)


def test_member_that_is_a_manifest_is_stored_as_it_is(
    origin: OriginServer, edge: ProxyServer
) -> None:
    inner_text = _line("/files/a", "a.bin")
    inner = _manifest(origin, inner_text)
    _object(origin, "/files/a")
    outer = _manifest(origin, _line(inner, "inner.txt", inner_text.encode()))
    r = httpx.get(edge.url + outer, timeout=30)
    assert r.status_code == 200
    with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
        assert archive.read("inner.txt") == inner_text.encode()


def test_route_without_archives_relays_the_manifest(
    origin: OriginServer, edge: ProxyServer
) -> None:
    text = _line("/files/a", "a.bin")
    path = _manifest(origin, text, prefix="/plain")
    for _ in range(2):  # the miss, then the memory hit the fast path would answer
        r = httpx.get(edge.url + path, timeout=10)
        assert r.status_code == 200 and r.text == text


def test_manifest_hit_is_an_archive_on_the_fast_path_too(
    origin: OriginServer, edge: ProxyServer
) -> None:
    _object(origin, "/files/fast")
    path = _manifest(origin, _line("/files/fast", "f.bin"))
    for _ in range(3):
        r = httpx.get(edge.url + path, timeout=10)
        assert r.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            assert archive.read("f.bin") == DATA


def test_members_on_an_uncached_route_pass(origin: OriginServer, edge: ProxyServer) -> None:
    _object(origin, "/pass/a")
    path = _manifest(origin, _line("/pass/a", "a.bin"))
    for _ in range(2):
        r = httpx.get(edge.url + path, timeout=10)
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            assert archive.read("a.bin") == DATA
    assert origin.stats()["requests"]["GET /pass/a"] == 2
