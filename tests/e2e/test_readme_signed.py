"""The README's signed-URL round trip, as written: config/examples/signed.toml, the key
from the environment, `edgeshield sign`, a running proxy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.proxy_server import running_proxy

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "config" / "examples" / "signed.toml"


def test_readme_round_trip(tmp_path: Path) -> None:
    clip = tmp_path / "var" / "demo" / "video" / "clip.mp4"
    clip.parent.mkdir(parents=True)
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000)
    env = {"EDGESHIELD_AUTH__KEYS__K1__SECRET": "readme-secret-0123456789abcdef"}
    with running_proxy(None, args=["--config", str(EXAMPLE)], cwd=tmp_path, env=env) as proxy:
        unsigned = httpx.get(proxy.url + "/private/video/clip.mp4")
        assert unsigned.status_code == 403
        assert unsigned.headers["edgeshield-auth-reason"] == "missing"
        signed = []
        for extra in ([], ["--prefix", "/private/video/", "--style", "path"]):
            out = subprocess.run(
                [
                    *(sys.executable, "-m", "proxy.serve.cli", "sign", "/private/video/clip.mp4"),
                    *("--ttl", "600", "--config", str(EXAMPLE), *extra),
                ],
                capture_output=True,
                text=True,
                env={**os.environ, **env, "PYTHONPATH": str(REPO_ROOT)},
                check=True,
            )
            signed.append(out.stdout.strip())
        assert "token=" in signed[0] and signed[1].startswith("/_t/")
        for url in signed:
            r = httpx.get(proxy.url + url)
            assert r.status_code == 200 and r.content == clip.read_bytes()
        # the private media is not served unsigned under its public name either; the
        # rest of the demo is open
        assert httpx.get(proxy.url + "/video/clip.mp4").status_code == 403
        (tmp_path / "var" / "demo" / "hello.txt").write_text("hello\n")
        assert httpx.get(proxy.url + "/hello.txt").status_code == 200
