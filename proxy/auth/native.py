"""edgeshield's own signed URLs: HMAC-SHA256 over a canonical string.

A token is ``<claims>.<mac>``, both base64url without padding (RFC 4648 section 5):

* ``claims`` is an ``&``-separated list of ``name=value`` (values percent-encoded):
  ``k`` key id, ``e`` expiry (Unix seconds; valid while now < e), ``n`` not-before,
  ``i`` client address or CIDR block, then the scope, exactly one of ``p`` (one canonical
  path) or ``a`` (a canonical path prefix, the ACL), and ``b`` the comma-separated names of
  query parameters whose values are bound to the token.
* ``mac`` is HMAC-SHA256(key[k], "edgeshield-v1" LF claims LF bound), where ``bound`` is,
  for each name in ``b`` in order, the name followed by "=" + the percent-encoded value of
  each occurrence in the request's query, joined with "&" (a name absent from the query
  contributes the bare name).

The MAC covers the claims text exactly as sent (the decoded bytes of the first part, not
their base64url form), so nothing is re-serialised before checking. docs/auth.md
specifies every detail a signer in another language needs.
The token travels as a query parameter (``?token=``), as the first path segment after a
marker (``/_t/<token>/videos/abc/master.m3u8``, so relative URLs in a playlist inherit
it) or as a cookie.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote, unquote, unquote_plus, urlsplit, urlunsplit

from proxy.auth.common import (
    ACL_MISMATCH,
    BAD_SIGNATURE,
    IP_MISMATCH,
    MISSING,
    UNKNOWN_KID,
    AuthInput,
    AuthResult,
    accept,
    b64url_decode,
    b64url_encode,
    canonical_path,
    constant_time_equal,
    deny,
    ip_in,
    parse_epoch,
    parse_ip,
    parse_network,
    prefix_allows,
    query_pairs,
    window_reason,
)
from proxy.auth.keys import Key, KeyRing
from proxy.http.paths import normalize_path

SCHEME = "native"
VERSION = b"edgeshield-v1"
DEFAULT_PARAM = "token"
DEFAULT_COOKIE = "edgeshield_token"
DEFAULT_MARKER = "_t"
_MAX_TOKEN = 4096
_CLAIM_SAFE = "/:,!$'()*+;@"  # kept literal in claim values; "&" and "=" never are

Style = Literal["query", "path", "cookie"]


# -- the path-segment style -------------------------------------------------------------


def split_path_token(path: str, marker: str = DEFAULT_MARKER) -> tuple[str | None, str]:
    """``/_t/<token>/videos/a.m3u8`` -> (``<token>``, ``/videos/a.m3u8``); a path without
    the marker segment comes back unchanged with None. Call it before route matching:
    the rest is what routes, caches and the origin see."""
    head = f"/{marker}/"
    if not path.startswith(head):
        return None, path
    end = path.find("/", len(head))
    if end < 0:
        return path[len(head) :], "/"
    return path[len(head) : end], path[end:]


def token_free_path(path: str, marker: str = DEFAULT_MARKER) -> str:
    return split_path_token(path, marker)[1]


# -- canonical strings --------------------------------------------------------------------


def bound_string(names: Sequence[str], pairs: Iterable[tuple[str, str]]) -> str:
    """The bound-parameter part of the MAC input (see the module docstring)."""
    if not names:
        return ""
    values: dict[str, list[str]] = {name: [] for name in names}
    for name, raw in pairs:
        found = values.get(name)
        if found is not None:
            found.append(quote(unquote_plus(raw), safe=""))
    return "&".join(name + "".join("=" + v for v in values[name]) for name in names)


def mac(key: Key, claims: str, bound: str) -> bytes:
    # UTF-8: a bound name may be any text (its value parts are always ASCII).
    message = b"%s\n%s\n%s" % (VERSION, claims.encode("ascii"), bound.encode("utf-8"))
    return hmac.digest(key.secret, message, "sha256")


def _dummy_mac(claims: str, bound: str) -> bytes:
    # Same work as a real check when the kid is unknown; the result is never used.
    data = f"{claims}\n{bound}".encode("utf-8", "replace")
    return hmac.digest(b"\0" * 32, data, "sha256")


# -- minting ------------------------------------------------------------------------------


def mint_token(
    key: Key,
    *,
    expires: int,
    path: str | None = None,
    prefix: str | None = None,
    not_before: int | None = None,
    ip: str | None = None,
    bind: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """A token for one canonical ``path`` or for everything under ``prefix``.
    ``bind`` maps parameter names to the values the request must carry (in order)."""
    if (path is None) == (prefix is None):
        raise ValueError("give exactly one of path or prefix")
    claims = [("k", key.kid), ("e", str(int(expires)))]
    if not_before is not None:
        claims.append(("n", str(int(not_before))))
    if ip is not None:
        claims.append(("i", _canonical_ip(ip)))
    if prefix is not None:
        claims.append(("a", normalize_path(prefix)))
    else:
        assert path is not None
        claims.append(("p", normalize_path(path)))
    names = list(bind or {})
    for name in names:
        if not name or "," in name or "&" in name or "=" in name:
            raise ValueError(f"cannot bind parameter name {name!r}")
    if names:
        claims.append(("b", ",".join(quote(n, safe="") for n in names)))
    text = "&".join(f"{k}={quote(v, safe=_CLAIM_SAFE)}" for k, v in claims)
    pairs = [(n, quote(v, safe="")) for n in names for v in (bind or {})[n]]
    signature = mac(key, text, bound_string(names, pairs))
    return f"{b64url_encode(text.encode('ascii'))}.{b64url_encode(signature)}"


def _canonical_ip(ip: str) -> str:
    if "/" in ip:
        network = parse_network(ip)
        if network is None:
            raise ValueError(f"not a CIDR block: {ip!r}")
        return str(network)
    address = parse_ip(ip)
    if address is None:
        raise ValueError(f"not an IP address: {ip!r}")
    return str(address)


def _expiry(ttl: float | None, expires: int | None, now: float | None) -> int:
    if expires is not None:
        return int(expires)
    if ttl is None or ttl <= 0:
        raise ValueError("give a positive ttl or an absolute expires")
    return int((time.time() if now is None else now) + ttl)


def sign_url(
    url: str,
    keys: KeyRing | Key,
    *,
    ttl: float | None = None,
    expires: int | None = None,
    not_before: int | None = None,
    prefix: str | None = None,
    ip: str | None = None,
    bind: Sequence[str] = (),
    style: Literal["query", "path"] = "query",
    kid: str | None = None,
    now: float | None = None,
    param: str = DEFAULT_PARAM,
    marker: str = DEFAULT_MARKER,
) -> str:
    """Sign ``url`` (absolute, or a path with an optional query). With ``prefix`` the
    token authorizes everything under it (the URL must be inside it); ``bind`` names
    query parameters of ``url`` whose values the token pins. Returns the signed URL."""
    key = keys.signing_key(kid) if isinstance(keys, KeyRing) else keys
    parts = urlsplit(url)
    path = normalize_path(parts.path or "/")
    if prefix is not None and not prefix_allows(normalize_path(prefix), path):
        raise ValueError(f"{path!r} is not under the prefix {prefix!r}")
    pairs = query_pairs(parts.query)
    present = {name for name, _ in pairs}
    missing = [name for name in bind if name not in present]
    if missing:
        raise ValueError(f"bound parameters not in the URL: {', '.join(missing)}")
    bound = {name: [unquote_plus(v) for n, v in pairs if n == name] for name in bind}
    token = mint_token(
        key,
        expires=_expiry(ttl, expires, now),
        path=None if prefix is not None else path,
        prefix=prefix,
        not_before=not_before,
        ip=ip,
        bind=bound,
    )
    if style == "path":
        return urlunsplit(parts._replace(path=f"/{marker}/{token}{path}"))
    query = f"{parts.query}&{param}={token}" if parts.query else f"{param}={token}"
    return urlunsplit(parts._replace(path=path, query=query))


def signed_cookie(
    keys: KeyRing | Key,
    *,
    prefix: str,
    ttl: float | None = None,
    expires: int | None = None,
    not_before: int | None = None,
    ip: str | None = None,
    kid: str | None = None,
    now: float | None = None,
    cookie: str = DEFAULT_COOKIE,
    secure: bool = True,
    same_site: Literal["Strict", "Lax", "None"] = "Lax",
) -> str:
    """A ``Set-Cookie`` value carrying a prefix token (cookie style, like CloudFront's
    signed cookies). No Max-Age: a session cookie; the token's own expiry applies."""
    key = keys.signing_key(kid) if isinstance(keys, KeyRing) else keys
    scope = normalize_path(prefix)
    token = mint_token(
        key,
        expires=_expiry(ttl, expires, now),
        prefix=scope,
        not_before=not_before,
        ip=ip,
    )
    attributes = [f"{cookie}={token}", f"Path={scope}", "HttpOnly", f"SameSite={same_site}"]
    if secure or same_site == "None":
        attributes.append("Secure")
    return "; ".join(attributes)


