"""Issue 11 item 8, secrets stay secret: a real `edgeshield serve` with a route per token
scheme gets valid, tampered and expired tokens in every place they travel (query, the
`/_t/` and `/bcdn_token=` path segments, cookies, Authorization, the admin bearer token).
Afterwards no token value, and no signature part of one, is in the access log file,
`/_admin/status.json`, the `/_admin` page, `/metrics` or the server's own log (at debug
level). The refusals are clean 403/400s with a short reason, and a clean client still
gets the right bytes."""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from proxy.auth.akamai import generate_token
from proxy.auth.bunny import sign_basic, sign_sha256
from proxy.auth.keys import Key
from proxy.auth.native import sign_url, signed_cookie
from proxy.auth.nginx import sign as nginx_sign
from proxy.auth.redact import REDACTED
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ProxyServer, running_proxy

NATIVE_SECRET = "attack-secrets-native-key-0123456789"
AKAMAI_HEX = "5e2f6a0b9c8d7e6f5a4b3c2d1e0f1a2b"
BUNNY_KEY = "attack-secrets-bunny-key-4d2f"
NGINX_SECRET = "attack-secrets-nginx-key"
ADMIN_TOKEN = "admin-bearer-0f9e8d7c6b5a4321"
CONTENT_BEARER = "content-bearer-9a8b7c6d5e4f3210"
KEY_PAIR_ID = "KATTACKSECRETS"
CDN_BASE = "https://cdn.example"
NGINX_MD5 = "$secure_link_expires$uri$remote_addr $secret"
NATIVE = Key("k1", NATIVE_SECRET.encode())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OBJECTS = (
    "/native/a.mp4",
    "/native/dir/a.ts",
    "/native/cookie/a.ts",
    "/keep/a.mp4",
    "/akamai/a.mp4",
    "/cf/a.mp4",
    "/cf/b.mp4",
    "/bunny/a.mp4",
    "/bunny/dir/a.ts",
    "/nginx/a.mp4",
    "/open/a.mp4",
)


