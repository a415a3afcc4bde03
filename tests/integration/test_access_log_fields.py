"""The access log of a real edgeshield: bytes actually sent when a client leaves mid-body,
a line (and no traceback) for a request cut off by shutdown, the optional fields, and the
request id: logged, sent to the origin, shown on error answers, kept from a trusted proxy
only."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.origin_server import OriginServer
from tests.support.proxy_server import ENGINES, ProxyServer, proxy_config, running_proxy

HELD = 1024 * 1024  # body bytes the origin sends before it holds the rest
FIELDS = ["user_agent", "referer", "request_id", "origin_ms"]


def _lines(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [orjson.loads(line) for line in log.read_bytes().splitlines()]


def _line(log: Path, path: str, deadline: float = 30.0) -> dict[str, Any]:
    """The line of `path`, once written (the log is flushed every second)."""
    end = time.monotonic() + deadline  # a hang guard, not a timing assertion
    while True:
        found = [r for r in _lines(log) if r["path"] == path]
        if found:
            assert len(found) == 1, found
            return found[0]
        assert time.monotonic() < end, f"no access-log line for {path}"
        time.sleep(0.05)


def _config(origin: OriginServer, log: Path, **server: Any) -> str:
    text = proxy_config(origin.url, server=server)
    return text.replace('access_log = "off"', f'access_log = "{log}"', 1)


def _read_until_held(proxy: ProxyServer, path: str) -> socket.socket:
    """A raw client that reads the head and HELD body bytes, then stops reading."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < HELD:
        chunk = sock.recv(65536)
        assert chunk, "the proxy closed early"
        data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    return sock


