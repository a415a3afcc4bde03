"""Compression's pure parts (proxy/compress.py): which form a request gets, the forms
made and undone (bounded), the Vary an origin answer gets, an encoded form's entry."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from config.compression import CompressionSettings
from proxy.cache.entry import Entry
from proxy.compress import (
    Unacceptable,
    choose,
    decode,
    encode,
    form_entry,
    route_policy,
    vary_for,
)
from proxy.http.freshness import Freshness

SETTINGS = CompressionSettings()
POLICY = route_policy(SETTINGS, True)
FRESH = Freshness(
    storable=True,
    reason="",
    lifetime=60.0,
    initial_age=0.0,
    stale_while_revalidate=0.0,
    stale_if_error=0.0,
    must_revalidate=False,
    no_cache=False,
)
TEXT = b"#EXTM3U\n" + b"".join(b"#EXTINF:6.0,\nseg-%05d.ts\n" % i for i in range(200))


def entry(body: bytes = TEXT, **fields: str) -> Entry:
    headers = [(k.encode(), v.encode()) for k, v in fields.items()]
    return Entry(
        status=200,
        headers=headers,
        origin_headers=[],
        body=body,
        etag=fields.get("etag"),
        last_modified=None,
        content_type=fields.get("content-type"),
        response_time=1000.0,
        freshness=FRESH,
    )


def test_route_policy_off_switches() -> None:
    assert route_policy(SETTINGS, False) is None
    assert route_policy(CompressionSettings(enabled=False), True) is None
    assert POLICY is not None and POLICY.codings == ("br", "zstd", "gzip")


def test_choose() -> None:
    text = entry(**{"content-type": "application/vnd.apple.mpegurl"})
    assert choose(POLICY, {"accept-encoding": "gzip"}, text) == "gzip"
    assert choose(POLICY, {}, text) is None
    assert choose(POLICY, {"accept-encoding": "gzip", "range": "bytes=0-1"}, text) is None
    assert choose(None, {"accept-encoding": "gzip"}, text) is None
    small = entry(b"#EXTM3U\n", **{"content-type": "application/vnd.apple.mpegurl"})
    assert choose(POLICY, {"accept-encoding": "gzip"}, small) is None
    kept = entry(**{"content-type": "text/plain", "cache-control": "no-transform"})
    assert choose(POLICY, {"accept-encoding": "gzip"}, kept) is None


def test_choose_an_origin_coding() -> None:
    fields = {"content-type": "text/plain", "content-encoding": "gzip"}
    packed = entry(gzip.compress(TEXT), **fields)
    assert choose(POLICY, {"accept-encoding": "gzip, br"}, packed) is None  # as it is
    assert choose(POLICY, {"accept-encoding": "br"}, packed) == "identity"
    assert choose(POLICY, {}, packed) == "identity"
    # Even with compression off, and with a Range: never a coding the client refuses.
    assert choose(None, {"range": "bytes=0-1"}, packed) == "identity"


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_encode_then_decode(coding: str) -> None:
    packed = encode(TEXT, coding, SETTINGS)
    assert len(packed) < len(TEXT) // 4
    assert decode(packed, coding, len(TEXT)) == TEXT
    with pytest.raises(Unacceptable):
        decode(packed, coding, len(TEXT) - 1)  # one byte over the bound: refused


def test_third_party_decoders_read_our_forms() -> None:
    assert gzip.decompress(encode(TEXT, "gzip", SETTINGS)) == TEXT
    assert brotli.decompress(encode(TEXT, "br", SETTINGS)) == TEXT
    dctx = zstandard.ZstdDecompressor()
    assert dctx.decompress(encode(TEXT, "zstd", SETTINGS)) == TEXT


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_bomb_is_refused_without_holding_it(coding: str) -> None:
    bomb = encode(b"\0" * (64 * 1024 * 1024), coding, SETTINGS)
    with pytest.raises(Unacceptable):
        decode(bomb, coding, 1024 * 1024)


def test_decode_gzip_members_deflate_and_damage() -> None:
    assert decode(gzip.compress(b"ab") + gzip.compress(b"cd"), "gzip", 100) == b"abcd"
    assert decode(zlib.compress(b"hello"), "deflate", 100) == b"hello"
    for coding in ("gzip", "br", "zstd"):
        with pytest.raises(Unacceptable):
            decode(b"not compressed at all", coding, 100)
        with pytest.raises(Unacceptable):
            decode(encode(TEXT, coding, SETTINGS)[:-8], coding, 10 * len(TEXT))
    with pytest.raises(Unacceptable):
        decode(b"x", "compress", 100)


@given(st.binary(max_size=2000), st.sampled_from(["gzip", "br", "zstd", "deflate"]))
def test_decode_never_raises_anything_else(data: bytes, coding: str) -> None:
    try:
        out = decode(data, coding, 4096)
    except Unacceptable:
        return
    assert len(out) <= 4096


def test_form_entry() -> None:
    source = entry(
        **{
            "content-type": "application/json",
            "etag": '"v1"',
            "cache-control": "max-age=60",
            "vary": "Origin",
        }
    )
    form = form_entry(source, b"packed", "br")
    fields = dict(form.headers)
    assert fields[b"content-encoding"] == b"br" and fields[b"etag"] == b'"v1-br"'
    assert fields[b"vary"] == b"Origin, Accept-Encoding"
    assert fields[b"cache-control"] == b"max-age=60"
    assert form.fresh_until == source.fresh_until and form.response_time == source.response_time
    assert (b"content-length", b"6") in form.full_headers
    undone = form_entry(entry(**{"content-encoding": "gzip", "etag": '"z"'}), b"plain", "identity")
    assert b"content-encoding" not in dict(undone.headers)
    assert undone.etag == '"z-identity"'


def test_vary_for() -> None:
    headers = [(b"content-type", b"text/css")]
    fields = {"content-type": "text/css"}
    vary, out = vary_for(POLICY, 200, fields, (), headers, 5000)
    assert vary == () and (b"vary", b"Accept-Encoding") in out
    assert vary_for(POLICY, 200, fields, (), headers, 10)[1] == headers  # below the floor
    assert vary_for(None, 200, fields, (), headers, 5000)[1] == headers
    # A 304 refreshing a stored 200 keeps the field.
    assert (b"vary", b"Accept-Encoding") in vary_for(POLICY, 304, fields, (), headers, 0)[1]
    # The origin's own coding: stored per Accept-Encoding, even with compression off.
    coded = {"content-type": "image/png", "content-encoding": "gzip"}
    vary, out = vary_for(None, 200, coded, ("origin",), [], 5000)
    assert vary == ("accept-encoding", "origin") and out == [(b"vary", b"Accept-Encoding")]
    assert vary_for(None, 200, coded, None, [], 5000)[0] is None  # Vary: * stays
