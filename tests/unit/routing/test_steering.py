"""CDN steering: healthy only, region preference, weights, stable path -> CDN."""

from __future__ import annotations

from collections import Counter

import pytest

from routing.steering import Cdn, Steering, choose, country_of, steer

A = Cdn("a", "https://a.cdn.test", 1, frozenset({"US", "CA"}), origin="a")
B = Cdn("b", "https://b.cdn.test/media", 1, frozenset({"DE", "FR"}), origin="b")
C = Cdn("c", "https://c.cdn.test", 1, frozenset())
BACKUP = Cdn("backup", "https://backup.test", 0, frozenset(), origin="backup")
PATHS = [f"/v/{i}.mp4" for i in range(2000)]


def up(*names: str):  # type: ignore[no-untyped-def]
    return lambda name: name in names


@pytest.mark.parametrize(
    ("cdns", "country", "healthy", "expected"),
    [
        ((A, B, C), "US", ("a", "b"), {"a"}),  # region preference
        ((A, B, C), "FR", ("a", "b"), {"b"}),
        ((A, B, C), "US", ("b",), {"b", "c"}),  # preferred CDN down: any healthy one
        ((A, B, C), "JP", ("a", "b"), {"a", "b", "c"}),  # no CDN for JP: all healthy
        ((A, B, C), None, ("a", "b"), {"a", "b", "c"}),
        ((A, B), None, (), set()),  # nothing healthy -> None
        ((A, BACKUP), None, ("a", "backup"), {"a"}),  # weight 0 is a backup ...
        ((A, BACKUP), None, ("backup",), {"backup"}),  # ... used when nothing else is up
        ((C,), "US", (), {"c"}),  # a bare base_url is always healthy
    ],
)
def test_choice_table(
    cdns: tuple[Cdn, ...], country: str | None, healthy: tuple[str, ...], expected: set[str]
) -> None:
    chosen = {choose(cdns, path, country, up(*healthy)) for path in PATHS[:200]}
    assert {cdn.name for cdn in chosen if cdn is not None} == expected
    if not expected:
        assert chosen == {None}


def test_same_path_same_cdn_and_only_the_failed_cdns_paths_move() -> None:
    cdns = (A, B, C)
    before = {path: choose(cdns, path, None, up("a", "b")) for path in PATHS}
    again = {path: choose(cdns, path, None, up("a", "b")) for path in PATHS}
    assert before == again
    after = {path: choose(cdns, path, None, up("a")) for path in PATHS}  # b down
    for path in PATHS:
        if before[path] is not B:
            assert after[path] is before[path]
        else:
            assert after[path] in (A, C)


def test_shares_follow_weights() -> None:
    heavy = Cdn("heavy", "https://h.test", 3, frozenset())
    light = Cdn("light", "https://l.test", 1, frozenset())
    counts = Counter(choose((heavy, light), path, None, up()) for path in PATHS)
    share = counts[heavy] / len(PATHS)
    assert 0.70 < share < 0.80


def test_redirect_location_and_cache_control() -> None:
    steering = Steering((B,), region_header="cf-ipcountry", cache_control="public, max-age=60")
    redirect = steer(steering, "/v/a%20b.mp4", "token=x", {}, up("b"))
    assert redirect is not None
    assert redirect.location == "https://b.cdn.test/media/v/a%20b.mp4?token=x"
    assert (redirect.status, redirect.cache_control, redirect.cdn) == (
        302,
        "public, max-age=60",
        "b",
    )
    assert steer(steering, "/v/a.mp4", "", {}, up()) is None


@pytest.mark.parametrize(
    ("header", "headers", "country"),
    [
        ("cf-ipcountry", {"cf-ipcountry": "de"}, "DE"),
        ("cf-ipcountry", {"cf-ipcountry": "XX"}, None),  # Cloudflare: unknown
        ("cf-ipcountry", {"cf-ipcountry": "T1"}, None),  # Cloudflare: Tor
        ("cf-ipcountry", {}, None),
        (None, {"cf-ipcountry": "DE"}, None),  # no trusted header configured
        ("cloudfront-viewer-country", {"cloudfront-viewer-country": "US"}, "US"),
    ],
)
def test_country_of(header: str | None, headers: dict[str, str], country: str | None) -> None:
    assert country_of(Steering((C,), region_header=header), headers) == country
