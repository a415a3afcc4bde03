"""The demo's adaptive stream: one encode, served as HLS and as DASH, behind a signed URL.

ffmpeg's DASH muxer writes the fMP4 segments once, with both an MPD and HLS playlists
over them (``-hls_playlist``), so the two formats share every segment. Three H.264
renditions and one AAC track, 2 s segments aligned across renditions (a keyframe
every 2 s), a few seconds long: the encode takes about as long as the MP4 clip's.

The stream sits under its own route in the embedded configuration, which needs a
native token and gives every URI of a signed playlist one (tokenized playlists). The
key is made on first generation beside the demo folder (``var/demo.key``), outside
what the folder origin serves; the demo page carries a URL signed with it for the
stream's directory, re-signed whenever ``edgeshield demo`` finds it close to expiry.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from proxy.auth.keys import KeyRing
from proxy.auth.native import sign_url

STREAM_DIR = "video/stream"
MASTER_PATH = f"{STREAM_DIR}/master.m3u8"
MPD_PATH = f"{STREAM_DIR}/manifest.mpd"
STREAM_SECONDS = 8
SEGMENT_SECONDS = 2
FPS = 25
# (width, height, video kbit/s), best first: the muxer numbers them 0, 1, 2, audio 3.
RENDITIONS: tuple[tuple[int, int, int], ...] = ((640, 360, 800), (384, 216, 350), (256, 144, 150))
STREAM_MAX_BYTES = 4 * 1024 * 1024
FFMPEG_TIMEOUT_S = 60.0

# The key id in the embedded configuration's [auth.keys], and how long the page's URL
# stays valid (re-signed when less than TOKEN_RENEW_S is left).
KEY_ID = "demo"
TOKEN_TTL_S = 30 * 86400
TOKEN_RENEW_S = 86400

# hls.js as `make vendor` leaves it in the package, and where the page loads it from.
VENDORED_HLSJS = Path(__file__).with_name("vendor") / "hls.min.js"
HLSJS_PATH = "vendor/hls.min.js"


def fixed_files(audio: bool = True) -> tuple[str, ...]:
    """The stream's files whose names do not depend on the segment count."""
    tracks = len(RENDITIONS) + (1 if audio else 0)
    return (
        MASTER_PATH,
        MPD_PATH,
        *(f"{STREAM_DIR}/media_{i}.m3u8" for i in range(tracks)),
        *(f"{STREAM_DIR}/init-{i}.m4s" for i in range(tracks)),
    )


# --------------------------------------------------------------------------- encode


def ffmpeg_command(ffmpeg: str, dest: Path, codec: str, audio: bool) -> list[str]:
    """Test pattern + beep into ``dest/manifest.mpd`` and HLS playlists beside it."""
    n = len(RENDITIONS)
    split = f"[0:v]split={n}" + "".join(f"[v{i}]" for i in range(n))
    scales = [f"[v{i}]scale={w}:{h}[s{i}]" for i, (w, h, _) in enumerate(RENDITIONS)]
    cmd = [
        ffmpeg,
        *("-hide_banner", "-nostdin", "-loglevel", "error", "-y"),
        *("-f", "lavfi", "-i", f"testsrc2=size=640x360:rate={FPS}:duration={STREAM_SECONDS}"),
        *("-f", "lavfi", "-i", f"sine=frequency=440:beep_factor=4:duration={STREAM_SECONDS}"),
        *("-filter_complex", ";".join([split, *scales])),
    ]
    for i in range(n):
        cmd += ["-map", f"[s{i}]"]
    cmd += ["-c:v", codec, "-pix_fmt", "yuv420p"]
    if codec == "libx264":
        cmd += ["-preset", "veryfast", "-profile:v", "main"]
    for i, (_, _, kbit) in enumerate(RENDITIONS):
        cmd += [f"-b:v:{i}", f"{kbit}k", f"-maxrate:v:{i}", f"{kbit * 11 // 10}k"]
        cmd += [f"-bufsize:v:{i}", f"{kbit * 2}k"]
    # A keyframe exactly every segment, in every rendition: segments line up, so a
    # player can switch between renditions at any segment boundary.
    cmd += ["-g", str(FPS * SEGMENT_SECONDS), "-keyint_min", str(FPS * SEGMENT_SECONDS)]
    cmd += ["-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})"]
    sets = "id=0,streams=v"
    if audio:
        cmd += ["-map", "1:a", "-c:a", "aac", "-b:a", "64k"]
        sets += " id=1,streams=a"
    return [
        *cmd,
        *("-map_metadata", "-1", "-fflags", "+bitexact"),
        *("-flags:v", "+bitexact", "-flags:a", "+bitexact"),
        *("-f", "dash", "-seg_duration", str(SEGMENT_SECONDS), "-adaptation_sets", sets),
        *("-use_template", "1", "-use_timeline", "0"),
        *("-init_seg_name", "init-$RepresentationID$.m4s"),
        # $Number$ without a width format: a template stays a valid URL path as is.
        *("-media_seg_name", "seg-$RepresentationID$-$Number$.m4s"),
        *("-hls_playlist", "1", "-hls_master_name", "master.m3u8"),
        str(dest / "manifest.mpd"),
    ]


