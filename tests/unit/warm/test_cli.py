"""`edgeshield warm`: what it posts for each kind of target (the round trip against a
server is in tests/integration/test_warm.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from proxy.serve.cli import main
from proxy.warm.cli import request_body


def test_a_playlist_url_is_posted_as_a_playlist() -> None:
    body, kind = request_body("https://a.test/v/master.m3u8")
    assert kind == "application/json"
    assert orjson.loads(body) == {"playlist": "https://a.test/v/master.m3u8"}


def test_files_are_sent_by_what_they_hold(tmp_path: Path) -> None:
    urls = tmp_path / "urls.txt"
    urls.write_text("# warm these\nhttp://a.test/1\n\n  http://a.test/2\n")
    body, kind = request_body(str(urls))
    assert kind == "application/json"
    assert orjson.loads(body) == {"urls": ["http://a.test/1", "http://a.test/2"]}
    sitemap = tmp_path / "sitemap.xml"
    sitemap.write_bytes(b"\xef\xbb\xbf\n<urlset/>")
    assert request_body(str(sitemap))[1] == "application/xml"
    raw = tmp_path / "body.json"
    raw.write_text('{"playlists": ["http://a.test/m.m3u8"]}')
    assert request_body(str(raw)) == (raw.read_bytes(), "application/json")


def test_usage_problems_exit_2_before_sending(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    endpoint = ["--endpoint", "http://127.0.0.1:9"]  # never reached
    assert main(["warm", str(empty), *endpoint]) == 2
    assert "no URLs" in capsys.readouterr().err
    assert main(["warm", str(tmp_path / "missing.txt"), *endpoint]) == 2
