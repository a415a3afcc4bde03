"""Multi-CDN steering: instead of proxying, answer a redirect to the best CDN for a path.

The choice, a pure function of (path, viewer country, CDN health, weights):

1. Only healthy CDNs: a CDN that names an http origin is healthy while that origin's
   active probes pass (and no group has it ejected); a bare `base_url` always is.
2. Region preference: when the route has a `region_header` (a header a trusted CDN or
   load balancer in front sets, e.g. CF-IPCountry or CloudFront-Viewer-Country) and some
   healthy CDN lists the viewer's country in `regions`, only those are candidates;
   otherwise every healthy CDN is.
3. Weight 0 marks a backup, used only when no candidate has a weight above 0.
4. Among the candidates, weighted rendezvous hashing (highest random weight) on the path:
   score = -weight / ln(u), u = a stable hash of (CDN name, path) in (0, 1); the highest
   score wins. The same object keeps going to the same CDN (good for each CDN's cache
   hit ratio), the share of paths per CDN follows the weights, and when a CDN goes down
   only its own paths move; they come back when it recovers. Deterministic across
   processes and restarts (blake2b, not Python's salted hash()). The query is not
   hashed: it carries per-viewer tokens, not object identity.

No healthy CDN: `steer` returns None and the pipeline proxies the request through the
route's `origin` instead (or answers 503 when that is down too).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from config.schema import HttpOrigin, Settings, SteerSettings

# Country values that do not name a country (Cloudflare: XX unknown, T1 Tor).
_NO_COUNTRY = frozenset({"", "XX", "T1"})
_SCALE = float(2**64)


@dataclass(frozen=True, slots=True)
class Cdn:
    name: str  # the origin's name, or the base URL
    base_url: str  # without a trailing slash
    weight: int
    regions: frozenset[str]
    origin: str | None = None  # the origin whose health decides; None = always healthy


@dataclass(frozen=True, slots=True)
class Steering:
    cdns: tuple[Cdn, ...]
    region_header: str | None = None
    status: int = 302
    cache_control: str = "private, max-age=60"


@dataclass(frozen=True, slots=True)
class Redirect:
    status: int
    location: str
    cache_control: str
    cdn: str  # Cdn.name, for the access log and metrics


def build_steering(steer: SteerSettings, settings: Settings) -> Steering:
    """The Steering for a route's `[routes.steer]` (validated settings: CDN origins exist
    and are http origins)."""
    cdns: list[Cdn] = []
    for spec in steer.cdns:
        if spec.origin is not None:
            origin = settings.origins[spec.origin]
            if not isinstance(origin, HttpOrigin):
                raise ValueError(f"steering CDN origin {spec.origin!r} is not an http origin")
            name, base = spec.origin, str(origin.url)
        else:
            name = base = str(spec.base_url)
        cdns.append(Cdn(name, base.rstrip("/"), spec.weight, frozenset(spec.regions), spec.origin))
    return Steering(tuple(cdns), steer.region_header, steer.status, steer.cache_control)


def country_of(steering: Steering, headers: Mapping[str, str]) -> str | None:
    """The viewer's country from the route's trusted header (lower-case header names)."""
    if steering.region_header is None:
        return None
    value = headers.get(steering.region_header, "").strip().upper()
    return None if value in _NO_COUNTRY else value


def _score(cdn: Cdn, path: str) -> float:
    digest = hashlib.blake2b(f"{cdn.name}\0{path}".encode(), digest_size=8).digest()
    u = (int.from_bytes(digest, "big") + 1) / (_SCALE + 1)  # in (0, 1)
    return -max(cdn.weight, 1) / math.log(u)


def choose(
    cdns: Sequence[Cdn], path: str, country: str | None, is_up: Callable[[str], bool]
) -> Cdn | None:
    """The CDN for `path` (see the module docstring), or None when none is healthy."""
    healthy = [cdn for cdn in cdns if cdn.origin is None or is_up(cdn.origin)]
    if not healthy:
        return None
    pool = healthy
    if country is not None:
        pool = [cdn for cdn in healthy if country in cdn.regions] or healthy
    pool = [cdn for cdn in pool if cdn.weight > 0] or pool
    if len(pool) == 1:
        return pool[0]
    return max(pool, key=lambda cdn: _score(cdn, path))


def steer(
    steering: Steering,
    path: str,
    query: str,
    headers: Mapping[str, str],
    is_up: Callable[[str], bool],
) -> Redirect | None:
    """The redirect for a request: `path` as the CDN should see it (percent-encoded,
    after the route's rewrite), `query` without "?", lower-case request headers;
    `is_up(origin name)` is the router's health view. None: no healthy CDN."""
    cdn = choose(steering.cdns, path, country_of(steering, headers), is_up)
    if cdn is None:
        return None
    location = cdn.base_url + path + (f"?{query}" if query else "")
    return Redirect(steering.status, location, steering.cache_control, cdn.name)
