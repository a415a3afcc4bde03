"""Who may use the operations endpoints, and on which listener ([admin]).

``/_admin/*``, ``/_purge``, ``/_warm*`` and ``PURGE`` always need authorization;
``/metrics`` when ``protect_metrics`` is set; ``/healthz`` and ``/readyz`` never (load
balancers probe them). Authorization is the bearer token when one is configured
(compared in constant time), otherwise a loopback client address that no proxy relayed.
With a separate admin listener, the main one answers only the probes; the admin listener
answers nothing else."""

from __future__ import annotations

from typing import Any

from config.admin import AdminSettings
from proxy.http.forwarding import FORWARDING
from proxy.purge.request import check_admin, is_loopback

Header = tuple[bytes, bytes]
Refusal = tuple[int, str, list[Header]]
PROBES = frozenset({"/healthz", "/readyz"})


def gate(admin: AdminSettings, scope: dict[str, Any], paths: frozenset[str]) -> Refusal | None:
    """None when the request may go on to its endpoint; else (status, reason, extra
    headers): 404 for what this listener does not serve (`paths`: the endpoints'),
    401 or 403 from `authorize`."""
    path, method = scope["path"], scope["method"]
    if on_admin_listener(admin, scope):
        known = path in paths or is_admin_request(method, path)
    else:  # with a separate admin listener, the main one keeps only the probes
        known = path in PROBES or admin.port is None
    if not known:
        return 404, "not found", []
    if needs_authorization(admin, method, path):
        return authorize(admin, scope)
    return None


def is_admin_request(method: str, path: str) -> bool:
    return (
        method == "PURGE"
        or path in ("/_purge", "/_admin", "/_warm")
        or path.startswith(("/_admin/", "/_warm/"))
    )


def needs_authorization(admin: AdminSettings, method: str, path: str) -> bool:
    return is_admin_request(method, path) or (path == "/metrics" and admin.protect_metrics)


def on_admin_listener(admin: AdminSettings, scope: dict[str, Any]) -> bool:
    server = scope.get("server")
    # granian hands the port over as a string, uvicorn as an int.
    return admin.port is not None and server is not None and str(server[1]) == str(admin.port)


def authorize(admin: AdminSettings, scope: dict[str, Any]) -> Refusal | None:
    """None when allowed; else (401 | 403, reason, extra headers).

    Without a token, "a loopback client" means one that came straight from this host: a
    request carrying forwarding fields was relayed by a proxy on this host (nginx, a
    load balancer, a trusted proxy) for a client that may be anywhere, so it does not
    count as loopback, whether or not those fields are believed elsewhere."""
    authorization = None
    relayed = False
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
        elif name.decode("latin-1") in FORWARDING:
            relayed = True
    client = scope.get("client") or ("", 0)
    tokens = [admin.token.get_secret_value()] if admin.token is not None else []
    loopback = is_loopback(str(client[0])) and not relayed
    refused = check_admin(authorization, tokens, loopback=loopback)
    if refused is None:
        return None
    return refused.status, refused.message, list(refused.headers)
