"""HTTPS and HTTP/2 on a real `edgeshield serve`: curl, the httpx HTTP/2 client and
headless Chromium against a throwaway CA (tests/support/tls_certs.py), the certificate
reloaded on SIGHUP and on a file change while a download is in flight, the redirect
listener, and `serve` refusing a certificate it cannot use."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import pyvips

from tests.support.h2_raw import H2Connection
from tests.support.origin_server import OriginServer, gen_bytes, running_origin
from tests.support.ports import free_port
from tests.support.proxy_server import REPO_ROOT, ProxyServer, proxy_config, running_proxy
from tests.support.tcp_relay import TcpRelay
from tests.support.tls_certs import Leaf, TestPki

HANG_GUARD = 60.0
CHROMIUM = os.environ.get("EDGESHIELD_CHROMIUM", "/usr/bin/chromium")
CACHED = {"cache-control": "max-age=600"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def origin() -> Iterator[OriginServer]:
    with running_origin() as server:
        yield server


def tls_config(origin: OriginServer, leaf: Leaf, **tls: object) -> str:
    """proxy_config with a [server.tls] table for `leaf`."""
    lines = [f'cert = "{leaf.cert}"', f'key = "{leaf.key}"']
    lines += [f"{k} = {v!r}" for k, v in tls.items()]
    return (
        proxy_config(origin.url, cache_settings={"memory_max_object_bytes": 64 * 1024 * 1024})
        + "[server.tls]\n"
        + "\n".join(lines)
        + "\n"
    )


@pytest.fixture(scope="module")
def proxy(pki: TestPki, origin: OriginServer) -> Iterator[ProxyServer]:
    leaf = pki.leaf("main")
    with running_proxy(tls_config(origin, leaf, watch_interval=0), scheme="https") as server:
        yield server


def served_fingerprint(port: int) -> bytes:
    """SHA-256 of the certificate a new TLS connection gets."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest()


def negotiated(port: int, pki: TestPki, alpn: list[str]) -> tuple[str | None, str | None]:
    """(ALPN protocol, TLS version) a client offering `alpn` gets."""
    context = pki.ssl_context()
    context.set_alpn_protocols(alpn)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.selected_alpn_protocol(), tls.version()


def wait_until(check: Callable[[], bool], what: str) -> None:
    """Poll `check` (a hang guard, not a timing assertion)."""
    deadline = time.monotonic() + HANG_GUARD
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-sS", "--noproxy", "*", "--max-time", "60", *args],
        capture_output=True,
        text=True,
        check=False,
    )


# -- curl, ALPN, versions --------------------------------------------------------------


