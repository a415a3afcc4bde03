"""Batch downloads (proxy/archive/): a real edgeshield turns an origin's mod_zip manifest
into a ZIP of the objects it lists, read through the cache; zipfile and `unzip -t` read
it, and any byte range of it (curl -C -, If-Range) is the same range of the whole."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import uuid
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

LAST_MODIFIED = "Wed, 01 May 2024 10:00:00 GMT"


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    config = proxy_config(origin_server.url, origin={"read_timeout": 5.0})
    with running_proxy(config) as server:
        yield server


def _files(origin: OriginServer, sizes: list[int]) -> dict[str, tuple[str, bytes]]:
    """Scripted objects of random bytes: {name in the archive: (location, bytes)}."""
    folder = uuid.uuid4().hex
    out = {}
    for i, size in enumerate(sizes):
        data = os.urandom(size)
        location = f"/files/{folder}/{i}.bin"
        origin.script(
            location,
            body_base64=base64.b64encode(data).decode(),
            headers={"cache-control": "max-age=300"},
        )
        out[f"set/file {i}.bin"] = (location, data)
    return out


def _manifest(
    origin: OriginServer, files: dict[str, tuple[str, bytes]], *, crc: bool = True
) -> str:
    lines = [
        f"{format(zlib.crc32(data), '08x') if crc else '-'} {len(data)} {location} {name}"
        for name, (location, data) in files.items()
    ]
    path = f"/zip/{uuid.uuid4().hex}"
    origin.script(
        path,
        body="\n".join(lines) + "\n",
        headers={
            "x-archive-files": "zip",
            "content-type": "text/plain",
            "content-disposition": 'attachment; filename="set.zip"',
            "cache-control": "max-age=300",
            "last-modified": LAST_MODIFIED,
        },
    )
    return path


def _get(proxy: ProxyServer, path: str, **headers: str) -> httpx.Response:
    return httpx.get(proxy.url + path, headers=headers, timeout=30)


def _check(content: bytes, files: dict[str, tuple[str, bytes]]) -> None:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == list(files)
        for name, (_, data) in files.items():
            info = archive.getinfo(name)
            assert info.compress_type == zipfile.ZIP_STORED
            assert archive.read(name) == data


def test_archive_of_the_listed_objects(
    origin: OriginServer, proxy: ProxyServer, tmp_path: Path
) -> None:
    files = _files(origin, [10_000, 0, 300_000, 1])
    path = _manifest(origin, files)
    r = _get(proxy, path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == 'attachment; filename="set.zip"'
    assert r.headers["accept-ranges"] == "bytes"
    assert int(r.headers["content-length"]) == len(r.content)
    assert "x-archive-files" not in r.headers
    _check(r.content, files)
    target = tmp_path / "set.zip"
    target.write_bytes(r.content)
    tested = subprocess.run(["unzip", "-t", str(target)], capture_output=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Again: manifest and objects come from the cache, the bytes are the same.
    assert _get(proxy, path).content == r.content
    requests = origin.stats()["requests"]
    assert requests[f"GET {path}"] == 1
    for location, data in files.values():
        assert requests.get(f"GET {location}", 0) == (1 if data else 0)


def test_any_range_and_curl_resume(
    origin: OriginServer, proxy: ProxyServer, tmp_path: Path
) -> None:
    files = _files(origin, [70_000, 5, 200_000])
    path = _manifest(origin, files)
    whole = _get(proxy, path)
    size = len(whole.content)
    etag = whole.headers["etag"]
    # Cuts inside a local header, a body, the central directory, and a multipart ask.
    for start in (3, 40, 70_050, size - 30):
        r = _get(proxy, path, range=f"bytes={start}-", **{"if-range": etag})
        assert r.status_code == 206
        assert r.content == whole.content[start:]
    r = _get(proxy, path, range="bytes=0-9,70100-70199")
    assert r.status_code == 206 and r.headers["content-type"].startswith("multipart/")
    assert _get(proxy, path, range="bytes=5-", **{"if-range": '"other"'}).status_code == 200
    assert _get(proxy, path, **{"if-none-match": etag}).status_code == 304
    target = tmp_path / "set.zip"
    target.write_bytes(whole.content[:123_457])
    subprocess.run(
        ["curl", "-sS", "-f", "-C", "-", "-o", str(target), proxy.url + path],
        check=True,
        timeout=60,
    )
    assert target.read_bytes() == whole.content


def test_without_crcs_data_descriptors_and_no_ranges(
    origin: OriginServer, proxy: ProxyServer
) -> None:
    files = _files(origin, [50_000, 7])
    path = _manifest(origin, files, crc=False)
    r = _get(proxy, path)
    assert r.status_code == 200
    assert r.headers["accept-ranges"] == "none"
    assert "etag" not in r.headers
    assert int(r.headers["content-length"]) == len(r.content)
    _check(r.content, files)
    again = _get(proxy, path, range="bytes=10-")
    assert again.status_code == 200 and again.content == r.content


def test_head_fetches_no_member(origin: OriginServer, proxy: ProxyServer) -> None:
    files = _files(origin, [1000, 2000])
    path = _manifest(origin, files)
    r = httpx.head(proxy.url + path, timeout=30)
    assert r.status_code == 200
    full = _get(proxy, path)
    assert r.headers["content-length"] == str(len(full.content))
    requests = origin.stats()["requests"]
    assert all(requests.get(f"GET {location}", 0) == 1 for location, _ in files.values())
