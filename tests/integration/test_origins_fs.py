"""FsOrigin against a real directory tree (symlinks, sparse files, traversal attempts,
hidden names, conditional requests, directory redirects)."""

from __future__ import annotations

import asyncio
import logging
import os
from email.utils import formatdate
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.schema import FsOrigin as FsOriginSettings
from routing.origins import build_origin
from routing.origins import fs as fs_module
from routing.origins.base import BadOriginPath, OriginBodyError, OriginRequest
from routing.origins.fs import CHUNK_SIZE, FsOrigin, FsResponse, content_type_for

SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"
HIDDEN = b"HIDDEN-DOTFILE-CONTENT"
BIG = 50 * 1024 * 1024
# Half a second past a whole second: Last-Modified (and its comparisons) use the floor.
COND_MTIME_NS = 1_700_000_000_500_000_000
COND_BODY = b"conditional\n"
COND_ETAG = f'"{len(COND_BODY):x}-{COND_MTIME_NS:x}"'
COND_LM = "Tue, 14 Nov 2023 22:13:20 GMT"
COND_LM_EARLIER = "Tue, 14 Nov 2023 22:13:19 GMT"
COND_LM_LATER = "Tue, 14 Nov 2023 22:13:21 GMT"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("fs")
    root = base / "root"
    outside = base / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_bytes(SECRET)
    (outside / "index.html").write_bytes(SECRET)
    (root / "a.txt").write_bytes(b"hello fs\n")
    (root / "sp ace.txt").write_bytes(b"space")
    (root / "\u00e9t\u00e9.txt").write_bytes(b"summer")
    for name in (
        *("v.m3u8", "v.mpd", "s.m4s", "s.ts", "i.avif", "i.webp", "i.JPG", "x.unknownext"),
        *("t.txt", "p.html", "p.HTM", "s.css", "s.js", "d.json", "c.vtt", "i.svg", "x.xml"),
    ):
        (root / name).write_bytes(b"x")
    # Hidden names: never served (except below a leading /.well-known/).
    (root / ".env").write_bytes(HIDDEN)
    (root / ".git").mkdir()
    (root / ".git" / "config").write_bytes(HIDDEN)
    (root / ".git" / "index.html").write_bytes(HIDDEN)
    (root / ".hiddendir").mkdir()
    (root / ".hiddendir" / "x.txt").write_bytes(HIDDEN)
    (root / ".hiddendir" / "index.html").write_bytes(HIDDEN)
    (root / "...").write_bytes(HIDDEN)
    (root / ".well-known").mkdir()
    (root / ".well-known" / "security.txt").write_bytes(b"Contact: mailto:sec@example.com\n")
    (root / ".well-known" / ".hidden").write_bytes(HIDDEN)
    (root / ".well-known" / "sub").mkdir()
    (root / ".well-known" / "sub" / "index.html").write_bytes(b"wk index")
    (root / "dir").mkdir()
    (root / "dir" / "index.html").write_bytes(b"<p>index</p>")
    (root / "dir" / "b.txt").write_bytes(b"bbb")
    (root / "dir" / ".htpasswd").write_bytes(HIDDEN)
    (root / "dir" / ".well-known").mkdir()
    (root / "dir" / ".well-known" / "x").write_bytes(HIDDEN)
    (root / "emptydir").mkdir()
    (root / "sub dir").mkdir()
    (root / "sub dir" / "index.html").write_bytes(b"sub index")
    (root / "\u00e9t\u00e9").mkdir()
    (root / "\u00e9t\u00e9" / "index.html").write_bytes(b"summer index")
    (root / "dir_escidx").mkdir()
    os.symlink(outside / "index.html", root / "dir_escidx" / "index.html")
    (root / "cond.txt").write_bytes(COND_BODY)
    os.utime(root / "cond.txt", ns=(COND_MTIME_NS, COND_MTIME_NS))
    (root / "medium.bin").write_bytes(os.urandom(300 * 1024))
    with open(root / "big.bin", "wb") as f:  # sparse: 50 MiB on paper, ~nothing on disk
        f.truncate(BIG)
    os.symlink(outside / "secret.txt", root / "link_out")
    os.symlink(outside, root / "dirlink_out")
    os.symlink("../outside/secret.txt", root / "rel_link_out")
    os.symlink(root / "a.txt", root / "alias.txt")
    os.symlink("dir", root / "dir_alias")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.mkfifo(root / "fifo")
    return root


