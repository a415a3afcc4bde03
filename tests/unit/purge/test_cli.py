"""`edgeshield purge` against a real HTTP server on loopback that records the request."""

from __future__ import annotations

import argparse
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.purge.cli import add_purge_parser, run_purge
from proxy.serve.cli import main as edgeshield

TOKEN = "purge-token-0123456789"


class Recorder:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        self.answer: bytes = b'{"id": "x", "purged": {"memory": 1}}'
        self.content_type = "application/json"


@pytest.fixture
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            recorder.requests.append(
                {
                    "method": "POST",
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": self.rfile.read(length),
                }
            )
            self.send_response(recorder.status)
            self.send_header("content-type", recorder.content_type)
            self.send_header("content-length", str(len(recorder.answer)))
            self.end_headers()
            self.wfile.write(recorder.answer)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", recorder
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def run(argv: list[str], env: dict[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgeshield")
    add_purge_parser(parser.add_subparsers(dest="command", required=True))
    return run_purge(parser.parse_args(["purge", *argv]), env or {})


def test_posts_the_purge_and_prints_the_answer(
    server: tuple[str, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint, recorder = server
    code = run(
        [
            "--url", "https://h.com/a", "--url", "/b", "--host", "h.com",
            "--prefix", "/v/", "--tag", "t1", "--soft",
            "--endpoint", endpoint + "/",
        ],
        {"EDGESHIELD_PURGE_TOKEN": TOKEN},
    )  # fmt: skip
    assert code == 0
    (request,) = recorder.requests
    assert request["path"] == "/_purge"
    assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert request["headers"]["content-type"] == "application/json"
    assert orjson.loads(request["body"]) == {
        "urls": ["https://h.com/a", "/b"],
        "prefixes": ["/v/"],
        "tags": ["t1"],
        "all": False,
        "soft": True,
        "host": "h.com",
    }
    out = capsys.readouterr().out
    assert orjson.loads(out) == {"id": "x", "purged": {"memory": 1}}
    assert TOKEN not in out


def test_registered_in_the_edgeshield_command(
    server: tuple[str, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, recorder = server
    monkeypatch.delenv("EDGESHIELD_PURGE_TOKEN", raising=False)
    monkeypatch.setenv("EDGESHIELD_ADMIN__TOKEN", TOKEN)  # the server's own variable
    assert edgeshield(["purge", "--all", "--endpoint", endpoint]) == 0
    (request,) = recorder.requests
    assert request["headers"]["authorization"] == f"Bearer {TOKEN}"
    assert orjson.loads(request["body"])["all"] is True


def test_token_from_a_file(server: tuple[str, Recorder], tmp_path: Path) -> None:
    endpoint, recorder = server
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    assert run(["--tag", "t", "--endpoint", endpoint, "--token-file", str(path)]) == 0
    assert recorder.requests[0]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_named_variable_must_be_set(
    server: tuple[str, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint, recorder = server
    assert run(["--tag", "t", "--endpoint", endpoint, "--token-env", "MY_TOKEN"]) == 2
    assert "$MY_TOKEN is not set" in capsys.readouterr().err
    assert recorder.requests == []
    argv = ["--tag", "t", "--endpoint", endpoint, "--token-env", "MY_TOKEN"]
    assert run(argv, {"MY_TOKEN": TOKEN}) == 0


def test_without_any_token_no_authorization_is_sent(server: tuple[str, Recorder]) -> None:
    endpoint, recorder = server
    assert run(["--tag", "t", "--endpoint", endpoint]) == 0
    assert "authorization" not in recorder.requests[0]["headers"]


def test_refusal_exits_1_with_the_message(
    server: tuple[str, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint, recorder = server
    recorder.status = 400
    recorder.answer = b'{"error": "prefixes[0]: purging every host needs \\"all\\": true"}'
    assert run(["--prefix", "/", "--endpoint", endpoint]) == 1
    err = capsys.readouterr().err
    assert 'HTTP 400: prefixes[0]: purging every host needs "all": true' in err


def test_non_json_error_body_is_shown(
    server: tuple[str, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint, recorder = server
    recorder.status = 502
    recorder.answer = b"bad gateway\n"
    recorder.content_type = "text/plain"
    assert run(["--tag", "t", "--endpoint", endpoint]) == 1
    assert "HTTP 502: bad gateway" in capsys.readouterr().err


def test_unreachable_server_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    assert run(["--tag", "t", "--endpoint", f"http://127.0.0.1:{port}", "--timeout", "2"]) == 1
    assert "ConnectError" in capsys.readouterr().err


def test_nothing_to_purge_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run([]) == 2
    assert "give --url" in capsys.readouterr().err


def test_token_is_not_an_argument() -> None:
    with pytest.raises(SystemExit):
        run(["--tag", "t", "--token", TOKEN])
