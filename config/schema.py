"""The typed settings schema: one immutable Settings object, built once by config.loader."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

from config.admin import AdminSettings
from config.auth import (
    AuthSettings,
    RouteAccessSettings,
    RouteAuthSettings,
    TrustedProxies,
    auth_reference_errors,
)
from config.cdn import CdnPurgeSettings
from config.cluster import ClusterSettings
from config.compression import CompressionSettings
from config.disk import DiskSettings
from config.fields import PlainUrl, SecretText
from config.images import ImageSettings
from config.redis import RedisSettings
from config.tls import TlsSettings
from config.warm import WarmSettings

Seconds = Annotated[float, Field(ge=0)]
Bytes = Annotated[int, Field(ge=0)]
MiB = 1024 * 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServerSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    # The HTTP server engine (proxy/serve/engines.py): granian, or uvicorn.
    engine: Literal["granian", "uvicorn"] = "granian"
    # Seconds a client has to send a request's head, counted from the connection's
    # start or the end of its previous response, so it is the keep-alive idle timeout too.
    header_read_timeout: float = Field(default=10.0, gt=0, le=3600)
    # Client connections each worker holds at once (lowered to fit the open-file limit,
    # proxy/serve/engines.py); beyond it new connections wait in the listen backlog
    # (granian) or get 503 (uvicorn).
    max_connections: int = Field(default=10_000, ge=1, le=1_000_000)
    # Seconds requests in flight get to finish on SIGTERM, or when a reload replaces a
    # worker (SIGHUP, a new certificate), before they are cut off (nginx's
    # worker_shutdown_timeout). Longer downloads end early on a reload.
    drain_seconds: float = Field(default=5.0, ge=0, le=3600)
    # HTTP/2 by prior knowledge on a plain listener (granian). Off: such a listener is
    # HTTP/1.1 only, so a connection that never sends a byte is closed like a slow one.
    http2_cleartext: bool = False
    # "-" is stdout; a path appends to that file; "off" disables the access log.
    access_log: str = "-"
    # Fields added to every access-log line, in this order (proxy/observe.py).
    access_log_fields: tuple[Literal["user_agent", "referer", "request_id", "origin_ms"], ...] = ()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Requests beyond these get 414 / 431 before any work is done.
    max_url_bytes: int = Field(default=8192, ge=256)
    max_header_bytes: int = Field(default=32768, ge=1024)
    # Where worker processes share metric snapshots; `serve --workers N` uses a fresh
    # temporary directory when unset.
    metrics_dir: Path | None = None
    # Peers whose X-Forwarded-For / Forwarded (and geo header) are believed.
    trusted_proxies: TrustedProxies = TrustedProxies()
    # HTTPS (and HTTP/2 by ALPN) on the main listener ([server.tls], config/tls.py).
    tls: TlsSettings | None = None


class PurgeSettings(_Frozen):
    """`[purge]`: the purge API's bans, and the CDNs in front to forward purges to."""

    # Prefix purges are bans checked on lookup; beyond this many, the oldest fold into
    # "everything older than T" (more is purged, never less).
    max_bans: int = Field(default=10_000, ge=100)
    # Bans are kept this long; copies in the Redis and disk tiers stored before that are
    # not trusted (dropped on lookup), so no ban is forgotten while they live.
    ban_retention: Annotated[float, Field(gt=60)] = 86400.0
    # Seconds between ban lurker runs (dropping banned entries, retiring old bans).
    lurk_interval: Annotated[float, Field(gt=0, le=3600)] = 10.0
    # Downstream CDNs ([[purge.cdn]], proxy/cdn_purge/): told after every local purge.
    cdn: CdnPurgeSettings = ()


class CacheSettings(_Frozen):
    # The memory tier is bounded in bytes (bodies + headers), not in entries.
    memory_bytes: Bytes = 256 * MiB
    memory_max_object_bytes: Bytes = 16 * MiB
    # Objects larger than memory_max_object_bytes whose origin answers ranges are served
    # from slices of this size on routes without slice_bytes (proxy/slices/); 0 = off.
    auto_slice_bytes: int = Field(default=MiB, ge=0, le=64 * MiB)
    # Distinct Vary variants kept per URL; further variants are served but not stored.
    max_variants: int = Field(default=16, ge=1, le=1024)
    heuristic_fraction: float = Field(default=0.1, ge=0, le=1)
    heuristic_max: Seconds = 86400
    # The disk tier ([cache.disk]); off unless path is set.
    disk: DiskSettings = DiskSettings()

    @field_validator("auto_slice_bytes")
    @classmethod
    def _slice_size(cls, value: int) -> int:
        if 0 < value < 64 * 1024:
            raise ValueError("must be 0 (off) or at least 65536 (64 KiB), as slice_bytes")
        return value


