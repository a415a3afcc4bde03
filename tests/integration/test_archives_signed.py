"""The signed manifest URL (proxy/archive/signed.py): a folder origin, which cannot add
`X-Archive-Files`, holds a plain mod_zip manifest; a real edgeshield answers it as a ZIP
of the files it lists when the request asks with `?archive=zip` and a native token binds
that parameter, every time (the manifest's cached copy never leaves through the fast
path). The same file asked for without a binding token, with a folder token that does
not bind it, or on a route without tokens is refused with 403."""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from proxy.auth.keys import KeyRing
from proxy.auth.native import sign_url
from tests.support.proxy_server import ProxyServer, running_proxy

SECRET = "signed archive secret"
KEYS = KeyRing({"k1": SECRET.encode()})
SIZES = [10_000, 0, 70_000]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive_origin")
    (root / "files").mkdir()
    (root / "dl").mkdir()
    (root / "open").mkdir()
    lines = []
    for i, size in enumerate(SIZES):
        data = os.urandom(size)
        (root / "files" / f"{i}.bin").write_bytes(data)
        lines.append(f"{zlib.crc32(data):08x} {size} /files/{i}.bin set/{i}.bin")
    manifest = "\n".join(lines) + "\n"
    (root / "dl" / "set.txt").write_text(manifest)
    (root / "open" / "set.txt").write_text(manifest)
    return root


@pytest.fixture(scope="module")
def proxy(root: Path) -> Iterator[ProxyServer]:
    config = f"""
[server]
access_log = "off"
[auth]
signing_kid = "k1"
[auth.keys.k1]
secret = "{SECRET}"
[origins.files]
kind = "fs"
root = "{root}"
[[routes]]
path_prefix = "/dl/"
origin = "files"
[routes.auth]
schemes = ["native"]
[[routes]]
origin = "files"
"""
    with running_proxy(config) as server:
        yield server


def _get(proxy: ProxyServer, url: str) -> httpx.Response:
    return httpx.get(proxy.url + url, timeout=30)


def test_a_signed_archive_url_gets_the_zip_every_time(root: Path, proxy: ProxyServer) -> None:
    url = sign_url("/dl/set.txt?archive=zip", KEYS, ttl=600, bind=["archive"])
    for _ in range(3):  # a miss, then hits the fast path must leave to the archive
        r = _get(proxy, url)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/zip"
        assert int(r.headers["content-length"]) == len(r.content)
        with zipfile.ZipFile(io.BytesIO(r.content)) as archive:
            assert archive.testzip() is None
            assert archive.namelist() == [f"set/{i}.bin" for i in range(len(SIZES))]
            for i in range(len(SIZES)):
                assert archive.read(f"set/{i}.bin") == (root / "files" / f"{i}.bin").read_bytes()
    # The same token's URL without the parameter does not verify (its value is signed).
    assert (
        _get(proxy, url.replace("archive=zip&", "").replace("archive=zip", "")).status_code == 403
    )


def test_a_range_of_the_signed_archive(proxy: ProxyServer) -> None:
    url = sign_url("/dl/set.txt?archive=zip", KEYS, ttl=600, bind=["archive"])
    whole = _get(proxy, url).content
    r = httpx.get(proxy.url + url, headers={"range": "bytes=100-20099"}, timeout=30)
    assert r.status_code == 206
    assert r.content == whole[100:20100]


def test_the_manifest_file_itself_with_a_plain_token(proxy: ProxyServer) -> None:
    r = _get(proxy, sign_url("/dl/set.txt", KEYS, ttl=600))
    assert r.status_code == 200
    assert r.headers["content-type"] != "application/zip"
    assert b" /files/0.bin set/0.bin" in r.content


@pytest.mark.parametrize(
    "url",
    [
        "/dl/set.txt?archive=zip",  # no token
        sign_url("/dl/set.txt?archive=zip", KEYS, ttl=600),  # the parameter not bound
        sign_url("/dl/set.txt?archive=zip", KEYS, ttl=600, prefix="/dl/"),  # a folder token
        "/open/set.txt?archive=zip",  # a route without tokens
    ],
)
def test_unsigned_archive_forms_are_refused(proxy: ProxyServer, url: str) -> None:
    for _ in range(2):  # the second is no fast-path hit of the manifest's text either
        r = _get(proxy, url)
        assert r.status_code == 403, r.text
        assert b"/files/" not in r.content
