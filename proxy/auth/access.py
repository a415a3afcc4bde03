"""Access control that needs no token, as pure functions: the client address behind
trusted proxies, IP and country allow/deny lists, referer allow-lists (hotlink
protection) and CORS (Fetch standard, "CORS protocol")."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from config.auth import (
    CorsSettings,
    CountrySettings,
    IpAccessSettings,
    RefererSettings,
    RouteAccessSettings,
    TrustedProxies,
)
from proxy.auth.common import IPAddress, IPNetwork, parse_ip, parse_network
from proxy.http.forwarding import Forwarding

Header = tuple[str, str]

# Reasons for access denials (the auth reasons live in proxy.auth.common).
IP_DENIED = "ip-denied"
COUNTRY_DENIED = "country-denied"
REFERER_DENIED = "referer-denied"
CORS_DENIED = "cors-denied"


# -- client address ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedNetworks:
    networks: tuple[IPNetwork, ...] = ()
    header: str = "x-forwarded-for"
    country_header: str | None = None

    @classmethod
    def from_settings(cls, settings: TrustedProxies) -> TrustedNetworks:
        return cls(_networks(settings.cidrs), settings.header, settings.country_header)

    def trusts(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in net for net in self.networks)


def _networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    out = []
    for value in values:
        network = parse_network(value)
        if network is None:
            raise ValueError(f"not an IP address or CIDR block: {value!r}")
        out.append(network)
    return tuple(out)


def forwarded_for(value: str) -> list[str]:
    """The ``for=`` nodes of a Forwarded header (RFC 7239), in order; quotes, IPv6
    brackets and ports removed. Unknown/obfuscated nodes stay as written."""
    return [_strip_node(node) for node in _forwarded_params(value, "for")]


def _forwarded_params(value: str, wanted: str) -> list[str]:
    """The values of one parameter of a Forwarded header, in order, quotes removed."""
    found: list[str] = []
    for element in _split_outside_quotes(value, ","):
        for pair in _split_outside_quotes(element, ";"):
            name, _, param = pair.partition("=")
            if name.strip().lower() == wanted:
                found.append(param.strip().strip('"'))
    return found


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _strip_node(node: str) -> str:
    """ "[2001:db8::1]:4711" -> "2001:db8::1"; "192.0.2.1:80" -> "192.0.2.1"."""
    node = node.strip()
    if node.startswith("["):
        end = node.find("]")
        return node[1:end] if end > 0 else node
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node


def forwarding(peer: str, headers: Mapping[str, str], trusted: TrustedNetworks) -> Forwarding:
    """Where the request came from: the socket peer, unless the peer is a trusted proxy;
    then the forwarding header is walked right to left past trusted proxies, and the
    first address not trusted is the client. An entry that is not an address stops the
    walk at the last trusted hop (which is then reported, never something a client
    wrote). Scheme and country are believed from trusted peers only."""
    address = parse_ip(peer)
    if not trusted.networks or not trusted.trusts(address):
        return Forwarding((str(address) if address is not None else peer,))
    chain = [str(address)]
    raw = headers.get(trusted.header)
    if raw:
        hops = forwarded_for(raw) if trusted.header == "forwarded" else raw.split(",")
        for hop in reversed(hops):
            candidate = parse_ip(_strip_node(hop))
            if candidate is None:
                break
            chain.append(str(candidate))
            if not trusted.trusts(candidate):
                break
    chain.reverse()
    return Forwarding(tuple(chain), _proto(headers, trusted), country_of(peer, headers, trusted))


def client_ip(peer: str, headers: Mapping[str, str], trusted: TrustedNetworks) -> str:
    """The client's address (see `forwarding`)."""
    return forwarding(peer, headers, trusted).client


def _proto(headers: Mapping[str, str], trusted: TrustedNetworks) -> str | None:
    """The scheme the trusted peer says it was asked with: the last (its own) entry of
    X-Forwarded-Proto, or of the Forwarded proto= parameters when that is the header."""
    if trusted.header == "forwarded":
        values = _forwarded_params(headers.get("forwarded", ""), "proto")
    else:
        values = headers.get("x-forwarded-proto", "").split(",")
    value = values[-1].strip().lower() if values else ""
    return value if value in ("http", "https") else None


