"""Route rules: host + path -> origin group and cache policy. First match wins.

Hosts: "*" (any), an exact name, or "*.example.com" (any subdomain at any depth:
a.example.com, a.b.example.com; never example.com itself). Paths: a prefix matched on
whole segments ("/img" matches "/img" and "/img/a", never "/imgx"), or an fnmatch-style
glob matched against the whole path ("*" also crosses "/": "/v/*.m3u8" matches
"/v/a/b.m3u8"; "?" one character; "[abc]" a set; case-sensitive).
A route may rewrite the path sent upstream: strip a prefix, then add one (`rewrite`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from config.schema import CachePolicy, CacheSettings, Settings
from proxy.http.encoding import Policy as EncodingPolicy
from proxy.http.freshness import FreshnessPolicy
from proxy.http.streaming import StreamingPolicy
from routing.origins.base import Origin

if TYPE_CHECKING:
    from routing.groups import OriginGroup
    from routing.steering import Steering


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    host: str  # "*", "*.domain", or a lower-case host name without port
    path_prefix: str
    origin: Origin
    read_only: bool
    policy: CachePolicy
    # `policy` as freshness arithmetic takes it (proxy/http/freshness.py).
    freshness: FreshnessPolicy
    # The group `origin` names (an implicit group of one for a bare origin).
    group: OriginGroup
    # fnmatch-style pattern; when set it replaces path_prefix for matching.
    path_glob: str | None = None
    strip_prefix: str | None = None
    add_prefix: str | None = None
    mode: str = "proxy"  # or "steer"
    steering: Steering | None = None
    # Image transforms on (proxy/variants.py); only when the [images] engine is enabled.
    images: bool = False
    # What may be compressed ([compression] and the route's `compress`; proxy/compress.py).
    compression: EncodingPolicy | None = None
    # Plain image URLs negotiated to AVIF/WebP (RouteSettings.auto_format).
    auto_format: bool = False


def prefix_matches(prefix: str, path: str) -> bool:
    """Prefixes match whole segments: "/img" matches "/img" and "/img/a", never "/imgx"."""
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def host_matches(pattern: str, host: str) -> bool:
    """`pattern` is "*", "*.domain" (subdomains only) or an exact lower-case host."""
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return pattern == host


def compile_glob(pattern: str) -> Callable[[str], Any]:
    """A matcher for an fnmatch-style pattern over the whole path."""
    return re.compile(fnmatch.translate(pattern), re.DOTALL).match


def rewrite(route: Route, path: str) -> str:
    """The path to fetch upstream: `strip_prefix` removed when the path starts with it
    (whole segments), then `add_prefix` prepended. Always starts with "/"; the query is
    not part of it and is passed on unchanged."""
    strip, add = route.strip_prefix, route.add_prefix
    if strip and strip != "/" and prefix_matches(strip, path):
        path = path[len(strip.rstrip("/")) :]
        if not path.startswith("/"):
            path = "/" + path
    if add and add != "/":
        path = add.rstrip("/") + path
    return path


# Host kinds, checked in this order per rule.
_ANY, _EXACT, _SUFFIX = 0, 1, 2


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)
        # Pre-digested rules for the hot path: (host kind, host key, prefix, glob matcher).
        self._rules: list[tuple[Route, int, str, str, Callable[[str], Any] | None]] = []
        for route in self.routes:
            host = route.host
            if host == "*":
                kind, key = _ANY, ""
            elif host.startswith("*."):
                kind, key = _SUFFIX, host[1:]
            else:
                kind, key = _EXACT, host
            glob = compile_glob(route.path_glob) if route.path_glob is not None else None
            self._rules.append((route, kind, key, route.path_prefix, glob))

    def match(self, host: str, path: str) -> Route | None:
        for route, kind, key, prefix, glob in self._rules:
            if kind == _EXACT:
                if host != key:
                    continue
            elif kind == _SUFFIX and not (host.endswith(key) and len(host) > len(key)):
                continue
            if glob is None:
                if prefix_matches(prefix, path):
                    return route
            elif glob(path):
                return route
        return None


def freshness_policy(policy: CachePolicy, cache: CacheSettings) -> FreshnessPolicy:
    """A route's cache policy with the cache-wide heuristic settings, as
    proxy/http/freshness.py takes them."""
    return FreshnessPolicy(
        default_ttl=policy.default_ttl,
        override_ttl=policy.override_ttl,
        negative_ttl=policy.negative_ttl,
        heuristic_fraction=cache.heuristic_fraction,
        heuristic_max=cache.heuristic_max,
        stale_while_revalidate=policy.stale_while_revalidate,
        stale_if_error=policy.stale_if_error,
        targeted_fields=tuple(f.lower() for f in policy.targeted_fields),
        streaming=StreamingPolicy(
            vod_playlist_ttl=policy.vod_playlist_ttl,
            master_playlist_ttl=policy.master_playlist_ttl,
            segment_ttl=policy.segment_ttl,
        )
        if policy.streaming
        else None,
    )


def build_route_table(
    settings: Settings, origins: Mapping[str, Origin], groups: Mapping[str, OriginGroup]
) -> RouteTable:
    """The route table for `settings`, every route resolved to its group (`groups` from
    routing.groups.build_router) and its freshness policy. `Route.origin` is the named
    origin, or for a group its first member (what a cache hit logs as its origin). Route
    names are host + prefix (or glob), with "#<index>" on a repeat."""
    from proxy.compress import route_policy
    from routing.steering import build_steering

    routes: list[Route] = []
    seen: set[str] = set()
    for i, spec in enumerate(settings.routes):
        base = f"{spec.host}{spec.path_glob or spec.path_prefix}"
        name = f"{base}#{i}" if base in seen else base
        seen.add(base)
        group = groups[spec.origin]
        routes.append(
            Route(
                name=name,
                host=spec.host.lower(),
                path_prefix=spec.path_prefix,
                origin=origins.get(spec.origin) or group.members[0].origin,
                read_only=spec.read_only,
                policy=spec.cache,
                freshness=freshness_policy(spec.cache, settings.cache),
                path_glob=spec.path_glob,
                strip_prefix=spec.strip_prefix,
                add_prefix=spec.add_prefix,
                group=group,
                mode=spec.mode,
                steering=build_steering(spec.steer, settings) if spec.steer else None,
                images=spec.images and settings.images.enabled,
                compression=route_policy(settings.compression, spec.cache.compress),
                auto_format=spec.auto_format and settings.images.enabled,
            )
        )
    return RouteTable(routes)