class CachePolicy(_Frozen):
    """Per-route caching rules layered over what the origin says (RFC 9111)."""

    enabled: bool = True
    # Freshness when the origin gives none (instead of the Last-Modified heuristic).
    default_ttl: Seconds | None = None
    # Freshness that replaces whatever the origin says (no-store and private still apply).
    override_ttl: Seconds | None = None
    # Defaults for RFC 5861 when the origin does not send the directives.
    stale_while_revalidate: Seconds = 0
    stale_if_error: Seconds = 0
    # 404 and 410 without explicit freshness are cached this long.
    negative_ttl: Seconds = 10
    # When the origin cannot be reached ("error": refused, reset, DNS, TLS, all origins
    # down; "timeout"), serve the stored copy however stale, as nginx's
    # `proxy_cache_use_stale error timeout` does; RFC 9111 4.2.4 allows it for a
    # disconnected cache, never under must-revalidate, proxy-revalidate, s-maxage or
    # no-cache. 5xx answers use stale_if_error only. [] = only stale-if-error.
    use_stale: tuple[Literal["error", "timeout"], ...] = ("error", "timeout")
    # Targeted cache-control fields (RFC 9213), highest precedence first; the first one
    # present in a response replaces Cache-Control for this cache.
    targeted_fields: tuple[str, ...] = ("cdn-cache-control", "surrogate-control")
    # Targeted fields and surrogate keys removed from responses to clients
    # (CDN-Cache-Control is kept so a CDN in front of the shield can still read it).
    strip_fields: tuple[str, ...] = (
        "surrogate-control",
        "surrogate-key",
        "cache-tag",
        "xkey",
        "edge-cache-tag",
    )
    # When set, replaces Cache-Control on responses to clients.
    downstream_cache_control: str | None = None
    # Send stored text in the coding a client accepts ([compression]); false: as stored.
    compress: bool = True
    # Forward X-HTTP-Method-Override / X-HTTP-Method / X-Method-Override on cache fetches.
    # Off: an origin honouring them would answer a GET for another method, and that
    # answer (a 405, say) would be cached for every client of the URL.
    forward_method_override: bool = False
    # Serve GET/HEAD from slices of this size, fetched with ranged origin requests and
    # cached one by one (proxy/slices/, like nginx's slice module); None = whole objects.
    slice_bytes: int | None = Field(default=None, ge=64 * 1024, le=64 * MiB)
    # The streaming cache policy (proxy/http/streaming.py): HLS/DASH objects get a
    # lifetime by kind when the origin gives none; a live playlist is fresh for at most
    # half its target duration whatever the origin says. false: RFC 9111 alone.
    streaming: bool = True
    vod_playlist_ttl: Seconds = 86400
    master_playlist_ttl: Seconds = 60
    segment_ttl: Seconds = 31536000
    # Batch downloads (proxy/archive/, as nginx's mod_zip): a 200 carrying
    # `X-Archive-Files: zip` is a manifest, and a GET gets the ZIP of its entries, each
    # read through the cache. false: the manifest is relayed as it is.
    archives: bool = True
    archive_max_entries: int = Field(default=10000, ge=1, le=1_000_000)
    archive_max_manifest_bytes: int = Field(default=4 * MiB, ge=1024, le=64 * MiB)
    # Segment prefetch (proxy/prefetch.py): when a segment of a remembered HLS media
    # playlist is requested, this many following segments are fetched into the cache;
    # a live playlist's refresh prefetches its new segments. 0: off.
    prefetch_segments: int = Field(default=2, ge=0, le=16)


class HealthCheck(_Frozen):
    """Active probes of one origin (`[origins.NAME.health]`), like a Varnish probe: the
    origin is up while at least `threshold` of the last `window` probes passed."""

    # Path (and optional "?query") fetched with GET through the origin itself.
    path: str = "/"
    interval: Annotated[float, Field(gt=0)] = 5.0
    timeout: Annotated[float, Field(gt=0)] = 2.0
    expected_status: int = Field(default=200, ge=100, le=599)
    window: int = Field(default=5, ge=1, le=64)
    threshold: int = Field(default=3, ge=1, le=64)
    # Probes counted as passed at start-up. None = threshold - 1 (Varnish's default): the
    # origin starts down and is up after its first passing probe.
    initial: int | None = Field(default=None, ge=0, le=64)

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @model_validator(mode="after")
    def _fits_window(self) -> HealthCheck:
        if self.threshold > self.window:
            raise ValueError(f"threshold: must be <= window ({self.window})")
        if self.initial is not None and self.initial > self.window:
            raise ValueError(f"initial: must be <= window ({self.window})")
        return self


