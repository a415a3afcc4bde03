"""Tests for the demo media generator, using real pyvips and the bundled ffmpeg binary."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import imageio_ffmpeg
import pytest
import pyvips

from proxy.demo import media as demo
from proxy.demo import stream

IMAGE_SPECS = [*demo.PHOTOS, demo.LOGO]
MEDIA_FILES = [spec.path for spec in IMAGE_SPECS] + [demo.VIDEO_PATH]
# The loader libvips reports tells us the real container, independent of the file name.
EXPECTED_LOADER = {".jpg": "jpegload", ".png": "pngload", ".webp": "webpload"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """One real generation shared by the read-only tests (it takes a few seconds)."""
    out = tmp_path_factory.mktemp("demo")
    return out, demo.generate_demo(out)


@pytest.fixture
def out_dir(generated: tuple[Path, list[Path]]) -> Path:
    return generated[0]


@pytest.fixture
def private_copy(out_dir: Path, tmp_path: Path) -> Path:
    """A copy of the generated set for tests that modify or regenerate it."""
    copy = tmp_path / "demo"
    shutil.copytree(out_dir, copy)
    shutil.copy(stream.key_path(out_dir), stream.key_path(copy))  # the key signed its page
    return copy


def test_writes_every_file_and_the_manifest(generated: tuple[Path, list[Path]]) -> None:
    out, written = generated
    assert {out / rel for rel in demo.CONTENT_FILES} <= set(written)
    # Beyond the fixed names: the stream's segments, and hls.js when it is vendored.
    assert all(p.parts[-3:-1] == ("video", "stream") or p.parent.name == "vendor"
               for p in set(written) - {out / rel for rel in demo.CONTENT_FILES})  # fmt: skip
    for path in written:
        assert path.is_file() and path.stat().st_size > 0, path
    version, _, _ = (out / demo.MANIFEST_NAME).read_text().split()
    assert version == demo.GENERATOR_VERSION
    assert demo.is_up_to_date(out)
    # Atomic writes go through dot-prefixed temp siblings; none may be left behind.
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("spec", IMAGE_SPECS, ids=lambda s: s.path)
def test_image_decodes_with_expected_size_format_and_detail(
    out_dir: Path, spec: demo.ImageSpec
) -> None:
    path = out_dir / spec.path
    image = pyvips.Image.new_from_file(str(path), access="sequential")
    assert (image.width, image.height) == (spec.width, spec.height)
    assert image.get("vips-loader") == EXPECTED_LOADER[path.suffix]
    assert image.format == "uchar"
    assert image.bands == (4 if path.suffix == ".png" else 3)

    # "Photo-like": every colour band varies a lot, so resizing/compression are meaningful.
    # stats(): row 0 = all bands, row b+1 = band b; columns 0 min, 1 max, 5 std deviation.
    stats = image.stats()
    for band in range(3):
        low, high = stats(0, band + 1)[0], stats(1, band + 1)[0]
        assert high - low > 100, f"band {band} range {low}..{high}"
        assert stats(5, band + 1)[0] > 10, f"band {band} looks flat"


@pytest.mark.parametrize("spec", demo.PHOTOS, ids=lambda s: s.path)
def test_photos_have_fine_detail(out_dir: Path, spec: demo.ImageSpec) -> None:
    # A 3x3 high-pass shows pixel-level texture (grain, edges, text), not just gradients:
    # that is what makes downscaling and quality settings visibly matter.
    image = pyvips.Image.new_from_file(str(out_dir / spec.path)).colourspace("b-w")
    laplacian = pyvips.Image.new_from_array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]])
    edges = image.cast("float").conv(laplacian)
    assert edges.abs().avg() > 4.0  # a grain-free gradient scores ~0.8


def test_landscapes_are_3_by_2_and_the_large_photo_is_camera_sized() -> None:
    sizes = {spec.path: (spec.width, spec.height) for spec in demo.PHOTOS}
    for width in (640, 1280, 2048):
        w, h = sizes[f"images/landscape-{width}.jpg"]
        assert w == width and abs(w / h - 3 / 2) < 0.01
    assert sizes["images/photo-4000.jpg"] == (4000, 3000)
    w, h = sizes["images/portrait-1080.jpg"]
    assert w == 1080 and h > w


def test_logo_png_has_real_transparency(out_dir: Path) -> None:
    logo = pyvips.Image.new_from_file(str(out_dir / demo.LOGO.path))
    assert logo.hasalpha()
    alpha = logo[3]
    assert alpha.min() == 0  # transparent corners
    assert alpha.max() == 255  # opaque badge
    assert alpha(0, 0)[0] == 0 and alpha(256, 256)[0] == 255
    # Anti-aliased rim and soft shadow: partially transparent pixels exist too.
    partial = ((alpha > 0) & (alpha < 255)).avg() / 255
    assert partial > 0.001


def _decode_video(path: Path) -> str:
    """Fully decode the file with the bundled ffmpeg; return its log (stderr)."""
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    proc = subprocess.run(
        [ffmpeg, "-hide_banner", "-nostdin", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_video_is_valid_h264_aac_about_six_seconds(out_dir: Path) -> None:
    path = out_dir / demo.VIDEO_PATH
    assert 0 < path.stat().st_size < 2 * 1024 * 1024
    log = _decode_video(path)

    duration = re.search(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)", log)
    assert duration, log
    hours, minutes, seconds = duration.groups()
    total = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    assert total == pytest.approx(6.0, abs=0.25)

    video_stream = re.search(r"Stream #0:\d+.*?: Video: (.*)", log)
    assert video_stream, log
    assert video_stream.group(1).startswith("h264")
    assert re.search(r"\b640x360\b", video_stream.group(1))
    assert re.search(r"Stream #0:\d+.*?: Audio: aac", log), log
    # Every frame decoded: 6 s at 25 fps.
    frames = re.findall(r"frame=\s*(\d+)", log)
    assert frames and int(frames[-1]) == pytest.approx(150, abs=2)


def test_video_is_faststart(out_dir: Path) -> None:
    # +faststart moves the moov atom before the media data so playback starts early.
    data = (out_dir / demo.VIDEO_PATH).read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.title = ""
        self.text: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        self.text.append(data)

    def urls(self) -> list[str]:
        return [
            value
            for _, attrs in self.tags
            for name, value in attrs.items()
            if name in ("href", "src") and value is not None
        ]


@pytest.fixture
def page(out_dir: Path) -> _PageParser:
    parser = _PageParser()
    parser.feed((out_dir / demo.INDEX_PATH).read_text(encoding="utf-8"))
    return parser


def test_index_links_and_shows_every_media_file(page: _PageParser, out_dir: Path) -> None:
    assert page.title.strip() == "edgeshield demo"
    urls = set(page.urls())
    for rel in [*MEDIA_FILES, demo.HELLO_PATH]:
        assert rel in urls, f"{rel} not linked"

    # Tiles are variants in both URL syntaxes, never the full-size originals.
    img_srcs = {attrs["src"]: attrs for tag, attrs in page.tags if tag == "img"}
    expected = {demo.imgix_url(s.path) for s in IMAGE_SPECS}
    expected |= {demo.cloudflare_url(s.path) for s in IMAGE_SPECS}
    assert set(img_srcs) == expected
    for attrs in img_srcs.values():
        assert (attrs.get("width") or "").isdigit()
        assert attrs.get("alt")

    videos = [attrs for tag, attrs in page.tags if tag == "video"]
    assert len(videos) == 2 and all("controls" in v for v in videos)  # the clip, the stream
    sources = [attrs for tag, attrs in page.tags if tag == "source"]
    assert [s["src"] for s in sources] == [demo.VIDEO_PATH]

    # Everything the page points at inside the demo folder actually exists.
    for url in urls - {"metrics", "healthz", "_admin"}:
        path = urlsplit(url).path  # a variant's source: the path from "images/" on
        assert (out_dir / path[path.find("images/") :]).is_file() or (out_dir / path).is_file(), url


def test_index_is_self_contained_with_relative_links(page: _PageParser) -> None:
    for url in page.urls():
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("/"), url
    # No external assets: styling is inline, the one script file is the vendored player.
    assert not [a for tag, a in page.tags if tag == "link" and a.get("rel") == "stylesheet"]
    scripts = [a.get("src") for tag, a in page.tags if tag == "script" and a.get("src")]
    assert scripts in ([], ["vendor/hls.min.js"])
    assert any(tag == "style" for tag, _ in page.tags)


def test_index_explains_the_cache_demo(page: _PageParser) -> None:
    text = " ".join(" ".join(page.text).split())
    for needle in ("edgeshield cache", "local folder", "curl -I", "Cache-Status", "Age"):
        assert needle in text, needle
    assert {"metrics", "healthz", "_admin"} <= set(page.urls())


def test_hello_txt_is_small_plain_text(out_dir: Path) -> None:
    data = (out_dir / demo.HELLO_PATH).read_bytes()
    assert data.startswith(b"hello from edgeshield\n")
    assert len(data) < 1024
    data.decode("ascii")


def test_second_call_is_a_noop(private_copy: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in private_copy.rglob("*") if p.is_file()}
    assert demo.generate_demo(private_copy) == []
    after = {p: p.stat().st_mtime_ns for p in private_copy.rglob("*") if p.is_file()}
    assert after == before


def test_force_rewrites_identical_bytes(
    private_copy: Path, out_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for rel in demo.CONTENT_FILES:
        (private_copy / rel).write_bytes(b"stale")
    with caplog.at_level(logging.INFO, logger="edgeshield.demo"):
        written = demo.generate_demo(private_copy, force=True)
    assert {private_copy / rel for rel in demo.CONTENT_FILES} <= set(written)
    # Deterministic output (seeded noise, bitexact ffmpeg) keeps ETags stable across runs;
    # only the page's signed stream URL is minted anew.
    for rel in demo.CONTENT_FILES:
        if rel != demo.INDEX_PATH:
            assert (private_copy / rel).read_bytes() == (out_dir / rel).read_bytes(), rel
    logged = [r.getMessage() for r in caplog.records if r.name == "edgeshield.demo"]
    assert any(demo.VIDEO_PATH in message for message in logged)


def test_missing_file_or_old_version_means_out_of_date(private_copy: Path) -> None:
    assert demo.is_up_to_date(private_copy)
    manifest = private_copy / demo.MANIFEST_NAME
    current = manifest.read_text()
    manifest.write_text("0" + current[current.index("\n") :])
    assert not demo.is_up_to_date(private_copy)
    manifest.write_text(current)
    assert demo.is_up_to_date(private_copy)

    (private_copy / demo.VIDEO_PATH).unlink()
    assert not demo.is_up_to_date(private_copy)
    written = demo.generate_demo(private_copy)
    assert private_copy / demo.VIDEO_PATH in written
    assert demo.is_up_to_date(private_copy)


def test_empty_or_missing_dir_is_out_of_date(tmp_path: Path) -> None:
    assert not demo.is_up_to_date(tmp_path / "nope")
    assert not demo.is_up_to_date(tmp_path)


def test_atomic_write_replaces_and_cleans_up(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "file.txt"
    demo._atomic_write_bytes(dest, b"one")
    demo._atomic_write_bytes(dest, b"two")
    assert dest.read_bytes() == b"two"
    assert oct(dest.stat().st_mode & 0o777) == oct(0o644)

    # A failure mid-write leaves the old file intact and no temp file behind.
    with pytest.raises(RuntimeError), demo._temp_sibling(dest) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")
    assert dest.read_bytes() == b"two"
    assert sorted(p.name for p in dest.parent.iterdir()) == ["file.txt"]
