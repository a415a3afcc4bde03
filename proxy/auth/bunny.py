"""bunny.net token authentication: the basic MD5 form and the SHA-256 forms.

* basic ("Token authentication (basic)"): ``token`` = base64url, unpadded, of
  MD5(security_key + url_path + expires [+ client IP]); ``expires`` is the last second
  the URL is accessible.
* SHA-256 ("Token authentication"): ``token`` = base64url, unpadded, of
  SHA256(security_key + signature_path + expires [+ client IP] + parameter_data), where
  signature_path is ``token_path`` when given (a directory token) else the URL path, and
  parameter_data is every other query parameter but ``token`` and ``expires``, sorted by
  name, ``name=value`` with decoded values, empty values left out, joined with ``&``.
  ``token_countries`` / ``token_countries_blocked`` restrict the client's country.
* HS256 (bunny's signing libraries, BunnyWay/BunnyCDN.TokenAuthentication 2.1):
  ``token`` = "HS256-" [+ "1-"] + base64url, unpadded, of HMAC-SHA256(security_key,
  signature_path + expires [+ packed client address] + parameter_data), parameter_data as
  above but keeping empty values. The "1-" flag marks an IP-locked token: the address
  goes in as its bytes (4 for IPv4; 16 for IPv6, the last 8 zeroed, so a /64), before the
  parameters. The earlier HS256 form had no flag and appended the address as text, last,
  when the pull zone validates addresses; it is still accepted.

``token_ignore_params=true`` (signed like any parameter) takes every query parameter that
is not one of bunny's own (``OWN_PARAMS``) out of parameter_data, so a player may add its
own parameters to a signed URL.

The directory form puts the parameters in the first path segment:
``/bcdn_token=<token>&token_path=%2Fvideos%2F&expires=<n>/videos/a.mp4``; cut it from the
raw path with ``split_bunny_path_token`` before the path is normalised (its ``%2F`` would
be refused otherwise).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import quote, unquote, unquote_plus

from proxy.auth.common import (
    ACL_MISMATCH,
    BAD_SIGNATURE,
    IP_MISMATCH,
    AuthInput,
    AuthResult,
    accept,
    b64url_decode,
    b64url_encode,
    canonical_path,
    constant_time_equal,
    deny,
    parse_epoch,
    parse_ip,
    prefix_allows,
    query_pairs,
    window_reason,
)

SCHEME = "bunny"
PATH_MARKER = "/bcdn_token="
# Parameters that belong to bunny's token scheme (removed from cache keys and origin
# requests); other query parameters stay, though the SHA-256 forms sign them too.
OWN_PARAMS = (
    "token",
    "expires",
    "token_path",
    "token_countries",
    "token_countries_blocked",
    "token_ignore_params",
    "limit",
)
Form = Literal["md5", "sha256", "hs256"]


def split_bunny_path_token(raw_path: str) -> tuple[str | None, str]:
    """``/bcdn_token=T&expires=N/videos/a.mp4`` -> (``token=T&expires=N``,
    ``/videos/a.mp4``): the directory-token parameters as a query string, and the raw
    rest of the path. Anything else comes back unchanged with None."""
    if not raw_path.startswith(PATH_MARKER):
        return None, raw_path
    end = raw_path.find("/", 1)
    segment = raw_path[1:] if end < 0 else raw_path[1:end]
    rest = "/" if end < 0 else raw_path[end:]
    return "token=" + segment[len("bcdn_token=") :], rest


IGNORE_PARAMS = "token_ignore_params"
IP_LOCKED = "1-"  # the HS256 flag of a token signed with the client address


def ignores_params(params: Mapping[str, str]) -> bool:
    return params.get(IGNORE_PARAMS, "").lower() == "true"


def parameter_data(
    pairs: Iterable[tuple[str, str]], *, keep_empty: bool, own_only: bool = False
) -> str:
    """Sorted, decoded ``name=value`` of the signed parameters joined with "&"; with
    ``own_only`` (token_ignore_params) only bunny's own parameters are signed."""
    values: dict[str, str] = {}
    for name, raw in pairs:
        if name in ("token", "expires") or (own_only and name not in OWN_PARAMS):
            continue
        values[name] = unquote_plus(raw)
    return "&".join(
        f"{name}={value}" for name, value in sorted(values.items()) if keep_empty or value
    )


def sign_basic(key: str, path: str, expires: int, ip: str = "") -> str:
    digest = hashlib.md5(f"{key}{path}{expires}{ip}".encode()).digest()
    return b64url_encode(digest)


def sign_sha256(
    key: str, path: str, expires: int, *, params: Mapping[str, str] | None = None, ip: str = ""
) -> str:
    """Token of the SHA-256 form; ``params`` are the other parameters of the URL
    (token_path, token_countries ...), which the URL must then carry."""
    pairs = [(k, quote(v, safe="")) for k, v in (params or {}).items()]
    signature_path = (params or {}).get("token_path") or path
    data = parameter_data(pairs, keep_empty=False)
    digest = hashlib.sha256(f"{key}{signature_path}{expires}{ip}{data}".encode()).digest()
    return b64url_encode(digest)


def packed_address(text: str) -> bytes | None:
    """The client address as the "1-" tokens sign it: IPv4 as its 4 bytes, IPv6 as its
    16 bytes with the interface identifier (last 8) zeroed, so the lock is to a /64."""
    address = parse_ip(text)
    if address is None:
        return None
    packed = address.packed
    return packed if len(packed) == 4 else packed[:8] + bytes(8)


