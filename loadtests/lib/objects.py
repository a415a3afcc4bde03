"""The object set a scenario requests: the manifest `loadtests/make_objects.py` writes.

The manifest is JSON:

    {"format": "edgeshield-loadtest-objects", "version": 1,
     "root": "/abs/path/of/the/served/folder", "seed": 1,
     "objects": [{"path": "/images/album-01/img-0001.jpg", "type": "image",
                  "content_type": "image/jpeg", "bytes": 48123, "width": 1280,
                  "height": 853, "tags": ["album-01"]},
                 {"path": "/video/clip-01.mp4", "type": "video",
                  "content_type": "video/mp4", "bytes": 1523441, "width": 960,
                  "height": 540, "duration": 6.0, "tags": ["video"]}]}

A bare JSON list of such objects is accepted too. `root` is optional: when it names a
folder on this machine, the video scenario compares the bytes it receives with the files.
`--objects demo` uses the demo media set of `make run` instead (sizes unknown).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_FORMAT = "edgeshield-loadtest-objects"
MANIFEST_VERSION = 1
DEMO = "demo"


class ManifestError(Exception):
    """The manifest is missing or malformed; the message says what to do."""


@dataclass(frozen=True)
class MediaObject:
    path: str  # URL path on the deployment, with a leading "/"
    type: str  # "image" or "video"
    content_type: str = ""
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    tags: tuple[str, ...] = ()

    @property
    def album(self) -> str:
        """The folder the object lives in, with a trailing slash (a purge prefix)."""
        return self.path.rsplit("/", 1)[0] + "/"


@dataclass(frozen=True)
class ObjectSet:
    images: tuple[MediaObject, ...]
    videos: tuple[MediaObject, ...]
    root: Path | None = None  # the served folder, when it exists on this machine
    source: str = ""

    def local_file(self, obj: MediaObject) -> Path | None:
        if self.root is None:
            return None
        candidate = self.root / obj.path.lstrip("/")
        return candidate if candidate.is_file() else None

    @property
    def albums(self) -> tuple[str, ...]:
        return tuple(sorted({obj.album for obj in self.images}))

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(sorted({tag for obj in (*self.images, *self.videos) for tag in obj.tags}))


def load_objects(spec: str) -> ObjectSet:
    """The object set named by `--objects`: a manifest path, or "demo"."""
    if spec == DEMO:
        return demo_objects()
    path = Path(spec)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(
            f"no object manifest at {path}: generate one with "
            "`.venv/bin/python loadtests/make_objects.py` (see loadtests/README.md), "
            "pass --objects PATH (or EDGESHIELD_LOADTEST_OBJECTS), "
            "or --objects demo for the `make run` demo set"
        ) from None
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read object manifest {path}: {exc}") from None
    return parse_manifest(data, source=str(path))


def parse_manifest(data: Any, *, source: str = "") -> ObjectSet:
    if isinstance(data, list):
        raw_objects, root = data, None
    elif isinstance(data, dict) and isinstance(data.get("objects"), list):
        if data.get("format", MANIFEST_FORMAT) != MANIFEST_FORMAT:
            raise ManifestError(f"{source}: not an edgeshield load-test manifest")
        raw_objects, root = data["objects"], data.get("root")
    else:
        raise ManifestError(f"{source}: expected a list of objects or {{'objects': [...]}}")
    objects = [_object(item, source) for item in raw_objects]
    images = tuple(o for o in objects if o.type == "image")
    videos = tuple(o for o in objects if o.type == "video")
    if not images and not videos:
        raise ManifestError(f"{source}: the manifest lists no images and no videos")
    root_path = Path(root) if isinstance(root, str) and Path(root).is_dir() else None
    return ObjectSet(images, videos, root_path, source)


def _object(item: Any, source: str) -> MediaObject:
    if not isinstance(item, dict) or not isinstance(item.get("path"), str):
        raise ManifestError(f"{source}: every object needs a string 'path' (got {item!r})")
    path = item["path"] if item["path"].startswith("/") else "/" + item["path"]
    kind = item.get("type")
    if kind not in ("image", "video"):
        raise ManifestError(f"{source}: {path}: type must be 'image' or 'video'")

    def num(name: str) -> Any:
        value = item.get(name)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    size, width, height, duration = num("bytes"), num("width"), num("height"), num("duration")
    return MediaObject(
        path=path,
        type=kind,
        content_type=str(item.get("content_type", "")),
        bytes=int(size) if size is not None else None,
        width=int(width) if width is not None else None,
        height=int(height) if height is not None else None,
        duration=float(duration) if duration is not None else None,
        tags=tuple(str(t) for t in item.get("tags", ()) if isinstance(t, str)),
    )


def demo_objects() -> ObjectSet:
    """The `make run` demo set (proxy/demo/media.py), for a quick run against `make run`."""
    from proxy.demo import media as demo  # the edgeshield package: only needed here

    images = tuple(
        MediaObject(
            path="/" + spec.path,
            type="image",
            content_type=_content_type(spec.path),
            width=spec.width,
            height=spec.height,
        )
        for spec in (*demo.PHOTOS, demo.LOGO)
    )
    video = MediaObject(
        path="/" + demo.VIDEO_PATH,
        type="video",
        content_type="video/mp4",
        width=demo.VIDEO_SIZE[0],
        height=demo.VIDEO_SIZE[1],
        duration=float(demo.VIDEO_SECONDS),
    )
    root = Path("var/demo")
    return ObjectSet(images, (video,), root if root.is_dir() else None, DEMO)


def _content_type(path: str) -> str:
    ext = path.rsplit(".", 1)[-1].lower()
    return {
        "jpg": "image/jpeg",
        "jpeg": "image/jpeg",
        "png": "image/png",
        "webp": "image/webp",
        "avif": "image/avif",
        "gif": "image/gif",
    }.get(ext, "application/octet-stream")


def popularity_order(objects: Sequence[MediaObject]) -> list[MediaObject]:
    """A fixed, name-independent ranking: the most popular object is not simply the first
    one generated (so popularity is spread over albums and sizes), and every process of a
    distributed run agrees on it."""
    return sorted(objects, key=lambda o: hashlib.blake2b(o.path.encode(), digest_size=8).digest())


@dataclass
class Zipf:
    """Picks items with probability proportional to 1 / rank**s (rank 1 = most popular).

    s around 1 is what web object popularity measures to (Breslau et al., 1999): a few
    objects get most requests and a long tail is requested rarely, which is what makes
    cache hit ratios below 100 %."""

    items: Sequence[MediaObject]
    s: float = 1.0
    _cumulative: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.items:
            raise ValueError("Zipf over an empty set")
        total, cumulative = 0.0, []
        for rank in range(1, len(self.items) + 1):
            total += 1.0 / rank**self.s
            cumulative.append(total)
        self._cumulative = cumulative

    def pick(self, rng: random.Random) -> MediaObject:
        x = rng.random() * self._cumulative[-1]
        index = min(bisect.bisect_left(self._cumulative, x), len(self.items) - 1)
        return self.items[index]
