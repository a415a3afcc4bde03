"""Settings for signed URLs, vendor tokens and access control (issue 5).

Where they hang in ``Settings`` (wired by ``config.schema``):

* ``Settings.auth: AuthSettings``                      -> ``[auth]``, ``[auth.keys.<kid>]`` ...
* ``RouteSettings.auth: RouteAuthSettings | None``     -> ``[routes.auth]``
* ``RouteSettings.access: RouteAccessSettings | None`` -> ``[routes.access]``
* ``ServerSettings.trusted_proxies: TrustedProxies``   -> ``[server.trusted_proxies]``

Secrets are ``SecretStr``: their repr, str and JSON form are masked, so a logged or dumped
settings object shows ``**********``. The one place that needs them in JSON (the worker
handoff) asks explicitly: ``settings.model_dump_json(context={"reveal_secrets": True})``.
Environment variables reach them through the loader as usual
(``EDGESHIELD_AUTH__KEYS__K1__SECRET=...``).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    SerializationInfo,
    field_validator,
    model_validator,
)


def _dump_secret(value: SecretStr, info: SerializationInfo) -> str:
    context = info.context
    if isinstance(context, dict) and context.get("reveal_secrets") is True:
        return value.get_secret_value()
    return str(value)


# A SecretStr that stays masked unless a dump asks for context={"reveal_secrets": True}.
Secret = Annotated[SecretStr, PlainSerializer(_dump_secret, return_type=str, when_used="json")]
Seconds = Annotated[float, Field(ge=0)]
Scheme = Literal["native", "akamai", "cloudfront", "bunny", "nginx"]
Style = Literal["query", "path", "cookie"]

_KID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TOKEN_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}")  # an RFC 9110 token
_SEGMENT = re.compile(r"[A-Za-z0-9._~-]{1,32}")
_COUNTRY = re.compile(r"[A-Z]{2}")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_name(value: str) -> str:
    if not _TOKEN_NAME.fullmatch(value):
        raise ValueError("must be a parameter/cookie name of letters, digits and -._~")
    return value


def _check_networks(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value.strip(), strict=False)
        except ValueError:
            raise ValueError(f"not an IP address or CIDR block: {value!r}") from None
    return values


# -- keys ---------------------------------------------------------------------------------


class KeySettings(_Frozen):
    """``[auth.keys.<kid>]``: one shared secret; several may be active (rotation)."""

    # The secret itself (prefer an environment variable or secret_file in production).
    secret: Secret | None = None
    # A file holding the secret (one trailing newline is ignored); read once at start-up.
    secret_file: Path | None = None
    # How the configured text becomes key bytes: UTF-8 as is, or hex / base64 decoded.
    encoding: Literal["utf8", "hex", "base64"] = "utf8"

    @model_validator(mode="after")
    def _one_source(self) -> KeySettings:
        if (self.secret is None) == (self.secret_file is None):
            raise ValueError("secret: set exactly one of secret or secret_file")
        return self


# -- schemes ------------------------------------------------------------------------------


class NativeSettings(_Frozen):
    """``[auth.native]``: edgeshield's own HMAC-SHA256 signed URLs."""

    # Query parameter that carries the token (query style).
    param: str = "token"
    # Cookie that carries the token (cookie style).
    cookie: str = "edgeshield_token"
    # First path segment that introduces a path token: /_t/<token>/videos/a.m3u8.
    path_marker: str = "_t"

    @field_validator("param", "cookie")
    @classmethod
    def _names(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("path_marker")
    @classmethod
    def _marker(cls, value: str) -> str:
        if not _SEGMENT.fullmatch(value) or value in (".", ".."):
            raise ValueError("must be one path segment of letters, digits and -._~")
        return value


class AkamaiSettings(_Frozen):
    """``[auth.akamai]``: Akamai EdgeAuth (Auth Token 2.0) tokens."""

    # kid in [auth.keys] holding the EdgeAuth key, as the hex string Akamai shows.
    key: str
    # HMAC hash; EdgeAuth supports sha256 (default), sha1 and md5.
    algorithm: Literal["sha256", "sha1", "md5"] = "sha256"
    # Name of the query parameter / cookie / header ("__token__" or e.g. "hdnts").
    token_name: str = "__token__"
    # Where the token may come from.
    sources: tuple[Literal["query", "cookie", "header"], ...] = ("query", "cookie")
    # The signer's field and ACL delimiters.
    field_delimiter: str = Field(default="~", min_length=1, max_length=1)
    acl_delimiter: str = Field(default="!", min_length=1, max_length=1)
    # The signer's escape_early option: url= (URL tokens) was percent-encoded, lower case.
    escape_early: bool = False
    # Optional salt the signer mixed into the HMAC (not part of the token).
    salt: Secret | None = None

    @field_validator("token_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)


class CloudFrontKey(_Frozen):
    """``[auth.cloudfront.public_keys.<Key-Pair-Id>]``: an RSA public key (PEM)."""

    # The PEM text ("-----BEGIN PUBLIC KEY-----..."), or ...
    public_key: str | None = None
    # ... a file holding it; read once at start-up.
    public_key_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CloudFrontKey:
        if (self.public_key is None) == (self.public_key_file is None):
            raise ValueError("public_key: set exactly one of public_key or public_key_file")
        return self


class CloudFrontSettings(_Frozen):
    """``[auth.cloudfront]``: CloudFront signed URLs and signed cookies."""

    # Public keys by Key-Pair-Id (the id CloudFront shows for the public key).
    public_keys: dict[str, CloudFrontKey] = Field(default_factory=dict)
    # "scheme://host" the signer put in Resource (e.g. "https://d111111abcdef8.cloudfront.net");
    # unset: the request's own scheme and Host.
    resource_base: str | None = None
    # Where the signature may come from: URL parameters and/or CloudFront-* cookies.
    sources: tuple[Literal["query", "cookie"], ...] = ("query", "cookie")
    # Signing, for the child tokens of tokenized playlists ([routes.auth.playlists]):
    # the Key-Pair-Id and its RSA private key (PEM), as nginx-secure-token-module's
    # key_pair_id / private_key_file. Verification needs only the public keys above.
    signing_key_pair_id: str | None = None
    private_key: Secret | None = None
    private_key_file: Path | None = None

    @model_validator(mode="after")
    def _signing(self) -> CloudFrontSettings:
        has_key = self.private_key is not None or self.private_key_file is not None
        if self.private_key is not None and self.private_key_file is not None:
            raise ValueError("private_key: set at most one of private_key or private_key_file")
        if has_key != (self.signing_key_pair_id is not None):
            raise ValueError("signing_key_pair_id: set it together with a private key")
        return self

    @field_validator("resource_base")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^/?#\s]+", value):
            raise ValueError("must be scheme://host without a path, e.g. https://cdn.example")
        return value


class BunnySettings(_Frozen):
    """``[auth.bunny]``: bunny.net token authentication (basic MD5, SHA-256 and HS256)."""

    # kid in [auth.keys] holding the pull zone's token security key.
    key: str
    # The signer appended the client IP to the hashed string ("IP validation"), as the
    # MD5, SHA-256 and first HS256 signers do. IP-locked "HS256-1-" tokens of the
    # current signers are checked against the client address either way.
    ip_validation: bool = False
    # Accepted forms: basic MD5, the SHA-256 form (token_path, countries) and the
    # HMAC-SHA256 "HS256-" form of bunny's current signing libraries.
    forms: tuple[Literal["md5", "sha256", "hs256"], ...] = ("md5", "sha256", "hs256")


class NginxSettings(_Frozen):
    """``[auth.nginx]``: nginx ``secure_link`` / ``secure_link_md5``, same expressions."""

    # Like `secure_link`: where the base64url MD5 and the optional expiry come from.
    secure_link: str = "$arg_md5,$arg_expires"
    # Like `secure_link_md5`; may hold the secret literally as nginx configs do, or
    # $secret for the key named by `key`. Masked in logs either way.
    secure_link_md5: Secret = SecretStr("$secure_link_expires$uri$remote_addr $secret")
    # kid in [auth.keys] substituted for $secret.
    key: str | None = None

    @field_validator("secure_link")
    @classmethod
    def _has_variable(cls, value: str) -> str:
        if "$" not in value:
            raise ValueError("must take the hash from a variable, e.g. $arg_md5,$arg_expires")
        return value


class AuthSettings(_Frozen):
    """``[auth]``: keys and scheme settings shared by every route."""

    # Shared secrets by key id (kid); several may be active at once for rotation.
    keys: dict[str, KeySettings] = Field(default_factory=dict)
    # kid that `edgeshield sign` and sign_url() use by default (else: the only key).
    signing_kid: str | None = None
    # Seconds of clock difference tolerated at both ends of a validity window.
    clock_skew: Seconds = 30.0
    # Token names of edgeshield's own signed URLs.
    native: NativeSettings = NativeSettings()
    # Vendor verifiers; a route can accept a vendor's tokens once it is configured here.
    akamai: AkamaiSettings | None = None
    cloudfront: CloudFrontSettings | None = None
    bunny: BunnySettings | None = None
    nginx: NginxSettings | None = None

    @field_validator("keys")
    @classmethod
    def _kids(cls, value: dict[str, KeySettings]) -> dict[str, KeySettings]:
        for kid in value:
            if not _KID.fullmatch(kid):
                raise ValueError(f"key id {kid!r}: use 1-64 letters, digits and . _ -")
        return value

    @model_validator(mode="after")
    def _references(self) -> AuthSettings:
        refs = [
            ("signing_kid", self.signing_kid),
            ("akamai.key", self.akamai.key if self.akamai else None),
            ("bunny.key", self.bunny.key if self.bunny else None),
            ("nginx.key", self.nginx.key if self.nginx else None),
        ]
        for where, kid in refs:
            if kid is not None and kid not in self.keys:
                known = ", ".join(sorted(self.keys)) or "none"
                hint = f"EDGESHIELD_AUTH__KEYS__{kid.upper().replace('-', '_')}__SECRET"
                raise ValueError(
                    f"{where}: unknown key {kid!r} (known: {known}); configure "
                    f"[auth.keys.{kid}] or set {hint}"
                )
        return self


MintScheme = Literal["native", "akamai", "cloudfront", "bunny"]


class PlaylistTokenSettings(_Frozen):
    """``[routes.auth.playlists]``: child tokens in HLS playlists and DASH manifests
    requested with a query token, as nginx-secure-token-module adds them."""

    # Scheme of the child tokens; unset: the scheme of the token that verified (no
    # rewrite for nginx secure_link tokens, which have no prefix form).
    scheme: MintScheme | None = None
    # Lifetime of a child token, in seconds from the playlist request: long enough to
    # play a VOD rendition to its end (live playlists are fetched again and again).
    ttl: float = Field(default=3600.0, gt=0, le=366 * 86400)
    # Larger playlists are relayed untouched (the rewrite needs the whole body in memory).
    max_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # A playlist with more URIs is relayed untouched (bounds the work per request).
    max_uris: int = Field(default=100_000, ge=1)


class RouteAuthSettings(_Frozen):
    """``[routes.auth]``: whether this route needs a token and which kinds it accepts."""

    # Deny requests without a valid token (false: tokens are neither needed nor checked,
    # but still removed from the cache key).
    required: bool = True
    # Accepted schemes, tried in this order; each must be configured under [auth].
    schemes: tuple[Scheme, ...] = Field(default=("native",), min_length=1)
    # Where native tokens may travel.
    styles: tuple[Style, ...] = Field(default=("query", "path", "cookie"), min_length=1)
    # Per-route overrides of [auth.native] param / cookie names.
    param: str | None = None
    cookie: str | None = None
    # Per-route override of [auth] clock_skew.
    clock_skew: Seconds | None = None
    # Remove token parameters from the cache key and the origin request.
    strip_tokens: bool = True
    # Tokenized playlists: a playlist requested with a query token that verified gets a
    # token in every same-origin URI inside it (off unless set).
    playlists: PlaylistTokenSettings | None = None

    @field_validator("param", "cookie")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value)


def auth_reference_errors(
    auth: AuthSettings, route_auths: list[RouteAuthSettings | None]
) -> list[tuple[str, str]]:
    """Cross-checks for Settings' model validator: every scheme a route accepts is
    configured under [auth]. Returns ("routes[i].auth.schemes", reason) pairs."""
    errors: list[tuple[str, str]] = []
    configured = {
        "native": bool(auth.keys),
        "akamai": auth.akamai is not None,
        "cloudfront": auth.cloudfront is not None,
        "bunny": auth.bunny is not None,
        "nginx": auth.nginx is not None,
    }
    for i, route_auth in enumerate(route_auths):
        if route_auth is None:
            continue
        if route_auth.playlists is not None:
            errors.extend(_playlist_errors(auth, route_auth, route_auth.playlists, i))
        if not route_auth.required:
            continue
        for scheme in route_auth.schemes:
            if not configured[scheme]:
                what = "[auth.keys.<kid>]" if scheme == "native" else f"[auth.{scheme}]"
                errors.append(
                    (f"routes[{i}].auth.schemes", f"{scheme!r} needs {what} to be configured")
                )
    return errors


def _playlist_errors(
    auth: AuthSettings, route: RouteAuthSettings, playlists: PlaylistTokenSettings, i: int
) -> list[tuple[str, str]]:
    """Child tokens must be mintable with the keys configured, and acceptable here."""
    where = f"routes[{i}].auth.playlists.scheme"
    schemes = (playlists.scheme,) if playlists.scheme else route.schemes
    if playlists.scheme is not None and playlists.scheme not in route.schemes:
        return [(where, f"{playlists.scheme!r} is not one of this route's schemes")]
    errors: list[tuple[str, str]] = []
    for scheme in schemes:
        if scheme == "native" and auth.signing_kid is None and len(auth.keys) != 1:
            errors.append((where, "native child tokens need [auth] signing_kid (several keys)"))
        if scheme == "cloudfront" and auth.cloudfront and not auth.cloudfront.signing_key_pair_id:
            errors.append(
                (
                    where,
                    "cloudfront child tokens need [auth.cloudfront] "
                    "signing_key_pair_id and private_key(_file)",
                )
            )
        if scheme == "bunny" and auth.bunny and not {"hs256", "sha256"} & set(auth.bunny.forms):
            errors.append(
                (where, "bunny child tokens are directory tokens: forms needs 'hs256' or 'sha256'")
            )
    return errors


# -- access control -----------------------------------------------------------------------


class CorsSettings(_Frozen):
    """``[routes.access.cors]``."""

    # Allowed origins: "*", exact ("https://app.example.com") or one wildcard label
    # ("https://*.example.com", subdomains only).
    allow_origins: tuple[str, ...] = ("*",)
    # Methods a page may use (preflight answer).
    allow_methods: tuple[str, ...] = ("GET", "HEAD", "OPTIONS")
    # Request headers a page may send (beyond the CORS-safelisted ones).
    allow_headers: tuple[str, ...] = ("range", "if-range", "if-none-match", "if-modified-since")
    # Response headers a page may read: hls.js and dash.js need Content-Length and
    # Content-Range (byte ranges, bandwidth estimates) and Age; dash.js reads Date to
    # set its clock for live manifests.
    expose_headers: tuple[str, ...] = (
        "content-length",
        "content-range",
        "accept-ranges",
        "etag",
        "age",
        "date",
        "cache-status",
    )
    # Send Access-Control-Allow-Credentials: true (needs explicit allow_origins).
    allow_credentials: bool = False
    # Access-Control-Max-Age of preflight answers, in seconds.
    max_age: int = Field(default=600, ge=0)

    @field_validator("allow_origins")
    @classmethod
    def _origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not re.fullmatch(
                r"https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?|null", origin
            ):
                raise ValueError(
                    f"origin {origin!r}: use '*', scheme://host[:port] or scheme://*.domain"
                )
        return value

    @model_validator(mode="after")
    def _credentials(self) -> CorsSettings:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError("allow_credentials: credentials need explicit allow_origins, not '*'")
        return self


class RefererSettings(_Frozen):
    """``[routes.access.referer]``: hotlink protection."""

    # Host names allowed in Referer; "*.example.com" matches subdomains (not the apex).
    allow_hosts: tuple[str, ...] = ()
    # Allow requests without a Referer (direct visits, privacy settings, players).
    allow_empty: bool = True


class IpAccessSettings(_Frozen):
    """``[routes.access.ip]``: deny wins; with a non-empty allow list, only it may pass."""

    # Addresses or CIDR blocks (IPv4 and IPv6) of the resolved client address.
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @field_validator("allow", "deny")
    @classmethod
    def _nets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(value)


class CountrySettings(_Frozen):
    """``[routes.access.country]``: ISO 3166 alpha-2 codes from the trusted geo header."""

    # With an allow list, unknown countries are refused; deny wins.
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    @field_validator("allow", "deny")
    @classmethod
    def _codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        codes = tuple(code.strip().upper() for code in value)
        for code in codes:
            if not _COUNTRY.fullmatch(code):
                raise ValueError(f"not a two-letter country code: {code!r}")
        return codes


class RateLimitSettings(_Frozen):
    """``[routes.access.ratelimit]``: a token bucket per client IP."""

    # Sustained requests per second.
    rate: float = Field(gt=0)
    # Bucket size: requests allowed in a burst.
    burst: int = Field(ge=1)
    # Share buckets through Redis when the server has one (the limit holds across
    # instances); otherwise, or while Redis fails, each instance limits on its own.
    shared: bool = True
    # Most clients tracked in memory per instance (least recently seen are dropped).
    max_clients: int = Field(default=100_000, ge=1)


class RouteAccessSettings(_Frozen):
    """``[routes.access]``: checks that do not need a token; each is off unless set."""

    # CORS answers (preflights and response headers).
    cors: CorsSettings | None = None
    # Referer allow-list (hotlink protection).
    referer: RefererSettings | None = None
    # Client address allow/deny lists.
    ip: IpAccessSettings | None = None
    # Client country allow/deny lists (needs server.trusted_proxies.country_header).
    country: CountrySettings | None = None
    # Per-client request rate.
    ratelimit: RateLimitSettings | None = None


class TrustedProxies(_Frozen):
    """``[server.trusted_proxies]``: who may tell us the client's address."""

    # Direct peers (CIDR blocks) whose forwarding header is believed.
    cidrs: tuple[str, ...] = ()
    # Which header they set.
    header: Literal["x-forwarded-for", "forwarded"] = "x-forwarded-for"
    # Geo header with the client's country set by the CDN in front (e.g.
    # "cloudfront-viewer-country", "cf-ipcountry"); read only from trusted peers.
    country_header: str | None = None

    @field_validator("cidrs")
    @classmethod
    def _nets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_networks(value)

    @field_validator("country_header")
    @classmethod
    def _header(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value).lower()