def _config(origin_url: str, access_log: Path) -> str:
    pem = (
        RSA_KEY.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    routes = [
        ("/native", 'schemes = ["native"]\nparam = "sig"'),  # a configured parameter name
        ("/keep", 'schemes = ["native"]\nstrip_tokens = false'),  # token in the cache key
        ("/akamai", 'schemes = ["akamai"]'),
        ("/cf", 'schemes = ["cloudfront"]'),
        ("/bunny", 'schemes = ["bunny"]'),
        ("/nginx", 'schemes = ["nginx"]'),
    ]
    text = f"""
[server]
access_log = {json.dumps(str(access_log))}
log_level = "debug"
[admin]
token = "{ADMIN_TOKEN}"
[auth]
signing_kid = "k1"
clock_skew = 0
[auth.keys.k1]
secret = "{NATIVE_SECRET}"
[auth.keys.aka]
secret = "{AKAMAI_HEX}"
[auth.keys.bunny]
secret = "{BUNNY_KEY}"
[auth.keys.nginx]
secret = "{NGINX_SECRET}"
[auth.akamai]
key = "aka"
token_name = "hdnts"
[auth.bunny]
key = "bunny"
[auth.nginx]
key = "nginx"
secure_link = "$arg_md5,$arg_expires"
secure_link_md5 = "{NGINX_MD5}"
[auth.cloudfront]
resource_base = "{CDN_BASE}"
[auth.cloudfront.public_keys.{KEY_PAIR_ID}]
public_key = {json.dumps(pem)}
[origins.main]
kind = "http"
url = "{origin_url}"
"""
    for prefix, auth in routes:
        text += f'[[routes]]\npath_prefix = "{prefix}"\norigin = "main"\n[routes.auth]\n{auth}\n'
    return text + '[[routes]]\npath_prefix = "/"\norigin = "main"\n'


def _tamper(token: str) -> str:
    """The token with one character of its signature changed (not the last: in base64
    that may hold only padding bits)."""
    i = len(token) - 5
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


def _tamper_param(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    parts = [
        f"{name}={_tamper(p.partition('=')[2])}" if p.startswith(f"{name}=") else p
        for p in query.split("&")
    ]
    return f"{base}?{'&'.join(parts)}"


def _object(target: str) -> str:
    """The object a target names: without query, `/_t/<token>` or `/bcdn_token=...`."""
    path = target.partition("?")[0]
    if path.startswith("/_t/"):
        return "/" + path.split("/", 3)[3]
    if path.startswith("/bcdn_token="):
        return path[path.index("/", 1) :]
    return path


def _cloudfront_signer() -> CloudFrontSigner:
    def rsa_signer(message: bytes) -> bytes:
        return RSA_KEY.sign(message, padding.PKCS1v15(), hashes.SHA1())

    return CloudFrontSigner(KEY_PAIR_ID, rsa_signer)


@dataclass
class Traffic:
    """What was sent: (target, headers, expected status), and every secret in it."""

    proxy: ProxyServer
    access_log: Path
    secrets: set[str] = field(default_factory=set)
    path_token: str = ""
    answers: list[tuple[str, int, httpx.Response]] = field(default_factory=list)

    def get(self, target: str, status: int, **headers: str) -> httpx.Response:
        r = httpx.get(self.proxy.url + target, headers=headers, timeout=30)
        self.answers.append((target, status, r))
        return r


def _native(t: Traffic, now: int) -> None:
    good = sign_url("/native/a.mp4?v=1", NATIVE, ttl=600, param="sig")
    expired = sign_url("/native/a.mp4", NATIVE, expires=now - 5, param="sig")
    path = sign_url("/native/dir/a.ts", NATIVE, ttl=600, prefix="/native/dir/", style="path")
    cookie = signed_cookie(NATIVE, prefix="/native/cookie/", ttl=600).split(";", 1)[0]
    keep = sign_url("/keep/a.mp4", NATIVE, ttl=600)
    tokens = [
        good.rpartition("sig=")[2],
        expired.rpartition("sig=")[2],
        path.split("/")[2],
        cookie.partition("=")[2],
        keep.rpartition("token=")[2],
    ]
    for token in tokens:
        t.secrets |= {token, token.rpartition(".")[2], _tamper(token)}
    t.get(good, 200)
    t.get(good, 200)  # a fresh memory hit: the fast path logs it
    t.get(_tamper_param(good, "sig"), 403)
    t.get(expired, 403)
    t.get(path, 200)
    t.get(path, 200)
    t.get(path.replace("/a.ts", "/b.ts"), 404)  # the same prefix token, nothing there
    parts = path.split("/")
    t.path_token = parts[2]
    t.get("/".join([*parts[:2], _tamper(parts[2]), *parts[3:]]), 403)
    t.get("/native/cookie/a.ts", 200, cookie=f"theme=dark; {cookie}")
    t.get("/native/cookie/a.ts", 403, cookie=_tamper(cookie))
    t.get(keep, 200)
    t.get(keep, 200)
    t.get(_tamper_param(keep, "token"), 403)
    t.get("/native/a%2Fb.mp4?" + good.partition("?")[2], 400)  # refused before routing


def _akamai(t: Traffic, now: int) -> None:
    good = generate_token(AKAMAI_HEX, exp=now + 600, acl="/akamai/*")
    expired = generate_token(AKAMAI_HEX, exp=now - 5, acl="/akamai/*")
    for token in (good, expired):
        t.secrets |= {token, token.rpartition("hmac=")[2], _tamper(token)}
    t.get(f"/akamai/a.mp4?hdnts={good}", 200)
    t.get(f"/akamai/a.mp4?hdnts={good}", 200)
    t.get(f"/akamai/a.mp4?hdnts={_tamper(good)}", 403)
    t.get(f"/akamai/a.mp4?hdnts={expired}", 403)
    t.get("/akamai/a.mp4", 200, cookie=f"hdnts={good}")


def _cloudfront(t: Traffic, now: int) -> None:
    signer = _cloudfront_signer()
    later = datetime.datetime.fromtimestamp(now + 600, tz=datetime.UTC)
    earlier = datetime.datetime.fromtimestamp(now - 5, tz=datetime.UTC)
    canned = signer.generate_presigned_url(f"{CDN_BASE}/cf/a.mp4", date_less_than=later)
    custom = signer.generate_presigned_url(
        f"{CDN_BASE}/cf/b.mp4",
        policy=signer.build_policy(f"{CDN_BASE}/cf/*", later),
    )
    expired = signer.generate_presigned_url(f"{CDN_BASE}/cf/a.mp4", date_less_than=earlier)
    for url in (canned, custom, expired):
        for part in url.partition("?")[2].split("&"):
            name, _, value = part.partition("=")
            if name in ("Signature", "Policy"):
                t.secrets |= {value, _tamper(value)}
    for url, status in ((canned, 200), (canned, 200), (custom, 200), (expired, 403)):
        t.get(url.removeprefix(CDN_BASE), status)
    t.get(_tamper_param(canned, "Signature").removeprefix(CDN_BASE), 403)


def _bunny(t: Traffic, now: int) -> None:
    expires = now + 600
    good = sign_basic(BUNNY_KEY, "/bunny/a.mp4", expires)
    expired = sign_basic(BUNNY_KEY, "/bunny/a.mp4", now - 5)
    directory = sign_sha256(
        BUNNY_KEY, "/bunny/dir/a.ts", expires, params={"token_path": "/bunny/dir/"}
    )
    for token in (good, expired, directory):
        t.secrets |= {token, _tamper(token)}
    t.get(f"/bunny/a.mp4?token={good}&expires={expires}", 200)
    t.get(f"/bunny/a.mp4?token={good}&expires={expires}", 200)
    t.get(f"/bunny/a.mp4?token={_tamper(good)}&expires={expires}", 403)
    t.get(f"/bunny/a.mp4?token={expired}&expires={now - 5}", 403)
    segment = f"/bcdn_token={{}}&token_path=%2Fbunny%2Fdir%2F&expires={expires}/bunny/dir/a.ts"
    t.get(segment.format(directory), 200)
    t.get(segment.format(_tamper(directory)), 403)


def _nginx(t: Traffic, now: int) -> None:
    def md5(expires: int) -> str:
        return nginx_sign(
            NGINX_MD5,
            uri="/nginx/a.mp4",
            expires=expires,
            remote_addr="127.0.0.1",
            secret=NGINX_SECRET.encode(),
        )

    good, expired = md5(now + 600), md5(now - 5)
    for token in (good, expired):
        t.secrets |= {token, _tamper(token)}
    t.get(f"/nginx/a.mp4?md5={good}&expires={now + 600}", 200)
    t.get(f"/nginx/a.mp4?md5={_tamper(good)}&expires={now + 600}", 403)
    t.get(f"/nginx/a.mp4?md5={expired}&expires={now - 5}", 403)


def _credentials(t: Traffic) -> None:
    t.secrets |= {ADMIN_TOKEN, CONTENT_BEARER, "wrong-admin-bearer-31415926"}
    t.get("/open/a.mp4", 200, authorization=f"Bearer {CONTENT_BEARER}")
    t.get("/_admin/status.json", 403, authorization="Bearer wrong-admin-bearer-31415926")
    t.get("/_admin/status.json?token=wrong-admin-bearer-31415926", 401)
    # An operator's purge naming a signed URL: accepted, and refused with a query.
    path_token = t.path_token
    bearer = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    for prefix, status in (
        (f"/_t/{path_token}/native/dir/", 200),
        (f"/native/dir/?sig={path_token}", 400),
    ):
        r = httpx.post(
            t.proxy.url + "/_purge",
            json={"host": "127.0.0.1", "prefixes": [prefix]},
            headers=bearer,
        )
        assert r.status_code == status, r.text


@pytest.fixture(scope="module")
def traffic(
    origin_server: OriginServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Traffic]:
    origin_server.reset()
    for path in OBJECTS:
        origin_server.script(path, body=f"body of {path}", headers={"cache-control": "max-age=600"})
    access_log = tmp_path_factory.mktemp("secrets") / "access.log"
    with running_proxy(_config(origin_server.url, access_log)) as proxy:
        t = Traffic(proxy, access_log)
        now = int(time.time())
        _native(t, now)
        _akamai(t, now)
        _cloudfront(t, now)
        _bunny(t, now)
        _nginx(t, now)
        _credentials(t)
        yield t


def _admin(t: Traffic, path: str) -> str:
    r = httpx.get(t.proxy.url + path, headers={"authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200
    return r.text


def _access_lines(t: Traffic) -> list[dict[str, object]]:
    """The access log once every request sent so far is in it (written at least once a
    second; the deadline only guards against a hang)."""
    deadline = time.monotonic() + 30
    while True:
        text = t.access_log.read_text() if t.access_log.exists() else ""
        lines = [json.loads(line) for line in text.splitlines()]
        if len(lines) >= len(t.answers) or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def _leaks(t: Traffic, text: str) -> list[str]:
    """Secrets found in ``text``, whole or by their first 16 characters (a message that
    cuts a long value short must not show the start of a token either)."""
    return sorted(s for s in t.secrets if s[:16] in text)


def test_every_token_was_answered_cleanly(traffic: Traffic) -> None:
    for target, status, r in traffic.answers:
        assert r.status_code == status, (target, r.text)
        if status == 200:
            assert r.text == f"body of {_object(target)}"
        elif status == 403 and not target.startswith("/_admin"):
            reason = r.headers.get("edgeshield-auth-reason", "")
            assert reason in ("bad-signature", "expired"), target
            assert r.text == f"forbidden: {reason}\n"
        else:
            assert len(r.text) < 200 and "Traceback" not in r.text


def test_a_clean_client_gets_the_right_bytes(traffic: Traffic) -> None:
    """Nothing was poisoned by the hostile requests: each object, signed properly once
    more, is its own body."""
    now = int(time.time())
    url = sign_url("/native/a.mp4?v=1", NATIVE, ttl=60, param="sig")
    r = httpx.get(traffic.proxy.url + url)
    assert (r.status_code, r.text) == (200, "body of /native/a.mp4")
    nginx = nginx_sign(
        NGINX_MD5,
        uri="/nginx/a.mp4",
        expires=now + 60,
        remote_addr="127.0.0.1",
        secret=NGINX_SECRET.encode(),
    )
    r = httpx.get(f"{traffic.proxy.url}/nginx/a.mp4?md5={nginx}&expires={now + 60}")
    assert (r.status_code, r.text) == (200, "body of /nginx/a.mp4")


def test_the_access_log_holds_every_request_and_no_token(traffic: Traffic) -> None:
    lines = _access_lines(traffic)
    assert len(lines) >= len(traffic.answers)  # nothing lost
    assert _leaks(traffic, traffic.access_log.read_text()) == []
    paths = {str(line["path"]) for line in lines}
    assert any(p.startswith(f"/_t/{REDACTED}/native/dir/") for p in paths)
    assert "/bunny/dir/a.ts" in paths  # logged as routed: the directory token cut
    assert "/native/a.mp4?v=1&sig=REDACTED" in paths
    hits = [line for line in lines if line["path"] == "/native/a.mp4?v=1&sig=REDACTED"]
    assert {line["cache"] for line in hits} >= {"miss", "hit"}  # the fast path's line too
    assert any("Signature=REDACTED" in p and "Key-Pair-Id=REDACTED" in p for p in paths)
    assert any(p.startswith("/native/a%2Fb.mp4?v=1&sig=REDACTED") for p in paths)  # the 400


def test_the_admin_surface_and_metrics_show_no_token(traffic: Traffic) -> None:
    status = _admin(traffic, "/_admin/status.json")
    page = _admin(traffic, "/_admin")
    metrics = httpx.get(
        traffic.proxy.url + "/metrics", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}
    ).text
    for text in (status, page, metrics):
        assert _leaks(traffic, text) == []
    data = json.loads(status)
    objects = [row["object"] for row in data["top_objects"]]
    assert "127.0.0.1/keep/a.mp4?token=REDACTED" in objects  # strip_tokens = false
    assert "127.0.0.1/bunny/dir/a.ts" in objects  # the directory token is cut
    prefixes = [p for purge in data["recent_purges"] for p in purge.get("prefixes", [])]
    assert any(f"/_t/{REDACTED}/native/dir/" in p for p in prefixes)


def test_the_server_log_shows_no_token(traffic: Traffic) -> None:
    _access_lines(traffic)  # everything has been handled by now
    log = traffic.proxy.log()
    assert "auth denied" in log  # the denials are logged ...
    assert _leaks(traffic, log) == []  # ... without their tokens
    assert "Traceback" not in log
