"""`edgeshield sign`: prints a URL (or Set-Cookie value) that verifies."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from proxy.auth.cli import add_sign_parser, main, run_sign
from proxy.auth.common import AuthInput
from proxy.auth.keys import KeyRing
from proxy.auth.native import NativeVerifier, split_path_token
from proxy.auth.policy import AuthPolicy

CONFIG = """
[server]
port = 8080

[origins.media]
kind = "fs"
root = "/tmp"

[[routes]]
origin = "media"

[auth]
signing_kid = "k1"

[auth.keys.k1]
secret = "one"

[auth.keys.k2]
secret_file = "k2.secret"
"""

RING = KeyRing({"k1": b"one", "k2": b"two"})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "k2.secret").write_text("two\n")
    path = tmp_path / "edgeshield.toml"
    path.write_text(CONFIG)
    return path


def verify_printed(url: str, *, client: str = "127.0.0.1", cookie: str | None = None) -> str:
    parts = urlsplit(url)
    token, path = split_path_token(parts.path)
    inp = AuthInput(
        path=path,
        query=parts.query,
        headers={"cookie": cookie} if cookie else {},
        client_ip=client,
        now=time.time(),
        path_token=token,
    )
    return AuthPolicy([NativeVerifier(RING)]).verify(inp).reason or "ok"


@pytest.mark.parametrize("style", ["query", "path"])
def test_sign_prints_a_url_that_verifies(
    config: Path, capsys: pytest.CaptureFixture[str], style: str
) -> None:
    code = main(["sign", "https://cdn.example/videos/abc/master.m3u8", "--ttl", "60",
                 "--prefix", "/videos/abc/", "--ip", "203.0.113.7", "--kid", "k2",
                 "--style", style, "--config", str(config)])  # fmt: skip
    assert code == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("https://cdn.example/")
    assert verify_printed(url, client="203.0.113.7") == "ok"
    assert verify_printed(url, client="203.0.113.8") == "ip-mismatch"


def test_sign_cookie_style(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sign", "/videos/abc/", "--style", "cookie", "--config", str(config)]) == 0
    set_cookie = capsys.readouterr().out.strip()
    assert set_cookie.startswith("edgeshield_token=") and "Path=/videos/abc/" in set_cookie
    pair = set_cookie.split(";", 1)[0]
    assert verify_printed("/videos/abc/seg.ts", cookie=pair) == "ok"


def test_sign_uses_the_environment_config(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_sign_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["sign", "/a.mp4"])
    assert run_sign(args, {"EDGESHIELD_CONFIG": str(config)}) == 0
    assert verify_printed(capsys.readouterr().out.strip()) == "ok"


def test_sign_errors(config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_sign_parser(parser.add_subparsers(dest="command"))
    assert run_sign(parser.parse_args(["sign", "/a"]), {}) == 2
    assert "--config" in capsys.readouterr().err
    args = parser.parse_args(["sign", "/a", "--kid", "k9", "--config", str(config)])
    assert run_sign(args, {}) == 2
    assert "unknown key id 'k9'" in capsys.readouterr().err
    args = parser.parse_args(["sign", "/a/bc", "--prefix", "/a/b/", "--config", str(config)])
    assert run_sign(args, {}) == 2
    assert "not under the prefix" in capsys.readouterr().err
    broken = tmp_path / "broken.toml"
    broken.write_text(CONFIG.replace('secret = "one"', "secret = 1"))
    assert run_sign(parser.parse_args(["sign", "/a", "--config", str(broken)]), {}) == 2
    err = capsys.readouterr().err
    assert "auth.keys.k1.secret" in err
    assert "one" not in err.replace("one error", "")