@pytest.fixture
def fs(tree: Path) -> FsOrigin:
    return FsOrigin("media", tree)


async def read_all(resp: FsResponse) -> list[bytes]:
    return [chunk async for chunk in resp.body()]


async def get(
    origin: FsOrigin,
    path: str,
    method: str = "GET",
    headers: list[tuple[str, str]] | None = None,
    query: str = "",
) -> tuple[FsResponse, bytes]:
    resp = await origin.fetch(OriginRequest(method, path, query=query, headers=headers or []))
    return resp, b"".join(await read_all(resp))


async def test_serves_a_file_with_validators(fs: FsOrigin, tree: Path) -> None:
    resp, body = await get(fs, "/a.txt")
    st_ = (tree / "a.txt").stat()
    h = dict(resp.headers)
    assert resp.status == 200 and body == b"hello fs\n"
    assert resp.content_length == 9 and h["content-length"] == "9"
    assert h["content-type"] == "text/plain; charset=utf-8"
    assert h["last-modified"] == formatdate(st_.st_mtime, usegmt=True)
    assert h["etag"] == f'"{st_.st_size:x}-{st_.st_mtime_ns:x}"'
    assert all(k == k.lower() for k, _ in resp.headers)


async def test_etag_follows_mtime(fs: FsOrigin, tree: Path) -> None:
    path = tree / "dir" / "b.txt"
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    first = dict((await get(fs, "/dir/b.txt"))[0].headers)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_100_123_456_789))
    second = dict((await get(fs, "/dir/b.txt"))[0].headers)
    assert first["etag"] != second["etag"]
    assert second["etag"] == f'"3-{1_700_000_100_123_456_789:x}"'
    assert second["last-modified"] == "Tue, 14 Nov 2023 22:15:00 GMT"


async def test_head_has_headers_no_body(fs: FsOrigin) -> None:
    resp, body = await get(fs, "/medium.bin", "HEAD")
    assert resp.status == 200 and body == b""
    assert resp.content_length == 300 * 1024
    assert dict(resp.headers)["content-length"] == str(300 * 1024)


async def test_one_range_is_answered_more_are_ignored(fs: FsOrigin, tree: Path) -> None:
    data = (tree / "medium.bin").read_bytes()
    size = len(data)

    async def get(*fields: tuple[str, str]) -> tuple[int, dict[str, str], bytes]:
        resp = await fs.fetch(OriginRequest("GET", "/medium.bin", headers=list(fields)))
        return resp.status, dict(resp.headers), b"".join(await read_all(resp))

    status, headers, body = await get(("range", "bytes=100000-100009"))
    assert status == 206 and body == data[100_000:100_010]
    assert headers["content-range"] == f"bytes 100000-100009/{size}"
    assert headers["content-length"] == "10" and headers["accept-ranges"] == "bytes"
    status, headers, body = await get(("range", f"bytes={size}-"))
    assert status == 416 and headers["content-range"] == f"bytes */{size}" and body == b""
    status, _, body = await get(("range", "bytes=0-0,5-5"))
    assert status == 200 and body == data
    status, _, body = await get(("range", "bytes=0-9"), ("if-range", '"other"'))
    assert status == 200 and body == data


