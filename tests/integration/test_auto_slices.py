"""Large objects without configuration: a real edgeshield with no slice_bytes anywhere in
front of the scriptable origin; what the origin is asked for (ranges, bytes) when clients
seek, resume and check If-Range, and what ffmpeg reading an MP4 with its index at the end
costs. Objects are kept small by lowering the memory tier's object limit."""

from __future__ import annotations

import base64
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import imageio_ffmpeg
import pytest

from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy

KIB = 1024
MIB = 1024 * KIB
LIMIT = 256 * KIB  # memory_max_object_bytes
SLICE = 64 * KIB  # auto_slice_bytes
RANGES = {"accept-ranges": "bytes", "cache-control": "max-age=600", "etag": '"v1"'}
_ORIGIN_BYTES = re.compile(r'^edgeshield_origin_bytes_total\{origin="\w+"\} (\S+)$', re.M)


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    settings = {"memory_max_object_bytes": LIMIT, "auto_slice_bytes": SLICE}
    with running_proxy(proxy_config(origin_server.url, cache_settings=settings)) as server:
        yield server


@pytest.fixture
def client(proxy: ProxyServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=proxy.url, timeout=60) as c:
        yield c


def origin_bytes(client: httpx.Client) -> float:
    m = _ORIGIN_BYTES.search(client.get("/metrics").text)
    return float(m[1]) if m else 0.0


def _large(origin: OriginServer, size: int = 4 * MIB, **headers: str) -> str:
    path = f"/{uuid.uuid4().hex}/movie.bin"
    origin.script(path, size=size, honor_range=True, headers={**RANGES, **headers})
    return path


def test_a_seek_on_a_cold_large_object_reads_no_whole_object(
    origin: OriginServer, client: httpx.Client
) -> None:
    size = 4 * MIB
    path = _large(origin, size)
    before = origin_bytes(client)
    r = client.get(path, headers={"range": f"bytes={size - 100}-"})
    assert r.status_code == 206 and r.content == gen_bytes(size - 100, 100)
    assert r.headers["content-range"] == f"bytes {size - 100}-{size - 1}/{size}"
    # The miss's GET learnt the size from its head and stopped; the answer came from the
    # last slice. (The bound is what a stopped stream may have read ahead, not the object.)
    assert origin_bytes(client) - before < SLICE + 1 * MIB
    last = size // SLICE - 1
    assert origin.stats()["ranges"][path] == [f"bytes={last * SLICE}-{(last + 1) * SLICE - 1}"]
    # Later seeks go straight to slices: one ranged request each, no whole GET.
    mid = client.get(path, headers={"range": "bytes=1000000-1000099"})
    assert mid.status_code == 206 and mid.content == gen_bytes(1_000_000, 100)
    assert origin.requests(path) == 3
    again = client.get(path, headers={"range": "bytes=1000000-1000099"})
    assert again.headers["cache-status"].startswith("edgeshield; hit")
    assert origin.requests(path) == 3


def test_a_full_get_then_resume_and_if_range(origin: OriginServer, client: httpx.Client) -> None:
    size = 1 * MIB + 12345
    path = _large(origin, size)
    whole = client.get(path)
    assert whole.status_code == 200 and whole.content == gen_bytes(0, size)
    assert whole.headers["content-length"] == str(size)
    fetched = origin.requests(path)
    # curl -C -: the rest from where it stopped, from the stored slices
    resume = client.get(path, headers={"range": "bytes=500000-"})
    assert resume.status_code == 206 and resume.content == gen_bytes(500_000, size - 500_000)
    same = client.get(path, headers={"range": "bytes=10-19", "if-range": '"v1"'})
    assert same.status_code == 206 and same.content == gen_bytes(10, 10)
    changed = client.get(path, headers={"range": "bytes=10-19", "if-range": '"v0"'})
    assert changed.status_code == 200 and len(changed.content) == size
    assert origin.requests(path) == fetched  # all of it from the slices


def test_head_of_a_large_object(origin: OriginServer, client: httpx.Client) -> None:
    size = 2 * MIB
    path = _large(origin, size)
    head = client.head(path)
    assert head.status_code == 200 and head.headers["content-length"] == str(size)
    assert head.headers["accept-ranges"] == "bytes"


