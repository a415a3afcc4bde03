"""`StreamIndex.after`: what the fast path asks of a segment hit (proxy/prefetch.py,
fast_hit_declines): the next segments, read without touching the index."""

from __future__ import annotations

from proxy.http.paths import normalize_path
from proxy.streams import StreamIndex, segment_targets
from tests.unit.proxy.test_streams import HOST, live


def test_after_lists_the_next_segments_and_changes_nothing() -> None:
    index = StreamIndex()
    found = segment_targets(live(0, 4), HOST, "/v/index.m3u8", normalize_path)
    assert found is not None
    index.remember(f"{HOST}/v/index.m3u8", found, 1.0, live=False, now=1.0)
    listing = index.listing_of(f"{HOST}/v/index.m3u8")
    assert listing is not None
    keys = [t.key for t in index.after(f"{HOST}/v/seg1.ts", 2)]
    assert keys == [f"{HOST}/v/seg2.ts", f"{HOST}/v/seg3.ts"]
    assert [t.key for t in index.after(f"{HOST}/v/seg4.ts", 2)] == []  # the last one
    assert index.after(f"{HOST}/v/unknown.ts", 2) == ()
    assert listing.asked == 1.0  # (following() would have marked the rendition watched)