# -- verifying ----------------------------------------------------------------------------


def parse_claims(text: str) -> dict[str, str] | None:
    claims: dict[str, str] = {}
    if not text:
        return None
    for part in text.split("&"):
        name, sep, value = part.partition("=")
        if not sep or name in claims or name not in "kenipab" or len(name) != 1:
            return None
        claims[name] = unquote(value) if "%" in value else value
    if "k" not in claims or "e" not in claims or ("a" in claims) == ("p" in claims):
        return None
    return claims


def verify_token(
    token: str,
    keys: KeyRing,
    *,
    path: str,
    pairs: Iterable[tuple[str, str]],
    client_ip: str,
    now: float,
    skew: float = 0.0,
) -> AuthResult:
    """Check one native token against a request. ``path`` is the token-free request
    path (normalised again here); ``pairs`` the query as from ``query_pairs``."""
    if not token:
        return deny(SCHEME, MISSING)
    claims_part, dot, mac_part = token.partition(".")
    raw = b64url_decode(claims_part) if dot and len(token) <= _MAX_TOKEN else None
    given = b64url_decode(mac_part) if raw is not None else None
    try:
        text = raw.decode("ascii") if raw is not None else ""
    except UnicodeDecodeError:
        text = ""
    claims = parse_claims(text) if text.isprintable() else None
    if claims is None:
        constant_time_equal(_dummy_mac(token, ""), None)
        return deny(SCHEME, BAD_SIGNATURE)
    names = [unquote(n) for n in claims["b"].split(",")] if "b" in claims else []
    bound = bound_string(names, pairs)
    key = keys.get(claims["k"])
    if key is None:
        constant_time_equal(_dummy_mac(text, bound), given)
        return deny(SCHEME, UNKNOWN_KID, {"kid": claims["k"]})
    if not constant_time_equal(mac(key, text, bound), given):
        return deny(SCHEME, BAD_SIGNATURE, {"kid": key.kid})
    info = _describe(claims, names)
    expires = parse_epoch(claims["e"])
    not_before = parse_epoch(claims["n"]) if "n" in claims else None
    if expires is None or ("n" in claims and not_before is None):
        return deny(SCHEME, BAD_SIGNATURE, info)
    reason = window_reason(now, expires=expires, not_before=not_before, skew=skew)
    if reason:
        return deny(SCHEME, reason, info)
    if "i" in claims and not ip_in(client_ip, claims["i"]):
        return deny(SCHEME, IP_MISMATCH, info)
    canonical = canonical_path(path)
    if canonical is None:
        return deny(SCHEME, ACL_MISMATCH, info)
    if "a" in claims:
        scope = canonical_path(claims["a"])
        if scope is None or not prefix_allows(scope, canonical):
            return deny(SCHEME, ACL_MISMATCH, info)
    elif canonical != claims["p"]:
        return deny(SCHEME, ACL_MISMATCH, info)
    return accept(SCHEME, info)