def test_a_client_that_leaves_mid_body_is_logged_with_the_bytes_it_got(
    origin: OriginServer, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    path = f"/leave-{uuid.uuid4().hex}"
    origin.script(path, size=4 * HELD, hold_after=HELD, headers={"cache-control": "max-age=60"})
    with running_proxy(_config(origin, log)) as proxy:
        _read_until_held(proxy, path).close()
        line = _line(log, path)
        origin.release(path)
    assert (line["status"], line["bytes"]) == (499, HELD)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_client_that_leaves_a_large_memory_hit_is_logged_with_the_bytes_it_got(
    origin: OriginServer, tmp_path: Path, engine: str
) -> None:
    """The fast path (a fresh memory hit) watches for the client to leave while it sends
    a body of several slices, as the pipeline does."""
    log = tmp_path / "access.log"
    path = f"/big-{uuid.uuid4().hex}"
    size = 48 * 1024 * 1024  # well beyond what the socket buffers on both sides hold
    origin.script(path, size=size, headers={"cache-control": "max-age=600"})
    config = _config(origin, log).replace(
        "[cache]\n", "[cache]\nmemory_max_object_bytes = 67108864\n", 1
    )
    with running_proxy(config, engine=engine) as proxy:
        assert len(httpx.get(proxy.url + path).content) == size  # stored
        hit_path = path + "?"  # the same key, its own log line
        sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(f"GET {hit_path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        got = b""
        while len(got) < HELD:
            chunk = sock.recv(65536)
            assert chunk, "the proxy closed early"
            got += chunk
        time.sleep(0.5)  # the server blocks on a full socket: the client stopped reading
        sock.close()
        lines = [r for r in _wait_lines(log, path, 2) if r["cache"] == "hit"]
    assert len(lines) == 1
    assert lines[0]["status"] == 499, str(lines)
    assert HELD <= lines[0]["bytes"] < size


def _wait_lines(log: Path, path: str, count: int) -> list[dict[str, Any]]:
    end = time.monotonic() + 30  # a hang guard, not a timing assertion
    while True:
        found = [r for r in _lines(log) if r["path"] == path]
        if len(found) >= count:
            return found
        assert time.monotonic() < end, f"{len(found)} access-log lines for {path}"
        time.sleep(0.05)


@pytest.mark.parametrize("engine", ENGINES)
def test_a_request_cut_off_by_shutdown_still_gets_its_line(
    origin: OriginServer, tmp_path: Path, engine: str
) -> None:
    """uvicorn cancels what outlives its grace period before the lifespan shutdown; on
    granian the app's own drain does (proxy/serve/app.py)."""
    log = tmp_path / "access.log"
    path = f"/cut-{uuid.uuid4().hex}"
    origin.script(path, size=4 * HELD, hold_after=HELD, headers={"cache-control": "max-age=60"})
    proxy = ProxyServer(_config(origin, log), engine=engine).start()
    try:
        sock = _read_until_held(proxy, path)
        proxy.stop()  # SIGTERM; the response never completes, so its grace period runs out
        sock.close()
    finally:
        proxy.stop()
        origin.release(path)
    line = _line(log, path, deadline=0)  # the log was flushed at shutdown
    assert line["bytes"] == HELD and line["reason"] == "cut off by shutdown"
    assert "Traceback" not in proxy.log() and "CancelledError" not in proxy.log()


def test_optional_fields_on_misses_and_fast_path_hits(origin: OriginServer, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    path = f"/fields-{uuid.uuid4().hex}"
    origin.script(path, body="x" * 100, headers={"cache-control": "max-age=60"})
    headers = {"user-agent": "probe/1.0", "referer": "http://site.example/page?token=s3cret"}
    with (
        running_proxy(_config(origin, log, access_log_fields=FIELDS)) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10, headers=headers) as client,
    ):
        assert client.get(path).status_code == 200  # miss
        assert client.get(path).status_code == 200  # fast-path hit
        end = time.monotonic() + 30  # a hang guard
        while len(found := [r for r in _lines(log) if r["path"] == path]) < 2:
            assert time.monotonic() < end
            time.sleep(0.05)
    miss, hit = found
    assert (miss["cache"], hit["cache"]) == ("miss", "hit")
    assert set(miss) == set(hit)  # the fast path logs the same fields
    for line in (miss, hit):
        assert line["user_agent"] == "probe/1.0"
        assert line["referer"] == "http://site.example/page?token=REDACTED"
    assert isinstance(miss["origin_ms"], float) and hit["origin_ms"] is None
    assert miss["request_id"] != hit["request_id"]
    assert origin.stats()["last_headers"][path]["x-request-id"] == miss["request_id"]


def test_fields_are_off_by_default(origin: OriginServer, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    path = f"/plain-{uuid.uuid4().hex}"
    origin.script(path, body="x", headers={"cache-control": "max-age=60"})
    with running_proxy(_config(origin, log)) as proxy:
        httpx.get(proxy.url + path, timeout=10)
        line = _line(log, path)
    assert not set(line) & set(FIELDS)


def test_request_ids_reach_the_origin_and_error_answers(
    origin: OriginServer, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    ok, broken = f"/ok-{uuid.uuid4().hex}", f"/broken-{uuid.uuid4().hex}"
    origin.script(ok, body="x", headers={"cache-control": "no-store"})
    origin.script(broken, mode="reset")
    forged = {"x-request-id": "forged-by-client"}
    with (
        running_proxy(_config(origin, log, access_log_fields=["request_id"])) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10, headers=forged) as client,
    ):
        fine = client.get(ok)
        failed = client.get(broken)
        refused = client.get("/_admin/nothing-here")  # the operations app's own refusal
        line_ok, line_failed = _line(log, ok), _line(log, broken)
        line_refused = _line(log, "/_admin/nothing-here")
    # Not a trusted proxy: the client's id is replaced, everywhere.
    sent = origin.stats()["last_headers"][ok]["x-request-id"]
    assert sent == line_ok["request_id"] != "forged-by-client"
    assert "x-request-id" not in fine.headers  # success answers carry none
    assert failed.status_code == 502
    assert failed.headers["x-request-id"] == line_failed["request_id"] != sent
    assert refused.status_code == 404
    assert refused.headers["x-request-id"] == line_refused["request_id"] != "forged-by-client"


def test_a_trusted_proxys_id_is_kept_and_an_invalid_one_replaced(
    origin: OriginServer, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    kept, bad = f"/kept-{uuid.uuid4().hex}", f"/bad-{uuid.uuid4().hex}"
    for path in (kept, bad):
        origin.script(path, status=404, body="gone", headers={"cache-control": "no-store"})
    config = _config(
        origin,
        log,
        access_log_fields=["request_id"],
        trusted_proxies={"cidrs": ["127.0.0.0/8", "::1/128"]},
    )
    with running_proxy(config) as proxy, httpx.Client(base_url=proxy.url, timeout=10) as client:
        answer = client.get(kept, headers={"x-request-id": "lb-7f3a"})
        replaced = client.get(bad, headers={"x-request-id": "a" * 200})
        logged_kept, logged_bad = _line(log, kept), _line(log, bad)
    assert answer.headers["x-request-id"] == logged_kept["request_id"] == "lb-7f3a"
    assert origin.stats()["last_headers"][kept]["x-request-id"] == "lb-7f3a"
    assert replaced.headers["x-request-id"] == logged_bad["request_id"] != "a" * 200
