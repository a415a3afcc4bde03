"""Warm-up through a real edgeshield and a counting origin: `POST /_warm` with URL lists,
sitemaps and playlists, the job report, who may warm, hostile sitemaps, bounds, the
`edgeshield warm` command, and the memory tier filled from Redis at start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_py

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import REPO_ROOT, ProxyServer, running_proxy
from tests.support.redis_server import running_redis

TOKEN = "warm-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {TOKEN}"}
HOST = "media.test"
MAX_URLS = 40
CACHED = {"cache-control": "max-age=300"}
HANG_GUARD = 60.0  # seconds: only ever reached when something is broken


def _config(origin: OriginServer, extra: str = "") -> str:
    return f"""
[server]
access_log = "off"
[admin]
token = "{TOKEN}"
[warm]
concurrency = 3
max_urls = {MAX_URLS}
{extra}
[origins.main]
kind = "http"
url = "{origin.url}"
[[routes]]
host = "{HOST}"
origin = "main"
"""


@pytest.fixture(scope="module")
def warm_proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    with running_proxy(_config(origin_server)) as proxy:
        yield proxy


def _url(path: str) -> str:
    return f"http://{HOST}{path}"


def _get(proxy: ProxyServer, path: str) -> httpx.Response:
    return httpx.get(proxy.url + path, headers={"host": HOST})


def _until_done(client: httpx.Client, report: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + HANG_GUARD
    while report["state"] != "done":
        assert time.monotonic() < deadline, report
        time.sleep(0.05)
        response = client.get(f"/_warm/{report['id']}", headers=AUTH)
        assert response.status_code == 200
        report = response.json()
    return report


def _warm(proxy: ProxyServer, headers: dict[str, str] | None = None, **post: Any) -> dict[str, Any]:
    with httpx.Client(base_url=proxy.url) as client:
        response = client.post("/_warm", headers={**AUTH, **(headers or {})}, **post)
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/_warm/{response.json()['id']}"
        return _until_done(client, response.json())


def test_warmed_urls_are_hits_and_another_host_is_refused(
    origin: OriginServer, warm_proxy: ProxyServer
) -> None:
    for name in ("a", "b"):
        origin.script(f"/w/{name}.jpg", body=name * 1000, headers=CACHED)
    urls = [_url("/w/a.jpg"), _url("/w/b.jpg"), "http://other.test/w/a.jpg", "ftp://x/y"]
    urls.append(_url("/_warm/x"))  # never cached: the fast path would answer it
    report = _warm(warm_proxy, json={"urls": urls})
    assert report["source"] == "urls"
    assert (report["total"], report["done"], report["warmed"], report["failed"]) == (5, 5, 2, 3)
    assert report["bytes"] == 2000
    reasons = {e["url"]: e["reason"] for e in report["errors"]}
    assert "no route" in reasons["http://other.test/w/a.jpg"]
    assert "http" in reasons["ftp://x/y"]
    assert "operations" in reasons[_url("/_warm/x")]
    for name in ("a", "b"):
        hit = _get(warm_proxy, f"/w/{name}.jpg")
        assert "hit" in hit.headers["cache-status"] and hit.content == name.encode() * 1000
        assert origin.requests(f"/w/{name}.jpg") == 1
    assert origin.requests("/w/a.jpg") == 1  # the other host's URL never went anywhere

    again = _warm(warm_proxy, json={"urls": urls[:2]})
    assert (again["hits"], again["warmed"], again["bytes"]) == (2, 0, 0)
    assert origin.requests("/w/a.jpg") == 1


def test_a_sitemap_with_three_urls(origin: OriginServer, warm_proxy: ProxyServer) -> None:
    paths = ["/s/1.jpg", "/s/2.jpg", "/s/3.jpg"]
    for path in paths:
        origin.script(path, body=path * 10, headers=CACHED)
    locs = "".join(f"<url><loc>{_url(p)}</loc><lastmod>2026-01-01</lastmod></url>" for p in paths)
    sitemap = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>'
    )
    report = _warm(warm_proxy, {"content-type": "application/xml"}, content=sitemap)
    assert (report["source"], report["total"], report["warmed"]) == ("sitemap", 3, 3)
    for path in paths:
        assert "hit" in _get(warm_proxy, path).headers["cache-status"]
        assert origin.requests(path) == 1


def _playlists(origin: OriginServer, segments: int, root: str) -> list[str]:
    """A master playlist with two renditions of `segments` segments each (and an init
    section); every path the warm job should fetch."""
    hls = {"cache-control": "max-age=300", "content-type": "application/vnd.apple.mpegurl"}
    master = "#EXTM3U\n" + "".join(
        f"#EXT-X-STREAM-INF:BANDWIDTH={b}000\n{b}/index.m3u8\n" for b in (400, 800)
    )
    origin.script(f"{root}/master.m3u8", body=master, headers=hls)
    paths = [f"{root}/master.m3u8"]
    for b in (400, 800):
        media = '#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI="init.mp4"\n'
        media += "".join(f"#EXTINF:4,\nseg{i}.m4s\n" for i in range(segments))
        media += "#EXT-X-ENDLIST\n"
        origin.script(f"{root}/{b}/index.m3u8", body=media, headers=hls)
        paths.append(f"{root}/{b}/index.m3u8")
        for name in ["init.mp4", *(f"seg{i}.m4s" for i in range(segments))]:
            origin.script(f"{root}/{b}/{name}", body=f"{b}/{name}", headers=CACHED)
            paths.append(f"{root}/{b}/{name}")
    return paths


def test_a_playlist_warms_its_renditions_and_segments(
    origin: OriginServer, warm_proxy: ProxyServer
) -> None:
    paths = _playlists(origin, 3, "/v")
    report = _warm(warm_proxy, json={"playlist": _url("/v/master.m3u8")})
    assert report["source"] == "playlist"
    assert (report["total"], report["warmed"], report["failed"]) == (len(paths), len(paths), 0)
    for path in paths:
        assert "hit" in _get(warm_proxy, path).headers["cache-status"], path
        assert origin.requests(path) == 1, path


def test_a_long_playlist_is_cut_at_max_urls(origin: OriginServer, warm_proxy: ProxyServer) -> None:
    _playlists(origin, 30, "/long")  # 1 + 2 * (1 + 1 + 30) URLs: more than MAX_URLS
    report = _warm(warm_proxy, json={"playlist": _url("/long/master.m3u8")})
    assert report["truncated"] is True
    assert report["total"] == report["done"] == MAX_URLS


def test_a_list_longer_than_max_urls_is_refused_whole(
    origin: OriginServer, warm_proxy: ProxyServer
) -> None:
    urls = [_url(f"/big/{i}") for i in range(MAX_URLS + 1)]
    response = httpx.post(warm_proxy.url + "/_warm", headers=AUTH, json={"urls": urls})
    assert response.status_code == 413 and "more than" in response.json()["error"]
    huge = httpx.post(
        warm_proxy.url + "/_warm",
        headers=AUTH,
        content=b'{"urls": ["' + b"x" * (9 * 1024 * 1024) + b'"]}',
    )
    assert huge.status_code == 413
    assert origin.stats()["total"] == 0


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<urlset><url><loc>http://media.test/&lol9;</loc></url></urlset>"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<urlset><url><loc>http://media.test/&x;</loc></url></urlset>"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, "<urlset><url><loc>"])
def test_hostile_sitemaps_are_refused_cleanly(
    origin: OriginServer, warm_proxy: ProxyServer, body: str
) -> None:
    response = httpx.post(
        warm_proxy.url + "/_warm",
        headers={**AUTH, "content-type": "application/xml"},
        content=body,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert "DOCTYPE" in error or "well-formed" in error
    assert "Traceback" not in response.text
    assert httpx.get(warm_proxy.url + "/healthz").status_code == 200
    assert origin.stats()["total"] == 0


def test_warming_needs_admin_authorization(origin: OriginServer, warm_proxy: ProxyServer) -> None:
    origin.script("/w/secret.jpg", body="s", headers=CACHED)
    body = {"urls": [_url("/w/secret.jpg")]}
    missing = httpx.post(warm_proxy.url + "/_warm", json=body)
    wrong = httpx.post(warm_proxy.url + "/_warm", json=body, headers={"authorization": "Bearer no"})
    listing = httpx.get(warm_proxy.url + "/_warm")
    one = httpx.get(warm_proxy.url + "/_warm/0123456789abcdef")
    assert missing.status_code == 401 and wrong.status_code == 403
    assert listing.status_code == 401 and one.status_code == 401
    assert origin.requests("/w/secret.jpg") == 0
    unknown = httpx.get(warm_proxy.url + "/_warm/0123456789abcdef", headers=AUTH)
    assert unknown.status_code == 404


def test_jobs_are_listed_for_the_admin_page(origin: OriginServer, warm_proxy: ProxyServer) -> None:
    origin.script("/w/listed.jpg", body="l", headers=CACHED)
    report = _warm(warm_proxy, json={"urls": [_url("/w/listed.jpg")]})
    listing = httpx.get(warm_proxy.url + "/_warm", headers=AUTH).json()
    assert listing["jobs"][0]["id"] == report["id"]  # newest first
    page = httpx.get(warm_proxy.url + "/_admin", headers=AUTH).text
    assert 'id="section-warm"' in page and 'fetch("/_warm"' in page
    metrics = httpx.get(warm_proxy.url + "/metrics").text
    assert 'edgeshield_warm_jobs_total{source="urls"}' in metrics
    assert 'edgeshield_warm_urls_total{result="warmed"}' in metrics


def test_the_warm_command_posts_a_file_and_waits(
    origin: OriginServer, warm_proxy: ProxyServer, tmp_path: Path
) -> None:
    origin.script("/c/1.jpg", body="1", headers=CACHED)
    origin.script("/c/2.jpg", body="2", headers=CACHED)
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# to warm\n{_url('/c/1.jpg')}\n\n{_url('/c/2.jpg')}\n")
    env = {**os.environ, "EDGESHIELD_PURGE_TOKEN": TOKEN}
    command = [sys.executable, "-m", "proxy.serve.cli", "warm", str(listing), "--wait"]
    done = subprocess.run(
        [*command, "--endpoint", warm_proxy.url],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert done.returncode == 0, done.stderr
    assert '"warmed": 2' in done.stdout and '"state": "done"' in done.stdout
    assert "hit" in _get(warm_proxy, "/c/2.jpg").headers["cache-status"]
    refused = subprocess.run(
        [*command, "--endpoint", warm_proxy.url],
        env={k: v for k, v in env.items() if "TOKEN" not in k},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert refused.returncode == 1 and "HTTP 401" in refused.stderr


def test_a_new_instance_fills_its_memory_from_redis_with_the_top_keys(
    origin: OriginServer,
) -> None:
    origin.script("/top/hot.jpg", body="h" * 3000, headers=CACHED)
    with running_redis() as redis:
        extra = f'top_keys_interval = 0.2\n[redis]\nurl = "{redis.url}"\nop_timeout = 0.5'
        config = _config(origin, extra)
        client = redis_py.Redis.from_url(redis.url)
        with running_proxy(config) as first:
            for _ in range(3):
                assert _get(first, "/top/hot.jpg").status_code == 200
            deadline = time.monotonic() + HANG_GUARD
            while not client.zrange("es:warm:top", 0, -1):  # written in the background
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert client.zrange("es:warm:top", 0, -1) == [f"{HOST}/top/hot.jpg".encode()]
        with running_proxy(config) as second, httpx.Client(base_url=second.url) as admin:
            jobs = admin.get("/_warm", headers=AUTH).json()["jobs"]
            report = _until_done(admin, next(j for j in jobs if j["source"] == "redis"))
            assert report["warmed"] == 1 and report["bytes"] == 3000
            hit = _get(second, "/top/hot.jpg")
            assert "detail=memory" in hit.headers["cache-status"], hit.headers["cache-status"]
        client.close()
    assert origin.requests("/top/hot.jpg") == 1
