"""What a purge did, as the JSON answer of ``/_purge`` and ``PURGE``::

    {"id": "3f2a9c0d1e4b5a67", "soft": false,
     "purged": {"memory": 12, "redis": 12, "disk": 0},
     "bans": 1, "tags": 2, "cdn": [{"name": "fastly", "status": 200}]}

`purged` counts removed (or, when soft, marked stale) entries per tier; `bans` counts
bans added (prefix purges: their entries go lazily, so they are not counted); `tags` the
surrogate keys asked for; `cdn` whatever the caller forwarded the purge to (issue 4:
CDN fan-out), passed through as given. `id` names the purge in logs and on the purge
bus, so one operator action can be followed across instances."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson

from proxy.purge.request import PurgeError

__all__ = ["TIERS", "PurgeReport", "error_response", "new_purge_id", "report_response"]

TIERS = ("memory", "redis", "disk")
Headers = list[tuple[bytes, bytes]]

_JSON_HEADERS = (
    (b"content-type", b"application/json"),
    (b"cache-control", b"no-store"),
)


def new_purge_id() -> str:
    return secrets.token_hex(8)


@dataclass(slots=True)
class PurgeReport:
    soft: bool = False
    id: str = field(default_factory=new_purge_id)
    purged: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TIERS, 0))
    bans: int = 0
    tags: int = 0
    cdn: list[dict[str, Any]] = field(default_factory=list)
    # Partial failures (a tier that could not be reached): the purge still answers 200
    # for what was done, and says what was not.
    errors: list[str] = field(default_factory=list)

    def count(self, tier: str, n: int = 1) -> None:
        self.purged[tier] = self.purged.get(tier, 0) + n

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "soft": self.soft,
            "purged": dict(self.purged),
            "bans": self.bans,
            "tags": self.tags,
            "cdn": list(self.cdn),
        }
        if self.errors:
            out["errors"] = list(self.errors)
        return out


def report_response(report: PurgeReport) -> tuple[int, Headers, bytes]:
    """(status, headers, body) of a finished purge."""
    body = orjson.dumps(report.to_json())
    return 200, _headers(body), body


def error_response(error: PurgeError) -> tuple[int, Headers, bytes]:
    """(status, headers, body) of a refused purge: {"error": message}."""
    body = orjson.dumps({"error": error.message})
    return error.status, [*_headers(body), *error.headers], body


def _headers(body: bytes) -> Headers:
    return [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
