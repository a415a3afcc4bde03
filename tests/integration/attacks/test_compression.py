"""Hostile Accept-Encoding fields and lying or bombing content codings, replayed against a
real `edgeshield serve`: each gets a clean answer in a coding the client takes, never a
traceback, never an unbounded expansion, and the cache keeps at most one form per coding."""

from __future__ import annotations

import base64
import gzip
import json
import re
import uuid
from collections.abc import Iterator

import brotli
import httpx
import pytest
import zstandard

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy

TOKEN = "compress-attack-token-0123456789"
BODY = json.dumps([{"id": i, "name": f"item {i}"} for i in range(400)])
HEADERS = {"cache-control": "max-age=300", "content-type": "application/json"}


@pytest.fixture(scope="module")
def cproxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    config = f"""
[server]
access_log = "off"
[admin]
token = "{TOKEN}"
[compression]
max_bytes = 1048576
[origins.main]
kind = "http"
url = "{origin_server.url}"
[[routes]]
origin = "main"
"""
    with running_proxy(config) as proxy:
        yield proxy


@pytest.fixture
def client(cproxy: ProxyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cproxy.url, timeout=30, headers={"accept-encoding": ""}) as c:
        yield c


def raw(client: httpx.Client, path: str, accept: str | bytes) -> tuple[httpx.Response, bytes]:
    with client.stream("GET", path, headers={"accept-encoding": accept}) as resp:
        return resp, b"".join(resp.iter_raw())


def as_sent(resp: httpx.Response, body: bytes) -> bytes:
    coding = resp.headers.get("content-encoding")
    if coding == "gzip":
        return gzip.decompress(body)
    if coding == "br":
        return brotli.decompress(body)
    if coding == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(body)
    assert coding is None, coding
    return body


def forms_made(client: httpx.Client) -> float:
    text = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text
    return sum(
        float(v) for v in re.findall(r"^edgeshield_compressions_total\{.*\} (\S+)$", text, re.M)
    )


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("gzip;q=0.5, " * 2400 + "br", "gzip"),  # ~30 KB, members past the limit ignored
        ("br;" + ";".join(f"p{i}=v{i}" for i in range(2000)) + ";q=1", "br"),
        ("gzip;q=abc, br;q=1e9, zstd;q=-1", None),
        ("gzip;q=0.5;q=0.9", "gzip"),
        ("gzip;q=" + "9" * 5000, None),  # not a q-value: not acceptable
        ("gzip;q=99999", "gzip"),  # a plain number, read as 1
        ("gzip;q=1." + "0" * 5000, None),  # not a q-value
        (",,,,;;;;====,,,", None),
        ("GZIP\t;\tQ=0.7", "gzip"),
        (b"gz\xefp, br;q=0", None),
        ("*;q=0.1, identity;q=0", "br"),
        ("identity;q=0, *;q=0", None),  # nothing acceptable: identity anyway
    ],
)
def test_odd_accept_encoding_gets_a_sane_coding(
    origin: OriginServer, client: httpx.Client, accept: str | bytes, expected: str | None
) -> None:
    path = f"/a/{uuid.uuid4().hex}.json"
    origin.script(path, body=BODY, headers=HEADERS)
    for _ in range(2):  # miss, then hit
        resp, body = raw(client, path, accept)
        assert resp.status_code == 200
        assert resp.headers.get("content-encoding") == expected
        assert as_sent(resp, body) == BODY.encode()


def test_many_distinct_fields_make_one_form_per_coding(
    origin: OriginServer, client: httpx.Client
) -> None:
    path = f"/a/{uuid.uuid4().hex}.json"
    origin.script(path, body=BODY, headers=HEADERS)
    raw(client, path, "")
    before = forms_made(client)
    for i in range(120):
        accept = f"gzip;q=0.{i % 9 + 1}, br;q=0.{(i * 7) % 9 + 1}, x-{i}, zstd;q=0.{i % 3}"
        resp, body = raw(client, path, accept)
        assert as_sent(resp, body) == BODY.encode()
    assert forms_made(client) - before <= 3
    assert origin.requests(path) == 1


def _coded(origin: OriginServer, path: str, body: bytes) -> None:
    headers = {**HEADERS, "content-encoding": "gzip"}
    origin.script(path, body_base64=base64.b64encode(body).decode(), headers=headers)


def test_an_origin_gzip_bomb_is_never_expanded(origin: OriginServer, client: httpx.Client) -> None:
    """64 MiB of zeros in 64 KiB of gzip: a client taking gzip gets the bytes as they are;
    one that does not gets a 502 (the decoded form would pass compression.max_bytes)."""
    path = f"/a/{uuid.uuid4().hex}.json"
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), mtime=0)
    _coded(origin, path, bomb)
    resp, body = raw(client, path, "gzip")
    assert resp.status_code == 200 and body == bomb
    for _ in range(2):
        resp, body = raw(client, path, "")
        assert resp.status_code == 502 and b"max_bytes" in body
    resp, body = raw(client, path, "gzip")
    assert resp.status_code == 200 and body == bomb


def test_an_origin_lying_about_its_coding(origin: OriginServer, client: httpx.Client) -> None:
    path = f"/a/{uuid.uuid4().hex}.json"
    _coded(origin, path, b"this is not gzip at all" * 100)
    resp, body = raw(client, path, "br")
    assert resp.status_code == 502 and b"not valid gzip" in body
    resp, body = raw(client, path, "gzip")  # its bytes, as it sent them
    assert resp.status_code == 200 and body == b"this is not gzip at all" * 100
