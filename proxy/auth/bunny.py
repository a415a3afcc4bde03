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
* HS256 (bunny's current signing libraries): ``token`` = "HS256-" + base64url, unpadded,
  of HMAC-SHA256(security_key, signature_path + expires + parameter_data [+ client IP]),
  parameter_data as above but keeping empty values.

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


def parameter_data(pairs: Iterable[tuple[str, str]], *, keep_empty: bool) -> str:
    values: dict[str, str] = {}
    for name, raw in pairs:
        if name in ("token", "expires"):
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
        ip = inp.client_ip if self.ip_validation else ""
        canonical = canonical_path(inp.path)
        if not self._signature_ok(token, pairs, params, inp.path, expires, ip):
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
        ip: str,
    ) -> bool:
        key = self._key
        token_path = unquote_plus(params["token_path"]) if params.get("token_path") else None
        decoded_path = unquote(path)
        if token.startswith("HS256-"):
            if "hs256" not in self.forms:
                return False
            given = b64url_decode(token[6:])
            message = (
                f"{token_path or decoded_path}{expires}{parameter_data(pairs, keep_empty=True)}{ip}"
            )
            expected = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
            return constant_time_equal(expected, given)
        given = b64url_decode(token)
        if given is not None and len(given) == 16 and "md5" in self.forms:
            ok = False
            for candidate in (path, decoded_path) if decoded_path != path else (path,):
                blob = key + f"{candidate}{expires}{ip}".encode()
                ok |= constant_time_equal(hashlib.md5(blob).digest(), given)
            return ok
        if "sha256" not in self.forms:
            constant_time_equal(bytes(32), None)
            return False
        data = f"{token_path or decoded_path}{expires}{ip}{parameter_data(pairs, keep_empty=False)}"
        expected = hashlib.sha256(key + data.encode("utf-8")).digest()
        return constant_time_equal(expected, given)


def _countries(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    return frozenset(c.strip().upper() for c in unquote_plus(value).split(",") if c.strip())
