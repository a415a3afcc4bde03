"""Settings of the downstream CDN purge adapters (``proxy/cdn_purge``).

The lead wires this in as ``purge.cdn: CdnPurgeSettings`` (a tuple of tables, one per CDN
in front of the shield):

    [[purge.cdn]]
    kind = "cloudflare"
    name = "cf-main"
    zone_id = "023e105f4ecef8ad9ca31a8372d0c353"
    api_token = "..."        # better: EDGESHIELD_PURGE__CDN__0__API_TOKEN

Every model is frozen and rejects unknown keys, like the rest of the schema. Secrets are
``SecretStr``; secret fields are checked before pydantic sees them, and the models hide
inputs in printed errors (as Settings does, which is the outermost model that counts), so
a misplaced token cannot end up in a log through a ValidationError.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from config.fields import PlainUrl, SecretText

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Vendor identifiers go into URL paths: keep them to the characters the vendors use.
_IDENT = re.compile(r"[A-Za-z0-9_-]{1,128}")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_HOSTNAME = re.compile(r"[A-Za-z0-9._-]{1,253}(:\d{1,5})?")


class _CdnBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # Shown on the admin page and in logs; unique among the configured CDNs.
    name: str
    # Where the vendor API lives: scheme://host[:port][/prefix]; the documented API path
    # is appended. None = the vendor's public API host. Tests point it at loopback.
    base_url: PlainUrl | None = None
    # Per HTTP attempt (connect + answer).
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    # All attempts and batches of one purge together; what is not done by then is
    # reported as failed.
    deadline: Annotated[float, Field(gt=0, le=3600)] = 60.0
    # Attempts per API call (the first one included); retried on connection errors,
    # timeouts, 429 and 5xx.
    max_attempts: int = Field(default=4, ge=1, le=20)
    # Backoff before retry n: backoff_base * 2**(n-1), at most backoff_max, with jitter
    # (a Retry-After from the CDN takes precedence when it fits in the deadline).
    backoff_base: Annotated[float, Field(ge=0, le=60)] = 0.5
    backoff_max: Annotated[float, Field(ge=0, le=600)] = 10.0
    # API calls of one purge in flight at once (Bunny and Fastly URL purges are one
    # call per URL).
    concurrency: int = Field(default=4, ge=1, le=64)
    # The hostnames this CDN serves. When set, URLs, prefixes and hosts for other hosts
    # are not sent to it, and relative paths ("/a.jpg") are sent as https://<host>/a.jpg
    # for each of them. Empty: every absolute URL is sent, relative ones are skipped
    # (CloudFront takes paths and needs no host).
    hosts: tuple[str, ...] = ()

    # The vendor's public API, used when base_url is None (set by each kind).
    default_base_url: ClassVar[str]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("1-64 letters, digits, '_', '.', '-', starting with a letter or digit")
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        hosts = tuple(host.strip().lower() for host in value)
        for host in hosts:
            if not _HOSTNAME.fullmatch(host):
                raise ValueError(f"not a host name: {host!r}")
        return hosts

    @property
    def api_base(self) -> str:
        """The configured base URL or the vendor's, without a trailing slash."""
        base = str(self.base_url) if self.base_url is not None else self.default_base_url
        return base.rstrip("/")

    @model_validator(mode="after")
    def _backoff(self) -> _CdnBase:
        if self.backoff_max < self.backoff_base:
            raise ValueError(f"backoff_max: must be >= backoff_base ({self.backoff_base})")
        return self


