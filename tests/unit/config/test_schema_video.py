"""The video settings: automatic slice size bounds and the route's streaming policy."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.schema import CachePolicy, CacheSettings
from routing.rules import freshness_policy


@pytest.mark.parametrize("value", [0, 64 * 1024, 1024 * 1024, 64 * 1024 * 1024])
def test_auto_slice_sizes(value: int) -> None:
    assert CacheSettings(auto_slice_bytes=value).auto_slice_bytes == value


@pytest.mark.parametrize("value", [-1, 1, 65535, 64 * 1024 * 1024 + 1])
def test_auto_slice_sizes_refused(value: int) -> None:
    with pytest.raises(ValidationError):
        CacheSettings(auto_slice_bytes=value)


def test_streaming_policy_per_route() -> None:
    cache = CacheSettings()
    on = freshness_policy(CachePolicy(segment_ttl=5, vod_playlist_ttl=7), cache)
    assert on.streaming is not None
    assert (on.streaming.segment_ttl, on.streaming.vod_playlist_ttl) == (5, 7)
    assert freshness_policy(CachePolicy(streaming=False), cache).streaming is None