class BunnyVerifier:
    scheme = SCHEME

    def __init__(
        self,
        key: bytes,
        *,
        ip_validation: bool = False,
        forms: Iterable[Form] = ("md5", "sha256", "hs256"),
        skew: float = 0.0,
    ) -> None:
        self._key = key
        self.ip_validation = ip_validation
        self.forms = frozenset(forms)
        self.skew = skew
        self.query_params = frozenset(OWN_PARAMS)
        self.cookies: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"BunnyVerifier(forms={sorted(self.forms)!r}, ip_validation={self.ip_validation})"

    def verify(self, inp: AuthInput) -> AuthResult | None:
        pairs = inp.pairs()
        if inp.bunny_path is not None:
            pairs = query_pairs(inp.bunny_path) + pairs
        params = dict(pairs)
        token = params.get("token")
        if token is None:
            return None
        expires = parse_epoch(params.get("expires"))
        if expires is None or len(params) != len(pairs):
            # bunny's signers refuse repeated parameters; so do we (no ambiguity about
            # which value was signed).
            return deny(SCHEME, BAD_SIGNATURE)
        canonical = canonical_path(inp.path)
        if not self._signature_ok(token, pairs, params, inp.path, expires, inp.client_ip):
            return deny(SCHEME, BAD_SIGNATURE)
        claims: dict[str, Any] = {"exp": expires}
        token_path = unquote(params["token_path"]) if "token_path" in params else None
        if token_path:
            claims["token_path"] = token_path
        reason = window_reason(
            inp.now, expires=expires, not_before=None, skew=self.skew, inclusive_expiry=True
        )
        if reason:
            return deny(SCHEME, reason, claims)
        if canonical is None:
            return deny(SCHEME, ACL_MISMATCH, claims)
        if token_path:
            scope = canonical_path(token_path)
            if scope is None or not prefix_allows(scope, canonical):
                return deny(SCHEME, ACL_MISMATCH, claims)
        allowed = _countries(params.get("token_countries"))
        blocked = _countries(params.get("token_countries_blocked"))
        country = (inp.country or "").upper()
        if (allowed and country not in allowed) or (blocked and country in blocked):
            # A location restriction, reported like an address restriction.
            return deny(SCHEME, IP_MISMATCH, {**claims, "country": country or None})
        return accept(SCHEME, claims)

    def _signature_ok(
        self,
        token: str,
        pairs: list[tuple[str, str]],
        params: Mapping[str, str],
        path: str,
        expires: int,
        client: str,
    ) -> bool:
        own_only = ignores_params(params)
        ip = client if self.ip_validation else ""  # the older forms append it as text
        if params.get("token_path"):
            paths: tuple[str, ...] = (unquote_plus(params["token_path"]),)
        else:
            # Signers hash the path as they were given it, raw or decoded; try both.
            decoded = unquote(path)
            paths = (path, decoded) if decoded != path else (path,)
        if token.startswith("HS256-"):
            if "hs256" not in self.forms:
                return False
            return self._hs256_ok(token[6:], pairs, paths, expires, client, ip, own_only)
        given = b64url_decode(token)
        if given is not None and len(given) == 16 and "md5" in self.forms:
            # The basic form signs the URL path, never token_path.
            decoded = unquote(path)
            return self._any_equal(
                given,
                (
                    hashlib.md5(self._key + f"{p}{expires}{ip}".encode()).digest()
                    for p in ((path, decoded) if decoded != path else (path,))
                ),
            )
        if "sha256" not in self.forms:
            constant_time_equal(bytes(32), None)
            return False
        data = parameter_data(pairs, keep_empty=False, own_only=own_only)
        return self._any_equal(
            given,
            (
                hashlib.sha256(self._key + f"{p}{expires}{ip}{data}".encode()).digest()
                for p in paths
            ),
        )

    def _hs256_ok(
        self,
        body: str,
        pairs: list[tuple[str, str]],
        paths: tuple[str, ...],
        expires: int,
        client: str,
        ip: str,
        own_only: bool,
    ) -> bool:
        data = parameter_data(pairs, keep_empty=True, own_only=own_only).encode()
        if body.startswith(IP_LOCKED):
            # Current signers: the packed address, before the parameters, whatever the
            # ip_validation setting (the token says it is locked).
            given = b64url_decode(body[len(IP_LOCKED) :])
            address = packed_address(client)
            if address is None:
                constant_time_equal(bytes(32), None)
                return False
            messages = (f"{p}{expires}".encode() + address + data for p in paths)
        else:
            # Unlocked, or the earlier form: the address as text, last.
            given = b64url_decode(body)
            messages = (f"{p}{expires}".encode() + data + ip.encode() for p in paths)
        return self._any_equal(
            given, (hmac.new(self._key, m, hashlib.sha256).digest() for m in messages)
        )

    @staticmethod
    def _any_equal(given: bytes | None, candidates: Iterable[bytes]) -> bool:
        ok = False
        for expected in candidates:  # every candidate is compared: no early exit
            ok |= constant_time_equal(expected, given)
        return ok


def _countries(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    return frozenset(c.strip().upper() for c in unquote_plus(value).split(",") if c.strip())
