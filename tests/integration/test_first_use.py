"""First use as a new user meets it: `serve --origin --default-ttl`, and a folder origin
whose root is missing, which must show up in `/readyz` rather than as cached 404s."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import running_proxy


def test_default_ttl_caches_answers_without_freshness(origin: OriginServer) -> None:
    origin.script("/plain", body="no freshness information")  # no Cache-Control, no dates
    with (
        running_proxy(None, args=["--origin", origin.url, "--default-ttl", "120"]) as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        assert client.get("/plain").text == "no freshness information"
        hit = client.get("/plain")
        assert hit.headers["cache-status"].startswith("edgeshield; hit; ttl=")
        ttl = int(hit.headers["cache-status"].split("ttl=")[1].split(";")[0])
        assert 60 < ttl <= 120
    assert origin.requests("/plain") == 1


def test_without_default_ttl_such_answers_are_not_stored(origin: OriginServer) -> None:
    origin.script("/plain", body="no freshness information")
    with (
        running_proxy(None, args=["--origin", origin.url]) as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        client.get("/plain")
        client.get("/plain")
    assert origin.requests("/plain") == 2


def _fs_config(root: Path) -> str:
    return f"""
[server]
access_log = "off"
[origins.files]
kind = "fs"
root = "{root}"
[[routes]]
origin = "files"
"""


def test_missing_fs_root_is_not_ready_and_caches_no_404(tmp_path: Path) -> None:
    root = tmp_path / "media"  # not created yet
    with (
        running_proxy(_fs_config(root)) as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["problems"] == {"files": "root folder missing"}
        assert "root folder missing" in proxy.log() and str(root) in proxy.log()
        missing = client.get("/a.txt")
        assert missing.status_code == 502
        assert "traceback" not in missing.text.lower()
        # The mistake fixed: ready again, and the file is served (nothing was cached).
        root.mkdir()
        (root / "a.txt").write_text("here now")
        assert client.get("/readyz").status_code == 200
        assert client.get("/readyz").json()["problems"] == {}
        assert client.get("/a.txt").text == "here now"


def test_fs_root_that_is_a_file_is_not_ready(tmp_path: Path) -> None:
    root = tmp_path / "media.txt"
    root.write_text("not a folder")
    with (
        running_proxy(_fs_config(root)) as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["problems"] == {"files": "root is not a folder"}
        assert client.get("/x").status_code == 502
