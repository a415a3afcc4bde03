"""FsOrigin against a real directory tree (symlinks, sparse files, traversal attempts)."""

from __future__ import annotations

import asyncio
import os
from email.utils import formatdate
from pathlib import Path

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.schema import FsOrigin as FsOriginSettings
from routing.origins import build_origin
from routing.origins.base import BadOriginPath, OriginBodyError, OriginRequest
from routing.origins.fs import CHUNK_SIZE, FsOrigin, FsResponse

SECRET = b"TOP-SECRET-OUTSIDE-THE-ROOT"
BIG = 50 * 1024 * 1024


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
    for name in ("v.m3u8", "v.mpd", "s.m4s", "s.ts", "i.avif", "i.webp", "i.JPG", "x.unknownext"):
        (root / name).write_bytes(b"x")
    (root / "dir").mkdir()
    (root / "dir" / "index.html").write_bytes(b"<p>index</p>")
    (root / "dir" / "b.txt").write_bytes(b"bbb")
    (root / "emptydir").mkdir()
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


async def get(origin: FsOrigin, path: str, method: str = "GET") -> tuple[FsResponse, bytes]:
    resp = await origin.fetch(OriginRequest(method, path))
    return resp, b"".join(await read_all(resp))


async def test_serves_a_file_with_validators(fs: FsOrigin, tree: Path) -> None:
    resp, body = await get(fs, "/a.txt")
    st_ = (tree / "a.txt").stat()
    h = dict(resp.headers)
    assert resp.status == 200 and body == b"hello fs\n"
    assert resp.content_length == 9 and h["content-length"] == "9"
    assert h["content-type"] == "text/plain"
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


async def test_range_header_is_not_handled_here(fs: FsOrigin, tree: Path) -> None:
    req = OriginRequest("GET", "/medium.bin", headers=[("range", "bytes=0-9")])
    resp = await fs.fetch(req)
    body = b"".join(await read_all(resp))
    assert resp.status == 200 and body == (tree / "medium.bin").read_bytes()


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
    ],
)
async def test_content_types(fs: FsOrigin, name: str, ctype: str) -> None:
    resp, _ = await get(fs, "/" + name)
    assert dict(resp.headers)["content-type"] == ctype


@pytest.mark.parametrize("path", ["/dir", "/dir/", "/dir_alias/"])
async def test_directory_index(fs: FsOrigin, path: str) -> None:
    resp, body = await get(fs, path)
    assert resp.status == 200 and body == b"<p>index</p>"
    assert dict(resp.headers)["content-type"] == "text/html"


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
        "/link_out",
        "/rel_link_out",
        "/dirlink_out/secret.txt",
        "/dirlink_out/",
    ],
)
async def test_traversal_is_refused(fs: FsOrigin, path: str) -> None:
    with pytest.raises(BadOriginPath) as info:
        await fs.fetch(OriginRequest("GET", path))
    assert info.value.status == 400 and info.value.origin == "media"
    assert len(info.value.reason) < 40


async def test_root_behind_a_symlink(tree: Path, tmp_path: Path) -> None:
    link = tmp_path / "root_link"
    os.symlink(tree, link)
    _, body = await get(FsOrigin("m", link), "/a.txt")
    assert body == b"hello fs\n"
    with pytest.raises(BadOriginPath):
        await FsOrigin("m", link).fetch(OriginRequest("GET", "/link_out"))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
async def test_other_methods_are_405(fs: FsOrigin, method: str) -> None:
    resp, _ = await get(fs, "/a.txt", method)
    assert resp.status == 405
    assert dict(resp.headers)["allow"] == "GET, HEAD"


async def test_large_file_streams_in_bounded_chunks(fs: FsOrigin) -> None:
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = loop.time()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    resp = await fs.fetch(OriginRequest("GET", "/big.bin"))
    assert resp.content_length == BIG
    sizes = []
    async for chunk in resp.body():
        assert chunk == bytes(len(chunk))  # sparse: all zeros
        sizes.append(len(chunk))
    done.set()
    await tick
    assert sum(sizes) == BIG
    assert max(sizes) <= CHUNK_SIZE
    assert len(sizes) == BIG // CHUNK_SIZE
    assert max(gaps) < 0.5  # the loop kept running while the file was read


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
        assert resp.status in (200, 404)
        assert SECRET not in body

    asyncio.run(attempt())
