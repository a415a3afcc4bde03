"""Pieces every verifier shares: the result type, the reasons, strict base64 variants,
constant-time comparison, validity windows and path scopes."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final, NamedTuple
from urllib.parse import unquote_plus

from proxy.http.paths import BadPath, normalize_path

# The machine-readable reasons of a 403 (sent in the `Edgeshield-Auth-Reason` header).
MISSING: Final = "missing"
EXPIRED: Final = "expired"
NOT_YET_VALID: Final = "not-yet-valid"
BAD_SIGNATURE: Final = "bad-signature"
UNKNOWN_KID: Final = "unknown-kid"
IP_MISMATCH: Final = "ip-mismatch"
ACL_MISMATCH: Final = "acl-mismatch"
REASONS: Final = (
    MISSING,
    EXPIRED,
    NOT_YET_VALID,
    BAD_SIGNATURE,
    UNKNOWN_KID,
    IP_MISMATCH,
    ACL_MISMATCH,
)
REASON_HEADER: Final = "edgeshield-auth-reason"

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class AuthResult(NamedTuple):
    """Outcome of one verification. ``reason`` is "" when ``ok``, else one of REASONS.
    ``claims`` holds what the token says (never key material)."""

    ok: bool
    reason: str
    scheme: str
    claims: Mapping[str, Any] = _EMPTY


def accept(scheme: str, claims: Mapping[str, Any] = _EMPTY) -> AuthResult:
    return AuthResult(True, "", scheme, claims)


def deny(scheme: str, reason: str, claims: Mapping[str, Any] = _EMPTY) -> AuthResult:
    return AuthResult(False, reason, scheme, claims)


# -- constant-time comparison ------------------------------------------------------------


def constant_time_equal(expected: bytes, given: bytes | None) -> bool:
    """Compare a computed MAC with a decoded one in time independent of where they differ.
    A missing or wrong-length value is compared against a same-length dummy so that the
    work done is the same as for a right-length wrong value."""
    if given is None or len(given) != len(expected):
        hmac.compare_digest(expected, bytes(len(expected)))
        return False
    return hmac.compare_digest(expected, given)


# -- base64 variants, strictly ------------------------------------------------------------

_CF_B64 = re.compile(r"[A-Za-z0-9~-]*_{0,2}")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
# Last characters whose unused low bits are zero, by len % 4 (2: 4 bits, 3: 2 bits).
_CANONICAL_LAST = {
    2: frozenset("AQgw"),
    3: frozenset("AEIMQUYcgkosw048"),
}


def b64url_encode(data: bytes) -> str:
    """RFC 4648 section 5 without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes | None:
    """Inverse of b64url_encode, or None. Only the canonical spelling is accepted: no
    padding, no stray characters, unused low bits zero, so one token has one spelling."""
    rest = len(text) % 4
    if rest == 1 or "+" in text or "/" in text or "=" in text or not text.isascii():
        return None
    if rest and text[-1] not in _CANONICAL_LAST[rest]:
        return None
    try:
        data = text.encode("ascii").translate(_FROM_URLSAFE) + b"=" * (-len(text) % 4)
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return None


_CF_ENCODE = str.maketrans("+=/", "-_~")
_CF_DECODE = str.maketrans("-_~", "+=/")


def cloudfront_b64_encode(data: bytes) -> str:
    """CloudFront's URL-safe base64: standard base64 with '+' -> '-', '=' -> '_',
    '/' -> '~' (the padding is kept, as '_')."""
    return base64.b64encode(data).decode("ascii").translate(_CF_ENCODE)


def cloudfront_b64_decode(text: str) -> bytes | None:
    if not _CF_B64.fullmatch(text):
        return None
    standard = text.translate(_CF_DECODE)
    if len(standard) % 4:
        return None
    try:
        data = base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if cloudfront_b64_encode(data) == text else None


# -- time -------------------------------------------------------------------------------


def window_reason(
    now: float,
    *,
    expires: float | None,
    not_before: float | None,
    skew: float,
    inclusive_expiry: bool = False,
    inclusive_start: bool = True,
) -> str:
    """ "" when ``now`` is inside the validity window, widened by ``skew`` on both ends.
    This is the one place expiry is decided, for every scheme. By default a token
    expires at ``expires`` (valid while now < expires, like CloudFront's DateLessThan);
    ``inclusive_expiry`` keeps the whole second ``expires`` valid too, up to its last
    instant (nginx secure_link and bunny.net: "the last second the file is accessible"),
    since ``now`` is a float and the token names whole seconds.
    ``inclusive_start=False`` makes ``not_before`` itself too early (CloudFront's
    DateGreaterThan)."""
    if expires is not None:
        end = expires + 1 if inclusive_expiry else expires
        if now - skew >= end:
            return EXPIRED
    if not_before is not None:
        early = now + skew
        if early < not_before or (early == not_before and not inclusive_start):
            return NOT_YET_VALID
    return ""