class OutlierDetection(_Frozen):
    """Passive health (`[outlier_detection]`, or per group): an origin that keeps failing
    real requests is ejected from the group for a while, then gets one trial request."""

    enabled: bool = True
    # Connect errors, timeouts, 5xx answers and broken bodies in a row that eject.
    consecutive_failures: int = Field(default=5, ge=1)
    # Optional: eject when at least this fraction of the last `failure_rate_window`
    # requests failed (checked once the window is full). None = off.
    failure_rate: float | None = Field(default=None, gt=0, le=1)
    failure_rate_window: int = Field(default=20, ge=2, le=1000)
    # The n-th ejection in a row lasts base_ejection * 2**(n-1), at most max_ejection.
    base_ejection: Annotated[float, Field(gt=0)] = 10.0
    max_ejection: Annotated[float, Field(gt=0)] = 300.0

    @model_validator(mode="after")
    def _max_not_below_base(self) -> OutlierDetection:
        if self.max_ejection < self.base_ejection:
            raise ValueError(f"max_ejection: must be >= base_ejection ({self.base_ejection})")
        return self


class FsOrigin(_Frozen):
    kind: Literal["fs"]
    root: Path
    health: HealthCheck | None = None


class _HttpClientSettings(_Frozen):
    """Timeouts and pool of an origin reached over HTTP (the http and s3 kinds)."""

    connect_timeout: Seconds = 3.0
    # Time until the response headers arrive (Varnish: first_byte_timeout).
    first_byte_timeout: Seconds = 15.0
    # Longest silence between two body chunks (Varnish: between_bytes_timeout).
    read_timeout: Seconds = 10.0
    # Deadline for the whole exchange including the body; None = no deadline.
    total_timeout: Seconds | None = None
    max_connections: int = Field(default=100, ge=1)
    verify_tls: bool = True
    # Active health probes (every origin kind has this field).
    health: HealthCheck | None = None


class HttpOrigin(_HttpClientSettings):
    kind: Literal["http"]
    url: HttpUrl
    host_header: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


# S3 bucket naming rules (the strict, DNS-compatible set every S3-compatible store accepts).
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_REGION_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_SECRET_FIELDS = ("access_key_id", "secret_access_key", "session_token")


