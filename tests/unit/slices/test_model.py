"""The slice model (proxy/slices/model.py): which record describes which version, and
which stored entry is a usable slice of it. Pure decisions, so checked exhaustively."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import example, given
from hypothesis import strategies as st

from proxy.cache.collapse import Head
from proxy.cache.entry import Entry, Uncacheable
from proxy.fetch import Timing, make_entry
from proxy.http.freshness import Freshness
from proxy.http.ranges import content_range, slice_of, slices_in
from proxy.slices.model import (
    RECORD_FIELD,
    Rep,
    Version,
    make_record,
    rep_of,
    shared,
    sliceable,
    usable_slice,
)

F = Freshness(True, "", 60.0, 0.0, 0.0, 0.0, False, False)
T = Timing(1000.0, 1000.5, 12.0, "main")


def _head(etag: str | None = '"v1"', vary: tuple[str, ...] = ()) -> Head:
    return Head(
        status=206,
        headers=[(b"etag", (etag or "").encode()), (b"age", b"3")],
        content_length=None,
        etag=etag,
        last_modified=None,
        content_type="video/mp4",
        shareable=True,
        vary=vary,
        fwd="miss",
        fwd_status=206,
        origin_ms=1.0,
    )


def _record(total: int, size: int, etag: str | None = '"v1"') -> Rep:
    fields = [("etag", etag or ""), ("content-length", "7"), ("content-range", "x")]
    return make_record(_head(etag), fields, F, T, total, size)


def _slice(rep: Rep, index: int, size: int, *, etag: str | None = '"v1"') -> Entry:
    span = slice_of(index, size, rep.total)
    assert span is not None
    fields = [("content-range", content_range(span, rep.total))]
    return make_entry(_head(etag), fields, b"x" * span.length, F, T)


def test_the_record_holds_no_body_no_length_and_no_age() -> None:
    rep = _record(1000, 300)
    record = rep.record
    assert (record.status, record.body, record.vary) == (200, b"", ())
    assert ("content-length", "7") not in record.origin_headers
    assert (RECORD_FIELD, "1000 300") in record.origin_headers
    assert all(name != b"age" for name, _ in record.headers)
    assert rep.version == Version('"v1"', None, 1000)


@given(
    total=st.integers(0, 10**12), size=st.integers(1, 10**9), etag=st.sampled_from(['"a"', None])
)
def test_a_record_is_read_back_only_with_its_slice_size(
    total: int, size: int, etag: str | None
) -> None:
    rep = _record(total, size, etag)
    assert rep_of(rep.record, size) == rep
    assert rep_of(rep.record, size + 1) is None


def test_a_stored_negative_answer_is_no_record() -> None:
    record = _record(1000, 300).record
    negative = replace(record, status=404)
    assert rep_of(negative, 300) is None


@given(total=st.integers(1, 5000), size=st.integers(1, 700), data=st.data())
def test_a_slice_is_usable_only_as_itself_of_its_own_version(
    total: int, size: int, data: st.DataObject
) -> None:
    rep = _record(total, size)
    index = data.draw(st.integers(0, slices_in(total, size) - 1))
    entry = _slice(rep, index, size)
    assert usable_slice(entry, index, size, rep) is entry
    assert usable_slice(entry, index, size, None) is entry  # any version
    assert usable_slice(entry, index + 1, size, rep) is None
    other = _record(total, size, '"v2"')
    assert usable_slice(entry, index, size, other) is None
    longer = _record(total + size, size)  # the object grew: another version
    assert usable_slice(entry, index, size, longer) is None
    cut = replace(entry, body=entry.body[:-1])
    assert usable_slice(cut, index, size, rep) is None


def test_what_is_no_stored_slice_is_not_usable() -> None:
    rep = _record(1000, 300)
    assert usable_slice(None, 0, 300, rep) is None
    assert usable_slice(Uncacheable(until=2000.0), 0, 300, rep) is None
    assert usable_slice(rep.record, 0, 300, rep) is None  # a 200, not a slice


def test_only_the_coding_may_vary_for_a_shared_slice() -> None:
    assert sliceable(_head(vary=()))
    assert sliceable(_head(vary=("accept-encoding",)))
    assert not sliceable(_head(vary=("accept-encoding", "origin")))
    kept = shared(_head(vary=("accept-encoding",)), True)
    assert (kept.shareable, kept.vary) == (True, ())
    assert shared(_head(), False).shareable is False


@example(value="\u00b2 300", size=300)  # a digit to str.isdigit, not to int()
@given(value=st.text(max_size=40), size=st.integers(1, 10**6))
def test_any_record_field_is_read_or_refused_never_raises(value: str, size: int) -> None:
    record = replace(_record(1000, size).record, origin_headers=[(RECORD_FIELD, value)])
    rep = rep_of(record, size)
    assert rep is None or (rep.total >= 0 and value.endswith(f" {size}"))
