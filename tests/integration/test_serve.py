"""The `edgeshield` command as users run it: --origin, the embedded default, workers,
the access log and check-config."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import (
    ENGINES,
    REPO_ROOT,
    proxy_config,
    running_proxy,
    serve_until_exit,
)

YEAR = 365 * 86400


def test_origin_folder_like_varnishd_b(tmp_path: Path) -> None:
    media = tmp_path / "media"
    media.mkdir()
    (media / "a.txt").write_text("from a folder")
    old = time.time() - YEAR  # heuristic freshness: 10 % of the age, capped at a day
    os.utime(media / "a.txt", (old, old))
    with (
        running_proxy(None, args=["--origin", str(media)]) as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        assert client.get("/a.txt").text == "from a folder"
        hit = client.get("/a.txt")
        assert hit.headers["cache-status"].startswith("edgeshield; hit")
        assert client.get("/nope.txt").status_code == 404


def test_origin_url_like_varnishd_b(origin: OriginServer) -> None:
    origin.script("/x", body="via url", headers={"cache-control": "max-age=60"})
    with (
        running_proxy(None, args=["--origin", origin.url]) as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        assert client.get("/x").text == "via url"
        assert client.get("/x").headers["cache-status"].startswith("edgeshield; hit")
    assert origin.requests("/x") == 1


def test_embedded_default_serves_the_demo(tmp_path: Path) -> None:
    # The page's tiles are variants: the first request of each is a transform, slow on
    # a busy machine (the timeout only guards against a hang).
    with (
        running_proxy(None, cwd=tmp_path) as proxy,
        httpx.Client(base_url=proxy.url, timeout=120) as client,
    ):
        index = client.get("/")
        assert index.status_code == 200 and "edgeshield demo" in index.text
        for src in re.findall(r'(?:src|href)="([^"#]+)"', index.text):
            if src in ("metrics", "healthz"):
                continue
            assert client.head("/" + src).status_code == 200, src
        assert client.get("/video/clip.mp4", headers={"range": "bytes=0-99"}).status_code == 206
    assert (tmp_path / "var" / "demo" / "index.html").exists()


def test_workers_share_metrics_and_write_an_access_log(
    origin: OriginServer, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    origin.script("/w", body="x" * 100, headers={"cache-control": "max-age=60"})
    config = proxy_config(origin.url).replace(
        'access_log = "off"', f"access_log = {str(log)!r}".replace("'", '"')
    )
    n = 60
    with running_proxy(config, workers=2) as proxy, httpx.Client(base_url=proxy.url) as client:
        for _ in range(n):
            # a new connection each time so both workers get requests
            assert httpx.get(proxy.url + "/w").status_code == 200
        time.sleep(2.5)  # every worker writes its snapshot once a second
        text = client.get("/metrics").text
        total = sum(
            float(m.group(1))
            for m in re.finditer(
                r'^edgeshield_requests_total\{[^}]*route="\*/"[^}]*\} (\S+)$', text, re.M
            )
        )
        assert total == n, text
        records = [orjson.loads(line) for line in log.read_bytes().splitlines()]
        proxied = [r for r in records if r["path"] == "/w"]
        assert len(proxied) == n
        for r in proxied:
            assert {"status", "cache", "bytes", "ms", "origin", "client", "host"} <= r.keys()
            assert r["bytes"] == 100 and r["host"] == "127.0.0.1"
        assert any(r["path"] == "/readyz" and r["cache"] == "ops" for r in records)
        client_bytes = re.search(
            r'^edgeshield_client_bytes_total\{route="\*/"\} (\S+)$', text, re.M
        )
        assert client_bytes is not None and float(client_bytes.group(1)) == n * 100


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.serve.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )


def test_check_config_reports_every_error_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[server]\nport = -1\n[origins.a]\nkind = "http"\nurl = "not a url"\n'
        '[[routes]]\norigin = "missing"\n[routes.cache]\ndefault_ttl = -5\n'
    )
    result = _check(bad)
    assert result.returncode != 0
    for path in ("server.port", "origins.a.url", "routes[0].origin", "routes[0].cache.default_ttl"):
        assert path in result.stderr, result.stderr
    good = _check(REPO_ROOT / "config" / "examples" / "media-shield.toml")
    assert good.returncode == 0 and "ok" in good.stdout


def test_bad_config_never_starts_a_server(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[origins.a]\nkind = "ftp"\n[[routes]]\norigin = "a"\n')
    result = subprocess.run(
        [sys.executable, "-m", "proxy.serve.cli", "serve", "--config", str(bad), "--port", "0"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 2
    assert "origins.a.kind" in result.stderr


@pytest.mark.parametrize("engine", ENGINES)
def test_a_port_in_use_is_one_clear_line_naming_the_address(
    origin: OriginServer, tmp_path: Path, engine: str
) -> None:
    config = tmp_path / "edgeshield.toml"
    config.write_text(proxy_config(origin.url))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_until_exit(config, "--port", str(port), "--workers", "2", "--server", engine)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"edgeshield: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
