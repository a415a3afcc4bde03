"""The admin surface ([admin]): bearer token on /_admin/* (and optionally /metrics),
loopback-only without a token, and a separate admin listener."""

from __future__ import annotations

import httpx
import pytest

from config.admin import AdminSettings
from proxy.ops.access import authorize
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port
from tests.support.proxy_server import running_proxy

TOKEN = "admin-token-0123456789abcdef"


def _config(origin: OriginServer, admin: str) -> str:
    return f"""
[server]
access_log = "off"
[admin]
{admin}
[origins.main]
kind = "http"
url = "{origin.url}"
[[routes]]
origin = "main"
"""


def test_token_guards_admin_and_optionally_metrics(origin: OriginServer) -> None:
    config = _config(origin, f'token = "{TOKEN}"\nprotect_metrics = true')
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url) as client:
        missing = client.get("/_admin/origins")
        wrong = client.get("/_admin/origins", headers={"authorization": "Bearer nope"})
        right = client.get("/_admin/origins", headers={"authorization": f"Bearer {TOKEN}"})
        metrics = client.get("/metrics")
        metrics_ok = client.get("/metrics", headers={"authorization": f"Bearer {TOKEN}"})
        probe = client.get("/healthz")
        unknown = client.get("/_admin/nope", headers={"authorization": f"Bearer {TOKEN}"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 403
    assert right.status_code == 200 and "main" in right.json()["origins"]
    assert metrics.status_code == 401 and metrics_ok.status_code == 200
    assert probe.status_code == 200
    assert unknown.status_code == 404
    assert TOKEN not in proxy.log()


def test_separate_admin_listener(origin: OriginServer) -> None:
    origin.script("/a.txt", body="a", headers={"cache-control": "max-age=60"})
    port = free_port()
    config = _config(origin, f'token = "{TOKEN}"\nport = {port}')
    auth = {"authorization": f"Bearer {TOKEN}"}
    with running_proxy(config) as proxy, httpx.Client() as client:
        admin = f"http://127.0.0.1:{port}"
        assert client.get(proxy.url + "/a.txt").status_code == 200  # cached now
        # the main listener: content and probes, no admin endpoints, no metrics
        assert client.get(proxy.url + "/_admin/origins", headers=auth).status_code == 404
        assert client.get(proxy.url + "/metrics").status_code == 404
        assert client.get(proxy.url + "/healthz").status_code == 200
        # the admin listener: admin endpoints and metrics, never content (not even hits)
        assert client.get(admin + "/_admin/origins", headers=auth).status_code == 200
        assert client.get(admin + "/_admin/origins").status_code == 401
        assert client.get(admin + "/metrics").status_code == 200
        assert client.get(admin + "/a.txt").status_code == 404
    assert origin.requests("/a.txt") == 1


@pytest.mark.parametrize(
    ("client", "allowed"),
    [("127.0.0.1", True), ("::1", True), ("10.0.0.7", False), ("203.0.113.9", False), ("", False)],
)
def test_without_a_token_only_loopback_clients_pass(client: str, allowed: bool) -> None:
    scope = {"client": (client, 5555) if client else None, "headers": []}
    refused = authorize(AdminSettings(), scope)
    assert (refused is None) == allowed
    if refused is not None:
        assert refused[0] == 403


def test_short_tokens_are_refused_in_config() -> None:
    with pytest.raises(ValueError, match="at least 16"):
        AdminSettings(token="short")  # type: ignore[arg-type]


def test_admin_port_must_differ_from_the_server_port() -> None:
    from config.loader import ConfigError, load_settings

    overrides = {"server": {"port": 9000}, "admin": {"port": 9000}}
    with pytest.raises(ConfigError, match=r"admin\.port"):
        load_settings(None, {}, overrides=overrides)
