"""Vendor tokens as their own signers make them, through a real `edgeshield serve` in
front of a real origin: Akamai's generator (PyPI akamai-edgeauth) with tokens sent by a
standard client, bunny.net's current HS256 format (independent signer written from
bunny's documentation: its own signers are not on a registry), nginx secure_link checked
side by side with a real nginx, and native tokens from the JavaScript in docs/auth.md
(run by node) and from an independent Python signer. Accepted tokens never reach the
cache key or the origin; refusals are a clean 403 with a reason. Hostile tokens are in
tests/integration/attacks/test_vendor_tokens.py."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loadtests.bench.nginx_bench import INSTALL_HINT, find_nginx, nginx_version
from tests.support import bunny_signer, native_signer
from tests.support.doc_examples import run_doc_js_signer
from tests.support.edgeauth import EdgeAuth
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port, wait_for_port
from tests.support.proxy_server import ProxyServer, running_proxy
from tests.support.vendor_tokens import (
    AKAMAI_KEY,
    BUNNY_KEY,
    FAR,
    NATIVE_SECRET,
    NGINX_SECRET,
    vendor_config,
)

PAST = 1_000_000_000


@pytest.fixture(scope="module")
def vendor_proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    with running_proxy(vendor_config(origin_server.url)) as proxy:
        yield proxy


def _script(origin: OriginServer, *paths: str) -> None:
    for path in paths:
        origin.script(path, body=f"body of {path}", headers={"cache-control": "max-age=600"})


def _refused(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["edgeshield-auth-reason"] == reason
    assert response.text == f"forbidden: {reason}\n"


# -- Akamai ------------------------------------------------------------------------------


def test_akamai_generator_tokens_sent_by_a_standard_client(
    origin: OriginServer, vendor_proxy: ProxyServer
) -> None:
    _script(origin, "/ak/v/seg-1.ts", "/ak/v/seg-12.ts")
    signer = EdgeAuth(key=AKAMAI_KEY, window_seconds=600, payload="user 42 / gold")
    token = signer.generate_acl_token("/ak/v/seg-?.ts")
    with httpx.Client(base_url=vendor_proxy.url) as client:
        # httpx form-encodes the query: "%3D" for "=", "+" for the spaces.
        first = client.get("/ak/v/seg-1.ts", params={"__token__": token})
        again = client.get("/ak/v/seg-1.ts?__token__=" + token.replace(" ", "%20"))
        wider = client.get("/ak/v/seg-12.ts", params={"__token__": token})
    assert first.status_code == 200, first.text
    assert first.text == "body of /ak/v/seg-1.ts"
    assert again.status_code == 200 and again.headers["cache-status"].startswith("edgeshield; hit")
    _refused(wider, "acl-mismatch")
    assert origin.requests("/ak/v/seg-1.ts") == 1
    assert origin.stats()["last_target"]["/ak/v/seg-1.ts"] == "/ak/v/seg-1.ts"
    assert origin.requests("/ak/v/seg-12.ts") == 0


# -- bunny.net ---------------------------------------------------------------------------


def test_bunny_hs256_ip_locked_directory_and_ignore_params(
    origin: OriginServer, vendor_proxy: ProxyServer
) -> None:
    _script(origin, "/bn/a.mp4", "/bn/hls/720p/1.ts")
    expires = int(time.time()) + 600
    locked = bunny_signer.signed_url("/bn/a.mp4", BUNNY_KEY, expires, ip="127.0.0.1")
    elsewhere = bunny_signer.signed_url("/bn/a.mp4", BUNNY_KEY, expires, ip="127.0.0.2")
    directory = bunny_signer.signed_url(
        "/bn/hls/720p/1.ts", BUNNY_KEY, expires, token_path="/bn/hls/", directory=True
    )
    loose = bunny_signer.signed_url("/bn/a.mp4", BUNNY_KEY, expires, ignore_params=True)
    assert "HS256-1-" in locked and directory.startswith("/bcdn_token=HS256-")
    with httpx.Client(base_url=vendor_proxy.url) as client:
        ok = client.get(locked)
        other_client = client.get(elsewhere)
        in_directory = client.get(directory)
        extra = client.get(loose + "&player=web")
    assert ok.status_code == 200 and ok.text == "body of /bn/a.mp4"
    _refused(other_client, "bad-signature")
    assert in_directory.status_code == 200 and in_directory.text == "body of /bn/hls/720p/1.ts"
    assert extra.status_code == 200 and extra.text == "body of /bn/a.mp4"
    # The token and bunny's own parameters never reach the origin; the player's does.
    assert origin.stats()["last_target"]["/bn/a.mp4"] == "/bn/a.mp4?player=web"
    assert origin.stats()["last_target"]["/bn/hls/720p/1.ts"] == "/bn/hls/720p/1.ts"


# -- nginx secure_link, side by side with nginx ------------------------------------------


NGINX_CONF = """\
{user}worker_processes 1;
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
{temp_paths}
    server {{
        listen 127.0.0.1:{port};
        location /s/ {{
            secure_link $arg_md5,$arg_expires;
            secure_link_md5 "$secure_link_expires$uri$remote_addr {secret}";
            if ($secure_link = "") {{ return 403; }}
            if ($secure_link = "0") {{ return 410; }}
            return 200 "ok\\n";
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def nginx_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = find_nginx()
    if binary is None:
        pytest.fail(f"this test needs nginx.\n{INSTALL_HINT}")
    prefix = tmp_path_factory.mktemp("nginx-secure-link")
    _, build = nginx_version(binary)
    modules = ["client_body", "proxy"] + [
        m for m in ("fastcgi", "uwsgi", "scgi") if f"--without-http_{m}_module" not in build
    ]
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            user="user root;\n" if os.geteuid() == 0 else "",
            prefix=prefix,
            port=port,
            secret=NGINX_SECRET,
            temp_paths="\n".join(f"    {m}_temp_path {prefix}/{m}_temp;" for m in modules),
        )
    )
    argv = [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _md5(expires: int, uri: str = "/s/link") -> str:
    text = f"{expires}{uri}127.0.0.1 {NGINX_SECRET}"
    return base64.urlsafe_b64encode(hashlib.md5(text.encode()).digest()).rstrip(b"=").decode()


GOOD = _md5(FAR)
SECURE_LINKS = [
    f"md5={GOOD}&expires={FAR}",
    f"MD5={GOOD}&EXPIRES={FAR}",
    f"x=1&Md5={GOOD}&Expires={FAR}",
    f"md5={GOOD}&expires={FAR}&MD5=wrong",  # the first one counts
    f"MD5=wrong&md5={GOOD}&expires={FAR}",
    f"md%35={GOOD}&expires={FAR}",  # names are not decoded
    f"md5&MD5={GOOD}&expires={FAR}",  # a bare name is no value
    f"md5={GOOD}",  # no expiry where the expression wants one
    f"md5={_md5(PAST)}&expires={PAST}",  # expired: nginx says 410
    f"md5={GOOD}&expires={FAR - 1}",
    "",
]


def test_secure_link_verdicts_match_nginx(
    origin: OriginServer, vendor_proxy: ProxyServer, nginx_url: str
) -> None:
    _script(origin, "/s/link")
    verdicts = []
    with httpx.Client() as client:
        for query in SECURE_LINKS:
            url = f"/s/link?{query}" if query else "/s/link"
            theirs = client.get(nginx_url + url).status_code
            ours = client.get(vendor_proxy.url + url)
            verdicts.append(
                (query, theirs, ours.status_code, ours.headers.get("edgeshield-auth-reason"))
            )
    for query, theirs, ours, reason in verdicts:
        assert theirs in (200, 403, 410), (query, theirs)
        assert (ours == 200) is (theirs == 200), (query, theirs, ours, reason)
        if theirs == 410:
            assert reason == "expired", (query, reason)
    assert sum(theirs == 200 for _, theirs, _, _ in verdicts) == 5
    # The token is out of the key whatever its spelling: two copies, "/s/link" and the
    # one with x=1, and the origin saw no token.
    assert origin.requests("/s/link") == 2
    assert origin.stats()["last_target"]["/s/link"] in ("/s/link", "/s/link?x=1")


# -- native tokens from the doc's signers ------------------------------------------------


def test_native_tokens_from_the_doc_javascript_and_an_independent_signer(
    origin: OriginServer, vendor_proxy: ProxyServer, tmp_path: Path
) -> None:
    _script(origin, "/nt/videos/abc/master.m3u8", "/nt/videos/abc/720p/1.ts")
    expires = int(time.time()) + 600
    js_prefix, js_path = run_doc_js_signer(
        tmp_path,
        [
            {"kid": "k7", "secret": NATIVE_SECRET, "expires": expires, "prefix": "/nt/videos/abc/"},
            {
                "kid": "k7",
                "secret": NATIVE_SECRET,
                "expires": expires,
                "path": "/nt/videos/abc/master.m3u8",
                "bind": {"quality": ["hd ready"]},
            },
        ],
    )
    py_token = native_signer.sign(
        NATIVE_SECRET.encode(), "k7", expires, prefix="/nt/videos/abc/", ip="127.0.0.0/8"
    )
    with httpx.Client(base_url=vendor_proxy.url) as client:
        segment = client.get(f"/_t/{js_prefix}/nt/videos/abc/720p/1.ts")
        bound = client.get(
            "/nt/videos/abc/master.m3u8", params={"quality": "hd ready", "token": js_path}
        )
        other_value = client.get(
            "/nt/videos/abc/master.m3u8", params={"quality": "sd", "token": js_path}
        )
        python = client.get(f"/nt/videos/abc/720p/1.ts?token={py_token}")
    assert segment.status_code == 200 and segment.text == "body of /nt/videos/abc/720p/1.ts"
    assert bound.status_code == 200 and bound.text == "body of /nt/videos/abc/master.m3u8"
    _refused(other_value, "bad-signature")
    assert python.status_code == 200 and python.headers["cache-status"].startswith(
        "edgeshield; hit"
    )
    assert origin.requests("/nt/videos/abc/720p/1.ts") == 1
    assert origin.stats()["last_target"]["/nt/videos/abc/master.m3u8"] == (
        "/nt/videos/abc/master.m3u8?quality=hd+ready"
    )
