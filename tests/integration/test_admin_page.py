"""The admin page in a real browser: a real edgeshield, real traffic, headless Chromium.

Chromium loads `/_admin`, runs the page's script (which fetches `/_admin/status.json`)
within a virtual-time budget, and we read what it rendered: the DOM after the script
(`--dump-dom`) and a screenshot (`--screenshot`). The test starts Chromium itself and
fails, not skips, when it is missing: CI installs the Debian package `chromium`."""

from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pyvips

from tests.support.cdp import FLAGS, chromium_binary
from tests.support.proxy_server import running_proxy

WIDTH, HEIGHT = 1280, 1600
TOKEN = "admin-page-token-0123456789abcdef"
# Attacker-controlled text that reaches the page: a query and a Host header.
XSS_QUERY = b"<img/src=x/onerror=document.title=1>"
XSS_HOST = b'<script>document.body.dataset.pwned="1"</script>'


def _browse(url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run on `url`, with its own profile, nothing but `url` fetched."""
    cmd = [
        chromium_binary(),
        *FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={WIDTH},{HEIGHT}",
        "--virtual-time-budget=5000",  # 5 s of page time: the first fetch and two refreshes
        *extra,
        url,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}):\n{done.stderr[-3000:]}"
    return done


def _dom(url: str, profile: Path) -> str:
    return _browse(url, profile, "--dump-dom").stdout


class _Elements(HTMLParser):
    """Text and attributes of every element with an id (text includes descendants')."""

    VOID = frozenset({"meta", "link", "br", "hr", "img", "input", "source", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}
        self.tags: list[str] = []
        self._open: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in self.VOID:
            return
        ident = dict(attrs).get("id")
        if ident is not None:
            self.attrs[ident] = dict(attrs)
            self.text.setdefault(ident, "")
        self._open.append(ident)

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for ident in self._open:
            if ident is not None:
                self.text[ident] += data


def _rows(html: str, table: str) -> list[str]:
    """The text of each body row of table `table`, cells joined by ' | '."""
    body = re.search(rf'<table id="{table}">.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body is not None, f"no table {table}"
    rows = re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)
    cells = (re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows)
    return [" | ".join(re.sub(r"<[^>]+>", " ", c).strip() for c in row) for row in cells]


def _raw_get(port: int, target: bytes, host: bytes) -> bytes:
    """A request httpx would not send as is (raw `<` in the query, markup as the Host)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        return sock.recv(64)


def _media(root: Path) -> str:
    (root / "video").mkdir(parents=True)
    (root / "img").mkdir()
    (root / "video" / "intro.mp4").write_bytes(os.urandom(48_000))
    (root / "img" / "poster.jpg").write_bytes(os.urandom(12_000))
    (root / "live.m3u8").write_text("#EXTM3U\n")
    return (
        f'[server]\naccess_log = "off"\n[origins.media]\nkind = "fs"\nroot = "{root}"\n'
        '[[routes]]\npath_prefix = "/video"\norigin = "media"\n'
        "[routes.cache]\noverride_ttl = 3600\n"
        '[[routes]]\norigin = "media"\n[routes.cache]\noverride_ttl = 3600\n'
    )


def _traffic(client: httpx.Client) -> None:
    for path, times in (("/video/intro.mp4", 6), ("/img/poster.jpg", 3), ("/live.m3u8", 1)):
        for _ in range(times):
            assert client.get(path).status_code == 200


def test_admin_page_renders_live_data(tmp_path: Path) -> None:
    chromium_binary()  # fail before starting anything when the browser is missing
    config = _media(tmp_path / "origin")
    # uvicorn lets a raw `<` through in the request line (granian's parser refuses it
    # with a 400), so the page's escaping of what a client sent is tested there.
    with (
        running_proxy(config, engine="uvicorn") as proxy,
        httpx.Client(base_url=proxy.url) as client,
    ):
        _traffic(client)
        assert _raw_get(proxy.port, b"/live.m3u8?" + XSS_QUERY, b"127.0.0.1").startswith(
            b"HTTP/1.1 200"
        )
        # A Host that is no host name is refused before it could reach the page.
        assert _raw_get(proxy.port, b"/live.m3u8", XSS_HOST).startswith(b"HTTP/1.1 400")
        purge = client.post("/_purge", json={"urls": [f"{proxy.url}/img/poster.jpg"]})
        assert purge.status_code == 200, purge.text
        purge_id = purge.json()["id"]

        html = _dom(f"{proxy.url}/_admin", tmp_path / "profile-dom")
        shot = tmp_path / "admin.png"
        _browse(f"{proxy.url}/_admin", tmp_path / "profile-shot", f"--screenshot={shot}")

    page = _Elements(html)
    # the script ran and refreshed: the first fetch at once, then every 2 s of page time
    assert int(page.attrs["refreshed"]["data-refreshes"] or 0) >= 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page.text["refreshed"])
    assert page.attrs["notice"].get("hidden") is not None
    # 6 + 3 + 1 + 2 requests: 11 lookups (4 misses: the XSS query is another object), and
    # the XSS Host refused before any lookup
    assert page.text["requests"] == "12"
    assert page.text["hit-ratio"] == f"{7 / 11 * 100:.1f}%"
    assert page.text["hit-detail"] == "7 of 11 lookups"
    assert page.text["client-bytes"].endswith("KiB") and page.text["offload"].endswith("%")

    (origin,) = _rows(html, "origins")
    assert origin.startswith("media | fs | up | no")
    assert re.search(r"\d+\.\d ms", origin)  # the latency EWMA
    assert len(_rows(html, "routes")) == 2
    assert _rows(html, "tiers")[0].startswith("memory")

    top = _rows(html, "top")
    assert top[0].startswith("1 | 127.0.0.1/video/intro.mp4 | 6")
    assert top[1].startswith("2 | 127.0.0.1/img/poster.jpg | 3")
    (purge_row,) = _rows(html, "purges")
    assert purge_id in purge_row and "memory: 1" in purge_row
    assert "urls" in page.text["purges"]  # the purge's own keys are the columns

    # attacker-controlled text is text: escaped in the DOM, never an element or a script
    assert "img" not in page.tags and page.tags.count("script") == 1
    assert "127.0.0.1/live.m3u8?&lt;img/src=x/onerror=document.title=1&gt;" in html
    assert "data-pwned" not in html and "<title>edgeshield admin</title>" in html

    _check_screenshot(shot)


def _check_screenshot(shot: Path) -> None:
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (WIDTH, HEIGHT)  # IHDR
    image = pyvips.Image.new_from_file(str(shot), access="sequential").colourspace("b-w")
    image = image.extract_band(0).copy_memory()
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    assert image.deviate() > 20, "the screenshot is (nearly) one colour"
    header = image.crop(0, 0, WIDTH, 40)
    assert header.avg() < 60, "the dark header bar is missing"
    # the summary cards: light background with dark text on it
    cards = image.crop(0, 60, WIDTH, 130)
    assert cards.avg() > 180
    assert (cards < 100).avg() / 255 > 0.01, "no text in the summary cards"
    # the tables below have content too (not only the layout's boxes)
    tables = image.crop(0, 190, WIDTH, 700)
    assert (tables < 100).avg() / 255 > 0.005


def test_admin_page_with_a_token(tmp_path: Path) -> None:
    chromium_binary()
    config = _media(tmp_path / "origin") + f'[admin]\ntoken = "{TOKEN}"\n'
    auth = {"authorization": f"Bearer {TOKEN}"}
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url) as client:
        _traffic(client)
        bare = client.get("/_admin")
        data_bare = client.get("/_admin/status.json")
        data_ok = client.get("/_admin/status.json", headers=auth)
        page_ok = client.get("/_admin", headers=auth)

        with_token = _dom(f"{proxy.url}/_admin#token={TOKEN}", tmp_path / "profile-token")
        without = _dom(f"{proxy.url}/_admin", tmp_path / "profile-none")
        wrong = _dom(f"{proxy.url}/_admin#token=not-the-token", tmp_path / "profile-wrong")
        log = proxy.log()

    # without the token: 401, and the body is the data-free page (which reads #token=)
    assert bare.status_code == 401 and bare.headers["www-authenticate"].startswith("Bearer")
    assert bare.headers["content-type"].startswith("text/html")
    assert "media" not in bare.text and "intro.mp4" not in bare.text
    assert data_bare.status_code == 401
    assert data_ok.status_code == 200 and data_ok.json()["requests"] == 10
    assert page_ok.status_code == 200 and page_ok.text == bare.text

    page = _Elements(with_token)
    assert int(page.attrs["refreshed"]["data-refreshes"] or 0) >= 2  # status.json, with Bearer
    assert _rows(with_token, "origins")[0].startswith("media | fs | up")
    assert page.text["hit-ratio"] == f"{7 / 10 * 100:.1f}%"
    assert _rows(with_token, "top")[0].startswith("1 | 127.0.0.1/video/intro.mp4 | 6")
    assert TOKEN not in with_token  # kept in the script's memory, not in the document

    none = _Elements(without)
    assert none.attrs["refreshed"]["data-refreshes"] == "0"
    assert "needs its admin token" in none.text["notice"]
    assert "intro.mp4" not in without
    assert "wrong token" in _Elements(wrong).text["notice"]
    # the fragment never reached the server
    assert TOKEN not in log and "not-the-token" not in log