@pytest.mark.parametrize(
    ("name", "ctype"),
    [
        ("v.m3u8", "application/vnd.apple.mpegurl"),
        ("v.mpd", "application/dash+xml"),
        ("s.m4s", "video/iso.segment"),
        ("s.ts", "video/mp2t"),
        ("i.avif", "image/avif"),
        ("i.webp", "image/webp"),
        ("i.JPG", "image/jpeg"),
        ("x.unknownext", "application/octet-stream"),
        ("i.svg", "image/svg+xml"),
        ("x.xml", "application/xml"),
        ("t.txt", "text/plain; charset=utf-8"),
        ("p.html", "text/html; charset=utf-8"),
        ("p.HTM", "text/html; charset=utf-8"),
        ("s.css", "text/css; charset=utf-8"),
        ("s.js", "text/javascript; charset=utf-8"),
        ("d.json", "application/json; charset=utf-8"),
        ("c.vtt", "text/vtt; charset=utf-8"),
    ],
)
async def test_content_types(fs: FsOrigin, name: str, ctype: str) -> None:
    resp, _ = await get(fs, "/" + name)
    assert dict(resp.headers)["content-type"] == ctype


@pytest.mark.parametrize(
    ("ctype", "expected"),
    [
        ("application/javascript", "application/javascript; charset=utf-8"),
        ("application/json", "application/json; charset=utf-8"),
        ("text/markdown", "text/markdown; charset=utf-8"),
        ("application/vnd.apple.mpegurl", "application/vnd.apple.mpegurl"),
        ("image/svg+xml", "image/svg+xml"),
        ("application/octet-stream", "application/octet-stream"),
    ],
)
def test_charset_only_on_text_types(
    monkeypatch: pytest.MonkeyPatch, ctype: str, expected: str
) -> None:
    monkeypatch.setitem(fs_module._TYPES, ".probe", ctype)
    assert content_type_for("f.PROBE") == expected


@pytest.mark.parametrize("path", ["/dir/", "/dir_alias/", "//dir/", "/dir/./"])
async def test_directory_index(fs: FsOrigin, path: str) -> None:
    resp, body = await get(fs, path)
    assert resp.status == 200 and body == b"<p>index</p>"
    assert dict(resp.headers)["content-type"] == "text/html; charset=utf-8"