class S3Origin(_HttpClientSettings):
    """An S3-compatible bucket (AWS S3, R2, B2, MinIO, GCS interoperability, Wasabi)."""

    # The secrets must not show up in a printed ValidationError either.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: Literal["s3"]
    bucket: str
    region: str = "us-east-1"
    # None: AWS, https://s3.<region>.amazonaws.com
    endpoint_url: PlainUrl | None = None
    # "virtual": https://<bucket>.<endpoint host>/<key>; "path": <endpoint>/<bucket>/<key>.
    addressing: Literal["path", "virtual"] = "virtual"
    # Prepended as is to the request path (without its leading "/") to make the key.
    key_prefix: str = ""
    # Secrets: masked in repr/str; pass them by environment as
    # EDGESHIELD_ORIGINS__<NAME>__SECRET_ACCESS_KEY (config.loader reads the environment).
    access_key_id: SecretText | None = None
    secret_access_key: SecretText | None = None
    session_token: SecretText | None = None
    # Unsigned requests, for public buckets.
    anonymous: bool = False

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, value: str) -> str:
        if not _BUCKET_NAME.fullmatch(value) or ".." in value:
            raise ValueError(
                "invalid bucket name: 3-63 characters, lower-case letters, digits, dots and "
                "hyphens, starting and ending with a letter or digit"
            )
        if _is_ip_address(value):
            raise ValueError("invalid bucket name: must not look like an IP address")
        return value

    @field_validator("region")
    @classmethod
    def _region_name(cls, value: str) -> str:
        if not _REGION_NAME.fullmatch(value):
            raise ValueError(
                "invalid region: lower-case letters, digits and hyphens (e.g. 'us-east-1', "
                "or 'auto' for Cloudflare R2)"
            )
        return value

    @field_validator("key_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        if value.startswith("/"):
            raise ValueError("must not start with '/' (S3 keys have no leading slash)")
        if any(segment in (".", "..") for segment in value.split("/")):
            raise ValueError("must not contain '.' or '..' segments")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ValueError("must not contain control characters")
        return value

    @model_validator(mode="after")
    def _credentials_and_addressing(self) -> S3Origin:
        keys = [name for name in _SECRET_FIELDS if getattr(self, name) is not None]
        if self.anonymous:
            if keys:
                raise ValueError(
                    f"anonymous: anonymous = true cannot be combined with {', '.join(keys)}"
                )
        elif self.access_key_id is None and self.secret_access_key is None:
            raise ValueError("set access_key_id and secret_access_key, or anonymous = true")
        elif self.access_key_id is None:
            raise ValueError("access_key_id: required when secret_access_key is set")
        elif self.secret_access_key is None:
            raise ValueError("secret_access_key: required when access_key_id is set")
        if self.endpoint_url is None and self.region == "auto":
            raise ValueError("endpoint_url: required when region is 'auto'")
        host = self.endpoint_url.host if self.endpoint_url is not None else None
        if self.addressing == "virtual" and host and _is_ip_address(host.strip("[]")):
            raise ValueError(
                "addressing: virtual-host addressing needs a DNS name, and endpoint_url is an "
                'IP address; use addressing = "path"'
            )
        return self


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


OriginSettings = Annotated[FsOrigin | HttpOrigin | S3Origin, Field(discriminator="kind")]


FailoverCondition = Literal["connect", "timeout", "5xx", "404", "403"]


class GroupMember(_Frozen):
    origin: str
    # Share of traffic for `weighted`; 0 makes the member a backup, used only when no
    # member with a weight above 0 is available (any policy).
    weight: int = Field(default=1, ge=0)


class GroupSettings(_Frozen):
    """`[groups.NAME]`: origins tried in turn, chosen by `policy` among healthy ones."""

    policy: Literal["failover", "weighted", "lowest-latency"] = "failover"
    # Tables `{origin = "a", weight = 2}` or plain origin names.
    members: tuple[GroupMember, ...]
    failover_on: tuple[FailoverCondition, ...] = ("connect", "timeout", "5xx")
    # Attempts per request (hedged requests included), each on a different member.
    max_attempts: int = Field(default=2, ge=1, le=16)
    # Time until a response head is returned, all attempts together.
    deadline: Annotated[float, Field(gt=0)] = 10.0
    # Per-attempt limit; None = the origin's own timeouts (and the deadline).
    attempt_timeout: Annotated[float, Field(gt=0)] | None = None
    # Hedging: seconds, or "p95" (the chosen origin's recent 95th percentile), after which
    # the same request also goes to the next member; None = no hedging.
    hedge_after: float | str | None = None
    # None = the top-level [outlier_detection].
    outlier_detection: OutlierDetection | None = None

    @field_validator("members", mode="before")
    @classmethod
    def _names_are_members(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return [{"origin": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("members")
    @classmethod
    def _not_empty(cls, value: tuple[GroupMember, ...]) -> tuple[GroupMember, ...]:
        if not value:
            raise ValueError("at least one member is required")
        if not any(member.weight > 0 for member in value):
            raise ValueError("at least one member needs a weight above 0")
        return value

    @field_validator("hedge_after")
    @classmethod
    def _hedge_after(cls, value: float | str | None) -> float | str | None:
        if isinstance(value, str):
            if value == "p95":
                return value
            try:
                value = float(value)
            except ValueError:
                raise ValueError('must be a number of seconds or "p95"') from None
        if value is not None and not value > 0:
            raise ValueError("must be > 0")
        return value


class SteerCdn(_Frozen):
    """One CDN a steering route may redirect to: a base URL, or an http origin (its URL,
    and its health probes decide whether it is used)."""

    base_url: HttpUrl | None = None
    origin: str | None = None
    weight: int = Field(default=1, ge=0)
    # Country codes (as the region header sends them) that prefer this CDN.
    regions: tuple[str, ...] = ()

    @field_validator("regions")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(region.strip().upper() for region in value)

    @model_validator(mode="after")
    def _one_target(self) -> SteerCdn:
        if (self.base_url is None) == (self.origin is None):
            raise ValueError("base_url: give base_url or origin (one of them)")
        return self


class SteerSettings(_Frozen):
    """`[routes.steer]`: answer with a redirect to the best CDN instead of proxying."""

    cdns: tuple[SteerCdn, ...]
    # A trusted request header carrying the viewer's country (CF-IPCountry,
    # CloudFront-Viewer-Country); None = no region preference.
    region_header: str | None = None
    status: Literal[301, 302, 303, 307, 308] = 302
    cache_control: str = "private, max-age=60"

    @field_validator("cdns")
    @classmethod
    def _not_empty(cls, value: tuple[SteerCdn, ...]) -> tuple[SteerCdn, ...]:
        if not value:
            raise ValueError("at least one CDN is required")
        return value

    @field_validator("region_header")
    @classmethod
    def _lower(cls, value: str | None) -> str | None:
        return value.strip().lower() if value is not None else None


class RouteSettings(_Frozen):
    # "*", an exact host, or "*.example.com" (any subdomain, not example.com itself).
    host: str = "*"
    path_prefix: str = "/"
    # fnmatch-style pattern matched against the whole path, instead of path_prefix.
    path_glob: str | None = None
    # An origin or a group name.
    origin: str
    # Rewrite before fetching: strip_prefix is removed (whole segments), then add_prefix
    # is prepended.
    strip_prefix: str | None = None
    add_prefix: str | None = None
    read_only: bool = False
    cache: CachePolicy = CachePolicy()
    # Image transforms (imgix query parameters, /cdn-cgi/image/ paths) on this route's
    # URLs. Off by default: image parameters on arbitrary URLs must not turn every route
    # into an image service (CPU per variant, a cache entry per variant); a route opts in.
    images: bool = False
    # Plain image URLs (.jpg/.jpeg/.png, no image options) answered as AVIF or WebP to
    # clients that name them in Accept, with Vary: Accept; others get the original bytes
    # (imgproxy's AUTO_WEBP/AUTO_AVIF). Needs `images`.
    auto_format: bool = False
    # "steer": answer a redirect to a CDN (see [routes.steer]); `origin` then serves only
    # when no CDN is available.
    mode: Literal["proxy", "steer"] = "proxy"
    steer: SteerSettings | None = None
    # Signed URLs / tokens required on this route ([routes.auth]); None = open.
    auth: RouteAuthSettings | None = None
    # CORS, referer, IP and country lists, rate limit ([routes.access]).
    access: RouteAccessSettings | None = None

    # A field validator (not a model one) so it is reported together with other errors.
    @field_validator("path_prefix", "path_glob", "strip_prefix", "add_prefix")
    @classmethod
    def _prefix_is_absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("must start with '/'")
        return value

    @field_validator("host")
    @classmethod
    def _host_pattern(cls, value: str) -> str:
        rest = value[2:] if value.startswith("*.") else value
        if value != "*" and (not rest or "*" in rest):
            raise ValueError('must be "*", a host name, or "*.domain"')
        return value

    @model_validator(mode="after")
    def _images_need_the_cache(self) -> RouteSettings:
        if self.images and not self.cache.enabled:
            raise ValueError(
                "images: needs cache.enabled = true (sources and variants are cached and "
                "collapsed; uncached transforms would cost a fetch and a transform each)"
            )
        if self.auto_format and not self.images:
            raise ValueError("auto_format: needs images = true")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> RouteSettings:
        if self.path_glob is not None and self.path_prefix != "/":
            raise ValueError("path_glob: give path_prefix or path_glob, not both")
        if self.mode == "steer" and self.steer is None:
            raise ValueError('steer: required when mode = "steer"')
        if self.mode != "steer" and self.steer is not None:
            raise ValueError('mode: must be "steer" when [routes.steer] is given')
        return self


class Settings(_Frozen):
    # A printed ValidationError must not echo origin secrets (config.loader reports errors
    # itself, from `errors()`, which still carries the inputs it needs).
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    server: ServerSettings = ServerSettings()
    cache: CacheSettings = CacheSettings()
    origins: dict[str, OriginSettings]
    groups: dict[str, GroupSettings] = Field(default_factory=dict)
    outlier_detection: OutlierDetection = OutlierDetection()
    routes: tuple[RouteSettings, ...]
    # The image engine ([images]); used by routes with `images = true`.
    images: ImageSettings = ImageSettings()
    # Keys and vendor verifiers shared by routes with [routes.auth].
    auth: AuthSettings = AuthSettings()
    # Token and listener of the operations endpoints (/_admin/*, /_purge, /metrics).
    admin: AdminSettings = AdminSettings()
    # The shared tier, rate limits and the purge bus ([redis]); off unless url or
    # cluster_nodes is set.
    redis: RedisSettings = RedisSettings()
    # Bans, and downstream CDN purge ([purge], [[purge.cdn]]).
    purge: PurgeSettings = PurgeSettings()
    # Response compression ([compression]): types, size floor and ceiling, levels.
    compression: CompressionSettings = CompressionSettings()
    # Key ownership among instances and workers ([cluster]); off unless peers is set.
    cluster: ClusterSettings = ClusterSettings()
    # Cache warming ([warm]): POST /_warm jobs, the memory tier filled from Redis at start.
    warm: WarmSettings = WarmSettings()

    @property
    def disk_shared(self) -> bool:
        """The workers share one disk directory, each keeping the buckets it owns
        (proxy/cache/disk.py): several workers that are peers ([cluster] socket_dir)."""
        return (
            self.cache.disk.path is not None
            and self.server.workers > 1
            and self.cluster.socket_dir is not None
        )

    # Messages are "<field path>: <reason>"; config.loader reports them at that path.
    @model_validator(mode="after")
    def _routes_name_known_origins(self) -> Settings:
        if not self.routes:
            raise ValueError("routes: at least one route is required")
        problems = reference_problems(self.model_dump())
        if problems:
            loc, reason = problems[0]
            raise ValueError(f"{_loc_text(loc)}: {reason}")
        if self.admin.port is not None and self.admin.port == self.server.port:
            raise ValueError("admin.port: must differ from server.port (a listener of its own)")
        auth_errors = auth_reference_errors(self.auth, [route.auth for route in self.routes])
        if auth_errors:
            where, reason = auth_errors[0]
            raise ValueError(f"{where}: {reason}")
        return self


Loc = tuple[str | int, ...]


def reference_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Names that must refer to something, checked on raw (TOML-shaped) data so that
    config.loader can report them together with field errors: route targets (an origin
    or a group), group members (origins, each once), origin and group names unique,
    steering CDNs that name origins (http ones). Any shape is tolerated."""
    problems: list[tuple[Loc, str]] = []
    raw_origins, raw_groups, routes = data.get("origins"), data.get("groups"), data.get("routes")
    origins: dict[Any, Any] = raw_origins if isinstance(raw_origins, dict) else {}
    groups: dict[Any, Any] = raw_groups if isinstance(raw_groups, dict) else {}
    known_origins = ", ".join(sorted(str(name) for name in origins)) or "none"
    for name, group in groups.items():
        if name in origins:
            problems.append(
                (("groups", name), f"name {name!r} is also an origin; names must be unique")
            )
        members = group.get("members") if isinstance(group, dict) else None
        seen: set[str] = set()
        for j, member in enumerate(members if isinstance(members, list | tuple) else ()):
            # At the item, whether written as a name or as a table (same path both ways).
            loc: Loc = ("groups", name, "members", j)
            target = member.get("origin") if isinstance(member, dict) else member
            if not isinstance(target, str):
                continue
            if target in groups and target not in origins:
                problems.append((loc, f"{target!r} is a group; members must be origins"))
            elif target not in origins:
                problems.append((loc, f"unknown origin {target!r} (known: {known_origins})"))
            elif target in seen:
                problems.append((loc, f"origin {target!r} is listed twice"))
            seen.add(target)
    if not isinstance(raw_origins, dict) or not isinstance(routes, list | tuple):
        return problems
    known = ", ".join(sorted({str(name) for name in (*origins, *groups)})) or "none"
    for i, route in enumerate(routes):
        if not isinstance(route, dict):
            continue
        target = route.get("origin")
        if isinstance(target, str) and target not in origins and target not in groups:
            problems.append(
                (("routes", i, "origin"), f"unknown origin {target!r} (known: {known})")
            )
        steer = route.get("steer")
        cdns = steer.get("cdns") if isinstance(steer, dict) else None
        for k, cdn in enumerate(cdns if isinstance(cdns, list | tuple) else ()):
            name = cdn.get("origin") if isinstance(cdn, dict) else None
            if not isinstance(name, str):
                continue
            loc = ("routes", i, "steer", "cdns", k, "origin")
            spec = origins.get(name)
            if spec is None:
                problems.append((loc, f"unknown origin {name!r} (known: {known_origins})"))
            elif isinstance(spec, dict) and spec.get("kind") != "http":
                problems.append((loc, f"origin {name!r} is not an http origin (a CDN needs a URL)"))
    return problems


def _loc_text(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
