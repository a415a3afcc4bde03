"""Cache.admits: what `store` will refuse is known before the body arrives (so that
Cache-Status says `stored` only for what a tier keeps), and `store` refuses by it."""

from __future__ import annotations

from proxy.cache.entry import Entry
from proxy.cache.memory import MemoryTier
from proxy.cache.store import Cache
from proxy.http.freshness import Freshness

FRESH = Freshness(True, "", 300.0, 0.0, 0.0, 0.0, False, False)


def entry(vary: tuple[str, ...] = (), request_time: float = 100.0, body: bytes = b"x") -> Entry:
    return Entry(
        status=200,
        headers=[],
        origin_headers=[],
        body=body,
        etag=None,
        last_modified=None,
        content_type=None,
        response_time=request_time + 0.1,
        freshness=FRESH,
        vary=vary,
        request_time=request_time,
    )


def cache(max_variants: int = 2) -> Cache:
    return Cache(MemoryTier(1 << 20, 1 << 16), max_variants)


def test_the_variant_cap_is_known_before_the_body() -> None:
    c = cache()
    vary = ("accept-language",)
    for lang in ("en", "de"):
        headers = {"accept-language": lang}
        assert c.admits("h/a", vary, headers, 1, 100.0)
        assert c.store("h/a", entry(vary), headers)
    third = {"accept-language": "fr"}
    assert not c.admits("h/a", vary, third, 1, 100.0)
    assert not c.store("h/a", entry(vary), third)
    # a variant already kept may be replaced; another Vary replaces the whole index
    assert c.admits("h/a", vary, {"accept-language": "en"}, 1, 100.0)
    assert c.admits("h/a", ("accept-encoding",), third, 1, 100.0)


def test_size_over_every_tier() -> None:
    c = cache()
    assert c.admits("h/big", (), {}, 1 << 16, 100.0) is c.fits("h/big", 1 << 16)
    assert not c.admits("h/big", (), {}, (1 << 16) + 1, 100.0)
    assert not c.admits("h/big", ("accept",), {}, (1 << 16) + 1, 100.0)


def test_a_purge_since_the_request_was_sent() -> None:
    c = cache()
    c.bans.add("/a", host="h", now=150.0)
    assert not c.admits("h/a", (), {}, 1, 100.0)
    assert not c.store("h/a", entry(request_time=100.0), {})
    assert c.admits("h/a", (), {}, 1, 200.0)
    assert c.store("h/a", entry(request_time=200.0), {})
