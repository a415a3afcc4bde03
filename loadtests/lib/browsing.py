"""What the scenarios' users do: browse an image gallery, watch progressive video.

Both are abstract Locust users; the locustfiles subclass them (and set `scenario`, the
name their requests are counted under in the edgeshield tables). Every response is
checked, and a response that breaks HTTP or image semantics is a Locust failure with a
message saying what was wrong, counted in the "checks" table too.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import gevent
import gevent.pool
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from loadtests.lib.objects import MediaObject, ObjectSet, Zipf, popularity_order
from loadtests.lib.options import Options
from loadtests.lib.report import RunStats, log, run_stats

# --------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class Browser:
    """A browser as an image server sees it: the Accept header of its <img> requests."""

    name: str
    weight: float  # rough share of page views
    accept: str
    user_agent: str

    @property
    def decodes(self) -> frozenset[str]:
        """Media types this client can show: the image types its Accept names, plus the
        formats every browser decodes. (`image/*` does not count: edgeshield only picks
        AVIF or WebP for a client that names them, docs/images.md.)"""
        named = {part.split(";")[0].strip() for part in self.accept.split(",")}
        return frozenset(
            {"image/jpeg", "image/png", "image/gif"}
            | {t for t in named if t.startswith("image/") and t != "image/*"}
        )


# Accept strings as these browsers send them for <img> (docs/images.md has the table
# edgeshield's negotiation is tested against).
BROWSERS = (
    Browser(
        "chrome",
        0.64,
        "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
    ),
    Browser(
        "safari-17",
        0.19,
        "image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,"
        "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    ),
    Browser(
        "firefox",
        0.08,
        "image/avif,image/webp,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    ),
    Browser(
        "safari-14",
        0.04,
        "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/14.1.2 Safari/605.1.15",
    ),
    Browser(
        "safari-13",
        0.03,
        "image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_6) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/13.1.2 Safari/605.1.15",
    ),
    Browser("curl", 0.02, "*/*", "curl/8.5.0"),
)


@dataclass(frozen=True)
class Device:
    """Screen density and the CSS widths a responsive gallery asks for on it. Widths come
    from a few breakpoints, as real sites use, so variants are shared between users."""

    name: str
    weight: float
    dprs: tuple[tuple[float, float], ...]  # (device pixel ratio, share)
    thumb_widths: tuple[int, ...]  # square grid thumbnails
    detail_box: tuple[tuple[int, int], ...]  # the photo view fits in (width, height)


DEVICES = (
    Device("phone", 0.55, ((2.0, 0.35), (3.0, 0.65)), (160, 180, 200), ((390, 700), (430, 800))),
    Device("tablet", 0.10, ((2.0, 1.0),), (200, 240), ((768, 900), (820, 1000))),
    Device(
        "desktop",
        0.35,
        ((1.0, 0.55), (1.5, 0.15), (2.0, 0.30)),
        (240, 320),
        ((960, 720), (1280, 800)),
    ),
)
P = TypeVar("P", Browser, Device)
PAGE_SIZE = 12
# The transform pool's queue was full: edgeshield's back-pressure (503 + Retry-After),
# reported under this name and not as a failure, so real errors stand apart from it.
BACK_PRESSURE = "image back-pressure (503)"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)$")


def image_url(
    path: str,
    style: str,
    *,
    width: int,
    dpr: float,
    height: int | None = None,
    crop: bool = False,
) -> str:
    """The same transform in either syntax; both parse into the same canonical options,
    so both syntaxes share one cached variant (docs/images.md)."""
    d = f"{dpr:g}"
    if style == "cloudflare":
        opts = [f"width={width}"]
        if height:
            opts.append(f"height={height}")
        opts.append("fit=cover" if crop else "fit=scale-down")
        opts += [f"dpr={d}", "format=auto"]
        return f"/cdn-cgi/image/{','.join(opts)}{path}"
    query = f"w={width}" + (f"&h={height}" if height else "")
    # imgix's fit=max is Cloudflare's scale-down; crop is cover.
    query += "&fit=crop" if crop else "&fit=max"
    return f"{path}?{query}&dpr={d}&auto=format"


def _only(profiles: Sequence[P], names: tuple[str, ...], option: str) -> Sequence[P]:
    if not names:
        return profiles
    chosen = [p for p in profiles if p.name in names]
    if len(chosen) != len(names):
        known = ", ".join(p.name for p in profiles)
        raise ValueError(f"{option} {','.join(names)}: unknown name (known: {known})")
    return chosen


def _header(response: Any, name: str) -> str:
    headers = getattr(response, "headers", None)
    value = headers.get(name) if headers else None
    if isinstance(value, list):
        return ", ".join(value)
    return value or ""


@events.init.add_listener
def _check_profiles(environment: Environment, **_: Any) -> None:
    """Unknown --browsers/--devices names stop the run before any load."""
    opts = Options.from_parsed(environment.parsed_options)
    try:
        _only(BROWSERS, opts.browsers, "--browsers")
        _only(DEVICES, opts.devices, "--devices")
    except ValueError as exc:
        log.error("%s", exc)
        raise SystemExit(2) from None


# --------------------------------------------------------------------------- users


class EdgeshieldUser(FastHttpUser):
    """Shared set-up: options, objects, a random generator, the scenario name."""

    abstract = True
    scenario = "-"
    # Fail a request stuck for longer than this (an origin outage must show as errors,
    # not as users waiting forever).
    network_timeout = 30.0
    connection_timeout = 10.0
    concurrency = 10

    def context(self) -> dict[str, Any]:
        return {"scenario": self.scenario}

    def on_start(self) -> None:
        self.stats: RunStats = run_stats(self.environment)
        self.opts: Options = self.stats.options
        self.objects: ObjectSet = self.stats.load_objects()
        seed = self.opts.seed
        # With --seed every user gets its own reproducible sequence.
        self.rng = random.Random(
            f"{seed}:{self.scenario}:{self.stats.next_user()}" if seed else None
        )
        browsers = _only(BROWSERS, self.opts.browsers, "--browsers")
        self.browser = self.rng.choices(browsers, weights=[b.weight for b in browsers])[0]
        # Prepended to every object path: the route the traffic goes through.
        self.prefix = self.opts.path_prefix

    def wait_time(self) -> float:
        lo, hi = self.opts.think_time
        return self.rng.uniform(lo, hi)

    def fail(self, response: Any, check: str, message: str | None) -> bool:
        """Record a check; mark the response failed with `message` when there is one."""
        self.stats.check(check, message is None)
        if message is not None:
            response.failure(f"{check}: {message}")
            return False
        return True


class ImageBrowsing(EdgeshieldUser):
    """A visitor of an image gallery: pages of square thumbnails, photos opened in a
    lightbox, now and then an original downloaded. Popularity is Zipf over the images,
    so a few are requested by everyone and a long tail rarely."""

    abstract = True
    scenario = "gallery"

    def on_start(self) -> None:
        super().on_start()
        if not self.objects.images:
            raise RuntimeError(f"{self.objects.source}: no images in the object set")
        self.zipf = Zipf(popularity_order(self.objects.images), self.opts.zipf)
        devices = _only(DEVICES, self.opts.devices, "--devices")
        self.device = self.rng.choices(devices, weights=[d.weight for d in devices])[0]
        dprs, shares = zip(*self.device.dprs, strict=True)
        self.dpr = self.rng.choices(dprs, weights=shares)[0]
        style = self.opts.url_style
        self.style = self.rng.choice(("imgix", "cloudflare")) if style == "mixed" else style
        self.headers = {"Accept": self.browser.accept, "User-Agent": self.browser.user_agent}

    @task(6)
    def view_page(self) -> None:
        """A gallery page: PAGE_SIZE distinct thumbnails, fetched `--parallel` at a time."""
        page: dict[str, MediaObject] = {}
        for _ in range(PAGE_SIZE * 4):
            obj = self.zipf.pick(self.rng)
            page[obj.path] = obj
            if len(page) == PAGE_SIZE:
                break
        width = self.rng.choice(self.device.thumb_widths)
        pool = gevent.pool.Pool(self.opts.parallel)
        try:
            pool.map(
                lambda o: self.fetch_variant(o, "thumbnail", width, width, crop=True), page.values()
            )
        finally:
            pool.kill()

    @task(3)
    def open_photo(self) -> None:
        width, height = self.rng.choice(self.device.detail_box)
        self.fetch_variant(self.zipf.pick(self.rng), "photo", width, height, crop=False)

    @task(1)
    def download_original(self) -> None:
        obj = self.zipf.pick(self.rng)
        with self.client.get(
            self.prefix + obj.path,
            headers=self.headers,
            name="image original",
            catch_response=True,
            context={"object_bytes": obj.bytes},
        ) as resp:
            if self.fail(resp, "image: status 200", _expect_status(resp, 200)):
                ctype = _header(resp, "content-type").split(";")[0].strip()
                wrong = obj.content_type and ctype != obj.content_type
                problem = (
                    f"Content-Type {ctype!r}, the file is {obj.content_type}" if wrong else None
                )
                self.fail(resp, "image original: Content-Type of the file", problem)

    def fetch_variant(
        self, obj: MediaObject, kind: str, width: int, height: int, *, crop: bool
    ) -> None:
        url = image_url(
            self.prefix + obj.path,
            self.style,
            width=width,
            height=height,
            dpr=self.dpr,
            crop=crop,
        )
        with self.client.get(
            url,
            headers=self.headers,
            name=f"image {kind} ({self.style})",
            catch_response=True,
            context={"object_bytes": obj.bytes},
        ) as resp:
            if _back_pressure(resp):
                resp.request_meta["name"] = BACK_PRESSURE
                resp.success()
                return
            if not self.fail(resp, "image: status 200", _expect_status(resp, 200)):
                return
            ctype = _header(resp, "content-type").split(";")[0].strip()
            problem = None
            if ctype not in self.browser.decodes:
                problem = (
                    f"{ctype or 'no Content-Type'} sent to {self.browser.name} "
                    f"(Accept: {self.browser.accept})"
                )
            self.fail(resp, "image: format the browser accepts", problem)
            if not resp.content:
                self.fail(resp, "image: non-empty body", "empty body")


class VideoViewing(EdgeshieldUser):
    """A progressive-download video player: a small first range (the player looks for the
    moov atom), then seeks to random positions, reading `--read-bytes` at each, sometimes
    the tail of the file. Every 206 is checked: status, Content-Range against the request
    and the file size, body length, and (when the files are on this machine) the bytes."""

    abstract = True
    scenario = "video"

    def on_start(self) -> None:
        super().on_start()
        if not self.objects.videos:
            raise RuntimeError(f"{self.objects.source}: no videos in the object set")
        self.zipf = Zipf(popularity_order(self.objects.videos), self.opts.zipf)
        self.headers = {
            "Accept": "*/*",
            # What Chrome sends for media: a range of an encoded body would be useless.
            "Accept-Encoding": "identity;q=1, *;q=0",
            "User-Agent": self.browser.user_agent,
        }
        verify = self.opts.verify_bytes
        self.verify = verify == "on" or (verify == "auto" and self.objects.root is not None)
        self.sizes: dict[str, int] = {}

    @task
    def watch(self) -> None:
        video = self.zipf.pick(self.rng)
        url = self.prefix + video.path
        total = self.read_range(video, url, "video first range", 0, self.opts.initial_range - 1)
        if total is None:
            return
        lo, hi = self.opts.seeks
        for _ in range(self.rng.randint(lo, hi)):
            gevent.sleep(self.rng.uniform(*self.opts.watch_time))
            start = self.rng.randrange(total)
            self.read_range(video, url, "video seek", start, start + self.opts.read_bytes - 1)
        roll = self.rng.random()
        if roll < 0.2:
            # Players read the end of files whose moov atom is not at the start.
            self.read_range(video, url, "video tail (suffix range)", None, self.opts.read_bytes)
        elif roll < 0.25:
            self.read_past_end(video, url, total)

    def read_range(
        self, video: MediaObject, url: str, name: str, first: int | None, last_or_n: int
    ) -> int | None:
        """GET one range (first=None: the suffix range of the last `last_or_n` bytes) and
        check it; returns the file size from Content-Range, or None on a failure."""
        spec = f"bytes={first}-{last_or_n}" if first is not None else f"bytes=-{last_or_n}"
        with self.client.get(
            url,
            headers={**self.headers, "Range": spec},
            name=name,
            catch_response=True,
            context={"object_bytes": video.bytes},
        ) as resp:
            if not self.fail(resp, "range: status 206", _expect_status(resp, 206)):
                return None
            content_range = _header(resp, "content-range")
            m = _CONTENT_RANGE.match(content_range)
            if m is None:
                self.fail(resp, "range: Content-Range", f"malformed {content_range!r} for {spec}")
                return None
            start, end, total = (int(g) for g in m.groups())
            known = video.bytes or self.sizes.get(video.path)
            if first is None:
                want = (max(total - last_or_n, 0), total - 1)
            else:
                want = (first, min(last_or_n, total - 1))
            problem = None
            if known is not None and total != known:
                problem = f"size {total} in {content_range!r}, the file has {known} bytes"
            elif (start, end) != want:
                problem = (
                    f"{content_range!r} for {spec}, expected bytes {want[0]}-{want[1]}/{total}"
                )
            if not self.fail(resp, "range: Content-Range", problem):
                return None
            self.sizes[video.path] = total
            body = resp.content or b""
            length = end - start + 1
            problem = (
                None if len(body) == length else f"{len(body)} body bytes for {content_range!r}"
            )
            if not self.fail(resp, "range: body length", problem):
                return None
            if self.verify:
                self.fail(resp, "range: bytes match the file", self._compare(video, start, body))
            return total

    def read_past_end(self, video: MediaObject, url: str, total: int) -> None:
        """A range starting past the end must be 416 with `Content-Range: bytes */size`
        (RFC 9110 15.5.17), not a 200 with the whole file."""
        with self.client.get(
            url,
            headers={**self.headers, "Range": f"bytes={total}-{total + 99}"},
            name="video range past the end (416)",
            catch_response=True,
            context={"object_bytes": video.bytes},
        ) as resp:
            if not self.fail(resp, "range past the end: 416", _expect_status(resp, 416)):
                return
            content_range = _header(resp, "content-range")
            m = _UNSATISFIED_RANGE.match(content_range)
            problem = None
            if m is None or int(m.group(1)) != total:
                problem = f"Content-Range {content_range!r}, expected 'bytes */{total}'"
            if self.fail(resp, "range past the end: bytes */size", problem):
                resp.success()

    def _compare(self, video: MediaObject, start: int, body: bytes) -> str | None:
        path: Path | None = self.objects.local_file(video)
        if path is None:
            return f"{video.path} not found below {self.objects.root}"
        with path.open("rb") as fh:
            fh.seek(start)
            expected = fh.read(len(body))
        if body == expected:
            return None
        at = next(
            (i for i, (a, b) in enumerate(zip(body, expected, strict=False)) if a != b),
            len(expected),
        )
        return f"bytes differ from the file at offset {start + at}"


def _back_pressure(response: Any) -> bool:
    """A 503 of the image pool: Retry-After and the pool's reason in the body."""
    if getattr(response, "status_code", 0) != 503 or not _header(response, "retry-after"):
        return False
    try:
        return "overloaded" in (response.text or "")
    except Exception:  # an undecodable body is not the pool's plain-text reason
        return False


def _expect_status(response: Any, status: int) -> str | None:
    got = getattr(response, "status_code", 0)
    if got == status:
        return None
    error = getattr(response, "error", None)
    if not got:
        return f"no response ({error})" if error else "no response"
    snippet = ""
    try:
        snippet = (response.text or "")[:120].strip()
    except Exception:  # a body that cannot be decoded is not worth a second error
        snippet = ""
    return f"status {got}, expected {status}" + (f": {snippet}" if snippet else "")