@pytest.mark.parametrize(
    ("path", "query", "location"),
    [
        ("/dir", "", "/dir/"),
        ("/dir", "a=1&b=2", "/dir/?a=1&b=2"),
        ("/dir", "q=%20x&r=/p?s", "/dir/?q=%20x&r=/p?s"),
        ("/dir", "q=a b#c\r\n", "/dir/?q=a%20b%23c%0D%0A"),
        ("/dir_alias", "", "/dir_alias/"),
        ("//dir", "", "/dir/"),  # never "//dir/": that would be a redirect to host "dir"
        ("/dir/.", "", "/dir/"),
        ("/dir%2F", "", "/dir/"),
        ("/sub%20dir", "", "/sub%20dir/"),
        ("/%C3%A9t%C3%A9", "", "/%C3%A9t%C3%A9/"),
        ("/.well-known/sub", "", "/.well-known/sub/"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_directory_without_slash_redirects(
    fs: FsOrigin, method: str, path: str, query: str, location: str
) -> None:
    resp, body = await get(fs, path, method, query=query)
    assert resp.status == 301 and body == b""
    assert resp.content_length == 0
    assert resp.headers == [
        ("location", location),
        ("content-length", "0"),
        ("cache-control", "max-age=3600"),
    ]
    # Following the redirect serves the index.
    target = location.split("?", 1)[0]
    followed, followed_body = await get(fs, target)
    assert followed.status == 200 and b"index" in followed_body


@pytest.mark.parametrize(
    "path", ["/missing.txt", "/emptydir/", "/", "/dir/missing/x", "/a.txt/x", "/fifo", "/loop1"]
)
async def test_not_found(fs: FsOrigin, path: str) -> None:
    resp, body = await get(fs, path)
    assert resp.status == 404 and body == b"not found\n"
    assert dict(resp.headers)["content-type"].startswith("text/plain")
    head, head_body = await get(fs, path, "HEAD")
    assert head.status == 404 and head_body == b""


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/sp%20ace.txt", b"space"),
        ("/%C3%A9t%C3%A9.txt", b"summer"),
        ("/alias.txt", b"hello fs\n"),
        ("/dir_alias/b.txt", b"bbb"),
        ("//dir/./b.txt", b"bbb"),
    ],
)
async def test_encoded_names_and_inside_symlinks(fs: FsOrigin, path: str, body: bytes) -> None:
    resp, got = await get(fs, path)
    assert resp.status == 200 and got == body


@pytest.mark.parametrize(
    "path",
    [
        "/../x",
        "/../outside/secret.txt",
        "/%2e%2e/x",
        "/a/%2E%2E/%2e%2e/x",
        "/dir/%2e%2e/%2e%2e/outside/secret.txt",
        "/%00",
        "/a.txt%00.jpg",
        "/a%5c..%5cb",
        "/a\\b",
        "/.%2e/x",
        "/%2E./x",
        "/.env/../a.txt",  # malformed wins over hidden
        "/.git/%2e%2e/a.txt",
    ],
)
async def test_traversal_is_refused(fs: FsOrigin, path: str) -> None:
    with pytest.raises(BadOriginPath) as info:
        await fs.fetch(OriginRequest("GET", path))
    assert info.value.status == 400 and info.value.origin == "media"
    assert len(info.value.reason) < 40


async def assert_like_missing(
    fs: FsOrigin, path: str, headers: list[tuple[str, str]] | None = None
) -> None:
    """The answer for `path` is indistinguishable from the one for a missing file."""
    for method in ("GET", "HEAD"):
        missing, missing_body = await get(fs, "/no-such-file", method)
        resp, body = await get(fs, path, method, headers)
        assert (resp.status, resp.headers, resp.content_length, body) == (
            missing.status,
            missing.headers,
            missing.content_length,
            missing_body,
        )
        assert resp.status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/link_out",
        "/rel_link_out",
        "/dirlink_out/secret.txt",
        "/dirlink_out/",
        "/dirlink_out",
        "/dir_escidx/",  # a directory whose index.html links out
        "/dir_escidx",  # ... gets no redirect either
        "/dir_escidx/index.html",
    ],
)
async def test_symlink_escape_is_404_and_quiet(
    fs: FsOrigin, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await assert_like_missing(fs, path)
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    assert any(
        r.name == "edgeshield.origins.fs" and "leaves the root" in r.getMessage()
        for r in caplog.records
    )


async def test_root_behind_a_symlink(tree: Path, tmp_path: Path) -> None:
    link = tmp_path / "root_link"
    os.symlink(tree, link)
    _, body = await get(FsOrigin("m", link), "/a.txt")
    assert body == b"hello fs\n"
    resp, body = await get(FsOrigin("m", link), "/link_out")
    assert resp.status == 404 and SECRET not in body


@pytest.mark.parametrize(
    "path",
    [
        "/.env",
        "/%2eenv",
        "/%2Eenv",
        "/./.env",
        "//.env",
        "/.env/",
        "/.git/config",
        "/%2egit/config",
        "/.git/",
        "/.git",  # a hidden directory with an index: no redirect either
        "/.hiddendir/x.txt",
        "/.hiddendir",
        "/.hiddendir/",
        "/...",
        "/dir/.htpasswd",
        "/dir/%2ehtpasswd",
        "/dir_alias/.htpasswd",
        "/dir/.well-known/x",  # the exception holds only for the leading segment
        "/.well-known/.hidden",
        "/.well-known/%2ehidden",
        "/.missing",
    ],
)
async def test_hidden_names_are_404(fs: FsOrigin, path: str) -> None:
    await assert_like_missing(fs, path)
    # Preconditions are not evaluated for something that is not served.
    await assert_like_missing(fs, path, [("if-none-match", "*")])


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/.well-known/security.txt", b"Contact: mailto:sec@example.com\n"),
        ("/%2ewell-known/security.txt", b"Contact: mailto:sec@example.com\n"),
        ("//.well-known/./security.txt", b"Contact: mailto:sec@example.com\n"),
        ("/.well-known/sub/", b"wk index"),
    ],
)
async def test_well_known_is_served(fs: FsOrigin, path: str, body: bytes) -> None:
    resp, got = await get(fs, path)
    assert resp.status == 200 and got == body