class StreamEncoder:
    """Runs ffmpeg in the background into a private folder; ``files`` yields the result."""

    def __init__(self, ffmpeg: str, codec: str, audio: bool) -> None:
        self.audio = audio
        self._dir = Path(tempfile.mkdtemp(prefix="edgeshield-demo-stream-"))
        self.deadline = time.monotonic() + FFMPEG_TIMEOUT_S
        self.proc = subprocess.Popen(
            ffmpeg_command(ffmpeg, self._dir, codec, audio),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,  # -loglevel error: too little to fill the pipe
            text=True,
        )

    def files(self) -> Iterator[tuple[str, bytes]]:
        """Wait for ffmpeg, then each file as (path in the demo set, bytes), playlists
        tidied. Raises RuntimeError when ffmpeg fails, hangs or writes too much."""
        finish_ffmpeg(self.proc, self.deadline)
        paths = sorted(p for p in self._dir.iterdir() if p.is_file())
        total = sum(p.stat().st_size for p in paths)
        if total > STREAM_MAX_BYTES:
            raise RuntimeError(f"demo stream is {total} bytes, over the {STREAM_MAX_BYTES} budget")
        for path in paths:
            data = path.read_bytes()
            if path.suffix == ".m3u8":
                data = tidy_playlist(data.decode()).encode()
            yield f"{STREAM_DIR}/{path.name}", data

    def kill(self) -> None:
        self.proc.kill()
        self.proc.communicate()

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def finish_ffmpeg(proc: subprocess.Popen[str], deadline: float) -> None:
    """Wait for an ffmpeg started with ``-loglevel error`` and ``stderr=PIPE``; killed
    at ``deadline`` (monotonic). Raises RuntimeError when it hangs or fails."""
    try:
        _, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise RuntimeError(f"ffmpeg took longer than {FFMPEG_TIMEOUT_S:.0f}s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {stderr.strip()}")


def tidy_playlist(text: str) -> str:
    """ffmpeg's HLS playlists made stable and explicit: its wall-clock
    ``#EXT-X-PROGRAM-DATE-TIME`` lines dropped (the bytes, so the ETags, are the same
    on every run), and a finished media playlist marked ``#EXT-X-PLAYLIST-TYPE:VOD``."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("#EXT-X-PROGRAM-DATE-TIME")]
    if "#EXT-X-ENDLIST" in lines and "#EXT-X-PLAYLIST-TYPE:VOD" not in lines:
        at = next((i for i, ln in enumerate(lines) if ln.startswith("#EXT-X-TARGETDURATION")), 0)
        lines.insert(at + 1, "#EXT-X-PLAYLIST-TYPE:VOD")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- signing


def key_path(out: Path) -> Path:
    """The demo key beside the demo folder (var/demo -> var/demo.key), never inside it."""
    return out.with_name(out.name + ".key")


def load_or_make_key(out: Path) -> bytes:
    """The demo's signing key (base64 in its file), made on first use.

    Readable by all like the rest of the demo set (a container builds it as root and
    serves as another user): it only signs the demo stream, whose page is public anyway.
    """
    path = key_path(out)
    try:
        return base64.b64decode(path.read_text().strip(), validate=True)
    except (OSError, ValueError):
        pass
    key = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(base64.b64encode(key).decode() + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, path)
    return key


@dataclass(frozen=True)
class SignedStream:
    """The page's URLs of the stream (relative to the site root) and their expiry."""

    master: str
    mpd: str
    expires: int


def sign_stream(out: Path, now: float | None = None) -> SignedStream:
    """A query token for the whole stream directory, as an application would mint one."""
    now = time.time() if now is None else now
    keys = KeyRing({KEY_ID: load_or_make_key(out)}, KEY_ID)
    prefix = f"/{STREAM_DIR}/"
    master = sign_url(f"/{MASTER_PATH}", keys, ttl=TOKEN_TTL_S, prefix=prefix, now=now)
    mpd = sign_url(f"/{MPD_PATH}", keys, ttl=TOKEN_TTL_S, prefix=prefix, now=now)
    return SignedStream(master.lstrip("/"), mpd.lstrip("/"), int(now) + TOKEN_TTL_S)


def signature_fresh(out: Path, expires: int, now: float | None = None) -> bool:
    """Is the page's signed URL good for a while yet, under the key still on disk?"""
    now = time.time() if now is None else now
    return key_path(out).is_file() and expires - now > TOKEN_RENEW_S


def vendored_hlsjs() -> bytes | None:
    """hls.js from the package, or None when it was not vendored (no npm at install)."""
    try:
        return VENDORED_HLSJS.read_bytes()
    except OSError:
        return None