def test_small_objects_stay_whole(origin: OriginServer, client: httpx.Client) -> None:
    path = _large(origin, 100 * KIB)
    r = client.get(path, headers={"range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == gen_bytes(10, 10)
    assert path not in origin.stats()["ranges"]  # fetched whole, answered here
    assert client.get(path).headers["cache-status"].startswith("edgeshield; hit")


def test_an_origin_that_does_not_say_accept_ranges_is_read_whole(
    origin: OriginServer, client: httpx.Client
) -> None:
    size = 1 * MIB
    path = f"/{uuid.uuid4().hex}/plain.bin"
    origin.script(path, size=size, honor_range=True, headers={"cache-control": "max-age=60"})
    r = client.get(path, headers={"range": f"bytes={size - 10}-"})
    assert r.status_code == 206 and r.content == gen_bytes(size - 10, 10)
    assert path not in origin.stats()["ranges"]


def test_a_route_with_its_own_slice_size_keeps_it(origin_server: OriginServer) -> None:
    config = proxy_config(
        origin_server.url,
        cache={"slice_bytes": 128 * KIB},
        cache_settings={"memory_max_object_bytes": LIMIT, "auto_slice_bytes": SLICE},
    )
    with (
        running_proxy(config) as proxy,
        httpx.Client(base_url=proxy.url, timeout=60) as client,
    ):
        origin_server.reset()
        path = _large(origin_server, 1 * MIB)
        assert client.get(path, headers={"range": "bytes=0-9"}).status_code == 206
        assert origin_server.stats()["ranges"][path] == [f"bytes=0-{128 * KIB - 1}"]


def test_auto_slicing_off(origin_server: OriginServer) -> None:
    settings = {"memory_max_object_bytes": LIMIT, "auto_slice_bytes": 0}
    with (
        running_proxy(proxy_config(origin_server.url, cache_settings=settings)) as proxy,
        httpx.Client(base_url=proxy.url, timeout=60) as client,
    ):
        origin_server.reset()
        size = 1 * MIB
        path = _large(origin_server, size)
        r = client.get(path, headers={"range": f"bytes={size - 10}-"})
        assert r.status_code == 206 and r.content == gen_bytes(size - 10, 10)
        assert path not in origin_server.stats()["ranges"]


@pytest.fixture(scope="module")
def moov_at_end(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """An MP4 as ffmpeg writes it without -movflags faststart: ftyp, mdat, then moov;
    lossless noise, so it is some 36 MB: far more than the socket buffers between the
    processes can hold, so reading it from byte 0 would show in the origin's bytes."""
    out = tmp_path_factory.mktemp("mp4") / "clip.mp4"
    noise = "nullsrc=s=640x360:r=25,geq=lum='random(1)*255':cb=128:cr=128"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", noise, "-t", "4", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0",
         str(out)],
        check=True, timeout=120,
    )  # fmt: skip
    data = out.read_bytes()
    assert data.rfind(b"moov") > data.find(b"mdat") > 0 and len(data) > 16 * MIB
    return data


def test_ffmpeg_reads_an_mp4_with_moov_at_the_end(
    origin: OriginServer, proxy: ProxyServer, client: httpx.Client, moov_at_end: bytes
) -> None:
    path = f"/{uuid.uuid4().hex}/clip.mp4"
    origin.script(
        path,
        body_base64=base64.b64encode(moov_at_end).decode(),
        honor_range=True,
        headers={**RANGES, "content-type": "video/mp4"},
    )
    before = origin_bytes(client)
    # ffmpeg opens it, reads the box headers at the start, seeks to the index at the end
    # and decodes the first frame: what a player does before it shows anything.
    probe = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-i", proxy.url + path,
         "-frames:v", "1", "-f", "null", "-"],
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr.decode(errors="replace")
    ranges = origin.stats()["ranges"][path]
    tail = len(moov_at_end) // SLICE
    assert f"bytes={tail * SLICE}-{(tail + 1) * SLICE - 1}" in ranges  # the index's slice
    read = origin_bytes(client) - before
    print(f"ffmpeg: origin bytes {read:.0f} of {len(moov_at_end)}, {len(ranges)} ranges")
    assert read < len(moov_at_end) / 2  # the seek to the index did not read up to it


def test_serve_origin_with_no_configuration(origin_server: OriginServer) -> None:
    """`serve --origin URL`: the defaults (objects over 16 MiB, 1 MiB slices)."""
    size = 24 * MIB
    with (
        running_proxy(None, args=["--origin", origin_server.url]) as proxy,
        httpx.Client(base_url=proxy.url, timeout=60) as client,
    ):
        origin_server.reset()
        path = _large(origin_server, size)
        before = origin_bytes(client)
        r = client.get(path, headers={"range": f"bytes={size - 100}-"})
        assert r.status_code == 206 and r.content == gen_bytes(size - 100, 100)
        assert origin_bytes(client) - before < 4 * MIB  # a slice, and the stopped GET's head
        assert origin_server.stats()["ranges"][path] == [f"bytes={23 * MIB}-{24 * MIB - 1}"]


def test_serve_a_folder_with_a_sparse_file(tmp_path: Path) -> None:
    """`serve --origin FOLDER`: the fs origin answers ranges, so a seek near the end of a
    160 MB file (sparse: no disk used) reads one slice of it."""
    size = 160 * 1000 * 1000
    media = tmp_path / "media"
    media.mkdir()
    with (media / "big.mp4").open("wb") as fh:
        fh.truncate(size)
        fh.seek(size - 5)
        fh.write(b"tail!")
    with (
        running_proxy(None, args=["--origin", str(media)]) as proxy,
        httpx.Client(base_url=proxy.url, timeout=60) as client,
    ):
        r = client.get("/big.mp4", headers={"range": f"bytes={size - 5}-"})
        assert r.status_code == 206 and r.content == b"tail!"
        first = origin_bytes(client)
        assert first < 4 * MIB  # a slice, and what the stopped GET read before it stopped
        again = client.get("/big.mp4", headers={"range": "bytes=-5"})
        assert again.headers["cache-status"].startswith("edgeshield; hit")
        resume = client.get("/big.mp4", headers={"range": f"bytes={size - 3 * MIB}-"})
        assert resume.status_code == 206 and resume.content.endswith(b"tail!")
        assert origin_bytes(client) - first <= 3 * MIB  # the slices it did not have yet