def _h(*pairs: tuple[str, str]) -> list[tuple[str, str]]:
    return list(pairs)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        (_h(), 200),
        (_h(("if-none-match", COND_ETAG)), 304),
        (_h(("if-none-match", "W/" + COND_ETAG)), 304),  # weak comparison
        (_h(("if-none-match", f'"nope", {COND_ETAG}')), 304),
        (_h(("if-none-match", '"nope"'), ("if-none-match", COND_ETAG)), 304),  # repeated
        (_h(("if-none-match", "*")), 304),
        (_h(("if-none-match", '"nope"')), 200),
        (_h(("if-none-match", COND_ETAG[:-2] + '"')), 200),
        (_h(("if-modified-since", COND_LM)), 304),  # Last-Modified is floored
        (_h(("if-modified-since", COND_LM_LATER)), 304),
        (_h(("if-modified-since", COND_LM_EARLIER)), 200),
        (_h(("if-modified-since", "yesterday")), 200),
        (_h(("if-none-match", '"nope"'), ("if-modified-since", COND_LM)), 200),  # INM wins
        (_h(("if-none-match", COND_ETAG), ("if-modified-since", COND_LM_EARLIER)), 304),
        (_h(("if-match", COND_ETAG)), 200),
        (_h(("if-match", "*")), 200),
        (_h(("if-match", '"nope"')), 412),
        (_h(("if-match", "W/" + COND_ETAG)), 412),  # strong comparison
        (_h(("if-unmodified-since", COND_LM)), 200),
        (_h(("if-unmodified-since", COND_LM_EARLIER)), 412),
        (_h(("if-match", COND_ETAG), ("if-unmodified-since", COND_LM_EARLIER)), 200),
        (_h(("if-match", COND_ETAG), ("if-none-match", COND_ETAG)), 304),
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_conditional_requests(
    fs: FsOrigin, method: str, headers: list[tuple[str, str]], status: int
) -> None:
    resp, body = await get(fs, "/cond.txt", method, headers=headers)
    assert resp.status == status
    if status == 200:
        assert body == (COND_BODY if method == "GET" else b"")
        assert dict(resp.headers)["etag"] == COND_ETAG
        assert dict(resp.headers)["last-modified"] == COND_LM
    elif status == 304:
        assert body == b"" and resp.content_length is None
        assert resp.headers == [("last-modified", COND_LM), ("etag", COND_ETAG)]
    else:
        assert body == (b"precondition failed\n" if method == "GET" else b"")
        assert "etag" not in dict(resp.headers)


@pytest.mark.parametrize("path", ["/a.txt", "/medium.bin", "/big.bin", "/dir/", "/dir_alias/"])
@pytest.mark.parametrize("validator", ["etag", "last-modified"])
async def test_revalidation_with_the_200s_validators(
    fs: FsOrigin, path: str, validator: str
) -> None:
    """What the cache does with a stale entry: send its validator back, get a 304, and the
    file is not opened for reading (no descriptor held, nothing to close)."""
    first, _ = await get(fs, path, "HEAD")
    fields = dict(first.headers)
    field = "if-none-match" if validator == "etag" else "if-modified-since"
    proc = psutil.Process()
    before = proc.num_fds()
    resp = await fs.fetch(OriginRequest("GET", path, headers=[(field, fields[validator])]))
    assert proc.num_fds() == before
    assert resp.status == 304
    assert resp.headers == [("last-modified", fields["last-modified"]), ("etag", fields["etag"])]
    assert await read_all(resp) == []


@pytest.mark.parametrize(
    ("path", "status"),
    [("/missing.txt", 404), ("/dir", 301), ("/emptydir/", 404), ("/link_out", 404)],
)
async def test_preconditions_ignored_when_not_serving_a_file(
    fs: FsOrigin, path: str, status: int
) -> None:
    for header in (("if-match", '"nope"'), ("if-none-match", "*"), ("if-match", "*")):
        resp, _ = await get(fs, path, headers=[header])
        assert resp.status == status


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
async def test_other_methods_are_405(fs: FsOrigin, method: str) -> None:
    resp, _ = await get(fs, "/a.txt", method)
    assert resp.status == 405
    assert dict(resp.headers)["allow"] == "GET, HEAD"


