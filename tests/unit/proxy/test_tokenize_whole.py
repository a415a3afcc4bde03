"""proxy/tokenize.py's reading of a 206's Content-Range: only the whole body counts."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxy.tokenize import _whole


def test_whole_ranges() -> None:
    assert _whole("bytes 0-99/100")
    assert _whole("BYTES 0-0/1")
    assert not _whole("bytes 0-98/100")
    assert not _whole("bytes 1-99/100")
    assert not _whole("bytes 0-99/*")
    assert not _whole("bytes */100")
    assert not _whole("items 0-99/100")
    assert not _whole("")
    assert not _whole(None)


@given(st.integers(0, 10**12), st.integers(0, 10**12), st.integers(0, 10**12))
def test_whole_means_zero_to_the_last_byte(first: int, last: int, total: int) -> None:
    assert _whole(f"bytes {first}-{last}/{total}") == (first == 0 and last + 1 == total)


@given(st.text(max_size=60))
def test_any_text_never_raises(text: str) -> None:
    _whole(text)
