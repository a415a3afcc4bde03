import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.cache import keys
from proxy.http.authority import BadAuthority, parse_authority
from proxy.http.paths import normalize_path

hosts = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9._~-]{0,20}", fullmatch=True),
    st.sampled_from(["[::1]", "[2001:db8::1]", "127.0.0.1"]),
)
paths = st.lists(st.from_regex(r"[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,8}", fullmatch=True)).map(
    lambda parts: "/" + "/".join(parts)
)
queries = st.from_regex(r"[\x21-\x7e]{0,20}", fullmatch=True)


def test_keys_are_byte_identical_to_the_stored_format() -> None:
    # Redis and disk already hold keys in this shape: it must never change.
    assert keys.url_key("h.example", "/a/b.jpg") == "h.example/a/b.jpg"
    assert keys.url_key("h.example", "/a", "x=1&y") == "h.example/a?x=1&y"
    assert keys.vary_key("h/a", "gzip") == "h/a\x00gzip"
    assert keys.image_key("h/a.jpg", "w=400") == "h/a.jpg\x00image\x00w=400"
    assert keys.slice_key("h/v.mp4", 7) == "h/v.mp4\x00slice=7"
    assert keys.record_key("h/v.mp4") == "h/v.mp4\x00slices"


@pytest.mark.parametrize("query", ["a b", "a\x00image\x00w", "x\r\ny", "\x7f", "é"])
def test_a_query_can_never_spell_a_separator(query: str) -> None:
    assert not keys.valid_query(query)
    with pytest.raises(keys.BadKey):
        keys.url_key("h", "/a", query)


@given(hosts, paths, queries)
def test_url_key_round_trip(host: str, raw_path: str, query: str) -> None:
    try:
        host = parse_authority(host).host
    except BadAuthority:
        return
    try:
        path = normalize_path(raw_path)
    except ValueError:
        return
    key = keys.url_key(host, path, query)
    target = f"{path}?{query}" if query else path
    assert keys.split_url(key) == (host, target)
    assert keys.absolute_url(key) == f"https://{host}{target}"
    for derived in (
        keys.vary_key(key, "v"),
        keys.image_key(key, "w=1"),
        keys.slice_key(key, 3),
        keys.record_key(key),
    ):
        assert keys.url_of(derived) == key
        assert derived != key
    assert keys.url_of(key) == key


@given(hosts, paths, queries, hosts, paths, queries)
def test_distinct_urls_have_distinct_keys(h1, p1, q1, h2, p2, q2) -> None:  # type: ignore[no-untyped-def]
    k1, k2 = keys.url_key(h1, p1, q1), keys.url_key(h2, p2, q2)
    if (h1, p1, q1) != (h2, p2, q2):
        assert k1 != k2