async def test_large_file_streams_in_bounded_chunks(fs: FsOrigin) -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0)
            ticks += 1

    tick = asyncio.create_task(ticker())
    resp = await fs.fetch(OriginRequest("GET", "/big.bin"))
    assert resp.content_length == BIG
    sizes = []
    ticks_at_chunk = []
    async for chunk in resp.body():
        assert chunk == bytes(len(chunk))  # sparse: all zeros
        sizes.append(len(chunk))
        ticks_at_chunk.append(ticks)
    done.set()
    await tick
    assert sum(sizes) == BIG
    assert max(sizes) <= CHUNK_SIZE
    assert len(sizes) == BIG // CHUNK_SIZE
    # The loop kept running while the file was read: another task ran between the
    # reads (an ordering; a read that blocked the loop would let it run only at the end).
    assert ticks_at_chunk[-1] > ticks_at_chunk[0]


async def test_file_that_shrinks_while_streaming(fs: FsOrigin, tree: Path) -> None:
    path = tree / "shrinking.bin"
    path.write_bytes(b"z" * (2 * 1024 * 1024))
    try:
        resp = await fs.fetch(OriginRequest("GET", "/shrinking.bin"))
        chunks = resp.body()
        first = await anext(chunks)
        assert len(first) == CHUNK_SIZE
        os.truncate(path, 300 * 1024)
        with pytest.raises(OriginBodyError, match="shrank"):
            async for _ in chunks:
                pass
    finally:
        path.unlink()


async def test_aclose_before_reading_releases_the_file(fs: FsOrigin) -> None:
    proc = psutil.Process()
    before = proc.num_fds()
    responses = [await fs.fetch(OriginRequest("GET", "/big.bin")) for _ in range(5)]
    assert proc.num_fds() >= before + 5
    for resp in responses:
        await resp.aclose()
        await resp.aclose()  # twice is fine
    assert proc.num_fds() == before
    assert await read_all(responses[0]) == []


async def test_build_origin_makes_an_fs_origin(tree: Path) -> None:
    origin = build_origin("demo", FsOriginSettings(kind="fs", root=tree))
    assert isinstance(origin, FsOrigin) and origin.name == "demo"
    resp = await origin.fetch(OriginRequest("GET", "/a.txt"))
    assert resp.status == 200
    await resp.aclose()
    await origin.aclose()


_SEGMENTS = st.sampled_from(
    [
        "..",
        ".",
        "",
        "%2e%2e",
        "%2E%2e",
        ".%2e",
        "%2e.",
        "%00",
        "%5c",
        "\\",
        "a.txt",
        "dir",
        "dir_alias",
        "link_out",
        "rel_link_out",
        "dirlink_out",
        "secret.txt",
        "outside",
        "index.html",
        "alias.txt",
        "%2f",
        "%",
        "%zz",
        "%ff",
        "loop1",
        "fifo",
        "x" * 300,
        ".env",
        "%2eenv",
        ".git",
        "config",
        ".hiddendir",
        ".htpasswd",
        ".well-known",
        "%2Ewell-known",
        ".hidden",
        "security.txt",
        "...",
        "dir_escidx",
        "sub%20dir",
    ]
)
_PATHS = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="./%2eE5cC0\\af", max_size=40),
    st.lists(st.one_of(_SEGMENTS, st.text(max_size=8)), max_size=8).map(
        lambda parts: "/" + "/".join(parts)
    ),
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(path=_PATHS)
def test_arbitrary_paths_never_escape(tree: Path, path: str) -> None:
    origin = FsOrigin("media", tree)

    async def attempt() -> None:
        try:
            resp = await origin.fetch(OriginRequest("GET", path))
        except BadOriginPath:
            return
        body = b"".join([c async for c in resp.body()])
        assert resp.status in (200, 301, 404)
        assert SECRET not in body and HIDDEN not in body
        if resp.status == 301:
            location = dict(resp.headers)["location"]
            assert location.startswith("/") and not location.startswith("//")
            assert location.endswith("/") and body == b""
            assert all(0x21 <= ord(c) <= 0x7E for c in location)

    asyncio.run(attempt())
