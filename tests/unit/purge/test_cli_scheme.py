"""`edgeshield purge` with the wrong scheme for the server's listener: the request fails
without saying why, so the error names the scheme the server speaks there. Real
servers on loopback, one plain and one TLS (a self-signed certificate made here)."""

from __future__ import annotations

import argparse
import datetime
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from proxy.purge.cli import add_purge_parser, run_purge


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: Any) -> None:
        pass


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _serve(httpd: ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()


@pytest.fixture
def plain() -> Iterator[int]:
    yield from _serve(ThreadingHTTPServer(("127.0.0.1", 0), _Handler))


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*_self_signed(tmp_path))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    yield from _serve(httpd)


def _purge(endpoint: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    add_purge_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["purge", "--url", "/a.jpg", "--host", "x", "--endpoint", endpoint])
    args.timeout = 10.0
    code = run_purge(args, env={})
    return code, capsys.readouterr().err


def test_https_to_a_plain_listener_names_http(
    plain: int, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _purge(f"https://127.0.0.1:{plain}", capsys)
    assert code == 1
    assert f"the server there speaks http: --endpoint http://127.0.0.1:{plain}" in err


def test_http_to_a_tls_listener_names_https(tls: int, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _purge(f"http://127.0.0.1:{tls}", capsys)
    assert code == 1
    assert f"the server there speaks https: --endpoint https://127.0.0.1:{tls}" in err


def test_nothing_listening_gives_no_hint(capsys: pytest.CaptureFixture[str]) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Handler) as unused:
        port = unused.server_address[1]  # bound, then closed: nothing listens there
    code, err = _purge(f"http://127.0.0.1:{port}", capsys)
    assert code == 1 and "ConnectError" in err and "speaks" not in err
