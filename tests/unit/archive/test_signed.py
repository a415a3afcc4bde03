"""The signed manifest URL's two decisions: is the archive form asked, is it vouched."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.archive.signed import asks, vouched
from proxy.auth.common import accept, deny


def test_asks_only_for_the_whole_parameter() -> None:
    assert asks("archive=zip")
    assert asks("a=1&archive=zip&b=2")
    assert not asks("")
    assert not asks("archive=zip2")
    assert not asks("xarchive=zip")
    assert not asks("archive=ZIP")
    assert not asks("q=archive=zip")


@given(st.text(max_size=200))
def test_asks_means_the_parameter_is_present(query: str) -> None:
    assert asks(query) == ("archive=zip" in query.split("&"))


def test_vouched_needs_a_native_token_binding_the_parameter() -> None:
    assert vouched(accept("native", {"bound": ("archive",)}))
    assert vouched(accept("native", {"bound": ("v", "archive")}))
    assert not vouched(None)
    assert not vouched(accept("native", {}))
    assert not vouched(accept("native", {"bound": ("v",)}))
    assert not vouched(accept("akamai", {"bound": ("archive",)}))
    assert not vouched(deny("native", "expired", {"bound": ("archive",)}))
