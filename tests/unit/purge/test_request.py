"""Purge requests (proxy/purge/request.py): JSON body, PURGE method, admin token, body
reading, and cache keys that are the pipeline's own."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.http.paths import normalize_path
from proxy.purge.request import (
    MAX_BODY_BYTES,
    MAX_PREFIXES,
    InvalidItem,
    PrefixPurge,
    PurgeError,
    PurgeRequest,
    check_admin,
    is_loopback,
    key_of_url,
    parse_purge_body,
    parse_purge_method,
    read_body,
)
from proxy.request import Rejected, parse_request

TOKEN = "s3cret-admin-token-0123"


def body(**fields: Any) -> bytes:
    return orjson.dumps(fields)


def ok(raw: bytes, content_type: str | None = None) -> PurgeRequest:
    result = parse_purge_body(raw, content_type)
    assert isinstance(result, PurgeRequest), result
    return result


def refused(raw: bytes, status: int = 400, content_type: str | None = None) -> str:
    result = parse_purge_body(raw, content_type)
    assert isinstance(result, PurgeError), result
    assert result.status == status
    return result.message


# -- the JSON body ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://media.example.com/v/1.mp4", "media.example.com/v/1.mp4"),
        ("http://Media.Example.COM:8080/v/1.mp4?x=1&y=2", "media.example.com/v/1.mp4?x=1&y=2"),
        ("https://h.com", "h.com/"),
        ("https://h.com?q", "h.com/?q"),
        ("https://h.com/a/./b/../c//d", "h.com/a/c/d"),  # the request path's normalisation
        ("https://h.com/%7euser/%41", "h.com/~user/A"),
        ("https://h.com/a?", "h.com/a"),  # an empty query is no query, as in the pipeline
        ("https://h.com/a#frag", "h.com/a"),
        ("https://h.com/a?q=1 2é", "h.com/a?q=1%202%C3%A9"),
        ("HTTPS://[::1]:8443/x", "[::1]/x"),
    ],
)
def test_urls_become_cache_keys(url: str, key: str) -> None:
    assert ok(body(urls=[url])).keys == (key,)


def test_paths_need_host_and_take_it() -> None:
    assert 'needs "host"' in refused(body(urls=["/v/1.mp4"]))
    request = ok(body(urls=["/v/1.mp4", "https://other.org/x"], host="Media.Example.com:443"))
    assert request.keys == ("media.example.com/v/1.mp4", "other.org/x")


def test_duplicates_collapse_in_order() -> None:
    request = ok(body(urls=["https://h/b", "https://h/a", "https://H/b"], tags=["t", " t "]))
    assert request.keys == ("h/b", "h/a")
    assert request.tags == ("t",)


def test_cdn_targets_keep_what_a_cdn_needs() -> None:
    request = ok(
        body(
            urls=["http://H.com/a?x=1", "/b", "https://h.com/a?x=1"],
            host="h.com",
            prefixes=["/img/", "https://o.org/v/", "https://o.org/"],
            tags=["t"],
            soft=True,
            all=True,
        )
    )
    assert request.keys == ("h.com/a?x=1", "h.com/b")
    assert request.urls == ("http://h.com/a?x=1", "https://h.com/b")  # first spelling
    assert request.cdn_targets() == {
        "urls": ("http://h.com/a?x=1", "https://h.com/b"),
        "tags": ("t",),
        "prefixes": ("https://h.com/img/", "https://o.org/v/"),
        "hosts": ("o.org",),
        "soft": True,
        "everything": False,
    }
    everything = ok(body(all=True)).cdn_targets()
    assert everything["everything"] is True and everything["prefixes"] == ()
    assert ok(body(prefixes=["/img/"])).cdn_targets()["prefixes"] == ("/img/",)


@pytest.mark.parametrize(
    ("prefix", "host", "expected"),
    [
        ("/videos/", None, PrefixPurge(None, "/videos/")),
        ("/videos", "a.com", PrefixPurge("a.com", "/videos")),
        ("https://b.com/videos/x/../", "a.com", PrefixPurge("b.com", "/videos/")),
        ("/a//b#x", None, PrefixPurge(None, "/a/b")),
    ],
)
def test_prefixes(prefix: str, host: str | None, expected: PrefixPurge) -> None:
    fields: dict[str, Any] = {"prefixes": [prefix]}
    if host:
        fields["host"] = host
    request = ok(body(**fields))
    assert request.prefixes == (expected,)
    assert request.everything is False


@pytest.mark.parametrize("prefix", ["/", "/a/..", "https://h.com", "https://h.com/", "//", "/./"])
def test_root_prefixes_need_all(prefix: str) -> None:
    assert 'needs "all": true' in refused(body(prefixes=[prefix]))
    assert ok(body(prefixes=[prefix], all=True)).prefixes[0].prefix == "/"


def test_all_alone_purges_everything() -> None:
    request = ok(body(all=True, soft=True))
    assert request.prefixes == (PrefixPurge(None, "/"),)
    assert request.everything and request.soft
    assert ok(body(prefixes=["/"], all=True)).everything
    assert not ok(body(prefixes=["https://h.com/"], all=True)).everything  # one host


def test_all_with_nothing_needing_it_is_refused() -> None:
    assert "all: true" in refused(body(all=True, urls=["https://h/x"]))


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"{}", "nothing to purge"),
        (b"", "not valid JSON"),
        (b"{nope", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b"null", "must be a JSON object"),
        (b'{"prefix": ["/a"]}', "unknown field 'prefix'"),
        (b'{"urls": "https://h/x"}', "urls: Input should be a valid array"),
        (b'{"urls": [1]}', "urls[0]: Input should be a valid string"),
        (b'{"all": 1}', "all: Input should be a valid boolean"),
        (b'{"soft": "true"}', "soft: Input should be a valid boolean"),
        (b'{"urls": ["ftp://h/x"]}', "urls[0]: must be a path starting with '/' or an http"),
        (b'{"urls": ["h.com/x"]}', "urls[0]: must be a path"),
        (b'{"urls": ["https://u:p@h.com/x"]}', "urls[0]: user information"),
        (b'{"urls": ["https:///x"]}', "urls[0]: no usable host"),
        (b'{"urls": ["https://h/a%2Fb"]}', "urls[0]: bad path (encoded-slash)"),
        (b'{"urls": [""]}', "urls[0]: empty"),
        (b'{"prefixes": [""]}', "prefixes[0]: empty"),
        (b'{"prefixes": ["/a?x=1"]}', "prefixes[0]: a prefix is a path, without a query"),
        (b'{"tags": ["ok", ""]}', "tags[1]: a tag is 1 to 1024 bytes"),
        (b'{"tags": ["a\\u0000b"]}', "tags[0]"),
        (b'{"host": "a/b", "urls": ["/x"]}', "host: not a host name"),
    ],
)
def test_refusals_name_the_field(raw: bytes, needle: str) -> None:
    assert needle in refused(raw)


def test_long_bad_values_are_not_echoed_whole() -> None:
    message = refused(body(urls=["ftp://" + "x" * 5000]))
    assert len(message) < 300


def test_limits() -> None:
    message = refused(body(prefixes=[f"/p{i}" for i in range(MAX_PREFIXES + 1)]))
    assert message == f"prefixes: at most {MAX_PREFIXES} items"
    assert "urls[0]" in refused(body(urls=["https://h/" + "a" * 9000]))
    refused(b" " * (MAX_BODY_BYTES + 1), status=413)


@pytest.mark.parametrize(
    ("content_type", "accepted"),
    [
        (None, True),
        ("application/json", True),
        ("Application/JSON; charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("text/plain", False),
        ("application/x-www-form-urlencoded", False),
    ],
)
def test_content_type(content_type: str | None, accepted: bool) -> None:
    result = parse_purge_body(body(tags=["t"]), content_type)
    assert isinstance(result, PurgeRequest) is accepted
    if not accepted:
        assert isinstance(result, PurgeError) and result.status == 415


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_field_names = st.sampled_from(["urls", "prefixes", "tags", "host", "all", "soft", "extra"])
_url_text = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda scheme, host, path: f"{scheme}{host}{path}",
        st.sampled_from(["", "http://", "https://", "ftp://", "HTTPS://"]),
        st.sampled_from(["", "h.com", "H.COM:80", "[::1]", "u@h", "a b", "h.com."]),
        st.text(alphabet="/.%2Fa?#=&é\\ \x00", max_size=20),
    ),
)
_shaped = st.fixed_dictionaries(
    {},
    optional={
        "urls": st.lists(_url_text, max_size=4),
        "prefixes": st.lists(_url_text, max_size=4),
        "tags": st.lists(st.text(max_size=12), max_size=4),
        "host": st.none() | st.text(max_size=12) | st.sampled_from(["a.com", "A.com:1"]),
        "all": st.booleans() | st.integers(0, 1),
        "soft": st.booleans(),
    },
)


def _check_result(result: PurgeRequest | PurgeError) -> None:
    if isinstance(result, PurgeError):
        assert result.status in (400, 413, 415) and result.message
        return
    assert result.keys or result.prefixes or result.tags
    for key in result.keys:
        host, slash, rest = key.partition("/")
        assert host and slash
        path = "/" + rest.partition("?")[0]
        assert normalize_path(path) == path  # canonical, as the pipeline's keys
        assert key.isascii() and " " not in key
    for prefix in result.prefixes:
        assert prefix.prefix.startswith("/") and "?" not in prefix.prefix
    assert result.everything == any(p.host is None and p.prefix == "/" for p in result.prefixes)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_field_names, _json_values, max_size=5) | _shaped)
def test_fuzz_json_bodies(data: dict[str, Any]) -> None:
    _check_result(parse_purge_body(orjson.dumps(data)))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_raw_bytes(raw: bytes) -> None:
    _check_result(parse_purge_body(raw))


@settings(max_examples=200, deadline=None)
@given(
    host=st.sampled_from(["h.com", "cdn.example.org", "[::1]"]),
    path=st.text(alphabet="/abc.~%2e-_", min_size=0, max_size=25),
    query=st.text(alphabet="abc=&%+-._~", max_size=12),
)
def test_fuzz_keys_are_the_pipelines_keys(host: str, path: str, query: str) -> None:
    """A URL purge names exactly the key `proxy.pipeline.lookup` builds for that URL."""
    raw_path = "/" + path
    target = raw_path + (f"?{query}" if query else "")
    try:
        req = _pipeline_request(host, raw_path, query)
    except Rejected:
        with pytest.raises(InvalidItem):
            key_of_url(f"https://{host}{target}")
        return
    pipeline_key = f"{req.host}{req.target}"
    assert key_of_url(f"https://{host}{target}") == pipeline_key
    assert key_of_url(target, req.host) == pipeline_key


def test_non_ascii_urls_name_the_percent_encoded_key() -> None:
    """Browsers send UTF-8 percent-encoded: that request's key is what a purge of the
    readable URL names."""
    req = _pipeline_request("h.com", "/caf%C3%A9", "")
    assert key_of_url("https://h.com/café") == f"{req.host}{req.target}" == "h.com/caf%C3%A9"


def _pipeline_request(host: str, raw_path: str, query: str) -> Any:
    scope = {
        "type": "http",
        "method": "GET",
        "http_version": "1.1",
        "path": raw_path,
        "raw_path": raw_path.encode("ascii"),
        "query_string": query.encode(),
        "headers": [(b"host", host.encode())],
    }
    return parse_request(
        scope, normalize=normalize_path, max_url_bytes=8192, max_header_bytes=65536
    )


# -- PURGE <url> -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "soft"),
    [
        ({}, False),
        ({"x-purge-soft": "1"}, True),
        ({"fastly-soft-purge": "1"}, True),
        ({"x-purge-soft": "0"}, False),
        ({"fastly-soft-purge": "true"}, True),
    ],
)
def test_purge_method(headers: dict[str, str], soft: bool) -> None:
    result = parse_purge_method("Media.example.com:8080", "/v/./1.mp4", "a=1", headers)
    key = "media.example.com/v/1.mp4?a=1"
    assert result == PurgeRequest(keys=(key,), soft=soft, urls=(f"https://{key}",))


def test_purge_method_with_xkey_purges_keys() -> None:
    result = parse_purge_method("h.com", "/", "", {"xkey-purge": "p1 p2,p3", "x-purge-soft": "1"})
    assert result == PurgeRequest(tags=("p1", "p2", "p3"), soft=True)
    assert parse_purge_method("h.com", "/", "", {"xkey": "k"}) == PurgeRequest(tags=("k",))
    error = parse_purge_method("h.com", "/", "", {"xkey": " , "})
    assert isinstance(error, PurgeError) and error.status == 400


@pytest.mark.parametrize(("host", "path"), [("", "/x"), ("a b", "/x"), ("h.com", "/a%2Fb")])
def test_purge_method_refusals(host: str, path: str) -> None:
    result = parse_purge_method(host, path, "", {})
    assert isinstance(result, PurgeError) and result.status == 400


@settings(max_examples=200, deadline=None)
@given(
    host=st.text(max_size=20),
    path=st.text(max_size=30),
    query=st.text(max_size=20),
    headers=st.dictionaries(
        st.sampled_from(["xkey", "xkey-purge", "x-purge-soft", "fastly-soft-purge", "other"]),
        st.text(max_size=30),
        max_size=3,
    ),
)
def test_fuzz_purge_method(host: str, path: str, query: str, headers: dict[str, str]) -> None:
    result = parse_purge_method(host, path, query, headers)
    if isinstance(result, PurgeError):
        assert result.status == 400
    else:
        assert len(result.keys) + len(result.tags) >= 1 and not result.prefixes
        _check_result(result)


# -- the admin token -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("", 401),
        ("Basic dXNlcjpwYXNz", 401),
        ("Bearer", 401),
        ("Bearer    ", 401),
        ("Bearer wrong-token-of-any-length", 403),
        (f"Bearer {TOKEN}x", 403),
        (f"Bearer {TOKEN[:-1]}", 403),
        (f"Bearer {TOKEN}", None),
        (f"bearer {TOKEN}", None),  # schemes are case-insensitive
        (f"BEARER   {TOKEN}  ", None),
        ("Bearer caf\xc3\xa9-token-0123456789", None),  # UTF-8 bytes seen as latin-1
    ],
)
def test_check_admin(authorization: str | None, status: int | None) -> None:
    tokens = [TOKEN, "café-token-0123456789"]
    result = check_admin(authorization, tokens, loopback=True)  # loopback changes nothing
    if status is None:
        assert result is None
        return
    assert result is not None and result.status == status
    if status == 401:
        assert (b"www-authenticate", b'Bearer realm="edgeshield"') in result.headers
    else:
        assert result.headers == ()
    assert TOKEN not in result.message


@settings(max_examples=200, deadline=None)
@given(authorization=st.none() | st.text(max_size=60), loopback=st.booleans())
def test_fuzz_check_admin(authorization: str | None, loopback: bool) -> None:
    result = check_admin(authorization, [TOKEN], loopback=loopback)
    assert result is not None and result.status in (401, 403)
    assert check_admin(authorization, [], loopback=True) is None


def test_rotation_accepts_every_configured_token() -> None:
    tokens = ["new-token-0123456789", "old-token-0123456789"]
    assert check_admin("Bearer old-token-0123456789", tokens, loopback=False) is None
    assert check_admin("Bearer new-token-0123456789", tokens, loopback=False) is None


def test_without_a_configured_token_only_loopback_passes() -> None:
    assert check_admin(None, [], loopback=True) is None
    assert check_admin(f"Bearer {TOKEN}", [], loopback=True) is None
    error = check_admin(f"Bearer {TOKEN}", [], loopback=False)
    assert error is not None and error.status == 403


@pytest.mark.parametrize(
    ("client", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("::ffff:10.0.0.1", False),
        ("10.0.0.1", False),
        ("fe80::1%eth0", False),
        ("", False),
        ("localhost", False),  # names are not addresses: fail closed
    ],
)
def test_is_loopback(client: str, loopback: bool) -> None:
    assert is_loopback(client) is loopback


# -- reading the body ----------------------------------------------------------------------


def _receiver(messages: list[dict[str, Any]]) -> Any:
    queue = list(messages)
    taken: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        message = queue.pop(0)
        taken.append(message)
        return message

    receive.taken = taken  # type: ignore[attr-defined]
    return receive


def test_read_body_joins_chunks() -> None:
    receive = _receiver(
        [
            {"type": "http.request", "body": b"ab", "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"cd"},
        ]
    )
    assert asyncio.run(read_body(receive, {})) == b"abcd"


def test_read_body_stops_at_the_limit() -> None:
    receive = _receiver([{"type": "http.request", "body": b"x" * 6, "more_body": True}] * 5)
    result = asyncio.run(read_body(receive, {}, limit=10))
    assert isinstance(result, PurgeError) and result.status == 413
    assert len(receive.taken) == 2  # not one chunk more than needed


def test_read_body_refuses_a_large_content_length_before_reading() -> None:
    receive = _receiver([])
    result = asyncio.run(read_body(receive, {"content-length": "11"}, limit=10))
    assert isinstance(result, PurgeError) and result.status == 413


def test_read_body_disconnect() -> None:
    receive = _receiver([{"type": "http.disconnect"}])
    result = asyncio.run(read_body(receive, {}))
    assert isinstance(result, PurgeError) and result.status == 400
