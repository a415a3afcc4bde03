"""proxy/archive/manifest.py: the mod_zip manifest parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.archive.manifest import BadManifest, Item, parse_manifest


def test_lines_become_items() -> None:
    body = b"1a2b3c4d 100 /files/a%20b.jpg a b.jpg\r\n\n- 0 /x?v=1 dir/x.txt\n"
    assert parse_manifest(body, 10) == [
        Item(0x1A2B3C4D, 100, "/files/a%20b.jpg", "", b"a b.jpg"),
        Item(None, 0, "/x", "v=1", b"dir/x.txt"),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"- 1 http://evil.example/x x", "location must be a path on this host"),
        (b"- 1 //evil.example/x x", "location must be a path on this host"),
        (b"- 1 /x ../x", "'..' segment"),
        (b"- 1 /x a/../../x", "'..' segment"),
        (b"- 1 /x /etc/passwd", "absolute name"),
        (b"- 1 /x C:/x", "absolute name"),
        (b"- 1 /x a\\..\\x", "backslash"),
        (b"- 1 /x a\x00b", "control character"),
        (b"- 1 /x a//b", "empty"),
        (b"zz 1 /x x", "bad crc32"),
        (b"- -1 /x x", "bad size"),
        (b"- 99999999999999999999 /x x", "bad size"),
        (b"- 1 /x", "expected"),
        (b"- 1 /x \xff", "not UTF-8"),
    ],
)
def test_refused(line: bytes, reason: str) -> None:
    with pytest.raises(BadManifest, match=reason):
        parse_manifest(line, 10)


def test_limits() -> None:
    with pytest.raises(BadManifest, match="more than 2 entries"):
        parse_manifest(b"- 1 /a a\n- 1 /b b\n- 1 /c c\n", 2)
    with pytest.raises(BadManifest, match="twice"):
        parse_manifest(b"- 1 /a a\n- 1 /b a\n", 5)
    with pytest.raises(BadManifest, match="no entries"):
        parse_manifest(b"\n\n", 5)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_refuse_cleanly(body: bytes) -> None:
    try:
        items = parse_manifest(body, 50)
    except BadManifest as exc:
        assert exc.reason
        return
    for item in items:
        assert item.path.startswith("/") and not item.path.startswith("//")
        assert not item.name.startswith(b"/") and b".." not in item.name.split(b"/")


NAMES = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=20,
).filter(lambda s: s not in (".", "..") and not (len(s) > 1 and s[1] == ":"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.none() | st.integers(0, 0xFFFFFFFF), st.integers(0, 1 << 40), NAMES),
        min_size=1,
        max_size=10,
        unique_by=lambda t: t[2],
    )
)
def test_written_manifests_round_trip(rows) -> None:
    lines = [
        f"{'-' if crc is None else format(crc, '08x')} {size} /f/{i} {name}"
        for i, (crc, size, name) in enumerate(rows)
    ]
    items = parse_manifest("\n".join(lines).encode(), 10)
    assert [(i.crc, i.size, i.name.decode()) for i in items] == rows
