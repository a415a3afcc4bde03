"""A purge storm while visitors browse and watch (Locust scenario).

    EDGESHIELD_PURGE_TOKEN=... locust -f loadtests/purge_storm.py \\
        --host http://127.0.0.1:8090 --headless -u 6 -r 6 -t 60s --purge-rate 5 \\
        --csv var/reports/purge --html var/reports/purge.html

Users: gallery visitors and video viewers (4:1, as in gallery.py and video.py) and one
`Purger` (fixed_count = 1, so -u must be at least 2) that sends `--purge-rate` purges a
second to `POST /_purge` (on `--admin-url` when the admin endpoints have their own
listener) with `Authorization: Bearer $EDGESHIELD_PURGE_TOKEN` and the documented body

    {"urls": [...], "prefixes": [...], "tags": [...], "soft": true|false}

Each purge names one kind (`--purge-kinds`): 1-5 Zipf-popular objects as absolute URLs
(`--purge-targets path` sends paths), one album folder as a prefix, or one album tag;
`--purge-soft-ratio` of them are soft (mark stale) rather than hard. Popular objects are
purged most, so the browsers' Cache-Status table shows what purges cost: hits turning
into fwd=miss (hard) or fwd=stale / hit (stale) (soft), and the offload table the extra
origin traffic.

After an accepted hard URL purge the purger GETs one purged URL and counts, in the
checks table, whether that was not a fresh hit. A browser can refill the entry in
between, so that check is informational and never fails a request.

A deployment without the purge API (404, or 405 from a catch-all route's origin) or one
that refuses the token (401/403) fails the purge requests with a message that says so;
the browsing goes on and is reported as usual.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

from locust import constant_throughput, events, task
from locust.contrib.fasthttp import FastHttpUser

try:
    from loadtests.lib import cache_status
    from loadtests.lib.browsing import ImageBrowsing, VideoViewing
    from loadtests.lib.objects import MediaObject, Zipf, popularity_order
    from loadtests.lib.report import RunStats, run_stats
except ModuleNotFoundError:  # started from outside the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from loadtests.lib import cache_status
    from loadtests.lib.browsing import ImageBrowsing, VideoViewing
    from loadtests.lib.objects import MediaObject, Zipf, popularity_order
    from loadtests.lib.report import RunStats, run_stats

PURGE_PATH = "/_purge"
KINDS = {"urls": 0.6, "prefixes": 0.25, "tags": 0.15}
MAX_URLS = 5


@events.init_command_line_parser.add_listener
def _arguments(parser: Any, **_: Any) -> None:
    parser.add_argument(
        "--purge-rate", type=float, default=2.0, help="purge storm: purges per second"
    )
    parser.add_argument(
        "--purge-soft-ratio",
        type=float,
        default=0.5,
        help="purge storm: share of soft purges (mark stale instead of drop)",
    )
    parser.add_argument(
        "--purge-kinds",
        default="urls,prefixes,tags",
        help="purge storm: which of urls, prefixes, tags the purges use",
    )
    parser.add_argument(
        "--purge-targets",
        default="absolute",
        choices=["absolute", "path"],
        help="purge storm: urls/prefixes as absolute URLs of --host, or as paths",
    )


class PurgeStormVisitor(ImageBrowsing):
    scenario = "purge-storm/gallery"
    weight = 4


class PurgeStormViewer(VideoViewing):
    scenario = "purge-storm/video"
    weight = 1


class Purger(FastHttpUser):
    """Sends the purges; one of it per run."""

    fixed_count = 1
    scenario = "purge"
    network_timeout = 30.0
    connection_timeout = 10.0

    def context(self) -> dict[str, Any]:
        return {"scenario": self.scenario}

    def on_start(self) -> None:
        self.stats: RunStats = run_stats(self.environment)
        parsed = self.environment.parsed_options
        self.rate = max(float(getattr(parsed, "purge_rate", 2.0)), 0.01)
        self.soft_ratio = min(max(float(getattr(parsed, "purge_soft_ratio", 0.5)), 0.0), 1.0)
        chosen = str(getattr(parsed, "purge_kinds", ",".join(KINDS))).replace(" ", "").split(",")
        self.kinds = [k for k in KINDS if k in chosen] or list(KINDS)
        self.absolute = getattr(parsed, "purge_targets", "absolute") == "absolute"
        opts = self.stats.options
        self.prefix = opts.path_prefix
        self.admin = opts.admin_base(self.host)
        self.headers = {"Authorization": f"Bearer {opts.purge_token}"} if opts.purge_token else {}
        objects = self.stats.load_objects()
        everything = (*objects.images, *objects.videos)
        self.zipf = Zipf(popularity_order(everything), opts.zipf)
        self.albums = objects.albums or tuple(sorted({o.album for o in everything}))
        self.tags = objects.tags
        self.rng = random.Random()
        self.answers: set[int] = set()

    def wait_time(self) -> float:
        # The pacing state lives on the user, so a fresh closure per call keeps the rate.
        return constant_throughput(self.rate)(self)

    def target(self, path: str) -> str:
        return (self.host or "").rstrip("/") + path if self.absolute else path

    def body(self) -> tuple[dict[str, Any], list[MediaObject]]:
        kind = self.rng.choices(self.kinds, weights=[KINDS[k] for k in self.kinds])[0]
        body: dict[str, Any] = {"urls": [], "prefixes": [], "tags": [], "soft": False}
        purged: list[MediaObject] = []
        if kind == "urls" or (kind == "tags" and not self.tags):
            picked = {o.path: o for o in (self.zipf.pick(self.rng) for _ in range(MAX_URLS))}
            purged = list(picked.values())[: self.rng.randint(1, MAX_URLS)]
            body["urls"] = [self.target(self.prefix + o.path) for o in purged]
        elif kind == "prefixes":
            body["prefixes"] = [self.target(self.prefix + self.rng.choice(self.albums))]
        else:
            body["tags"] = [self.rng.choice(self.tags)]
        body["soft"] = self.rng.random() < self.soft_ratio
        return body, purged

    @task
    def purge(self) -> None:
        body, purged = self.body()
        with self.client.post(
            self.admin + PURGE_PATH,
            json=body,
            headers=self.headers,
            name=f"purge (POST {PURGE_PATH})",
            catch_response=True,
            context={"cache": False},
        ) as resp:
            status = resp.status_code
            problem = _problem(status, resp)
            if status not in self.answers:
                self.answers.add(status)
                self.stats.note(f"purge API answered {status or 'nothing'}", problem or "")
            self.stats.check("purge: accepted (2xx)", problem is None)
            if problem is not None:
                resp.failure(problem)
                return
            resp.success()
        if purged and not body["soft"]:
            self.verify(purged[0])

    def verify(self, obj: MediaObject) -> None:
        with self.client.get(
            self.prefix + obj.path,
            name="purge verify (GET a purged URL)",
            catch_response=True,
            context={"object_bytes": obj.bytes},
        ) as resp:
            outcome = cache_status.classify(
                resp.headers.get("cache-status") if resp.headers else None
            )
            self.stats.check(
                "purge: next GET not a fresh hit (informational)", outcome.status != "hit"
            )
            if resp.status_code == 200:
                resp.success()


def _problem(status: int, resp: Any) -> str | None:
    if 200 <= status < 300:
        return None
    if status in (404, 405):
        allow = resp.headers.get("allow") if resp.headers else None
        return (
            f"POST {PURGE_PATH} answered {status}{f' (Allow: {allow})' if allow else ''}: "
            "this deployment has no purge API (an edgeshield from before /_purge, or admin "
            "endpoints on their own listener: pass --admin-url)"
        )
    if status in (401, 403):
        return (
            f"POST {PURGE_PATH} answered {status}: the purge was refused; set --purge-token "
            "(EDGESHIELD_PURGE_TOKEN) to the deployment's admin token (EDGESHIELD_ADMIN__TOKEN)"
        )
    if not status:
        return f"POST {PURGE_PATH}: no response ({getattr(resp, 'error', None)})"
    text = ""
    try:
        text = (resp.text or "")[:200].strip()
    except Exception:  # an undecodable body is not worth a second error
        text = ""
    return f"POST {PURGE_PATH} answered {status}" + (f": {text}" if text else "")
