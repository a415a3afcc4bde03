"""Per-route auth policy: which schemes a route accepts, where tokens come from, and how
tokens are removed from the cache key and the origin request.

Built once at start-up (``AuthContext.from_settings`` then ``build_policy`` per route);
``AuthPolicy.verify`` is then a pure function of the request."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote_plus

from config.auth import AuthSettings, RouteAuthSettings
from proxy.auth.akamai import AkamaiVerifier
from proxy.auth.bunny import BunnyVerifier
from proxy.auth.cloudfront import CloudFrontVerifier, load_private_key, load_public_key
from proxy.auth.common import (
    MISSING,
    REASON_HEADER,
    AuthInput,
    AuthResult,
    deny,
)
from proxy.auth.keys import KeyError_, KeyRing
from proxy.auth.native import NativeVerifier, split_path_token, token_free_path
from proxy.auth.nginx import ExpressionError, NginxVerifier

__all__ = [
    "NOT_REQUIRED",
    "OPEN",
    "AuthContext",
    "AuthPolicy",
    "build_policy",
    "denial",
    "log_denial",
    "split_path_token",
    "strip_cookies",
    "strip_token",
    "token_free_path",
    "verify",
]

log = logging.getLogger("edgeshield.auth")
NOT_REQUIRED = AuthResult(True, "", "none")  # the answer for routes that need no token


class Verifier(Protocol):
    scheme: str
    query_params: frozenset[str]  # token parameters to strip
    cookies: frozenset[str]  # token cookies to strip

    def verify(self, inp: AuthInput) -> AuthResult | None:
        """None when the request carries no token of this scheme."""
        ...


class RequestLike(Protocol):
    # Read-only members, so that a Request with a plain dict of headers fits.
    @property
    def path(self) -> str: ...
    @property
    def query(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def client(self) -> str: ...
    @property
    def now(self) -> float: ...
    @property
    def scheme(self) -> str: ...
    @property
    def host(self) -> str: ...


@dataclass(frozen=True, eq=False)
class AuthContext:
    """Key material loaded once from ``[auth]``: shared keys, the Akamai/bunny keys,
    the nginx secret and CloudFront public keys. Its repr names kids only."""

    settings: AuthSettings
    keys: KeyRing
    cloudfront_keys: Mapping[str, Any]
    akamai_key: bytes | None = None
    bunny_key: bytes | None = None
    nginx_secret: bytes | None = None
    # (Key-Pair-Id, RSA private key) for CloudFront child tokens of tokenized playlists.
    cloudfront_signing: tuple[str, Any] | None = None

    def __repr__(self) -> str:
        return f"AuthContext(keys={self.keys!r}, cloudfront={sorted(self.cloudfront_keys)!r})"

    @classmethod
    def from_settings(cls, auth: AuthSettings, *, base_dir: Path | None = None) -> AuthContext:
        """Raises ``KeyError_`` (a ValueError naming the setting) when a key cannot be
        loaded."""
        keys = KeyRing.from_settings(auth, base_dir=base_dir)
        akamai_key = None
        if auth.akamai is not None:
            akamai_key = _akamai_key(auth, keys)
        bunny_key = None
        if auth.bunny is not None:
            bunny_key = _secret(keys, auth.bunny.key)
        nginx_secret = None
        if auth.nginx is not None and auth.nginx.key is not None:
            nginx_secret = _secret(keys, auth.nginx.key)
        cloudfront_keys: dict[str, Any] = {}
        if auth.cloudfront is not None:
            for kid, spec in auth.cloudfront.public_keys.items():
                where = f"auth.cloudfront.public_keys.{kid}"
                try:
                    if spec.public_key is not None:
                        pem = spec.public_key.encode()
                    else:
                        assert spec.public_key_file is not None
                        path = spec.public_key_file
                        if base_dir is not None and not path.is_absolute():
                            path = base_dir / path
                        pem = path.read_bytes()
                    cloudfront_keys[kid] = load_public_key(pem)
                except OSError as exc:
                    raise KeyError_(where, f"cannot read: {exc.strerror or exc}") from None
                except ValueError as exc:
                    raise KeyError_(where, f"not an RSA public key in PEM: {exc}") from None
        signing = _cloudfront_signing(auth, base_dir)
        return cls(auth, keys, cloudfront_keys, akamai_key, bunny_key, nginx_secret, signing)


def _cloudfront_signing(auth: AuthSettings, base_dir: Path | None) -> tuple[str, Any] | None:
    spec = auth.cloudfront
    if spec is None or spec.signing_key_pair_id is None:
        return None
    where = "auth.cloudfront.private_key"
    try:
        if spec.private_key is not None:
            pem = spec.private_key.get_secret_value().encode()
        else:
            assert spec.private_key_file is not None
            path = spec.private_key_file
            if base_dir is not None and not path.is_absolute():
                path = base_dir / path
            pem = path.read_bytes()
        return spec.signing_key_pair_id, load_private_key(pem)
    except OSError as exc:
        raise KeyError_(where, f"cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise KeyError_(where, f"not an RSA private key in PEM: {exc}") from None


def _secret(keys: KeyRing, kid: str) -> bytes:
    key = keys.get(kid)
    if key is None:
        raise KeyError_(f"auth.keys.{kid}", "not configured")
    return key.secret


def _akamai_key(auth: AuthSettings, keys: KeyRing) -> bytes:
    assert auth.akamai is not None
    kid = auth.akamai.key
    raw = _secret(keys, kid)
    if auth.keys[kid].encoding != "utf8":
        return raw  # already decoded by the key ring
    try:
        return bytes.fromhex(raw.decode("ascii").strip())
    except ValueError:
        raise KeyError_(
            f"auth.keys.{kid}.secret", "an EdgeAuth key is a hex string of even length"
        ) from None


class AuthPolicy:
    """One route's auth: ``verify`` a request, ``strip_token`` from its query."""

    __slots__ = ("marker", "required", "schemes", "strip_cookie_names", "strip_params", "verifiers")

    def __init__(
        self,
        verifiers: Iterable[Verifier] = (),
        *,
        required: bool = True,
        marker: str | None = None,
        strip: bool = True,
    ) -> None:
        self.verifiers = tuple(verifiers)
        self.required = required and bool(self.verifiers)
        self.schemes = tuple(v.scheme for v in self.verifiers)
        self.marker = marker  # native path-token marker when the path style is on
        params: set[str] = set()
        cookies: set[str] = set()
        if strip:
            for verifier in self.verifiers:
                params |= verifier.query_params
                cookies |= verifier.cookies
        self.strip_params = frozenset(params)
        self.strip_cookie_names = frozenset(cookies)

    def __repr__(self) -> str:
        return f"AuthPolicy(required={self.required}, schemes={self.schemes!r})"

    def verify(self, inp: AuthInput) -> AuthResult:
        """ok, or the reason to deny: the first scheme whose token verifies wins; with
        tokens present but none valid, the failure of the first one found; with none
        present, "missing"."""
        if not self.required:
            return NOT_REQUIRED
        failure: AuthResult | None = None
        for verifier in self.verifiers:
            result = verifier.verify(inp)
            if result is None:
                continue
            if result.ok:
                return result
            if failure is None:
                failure = result
        return failure if failure is not None else deny(self.schemes[0], MISSING)

    def strip_token(self, query: str) -> str:
        """The query without this route's token parameters (for the cache key and the
        origin request), other parameters untouched and in order."""
        return strip_token(query, self.strip_params)

    def strip_cookies(self, cookie_header: str) -> str | None:
        """The Cookie header without token cookies; None when nothing is left."""
        if not self.strip_cookie_names:
            return cookie_header
        return strip_cookies(cookie_header, self.strip_cookie_names)