def country_of(peer: str, headers: Mapping[str, str], trusted: TrustedNetworks) -> str | None:
    """The two-letter country from the configured geo header, believed only when the
    direct peer is a trusted proxy (the CDN in front sets it)."""
    if trusted.country_header is None or not trusted.trusts(parse_ip(peer)):
        return None
    value = headers.get(trusted.country_header, "").strip().upper()
    return value if re.fullmatch(r"[A-Z]{2}", value) else None


# -- IP and country lists ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IpRules:
    allow: tuple[IPNetwork, ...] = ()
    deny: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_settings(cls, settings: IpAccessSettings) -> IpRules:
        return cls(_networks(settings.allow), _networks(settings.deny))


def ip_allowed(rules: IpRules, ip: str) -> bool:
    """Deny wins; with an allow list only listed addresses pass; an unparsable address
    passes only when there is no list at all."""
    address = parse_ip(ip)
    if address is None:
        return not rules.allow and not rules.deny
    if any(address in net for net in rules.deny):
        return False
    return not rules.allow or any(address in net for net in rules.allow)


def country_allowed(settings: CountrySettings, country: str | None) -> bool:
    """Deny wins; with an allow list, an unknown country is refused."""
    code = country.upper() if country else None
    if code is not None and code in settings.deny:
        return False
    return not settings.allow or (code is not None and code in settings.allow)


# -- referer ----------------------------------------------------------------------------


def host_matches(pattern: str, host: str) -> bool:
    """ "example.com" matches itself; "*.example.com" matches its subdomains only."""
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return host == pattern


def referer_allowed(settings: RefererSettings, referer: str | None) -> bool:
    if referer is None or not referer.strip():
        return settings.allow_empty
    try:
        parts = urlsplit(referer.strip())
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not host:
        return False
    return any(host_matches(pattern, host) for pattern in settings.allow_hosts)


# -- CORS -------------------------------------------------------------------------------

# Fetch standard: CORS-safelisted methods and request headers need no permission.
_SAFE_METHODS = frozenset({"GET", "HEAD", "POST"})
_SAFE_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    any_origin: bool
    origins: frozenset[str]
    wildcard_suffixes: tuple[tuple[str, str], ...]  # (scheme://, .domain[:port])
    methods: tuple[str, ...]
    headers: tuple[str, ...]
    expose: tuple[str, ...]
    credentials: bool
    max_age: int

    @classmethod
    def from_settings(cls, settings: CorsSettings) -> CorsPolicy:
        exact, wild = set(), []
        for origin in settings.allow_origins:
            if origin == "*":
                continue
            if "://*." in origin:
                scheme, _, rest = origin.partition("://*")
                wild.append((f"{scheme}://".lower(), rest.lower()))
            else:
                exact.add(origin.lower())
        return cls(
            any_origin="*" in settings.allow_origins,
            origins=frozenset(exact),
            wildcard_suffixes=tuple(wild),
            methods=tuple(m.upper() for m in settings.allow_methods),
            headers=tuple(h.lower() for h in settings.allow_headers),
            expose=tuple(h.lower() for h in settings.expose_headers),
            credentials=settings.allow_credentials,
            max_age=settings.max_age,
        )

    @property
    def varies(self) -> bool:
        """Does the answer depend on Origin? Not for "*" without credentials."""
        return not (self.any_origin and not self.credentials)

    def origin_allowed(self, origin: str) -> bool:
        if self.any_origin:
            return True
        lowered = origin.lower()
        if lowered in self.origins:
            return True
        for scheme, suffix in self.wildcard_suffixes:
            if lowered.startswith(scheme) and lowered.endswith(suffix):
                label = lowered[len(scheme) : len(lowered) - len(suffix)]
                if label and re.fullmatch(r"[a-z0-9.-]+", label) and not label.endswith("."):
                    return True
        return False