def test_curl_http2_over_tls(pki: TestPki, origin: OriginServer, proxy: ProxyServer) -> None:
    path = f"/curl/{uuid.uuid4().hex}"
    origin.script(path, body="over h2", headers=CACHED)
    done = curl("-v", "--http2", "--cacert", str(pki.ca_path), proxy.url + path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "over h2"
    assert "ALPN: server accepted h2" in done.stderr
    assert "< HTTP/2 200" in done.stderr
    # The same URL over HTTP/1.1 on the same port: ALPN picks http/1.1.
    done = curl("-v", "--http1.1", "--cacert", str(pki.ca_path), proxy.url + path)
    assert done.stdout == "over h2" and "< HTTP/1.1 200" in done.stderr


def test_alpn_offers_h2_and_http11(pki: TestPki, proxy: ProxyServer) -> None:
    assert negotiated(proxy.port, pki, ["h2", "http/1.1"])[0] == "h2"
    assert negotiated(proxy.port, pki, ["http/1.1"])[0] == "http/1.1"


@pytest.mark.parametrize(
    ("args", "accepted"),
    [
        (["-tls1_2"], True),
        (["-tls1_3"], True),
        (["-tls1_1"], False),  # older than TLS 1.2
        (["-tls1_2", "-cipher", "AES128-SHA"], False),  # CBC, no forward secrecy
        (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"], False),  # CBC
    ],
)
def test_tls_versions_and_ciphers(
    pki: TestPki, proxy: ProxyServer, args: list[str], accepted: bool
) -> None:
    assert (openssl_cipher(proxy.port, args) != "(NONE)") is accepted


def openssl_cipher(port: int, args: list[str]) -> str:
    """The cipher `openssl s_client` negotiates with `args`, "(NONE)" when refused."""
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        check=False,
    )
    cipher = re.search(r"Cipher is (\S+)", done.stdout)
    assert cipher is not None, done.stdout + done.stderr
    return cipher[1]


def test_http2_prior_knowledge_on_a_plain_port(origin: OriginServer) -> None:
    path = f"/h2c/{uuid.uuid4().hex}"
    origin.script(path, body="cleartext h2", headers=CACHED)
    with running_proxy(proxy_config(origin.url, server={"http2_cleartext": True})) as plain:
        done = curl("--http2-prior-knowledge", "-w", "\n%{http_version}", plain.url + path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "cleartext h2\n2"


# -- HTTP/2 semantics with httpx -------------------------------------------------------


def h2_client(pki: TestPki, proxy: ProxyServer) -> httpx.Client:
    return httpx.Client(
        base_url=proxy.url, http2=True, verify=pki.ssl_context(), timeout=HANG_GUARD
    )


def test_cache_status_ranges_and_304_over_http2(pki: TestPki, proxy: ProxyServer) -> None:
    path = f"/gen/{100_000 + int(uuid.uuid4().int % 1000)}"
    size = int(path.rsplit("/", 1)[1])
    body = gen_bytes(0, size)
    with h2_client(pki, proxy) as client:
        first = client.get(path)
        assert first.http_version == "HTTP/2"
        assert first.content == body and "fwd=miss" in first.headers["cache-status"]
        hit = client.get(path)
        assert hit.content == body and "hit" in hit.headers["cache-status"]

        single = client.get(path, headers={"range": "bytes=100-199"})
        assert single.status_code == 206 and single.content == body[100:200]
        assert single.headers["content-range"] == f"bytes 100-199/{size}"

        multi = client.get(path, headers={"range": "bytes=0-9,50-59"})
        assert multi.status_code == 206
        assert multi.headers["content-type"].startswith("multipart/byteranges; boundary=")
        assert body[0:10] in multi.content and body[50:60] in multi.content
        assert f"bytes 50-59/{size}".encode() in multi.content

        etag = hit.headers["etag"]
        not_modified = client.get(path, headers={"if-none-match": etag})
        assert not_modified.status_code == 304 and not_modified.content == b""
        assert not_modified.http_version == "HTTP/2"


def test_streams_on_one_http2_connection_collapse_into_one_fetch(
    pki: TestPki, origin: OriginServer, proxy: ProxyServer
) -> None:
    """20 streams of one connection read their first bytes while the origin holds the
    rest ("hold_after"), so all joined the one fetch in flight (an ordering, no timing).
    A bare h2 client reads them: httpcore's own hands a stream data only when that
    stream is awaited, which would make this a test of the client."""
    path = f"/collapse-h2/{uuid.uuid4().hex}"
    size = 400_000
    origin.script(path, size=size, hold_after=1_000, headers=CACHED)
    with H2Connection.open(proxy.port, pki.ssl_context()) as conn:
        ids = [conn.request(path) for _ in range(20)]
        try:
            conn.read_until(lambda: all(conn.streams[i].body for i in ids))
        finally:
            origin.release(path)
        conn.read_until(lambda: all(conn.streams[i].ended for i in ids))
    streams = [conn.streams[i] for i in ids]
    assert all(s.headers[":status"] == "200" and s.body == gen_bytes(0, size) for s in streams)
    assert origin.requests(path) == 1
    assert sum("collapsed" in s.headers["cache-status"] for s in streams) == 19


# -- a browser: 50 images over one HTTP/2 connection -----------------------------------

PAGE_SCRIPT = """
window.addEventListener("load", () => {
  const images = [...document.images];
  const decoded = images.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.getElementById("result").textContent = decoded + "/" + images.length;
});
"""


def _chromium() -> str:
    found = shutil.which(CHROMIUM)
    if found is None:
        pytest.fail(
            f"headless Chromium is required and {CHROMIUM} was not found: "
            "apt-get install -y chromium (or set EDGESHIELD_CHROMIUM)"
        )
    return found


def _spki_hash(leaf: Leaf) -> str:
    """What --ignore-certificate-errors-spki-list takes: base64 SHA-256 of the SPKI."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    cert = x509.load_pem_x509_certificate(leaf.cert.read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def test_chromium_loads_50_images_over_one_http2_connection(
    pki: TestPki, origin: OriginServer, tmp_path: Path
) -> None:
    browser = _chromium()
    leaf = pki.leaf("browser")
    run = uuid.uuid4().hex
    images = []
    for i in range(50):
        png = pyvips.Image.black(16 + i, 16).add([i * 5, 255 - i * 5, 128]).cast("uchar")
        path = f"/page-{run}/img/{i}.png"
        origin.script(
            path,
            body_base64=base64.b64encode(png.pngsave_buffer()).decode(),
            headers={**CACHED, "content-type": "image/png"},
        )
        images.append(f'<img src="{path}" width="8" height="8">')
    html = (
        "<!doctype html><html><head><title>fifty</title>"
        "<link rel='icon' href='data:,'></head><body>"
        + "".join(images)
        + f'<p id="result">pending</p><script>{PAGE_SCRIPT}</script></body></html>'
    )
    origin.script(f"/page-{run}/", body=html, headers={**CACHED, "content-type": "text/html"})
    with (
        running_proxy(tls_config(origin, leaf, watch_interval=0), scheme="https") as proxy,
        TcpRelay(proxy.port) as relay,
    ):
        # No speculative preconnect (network_prediction_options 2: never): Chromium would
        # open a second TLS connection to the page's origin and never use it.
        prefs = tmp_path / "profile" / "Default" / "Preferences"
        prefs.parent.mkdir(parents=True)
        prefs.write_text('{"net": {"network_prediction_options": 2}}')
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-proxy-server",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--ignore-certificate-errors-spki-list={_spki_hash(leaf)}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            f"https://127.0.0.1:{relay.port}/page-{run}/",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        connections = relay.accepted
    result = re.search(r'<p id="result">([^<]*)</p>', done.stdout)
    assert result is not None, done.stdout[-2000:]
    assert result[1] == "50/50", done.stderr[-3000:]
    assert connections == 1
    assert all(origin.requests(f"/page-{run}/img/{i}.png") == 1 for i in range(50))


# -- reloading the certificate ---------------------------------------------------------


def install(leaf: Leaf, folder: Path) -> tuple[Path, Path]:
    """Put `leaf` at folder/cert.pem + key.pem the way deployment tools do: new files
    renamed over the old ones (key first, so a reader may briefly see a mismatch)."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    for source, target in ((leaf.key, key), (leaf.cert, cert)):
        tmp = target.with_suffix(".new")
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    return cert, key


def test_sighup_reloads_the_certificate_while_a_download_completes(
    pki: TestPki, origin: OriginServer, tmp_path: Path
) -> None:
    old, new = pki.leaf("before-hup"), pki.leaf("after-hup")
    cert, key = install(old, tmp_path)
    size = 24 * 1024 * 1024
    path = f"/gen/{size}"
    with running_proxy(
        tls_config(origin, Leaf(cert, key, old.fingerprint), watch_interval=0), scheme="https"
    ) as proxy:
        assert served_fingerprint(proxy.port) == old.fingerprint
        with httpx.Client(verify=pki.ssl_context(), timeout=HANG_GUARD) as client:
            assert len(client.get(proxy.url + path).content) == size  # now a memory hit
            with client.stream("GET", proxy.url + path) as download:
                chunks = download.iter_raw(64 * 1024)
                received = [next(chunks)]  # in flight; the rest waits in the server
                install(new, tmp_path)
                assert proxy.proc is not None
                os.kill(proxy.proc.pid, signal.SIGHUP)
                wait_until(lambda: "Stopping old worker-1" in proxy.log(), "old worker stopping")
                received += list(chunks)  # the old worker finishes it while it drains
        body = b"".join(received)
        assert len(body) == size and body == gen_bytes(0, size)
        assert served_fingerprint(proxy.port) == new.fingerprint
        with h2_client(pki, proxy) as client:
            assert client.get(path, headers={"range": "bytes=0-9"}).content == gen_bytes(0, 10)


def test_a_changed_file_reloads_and_a_broken_one_is_refused(
    pki: TestPki, origin: OriginServer, tmp_path: Path
) -> None:
    old, new = pki.leaf("before-watch"), pki.leaf("after-watch")
    cert, key = install(old, tmp_path)
    with running_proxy(
        tls_config(origin, Leaf(cert, key, old.fingerprint), watch_interval=0.2), scheme="https"
    ) as proxy:
        # A half-written certificate is logged and ignored: the old one is still served.
        cert.write_text("-----BEGIN CERTIFICATE-----\ntruncat")
        wait_until(lambda: "keeping the current TLS certificate" in proxy.log(), "refusal")
        assert "server.tls.cert: not a PEM certificate" in proxy.log()
        assert served_fingerprint(proxy.port) == old.fingerprint
        assert "HUP signal received" not in proxy.log()
        install(new, tmp_path)
        wait_until(lambda: served_fingerprint(proxy.port) == new.fingerprint, "new certificate")
        with h2_client(pki, proxy) as client:
            assert client.get("/gen/10").content == gen_bytes(0, 10)


# -- the redirect listener, uvicorn, an encrypted key ----------------------------------


def test_redirect_listener_answers_308_to_https(pki: TestPki, origin: OriginServer) -> None:
    redirect_port = free_port()
    config = tls_config(origin, pki.leaf("redirect"), redirect_port=redirect_port)
    with running_proxy(config, scheme="https", workers=2) as proxy:
        with httpx.Client(base_url=f"http://127.0.0.1:{redirect_port}") as client:
            moved = client.get("/a/b.jpg?x=1&y=%20", headers={"host": "media.example:80"})
            assert moved.status_code == 308
            assert (
                moved.headers["location"] == f"https://media.example:{proxy.port}/a/b.jpg?x=1&y=%20"
            )
            bad = client.get("/", headers={"host": "evil.example/path"})
            assert bad.status_code == 400 and "location" not in bad.headers
        # Following it reaches the proxy over TLS.
        with httpx.Client(verify=pki.ssl_context(), follow_redirects=True) as client:
            done = client.get(f"http://127.0.0.1:{redirect_port}/gen/10")
            assert done.url.scheme == "https" and done.content == gen_bytes(0, 10)


def test_uvicorn_serves_tls_on_http11(pki: TestPki, origin: OriginServer) -> None:
    config = tls_config(origin, pki.leaf("uvicorn"))
    with running_proxy(config, scheme="https", engine="uvicorn") as proxy:
        with h2_client(pki, proxy) as client:
            answer = client.get("/gen/1000")
        assert answer.http_version == "HTTP/1.1" and answer.content == gen_bytes(0, 1000)
        assert negotiated(proxy.port, pki, ["h2", "http/1.1"])[0] is None  # no ALPN h2
        assert openssl_cipher(proxy.port, ["-tls1_1"]) == "(NONE)"
        assert openssl_cipher(proxy.port, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"]) == (
            "(NONE)"
        )
        assert openssl_cipher(proxy.port, ["-tls1_2"]) == "ECDHE-ECDSA-AES256-GCM-SHA384"


def test_an_encrypted_key_with_its_password_from_the_environment(
    pki: TestPki, origin: OriginServer
) -> None:
    password = "correct horse battery staple"
    config = tls_config(origin, pki.leaf("encrypted", password=password))
    env = {"EDGESHIELD_SERVER__TLS__KEY_PASSWORD": password}
    with running_proxy(config, scheme="https", env=env) as proxy:
        with h2_client(pki, proxy) as client:
            assert client.get("/gen/10").http_version == "HTTP/2"
        assert password not in proxy.log()


# -- refusing to start -----------------------------------------------------------------


def _serve(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("EDGESHIELD_CONFIG", None)
    cmd = [sys.executable, "-m", "proxy.serve.cli", "serve", "--config", str(config), *args]
    return subprocess.run(
        [*cmd, "--port", str(free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_GUARD,
        check=False,
    )


def test_serve_refuses_a_key_that_does_not_match(
    pki: TestPki, origin: OriginServer, tmp_path: Path
) -> None:
    a, b = pki.leaf("mismatch-a"), pki.leaf("mismatch-b")
    config = tmp_path / "edgeshield.toml"
    config.write_text(tls_config(origin, Leaf(a.cert, b.key, a.fingerprint)))
    done = _serve(config)
    assert done.returncode == 2
    assert "server.tls.key: does not match the certificate" in done.stderr
    assert "Traceback" not in done.stderr
    # The same files from the command line, and an unreadable one.
    plain = tmp_path / "plain.toml"
    plain.write_text(proxy_config(origin.url))
    done = _serve(plain, "--tls-cert", str(a.cert), "--tls-key", str(tmp_path / "missing.key"))
    assert done.returncode == 2
    assert "server.tls.key: cannot read" in done.stderr and "No such file" in done.stderr
