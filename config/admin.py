"""``[admin]``: who may use the operations endpoints (``/_admin/*``, ``/_purge``,
``PURGE``, optionally ``/metrics``) and where they listen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from config.auth import Secret


class AdminSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    # Bearer token (``Authorization: Bearer <token>``). Unset: the admin endpoints answer
    # loopback clients only (like Varnish's usual PURGE ACL of localhost). Pass it by
    # environment: EDGESHIELD_ADMIN__TOKEN.
    token: Secret | None = None
    # /metrics needs the token too (Prometheus: `authorization` in the scrape config).
    protect_metrics: bool = False
    # A separate listener for the admin endpoints (and /metrics); when set, the main
    # listener answers them with 404. host defaults to the server's host.
    port: int | None = Field(default=None, ge=1, le=65535)
    host: str | None = None

    @field_validator("token", mode="before")
    @classmethod
    def _long_enough(cls, value: object) -> object:
        if isinstance(value, str) and len(value.strip()) < 16:
            raise ValueError("must be at least 16 characters (got a shorter value, not shown)")
        return value