def _describe(claims: Mapping[str, str], names: list[str]) -> dict[str, Any]:
    info: dict[str, Any] = {"kid": claims["k"], "exp": claims["e"]}
    if "n" in claims:
        info["nbf"] = claims["n"]
    if "i" in claims:
        info["ip"] = claims["i"]
    if "a" in claims:
        info["acl"] = claims["a"]
    else:
        info["path"] = claims["p"]
    if names:
        info["bound"] = tuple(names)
    return info


class NativeVerifier:
    """Native tokens for one route: which styles are accepted and under which names."""

    scheme = SCHEME

    def __init__(
        self,
        keys: KeyRing,
        *,
        styles: Iterable[Style] = ("query", "path", "cookie"),
        param: str = DEFAULT_PARAM,
        cookie: str = DEFAULT_COOKIE,
        skew: float = 0.0,
    ) -> None:
        self.keys = keys
        self.styles = tuple(styles)
        self.param = param
        self.cookie_name = cookie
        self.skew = skew
        self.query_params = frozenset({param}) if "query" in self.styles else frozenset()
        self.cookies = frozenset({cookie}) if "cookie" in self.styles else frozenset()

    def tokens(self, inp: AuthInput) -> list[str]:
        found: list[str] = []
        for style in self.styles:
            if style == "path":
                token = inp.path_token
            elif style == "query":
                token = inp.arg(self.param)
            else:
                token = inp.cookie(self.cookie_name)
            if token is not None:
                found.append(token)
        return found

    def verify(self, inp: AuthInput) -> AuthResult | None:
        """None when the request carries no native token in an accepted place; else the
        first success, or the failure of the first token found."""
        first: AuthResult | None = None
        for token in self.tokens(inp):
            result = verify_token(
                token,
                self.keys,
                path=inp.path,
                pairs=inp.pairs(),
                client_ip=inp.client_ip,
                now=inp.now,
                skew=self.skew,
            )
            if result.ok:
                return result
            if first is None:
                first = result
        return first