class CloudflareCdn(_CdnBase):
    """POST /client/v4/zones/{zone_id}/purge_cache (invalidate_cache for soft purges)."""

    default_base_url: ClassVar[str] = "https://api.cloudflare.com"
    kind: Literal["cloudflare"]
    zone_id: str
    # An API token with the Zone / Cache Purge permission (sent as a Bearer token).
    api_token: SecretText
    # Items per API call; Cloudflare documents 100 per request on every plan (Enterprise:
    # up to 500 URLs). Older accounts and docs had 30: lower it if calls get refused.
    batch_size: int = Field(default=100, ge=1, le=500)
    # Soft purges use Cloudflare's invalidate_cache endpoint (mark stale, revalidate).
    # False: soft purges are sent as ordinary (hard) purges.
    soft_via_invalidate: bool = True

    @field_validator("zone_id")
    @classmethod
    def _zone_id(cls, value: str) -> str:
        return _ident(value)


class FastlyCdn(_CdnBase):
    """URL purges (POST /purge/<host><path>) and surrogate-key purges of one service."""

    default_base_url: ClassVar[str] = "https://api.fastly.com"
    kind: Literal["fastly"]
    service_id: str
    # Sent as Fastly-Key; needs the purge_select scope (purge_all for purge everything).
    api_token: SecretText
    # Surrogate keys per batch call; Fastly's documented maximum is 256.
    batch_size: int = Field(default=256, ge=1, le=256)

    @field_validator("service_id")
    @classmethod
    def _service_id(cls, value: str) -> str:
        return _ident(value)


class BunnyCdn(_CdnBase):
    """POST /purge?url=... per URL (``*`` wildcards for prefixes), tags by pull zone."""

    default_base_url: ClassVar[str] = "https://api.bunny.net"
    kind: Literal["bunny"]
    # The account API key, sent as AccessKey.
    api_key: SecretText
    # Pull zone id: needed for tag purges (CDN-Tag) and purge everything.
    pull_zone: int | None = Field(default=None, ge=1)
    # async=true: Bunny answers before the purge has propagated (faster, unconfirmed).
    async_purge: bool = False


class CloudFrontCdn(_CdnBase):
    """CreateInvalidation for one distribution, signed with SigV4 by botocore."""

    default_base_url: ClassVar[str] = "https://cloudfront.amazonaws.com"
    kind: Literal["cloudfront"]
    distribution_id: str
    # None (all three): botocore's default credential chain (environment, shared
    # files, container and instance roles).
    access_key_id: SecretText | None = None
    secret_access_key: SecretText | None = None
    session_token: SecretText | None = None
    # CloudFront is a global service signed for us-east-1 (China: cn-northwest-1 with
    # its own base_url).
    region: str = "us-east-1"
    # Paths per invalidation; CloudFront allows 3000 file paths (and 15 wildcard paths)
    # in progress per distribution.
    batch_size: int = Field(default=1000, ge=1, le=3000)

    @field_validator("distribution_id")
    @classmethod
    def _distribution_id(cls, value: str) -> str:
        return _ident(value)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError("lower-case letters, digits and hyphens (e.g. 'us-east-1')")
        return value

    @model_validator(mode="after")
    def _key_pair(self) -> CloudFrontCdn:
        if (self.access_key_id is None) != (self.secret_access_key is None):
            missing = "access_key_id" if self.access_key_id is None else "secret_access_key"
            raise ValueError(f"{missing}: give access_key_id and secret_access_key together")
        if self.session_token is not None and self.access_key_id is None:
            raise ValueError("session_token: only with access_key_id and secret_access_key")
        return self


def _ident(value: str) -> str:
    if not _IDENT.fullmatch(value):
        raise ValueError("letters, digits, '_' and '-' only")
    return value


def _unique_names(value: tuple[CdnSettings, ...]) -> tuple[CdnSettings, ...]:
    seen: set[str] = set()
    for cdn in value:
        if cdn.name in seen:
            raise ValueError(f"duplicate CDN name {cdn.name!r}")
        seen.add(cdn.name)
    return value


CdnSettings = Annotated[
    CloudflareCdn | FastlyCdn | BunnyCdn | CloudFrontCdn, Field(discriminator="kind")
]
CdnPurgeSettings = Annotated[tuple[CdnSettings, ...], AfterValidator(_unique_names)]