@dataclass(frozen=True, slots=True)
class PreflightAnswer:
    allowed: bool
    status: int  # 204 or 403
    headers: tuple[Header, ...]


def _allow_origin(policy: CorsPolicy, origin: str) -> list[Header]:
    headers = [("access-control-allow-origin", origin if policy.varies else "*")]
    if policy.credentials:
        headers.append(("access-control-allow-credentials", "true"))
    return headers


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    return (
        method == "OPTIONS" and "origin" in headers and "access-control-request-method" in headers
    )


def preflight(policy: CorsPolicy, headers: Mapping[str, str]) -> PreflightAnswer:
    """Answer an OPTIONS preflight (``is_preflight``): 204 with the permissions, or 403
    without any when the origin, method or a requested header is not allowed."""
    vary: list[Header] = [("vary", "origin")] if policy.varies else []
    origin = headers.get("origin", "")
    method = headers.get("access-control-request-method", "").strip()
    requested = [
        h.strip().lower()
        for h in headers.get("access-control-request-headers", "").split(",")
        if h.strip()
    ]
    ok = (
        bool(origin)
        and policy.origin_allowed(origin)
        and (method in _SAFE_METHODS or method in policy.methods)
        and all(h in _SAFE_HEADERS or h in policy.headers for h in requested)
    )
    if not ok:
        return PreflightAnswer(False, 403, tuple(vary))
    out = _allow_origin(policy, origin)
    out.append(("access-control-allow-methods", ", ".join(policy.methods)))
    if policy.headers:
        out.append(("access-control-allow-headers", ", ".join(policy.headers)))
    out.append(("access-control-max-age", str(policy.max_age)))
    return PreflightAnswer(True, 204, tuple(out + vary))


def cors_headers(policy: CorsPolicy, origin: str | None) -> list[Header]:
    """Headers for an actual (non-preflight) response. ``Vary: Origin`` is added only
    when the answer depends on Origin (a list of origins, or credentials), and then on
    every response, with or without an Origin, so no cache serves one origin's answer
    to another."""
    out: list[Header] = []
    if origin and policy.origin_allowed(origin):
        out += _allow_origin(policy, origin)
        if policy.expose:
            out.append(("access-control-expose-headers", ", ".join(policy.expose)))
    elif not origin and not policy.varies:
        out.append(("access-control-allow-origin", "*"))
        if policy.expose:
            out.append(("access-control-expose-headers", ", ".join(policy.expose)))
    if policy.varies:
        out.append(("vary", "origin"))
    return out


# -- all of it for one route ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """A route's ``[routes.access]`` compiled; ``check`` covers IP, country, referer.
    (CORS answers come from ``preflight`` / ``cors_headers``; rate limits from
    ``proxy.auth.ratelimit``.)"""

    ip: IpRules | None = None
    country: CountrySettings | None = None
    referer: RefererSettings | None = None
    cors: CorsPolicy | None = None

    @classmethod
    def from_settings(cls, settings: RouteAccessSettings | None) -> AccessPolicy:
        if settings is None:
            return cls()
        return cls(
            ip=IpRules.from_settings(settings.ip) if settings.ip else None,
            country=settings.country,
            referer=settings.referer,
            cors=CorsPolicy.from_settings(settings.cors) if settings.cors else None,
        )

    @property
    def pure(self) -> bool:
        """No IP, country or referer rule: check() passes whatever the request."""
        return self.ip is None and self.country is None and self.referer is None

    def check(self, *, client_ip: str, country: str | None, headers: Mapping[str, str]) -> str:
        """ "" when allowed, else the reason (ip-denied, country-denied, referer-denied)."""
        if self.ip is not None and not ip_allowed(self.ip, client_ip):
            return IP_DENIED
        if self.country is not None and not country_allowed(self.country, country):
            return COUNTRY_DENIED
        if self.referer is not None and not referer_allowed(self.referer, headers.get("referer")):
            return REFERER_DENIED
        return ""