OPEN = AuthPolicy((), required=False)  # routes without [routes.auth]


def build_policy(route_auth: RouteAuthSettings | None, ctx: AuthContext) -> AuthPolicy:
    """The policy of one route from its ``[routes.auth]`` and the loaded ``[auth]``.
    Raises ``ValueError`` for a scheme that is not configured (config.auth's
    ``auth_reference_errors`` reports the same at load time)."""
    if route_auth is None:
        return OPEN
    auth = ctx.settings
    skew = auth.clock_skew if route_auth.clock_skew is None else route_auth.clock_skew
    verifiers: list[Verifier] = []
    marker = None
    for scheme in route_auth.schemes:
        if scheme == "native":
            native = auth.native
            verifiers.append(
                NativeVerifier(
                    ctx.keys,
                    styles=route_auth.styles,
                    param=route_auth.param or native.param,
                    cookie=route_auth.cookie or native.cookie,
                    skew=skew,
                )
            )
            if "path" in route_auth.styles:
                marker = native.path_marker
        elif scheme == "akamai":
            if auth.akamai is None or ctx.akamai_key is None:
                raise ValueError("akamai: [auth.akamai] is not configured")
            a = auth.akamai
            verifiers.append(
                AkamaiVerifier(
                    ctx.akamai_key,
                    algorithm=a.algorithm,
                    token_name=a.token_name,
                    sources=a.sources,
                    field_delimiter=a.field_delimiter,
                    acl_delimiter=a.acl_delimiter,
                    escape_early=a.escape_early,
                    salt=a.salt.get_secret_value() if a.salt else None,
                    skew=skew,
                )
            )
        elif scheme == "cloudfront":
            if auth.cloudfront is None:
                raise ValueError("cloudfront: [auth.cloudfront] is not configured")
            verifiers.append(
                CloudFrontVerifier(
                    ctx.cloudfront_keys,
                    resource_base=auth.cloudfront.resource_base,
                    sources=auth.cloudfront.sources,
                    skew=skew,
                )
            )
        elif scheme == "bunny":
            if auth.bunny is None or ctx.bunny_key is None:
                raise ValueError("bunny: [auth.bunny] is not configured")
            verifiers.append(
                BunnyVerifier(
                    ctx.bunny_key,
                    ip_validation=auth.bunny.ip_validation,
                    forms=auth.bunny.forms,
                    skew=skew,
                )
            )
        else:
            if auth.nginx is None:
                raise ValueError("nginx: [auth.nginx] is not configured")
            try:
                verifiers.append(
                    NginxVerifier(
                        auth.nginx.secure_link,
                        auth.nginx.secure_link_md5.get_secret_value(),
                        secret=ctx.nginx_secret,
                        skew=skew,
                    )
                )
            except ExpressionError as exc:
                raise ValueError(f"nginx: {exc}") from None
    return AuthPolicy(
        verifiers, required=route_auth.required, marker=marker, strip=route_auth.strip_tokens
    )


