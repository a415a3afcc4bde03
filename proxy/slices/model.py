"""The slice model: a representation's version, its record and its slice entries, and
how they are kept under their keys (`proxy/cache/keys.py`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from proxy.cache.collapse import Fetch, Head
from proxy.cache.entry import Entry
from proxy.cache.keys import record_key, slice_key
from proxy.fetch import HIT_FOR_MISS_SECONDS, STREAM_WINDOW, Timing, make_entry
from proxy.http.freshness import Freshness
from proxy.http.ranges import slice_content_range, slices_in
from proxy.serve.state import AppState

# In the record's origin fields: "<complete length> <slice size>".
RECORD_FIELD = "x-edgeshield-slices"
NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Version:
    """What makes two slices parts of the same representation."""

    etag: str | None
    last_modified: float | None
    total: int


@dataclass(frozen=True, slots=True)
class Rep:
    """The representation a response serves: its record and version."""

    record: Entry
    version: Version

    @property
    def total(self) -> int:
        return self.version.total


def rep_of(record: Entry, slice_bytes: int) -> Rep | None:
    """The record's representation; None if it is not a record cut with this slice size
    (the route's slice size changed: its slices no longer line up)."""
    if record.status != 200:
        return None
    for name, value in record.origin_headers:
        if name == RECORD_FIELD:
            total, _, size = value.partition(" ")
            if size != str(slice_bytes) or not (total.isascii() and total.isdigit()):
                return None
            return Rep(record, Version(record.etag, record.last_modified, int(total)))
    return None


def slice_shape(entry: Entry, index: int, slice_bytes: int) -> int | None:
    """The complete length a stored slice belongs to, if it is slice `index` whole."""
    if entry.status != 206:
        return None
    value = next((v for k, v in entry.origin_headers if k == "content-range"), None)
    shape = slice_content_range(value, index, slice_bytes)
    if shape is None or shape[0] != len(entry.body):
        return None
    return shape[1]


def usable_slice(found: object, index: int, slice_bytes: int, rep: Rep | None) -> Entry | None:
    """`found` if it is slice `index` of `rep`'s version (of any version when rep is None)."""
    if type(found) is not Entry:
        return None
    total = slice_shape(found, index, slice_bytes)
    if total is None:
        return None
    if rep is not None and Version(found.etag, found.last_modified, total) != rep.version:
        return None
    return found


class SliceFetch(Fetch):
    """One slice request's answer. The head's status says what the stream holds: 206 = the
    slice's bytes; 200 = the whole representation from byte 0 (the origin ignored Range);
    anything else = that answer, to relay. `rep` is the version a 200/206 belongs to."""

    def __init__(self, key: str) -> None:
        super().__init__(key, window=STREAM_WINDOW)
        self.rep: Rep | None = None
        self.total: int | None = None  # the complete length a 416 gave


def fields_without(headers: list[tuple[str, str]], *names: str) -> list[tuple[str, str]]:
    return [h for h in headers if h[0] not in names]


def shared(head: Head, storable: bool) -> Head:
    """The head a slice answer is kept and served with: kept without Vary, since slices
    are shared only when nothing but the coding varies (see `sliceable`)."""
    return replace(head, shareable=storable, vary=())


def sliceable(head: Head) -> bool:
    # Slice requests ask for the identity coding, so Vary: Accept-Encoding does not split
    # them; any other Vary would need a variant index per slice: not shared then.
    return head.shareable and set(head.vary) <= {"accept-encoding"}


def make_record(
    head: Head,
    fields: list[tuple[str, str]],
    freshness: Freshness,
    t: Timing,
    total: int,
    size: int,
) -> Rep:
    """The record of the version `head` describes: no body, the complete length."""
    origin_headers = [*fields_without(fields, "content-length"), (RECORD_FIELD, f"{total} {size}")]
    record = make_entry(replace(head, status=200, vary=()), origin_headers, b"", freshness, t)
    return Rep(record, Version(head.etag, head.last_modified, total))


def drop_object(state: AppState, key: str, rep: Rep, slice_bytes: int) -> None:
    """Every slice of `rep`'s version, and its record, leave every tier."""
    cache = state.cache
    for index in range(slices_in(rep.total, slice_bytes)):
        cache.invalidate(slice_key(key, index))
    cache.invalidate(record_key(key))


def keep_record(
    state: AppState, key: str, rep: Rep, known: Rep | None, size: int, *, storable: bool
) -> None:
    """The record after an answer of version `rep`: a changed object loses its old slices;
    a new or stale record is (re)written."""
    if known is not None and known.version != rep.version:
        state.log.debug("slices: %r changed, dropping its slices", key)
        drop_object(state, key, known, size)
    if not storable:
        state.cache.mark_uncacheable(record_key(key), time.time() + HIT_FOR_MISS_SECONDS)
        return
    if known is None or known.version != rep.version or time.time() >= known.record.fresh_until:
        store_record(state, key, rep.record)


def store_record(state: AppState, key: str, record: Entry) -> None:
    # Linked to the object's own key, so invalidating or purging the URL drops the record;
    # the next response then confirms its version with the origin before any slice of
    # the old one is used.
    state.cache.link(key, record_key(key))
    state.cache.store(record_key(key), record, NO_HEADERS)
