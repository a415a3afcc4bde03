"""Who may use the operations endpoints, and on which listener ([admin]).

``/_admin/*``, ``/_purge`` and ``PURGE`` always need authorization; ``/metrics`` when
``protect_metrics`` is set; ``/healthz`` and ``/readyz`` never (load balancers probe
them). Authorization is the bearer token when one is configured (compared in constant
time), otherwise a loopback client address."""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from config.admin import AdminSettings

Header = tuple[bytes, bytes]
PROBES = frozenset({"/healthz", "/readyz"})


def is_admin_request(method: str, path: str) -> bool:
    return (
        method == "PURGE" or path == "/_purge" or path == "/_admin" or path.startswith("/_admin/")
    )


def needs_authorization(admin: AdminSettings, method: str, path: str) -> bool:
    return is_admin_request(method, path) or (path == "/metrics" and admin.protect_metrics)


def on_admin_listener(admin: AdminSettings, scope: dict[str, Any]) -> bool:
    server = scope.get("server")
    return admin.port is not None and server is not None and server[1] == admin.port


def authorize(admin: AdminSettings, scope: dict[str, Any]) -> tuple[int, str, list[Header]] | None:
    """None when allowed; else (401 | 403, reason, extra headers)."""
    token = admin.token
    if token is None:
        client = scope.get("client")
        if client and _loopback(str(client[0])):
            return None
        return 403, "admin endpoints answer loopback clients only (set admin.token)", []
    given = _bearer(scope)
    if given is None:
        return 401, "bearer token required", [(b"www-authenticate", b'Bearer realm="edgeshield"')]
    if not hmac.compare_digest(given, token.get_secret_value().encode()):
        return 403, "wrong token", []
    return None


def _bearer(scope: dict[str, Any]) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