# -- request helpers ----------------------------------------------------------------------


def auth_input(
    request: RequestLike,
    *,
    client_ip: str | None = None,
    path_token: str | None = None,
    bunny_path: str | None = None,
    country: str | None = None,
) -> AuthInput:
    """An ``AuthInput`` from the pipeline's ``Request`` (its path already token-free)."""
    return AuthInput(
        path=request.path,
        query=request.query,
        headers=request.headers,
        client_ip=request.client if client_ip is None else client_ip,
        now=request.now,
        scheme=request.scheme,
        host=request.headers.get("host") or request.host,
        path_token=path_token,
        bunny_path=bunny_path,
        country=country,
    )


def verify(
    request: RequestLike,
    policy: AuthPolicy,
    *,
    client_ip: str | None = None,
    path_token: str | None = None,
    bunny_path: str | None = None,
    country: str | None = None,
) -> AuthResult:
    """The pipeline's auth step: ``policy.verify`` for a ``Request``. ``client_ip`` is
    the resolved client address (``access.client_ip``), default the socket peer."""
    if not policy.required:
        return NOT_REQUIRED
    return policy.verify(
        auth_input(
            request,
            client_ip=client_ip,
            path_token=path_token,
            bunny_path=bunny_path,
            country=country,
        )
    )


def strip_token(query: str, names: Iterable[str] | frozenset[str]) -> str:
    """``query`` without parameters called any of ``names`` (names compared decoded, and
    also in lower case: nginx's ``$arg_`` names are case-insensitive)."""
    if not query:
        return query
    wanted = names if isinstance(names, frozenset) else frozenset(names)
    if not wanted:
        return query
    kept = []
    for part in query.split("&"):
        if not part:
            continue
        name = part.partition("=")[0]
        if "%" in name or "+" in name:
            name = unquote_plus(name)
        if name not in wanted and name.lower() not in wanted:
            kept.append(part)
    return "&".join(kept)


def strip_cookies(cookie_header: str, names: Iterable[str]) -> str | None:
    wanted = frozenset(names)
    kept = [
        part.strip()
        for part in cookie_header.split(";")
        if part.strip() and part.partition("=")[0].strip() not in wanted
    ]
    return "; ".join(kept) or None


def denial(result: AuthResult) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(403, headers, body) for a failed verification: the reason in a header and a
    short body, nothing about keys."""
    reason = result.reason or MISSING
    headers = [
        (REASON_HEADER.encode(), reason.encode()),
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"cache-control", b"no-store"),
    ]
    return 403, headers, f"forbidden: {reason}\n".encode()


def log_denial(
    result: AuthResult,
    *,
    route: str,
    client: str,
    path: str,
    logger: logging.Logger = log,
) -> None:
    """One log line per denial: route, client, path, scheme, reason and the key id if
    any (never key material or the token itself)."""
    kid = result.claims.get("kid") or result.claims.get("key_pair_id")
    logger.info(
        "auth denied route=%s client=%s path=%s scheme=%s reason=%s%s",
        route,
        client,
        path,
        result.scheme,
        result.reason,
        f" kid={kid}" if kid else "",
    )
