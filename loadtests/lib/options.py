"""Command-line options shared by every scenario (Locust custom arguments).

Each can also be set by an environment variable, in a Locust config file
(`--config loadtest.conf`, key without the dashes) or, for runs started from the web UI,
in its "Custom parameters" form. Scenario-only options live in their locustfile.
"""

from __future__ import annotations

import os
from argparse import Namespace
from dataclasses import dataclass
from typing import Any

DEFAULT_MANIFEST = "var/loadtest/manifest.json"


def add_arguments(parser: Any) -> None:
    # On the parser itself: Locust's extra keywords (is_secret) exist only there, and
    # its web UI lists only the parser's own arguments.
    group = parser
    group.add_argument(
        "--objects",
        default=DEFAULT_MANIFEST,
        env_var="EDGESHIELD_LOADTEST_OBJECTS",
        help="object manifest from loadtests/make_objects.py, or 'demo' for the make-run set",
    )
    group.add_argument(
        "--warmup",
        type=float,
        default=5.0,
        env_var="EDGESHIELD_LOADTEST_WARMUP",
        help="seconds counted as warm-up in the Cache-Status/offload tables (0: none)",
    )
    group.add_argument(
        "--path-prefix",
        default="",
        help="prepended to every object path, to send the same traffic through another route",
    )
    group.add_argument(
        "--zipf", type=float, default=1.0, help="popularity skew s (P(rank k) ~ 1/k^s)"
    )
    group.add_argument(
        "--seed", type=int, default=0, help="random seed for reproducible runs (0: random)"
    )
    group.add_argument(
        "--think-time",
        default="1,3",
        help="gallery: seconds between page views, MIN,MAX",
    )
    group.add_argument(
        "--url-style",
        default="mixed",
        choices=["mixed", "imgix", "cloudflare"],
        help="image URL syntax: ?w=320&dpr=2 (imgix), /cdn-cgi/image/... or both",
    )
    group.add_argument(
        "--browsers",
        default="all",
        help="gallery: only these browser profiles, comma-separated (chrome, safari-17, "
        "firefox, safari-14, safari-13, curl)",
    )
    group.add_argument(
        "--devices",
        default="all",
        help="gallery: only these devices, comma-separated (phone, tablet, desktop)",
    )
    group.add_argument(
        "--parallel",
        type=int,
        default=6,
        help="gallery: concurrent image fetches per page view (browsers use 6 per host)",
    )
    group.add_argument(
        "--initial-range",
        type=int,
        default=65536,
        help="video: bytes of the first range request (the player's probe for moov)",
    )
    group.add_argument("--read-bytes", type=int, default=262144, help="video: bytes read per seek")
    group.add_argument("--seeks", default="2,6", help="video: seeks per view, MIN,MAX")
    group.add_argument(
        "--watch-time", default="0.5,2", help="video: seconds between seeks, MIN,MAX"
    )
    group.add_argument(
        "--verify-bytes",
        default="auto",
        choices=["auto", "on", "off"],
        help="video: compare range bodies with the files (auto: when the manifest's folder "
        "exists here)",
    )
    group.add_argument(
        "--admin-url",
        default="",
        help="base URL of /metrics, /_admin/* and /_purge when not the --host "
        "(edgeshield's [admin] port)",
    )
    group.add_argument(
        "--metrics",
        default="on",
        choices=["on", "off"],
        help="scrape /metrics at start, after warm-up and at the end for origin offload",
    )
    group.add_argument(
        "--purge-token",
        default="",
        env_var="EDGESHIELD_PURGE_TOKEN",
        is_secret=True,
        help="bearer token for /_purge, /metrics and /_admin (edgeshield's admin.token)",
    )


@dataclass(frozen=True)
class Options:
    """The shared options, typed, with defaults when Locust runs without parsed options
    (as a library)."""

    objects: str = DEFAULT_MANIFEST
    warmup: float = 5.0
    path_prefix: str = ""
    zipf: float = 1.0
    seed: int = 0
    think_time: tuple[float, float] = (1.0, 3.0)
    url_style: str = "mixed"
    browsers: tuple[str, ...] = ()  # empty: all
    devices: tuple[str, ...] = ()
    parallel: int = 6
    initial_range: int = 65536
    read_bytes: int = 262144
    seeks: tuple[int, int] = (2, 6)
    watch_time: tuple[float, float] = (0.5, 2.0)
    verify_bytes: str = "auto"
    admin_url: str = ""
    metrics: bool = True
    purge_token: str = ""

    @classmethod
    def from_parsed(cls, parsed: Namespace | None) -> Options:
        if parsed is None:
            return cls(objects=os.environ.get("EDGESHIELD_LOADTEST_OBJECTS", DEFAULT_MANIFEST))
        base = cls()

        def get(name: str) -> Any:
            return getattr(parsed, name, getattr(base, name))

        seeks = _pair(get("seeks"), float(base.seeks[0]), float(base.seeks[1]))
        prefix = str(get("path_prefix") or "").rstrip("/")
        return cls(
            objects=str(get("objects")),
            warmup=max(float(get("warmup")), 0.0),
            path_prefix=prefix if not prefix or prefix.startswith("/") else "/" + prefix,
            zipf=float(get("zipf")),
            seed=int(get("seed")),
            think_time=_pair(get("think_time"), *base.think_time),
            url_style=str(get("url_style")),
            browsers=_names(get("browsers")),
            devices=_names(get("devices")),
            parallel=max(int(get("parallel")), 1),
            initial_range=max(int(get("initial_range")), 1),
            read_bytes=max(int(get("read_bytes")), 1),
            seeks=(int(seeks[0]), int(seeks[1])),
            watch_time=_pair(get("watch_time"), *base.watch_time),
            verify_bytes=str(get("verify_bytes")),
            admin_url=str(get("admin_url") or "").rstrip("/"),
            metrics=get("metrics") not in ("off", False),
            purge_token=str(get("purge_token") or ""),
        )

    def admin_base(self, host: str | None) -> str:
        return self.admin_url or (host or "").rstrip("/")


def _names(value: Any) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in str(value or "").split(",") if n.strip())
    return () if names in ((), ("all",)) else names


def _pair(value: Any, lo: float, hi: float) -> tuple[float, float]:
    """ "MIN,MAX" (or one number) as a sorted pair; the default when unparsable."""
    if isinstance(value, tuple | list) and len(value) == 2:
        a, b = float(value[0]), float(value[1])
    else:
        parts = str(value).replace(" ", "").split(",")
        try:
            a = float(parts[0])
            b = float(parts[1]) if len(parts) > 1 else a
        except ValueError:
            return lo, hi
    return (min(a, b), max(a, b)) if a >= 0 and b >= 0 else (lo, hi)
