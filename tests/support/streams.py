"""Real HLS and DASH output from ffmpeg (the binary imageio-ffmpeg ships), for tests.

Each function writes one stream into a new folder under `root` and returns the path of its
playlist or manifest: a test source clip (160x90, 10 fps, 2 s segments), H.264.

    hls_vod      -hls_playlist_type vod: PLAYLIST-TYPE:VOD and ENDLIST
    hls_live     omit_endlist, a 3-segment window: what a live encoder has written
    hls_master   a master playlist over two fMP4 renditions (each VOD)
    dash_static  an MPD with type="static"
    dash_dynamic an MPD with type="dynamic" and minimumUpdatePeriod, copied while
                 ffmpeg streams in real time (it rewrites the MPD as static when it ends)
    live_hls_encoder  (a context manager) ffmpeg writing a live HLS folder in real time
                 (1 s segments, a 5-segment window) for as long as the block runs
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import imageio_ffmpeg

_SOURCE = ["-f", "lavfi", "-i", "testsrc=size=160x90:rate=10"]
_H264 = ["-c:v", "libx264", "-g", "20", "-preset", "ultrafast"]


def _ffmpeg(*args: str, cwd: Path) -> None:
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    subprocess.run([exe, "-loglevel", "error", "-y", *args], cwd=cwd, check=True, timeout=120)


def _folder(root: Path, name: str) -> Path:
    out = root / name
    out.mkdir(parents=True, exist_ok=True)
    return out


def hls_vod(root: Path, seconds: int = 8) -> Path:
    out = _folder(root, "hls_vod")
    _ffmpeg(*_SOURCE, "-t", str(seconds), *_H264, "-f", "hls", "-hls_time", "2",
            "-hls_playlist_type", "vod", "index.m3u8", cwd=out)  # fmt: skip
    return out / "index.m3u8"


def hls_live(root: Path, seconds: int = 8) -> Path:
    out = _folder(root, "hls_live")
    _ffmpeg(*_SOURCE, "-t", str(seconds), *_H264, "-f", "hls", "-hls_time", "2",
            "-hls_list_size", "3", "-hls_flags", "omit_endlist", "index.m3u8", cwd=out)  # fmt: skip
    return out / "index.m3u8"


def hls_master(root: Path, seconds: int = 4) -> Path:
    out = _folder(root, "hls_master")
    _ffmpeg(*_SOURCE, "-t", str(seconds), "-map", "0:v", "-map", "0:v", *_H264, "-f", "hls",
            "-hls_time", "2", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
            "-master_pl_name", "master.m3u8", "-var_stream_map", "v:0 v:1", "v%v.m3u8",
            cwd=out)  # fmt: skip
    return out / "master.m3u8"


def dash_static(root: Path, seconds: int = 4) -> Path:
    out = _folder(root, "dash_static")
    _ffmpeg(*_SOURCE, "-t", str(seconds), *_H264, "-f", "dash", "-seg_duration", "2",
            "manifest.mpd", cwd=out)  # fmt: skip
    return out / "manifest.mpd"


def dash_dynamic(root: Path, hang_guard: float = 60.0) -> Path:
    out = _folder(root, "dash_dynamic")
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    live = out / "live.mpd"
    proc = subprocess.Popen(
        [exe, "-loglevel", "error", "-y", "-re", *_SOURCE, "-t", "120", *_H264, "-f", "dash",
         "-seg_duration", "1", "-window_size", "3", "-update_period", "4", "live.mpd"],
        cwd=out,
    )  # fmt: skip
    copy = out / "dynamic.mpd"
    try:
        deadline = time.monotonic() + hang_guard
        while time.monotonic() < deadline:
            text = live.read_text() if live.exists() else ""
            if 'type="dynamic"' in text and text.rstrip().endswith("</MPD>"):
                copy.write_text(text)
                return copy
            time.sleep(0.1)
        raise TimeoutError("ffmpeg wrote no dynamic MPD")
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def live_hls_encoder(folder: Path, hang_guard: float = 45.0) -> Iterator[Path]:
    """ffmpeg encoding a test source in real time into `folder`/index.m3u8 (1 s segments,
    10 fps, a 5-segment window, at most 30 s); yields the playlist once it lists three
    segments, and stops ffmpeg when the block ends."""
    folder.mkdir(parents=True, exist_ok=True)
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    playlist = folder / "index.m3u8"
    proc = subprocess.Popen(
        [exe, "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=10",
         "-t", "30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-f", "hls",
         "-hls_time", "1", "-hls_list_size", "5", "-hls_flags", "temp_file", str(playlist)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + hang_guard
        while not (playlist.exists() and playlist.read_text().count("#EXTINF") >= 3):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "ffmpeg wrote no live playlist"
            time.sleep(0.1)
        yield playlist
    finally:
        proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