def parse_epoch(text: str | None) -> int | None:
    """A Unix time in whole seconds as sent in tokens: ASCII digits only."""
    if not text or len(text) > 12 or not text.isascii() or not text.isdigit():
        return None
    return int(text)


# -- addresses --------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """An IP address, with an IPv4-mapped IPv6 address taken as the IPv4 address."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@lru_cache(maxsize=1024)
def parse_network(text: str) -> IPNetwork | None:
    """An address or CIDR block (host bits may be set: "192.0.2.7/24" is 192.0.2.0/24)."""
    try:
        network = ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
    return network


def ip_in(client: str, allowed: str) -> bool:
    """Is the client address inside ``allowed`` (an address or CIDR block)?"""
    address = parse_ip(client)
    network = parse_network(allowed)
    return address is not None and network is not None and address in network


# -- paths ------------------------------------------------------------------------------

# "%25" followed by the escape of ".", "/" or "\": harmless to us (each escape is decoded
# once) but an origin that decodes twice would see a dot segment or a separator.
_DOUBLE_ENCODED = re.compile(r"%25(?:2[eEfF]|5[cC])")


def canonical_path(path: str) -> str | None:
    """The normalised form of a request path for scope checks, or None when it cannot be
    made canonical or hides a doubly-encoded dot, slash or backslash."""
    try:
        normal = normalize_path(path)
    except BadPath:
        return None
    if "%25" in normal and _DOUBLE_ENCODED.search(normal):
        return None
    return normal


def prefix_allows(prefix: str, path: str) -> bool:
    """Whole-segment prefix match on canonical paths: "/a/b/" allows "/a/b/" and anything
    below it; "/a/b" allows "/a/b" and "/a/b/..."; neither ever allows "/a/bc"."""
    if prefix.endswith("/"):
        return path.startswith(prefix)
    return path == prefix or path.startswith(prefix + "/")


# -- the request as verifiers see it ------------------------------------------------------


def query_pairs(query: str) -> list[tuple[str, str]]:
    """(decoded name, raw value) for each ``name=value`` of a query string, in order."""
    pairs: list[tuple[str, str]] = []
    if not query:
        return pairs
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        pairs.append((name, value))
    return pairs


def parse_cookies(header: str) -> dict[str, str]:
    """Cookie header -> {name: value}; the first of a repeated name wins (RFC 6265 5.4
    orders longer paths first); double quotes around a value are removed."""
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name or name in cookies:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies[name] = value
    return cookies


class AuthInput:
    """What verifiers read from a request, parsed lazily and once.

    ``path`` is the canonical, token-free request path (after ``split_path_token``);
    ``query`` the raw query string; ``headers`` lower-case names (as ``Request.headers``);
    ``path_token`` the native token cut from the path; ``bunny_path`` the parameters of a
    bunny.net directory token cut from the path (``split_bunny_path_token``)."""

    __slots__ = (
        "_cookies",
        "_pairs",
        "bunny_path",
        "client_ip",
        "country",
        "headers",
        "host",
        "now",
        "path",
        "path_token",
        "query",
        "scheme",
    )

    def __init__(
        self,
        *,
        path: str,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        client_ip: str = "",
        now: float,
        scheme: str = "http",
        host: str = "",
        path_token: str | None = None,
        bunny_path: str | None = None,
        country: str | None = None,
    ) -> None:
        self.path = path
        self.query = query
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.client_ip = client_ip
        self.now = now
        self.scheme = scheme
        self.host = host
        self.path_token = path_token
        self.bunny_path = bunny_path
        self.country = country
        self._pairs: list[tuple[str, str]] | None = None
        self._cookies: dict[str, str] | None = None

    def pairs(self) -> list[tuple[str, str]]:
        if self._pairs is None:
            self._pairs = query_pairs(self.query)
        return self._pairs

    def arg(self, name: str) -> str | None:
        """Raw value of the first query parameter called ``name``."""
        if name not in self.query:  # cheap miss for the common case
            return None
        for key, value in self.pairs():
            if key == name:
                return value
        return None

    def cookie(self, name: str) -> str | None:
        if self._cookies is None:
            header = self.headers.get("cookie")
            self._cookies = parse_cookies(header) if header else {}
        return self._cookies.get(name)
