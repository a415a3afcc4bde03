"""Route rules: host + path prefix -> origin and cache policy. First match wins."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from config.schema import CachePolicy
from routing.origins.base import Origin


@dataclass(frozen=True, slots=True)
class Route:
    name: str
    host: str  # "*" or a lower-case host name without port
    path_prefix: str
    origin: Origin
    read_only: bool
    policy: CachePolicy


def prefix_matches(prefix: str, path: str) -> bool:
    """Prefixes match whole segments: "/img" matches "/img" and "/img/a", never "/imgx"."""
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


def host_of(authority: str) -> str:
    """Lower-case host without port; brackets of an IPv6 literal kept."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        end = authority.find("]")
        return authority[: end + 1] if end > 0 else authority
    return authority.split(":", 1)[0]


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = tuple(routes)

    def match(self, host: str, path: str) -> Route | None:
        for route in self.routes:
            if (route.host == "*" or route.host == host) and prefix_matches(
                route.path_prefix, path
            ):
                return route
        return None
