"""`choose_answer`, the one decision over a representation: its table, and, for any request,
the answer deliver_entry sends and the first byte it reads are the ones it chose (the
slice step reads its first slice by that choice before the head goes out)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.cache.entry import Entry
from proxy.deliver import Choice, InMemory, choose_answer, deliver_entry
from proxy.http.dates import format_http_date
from proxy.http.freshness import Freshness
from tests.support.asgi import Sink

NOW = 1_700_000_000.0
ETAG = '"v1"'
MODIFIED = NOW - 100
SIZE = 1000


def make_entry(size: int = SIZE, *, status: int = 200) -> Entry:
    return Entry(
        status=status,
        headers=[(b"content-type", b"video/mp4"), (b"etag", ETAG.encode())],
        origin_headers=[("content-type", "video/mp4"), ("etag", ETAG)],
        body=bytes(size),
        etag=ETAG,
        last_modified=MODIFIED,
        content_type="video/mp4",
        response_time=NOW,
        freshness=Freshness(True, "", 3600.0, 0.0, 0.0, 0.0, False, False),
    )


def choose(
    method: str, headers: dict[str, str], size: int | None = SIZE, status: int = 200
) -> Choice:
    return choose_answer(method, headers, status, ETAG, MODIFIED, size, date=NOW)


@pytest.mark.parametrize(
    ("method", "headers", "status", "first"),
    [
        ("GET", {}, 200, 0),
        ("HEAD", {}, 200, None),
        ("GET", {"if-none-match": ETAG}, 304, None),
        ("GET", {"if-match": '"other"'}, 412, None),
        ("GET", {"if-modified-since": format_http_date(MODIFIED)}, 304, None),
        ("GET", {"range": "bytes=10-19"}, 206, 10),
        ("HEAD", {"range": "bytes=10-19"}, 206, None),
        ("GET", {"range": "bytes=500-599,10-19"}, 206, 10),  # parts in ascending order
        ("GET", {"range": "bytes=-100"}, 206, SIZE - 100),
        ("GET", {"range": f"bytes={SIZE}-"}, 416, None),
        ("GET", {"range": "bytes=10-19", "if-range": '"other"'}, 200, 0),
        ("GET", {"range": "bytes=10-19", "if-range": ETAG}, 206, 10),
        ("GET", {"range": "items=0-5"}, 200, 0),
    ],
)
def test_the_table(method: str, headers: dict[str, str], status: int, first: int | None) -> None:
    choice = choose(method, headers)
    assert (choice.status or 200, choice.first) == (status, first)
    assert bool(choice.ranges) == (status == 206)


def test_only_a_200_answers_ranges_and_preconditions() -> None:
    choice = choose("GET", {"range": "bytes=0-9", "if-match": '"other"'}, status=404)
    assert (choice.status, choice.ranges, choice.first) == (None, [], 0)


@pytest.mark.parametrize("status", [404, 412, 416])
async def test_a_stored_answer_of_any_other_status_goes_out_as_stored(status: int) -> None:
    """An origin's 412 or 416 kept with its freshness is its own answer, not ours."""
    entry = make_entry(10, status=status)
    sink = Sink()
    sent = await deliver_entry(sink, "GET", {"range": "bytes=0-1", "if-match": '"x"'}, entry, [])
    assert sent == (status, 10)
    assert sink.status == status and sink.body == entry.body


def test_an_unknown_length_ignores_range_but_not_preconditions() -> None:
    assert choose("GET", {"range": "bytes=0-9"}, size=None).status is None
    assert choose("GET", {"if-none-match": ETAG}, size=None).status == 304


def test_an_empty_representation_sends_no_byte() -> None:
    assert choose("GET", {}, size=0).first is None
    assert choose("GET", {"range": "bytes=-5"}, size=0).status is None  # RFC 9110 14.2


class Watched(InMemory):
    """An in-memory body that notes where each read starts."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.starts: list[int] = []

    async def pieces(self, start: int, end: int) -> AsyncIterator[bytes | memoryview]:
        self.starts.append(start)
        async for piece in super().pieces(start, end):
            yield piece


DATES = st.sampled_from(
    [format_http_date(MODIFIED - 10), format_http_date(MODIFIED), format_http_date(NOW + 10)]
)
TAGS = st.sampled_from([ETAG, '"other"', "*", f"W/{ETAG}"])
SPECS = st.one_of(
    st.tuples(st.integers(0, SIZE + 20), st.integers(0, SIZE + 20)).map(
        lambda ab: f"{min(ab)}-{max(ab)}"
    ),
    st.integers(0, SIZE + 20).map(lambda n: f"{n}-"),
    st.integers(0, SIZE + 20).map(lambda n: f"-{n}"),
    st.sampled_from(["x", "5-2", ""]),
)
REQUESTS = st.fixed_dictionaries(
    {},
    optional={
        "range": st.lists(SPECS, min_size=1, max_size=3).map(lambda s: "bytes=" + ",".join(s)),
        "if-range": st.one_of(TAGS, DATES),
        "if-none-match": TAGS,
        "if-match": TAGS,
        "if-modified-since": DATES,
        "if-unmodified-since": DATES,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD"]),
    headers=REQUESTS,
    size=st.sampled_from([0, 1, SIZE]),
)
async def test_deliver_sends_what_was_chosen(
    method: str, headers: dict[str, str], size: int
) -> None:
    entry = make_entry(size)
    body = Watched(entry.body)
    sink = Sink()
    status, _ = await deliver_entry(sink, method, headers, entry, [], body)
    choice = choose_answer(method, headers, 200, ETAG, MODIFIED, size, date=NOW)
    assert status == sink.status == (choice.status or 200)
    reads = [start for start in body.starts if start < size]
    assert (reads[0] if reads else None) == choice.first
