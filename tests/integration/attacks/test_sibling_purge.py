"""The workers' purge sockets (proxy/purge/siblings.py), attacked on a real instance with
`--workers 2` and no Redis: frames of the wrong JSON shapes, slow writers holding
connections open, leftovers in the folder under the pid of a live process (a regular
file, a folder, a socket nobody listens on), many purges at once and one of many keys.
Each purge still answers, reaches the other worker, and says nothing false about it."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from pathlib import Path

import httpx
import orjson

from tests.integration.test_purge_workers import (
    _config,
    _fresh,
    _fresh_answers,
    _held_by_every_worker,
)
from tests.support.origin_server import OriginServer
from tests.support.proxy_server import running_proxy

FRESH = 24
SHAPES = [  # each a whole frame's JSON; none is a purge
    b"[]",
    b"1",
    b'{"k": "abc", "p": [], "g": [], "s": false, "e": false, "t": 0, "src": "x"}',
    b'{"k": [1, 2], "p": [], "g": [], "s": false, "e": false, "t": 0, "src": "x"}',
    b'{"k": [], "p": [[1, 2]], "g": [], "s": false, "e": false, "t": 0, "src": "x"}',
    b'{"k": [], "p": ["ab"], "g": [], "s": false, "e": false, "t": 0, "src": "x"}',
    b'{"k": [], "p": [], "g": [{}], "s": false, "e": false, "t": 0, "src": "x"}',
    b'{"k": [], "p": [], "g": [], "s": false, "e": true, "t": "now", "src": "x"}',
    b'{"k": [null], "p": [], "g": [], "s": false, "e": false, "t": 0, "src": "x"}',
]


def _send(sock_path: Path, frame: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(sock_path))
        sock.sendall(frame)
        sock.shutdown(socket.SHUT_WR)
        return sock.recv(1)


def test_frames_of_the_wrong_shape_purge_nothing(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    metrics = tmp_path / "m"
    metrics.mkdir(mode=0o700)
    with running_proxy(_config(origin_server, metrics), workers=2) as proxy:
        _held_by_every_worker(proxy, "/gen/1601")
        for sock_path in metrics.glob("purge-*.sock"):
            for raw in SHAPES:
                assert _send(sock_path, struct.pack(">I", len(raw)) + raw) == b"", raw
        assert all("; hit" in s for s in _fresh(proxy.url + "/gen/1601"))
        log = proxy.log()
        assert log.count("unreadable purge from a worker") >= 2 * len(SHAPES), log
        assert "Traceback" not in log and "Unhandled exception" not in log, log


def test_leftovers_of_live_pids_and_slow_writers_do_not_spoil_a_purge(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    metrics = tmp_path / "m"
    metrics.mkdir(mode=0o700)
    (metrics / f"purge-{os.getpid()}.sock").touch()  # this test's pid: alive
    (metrics / f"purge-{os.getppid()}.sock").mkdir()
    unbound = socket.socket(socket.AF_UNIX)
    unbound.bind(str(metrics / "purge-1.sock"))  # pid 1 is alive; nobody listens
    unbound.close()
    path = "/purged-leftovers"
    origin_server.script(path, body="old", headers={"cache-control": "max-age=3600"})
    with running_proxy(_config(origin_server, metrics), workers=2) as proxy:
        _held_by_every_worker(proxy, path)
        workers = [
            p
            for p in metrics.glob("purge-*.sock")
            if p.name[6:-5] not in {str(os.getpid()), str(os.getppid()), "1"}
        ]
        assert len(workers) == 2
        # Writers that announce a frame and stall hold their own connections only.
        slow = [socket.socket(socket.AF_UNIX) for _ in range(20)]
        try:
            for i, sock in enumerate(slow):
                sock.connect(str(workers[i % 2]))
                sock.sendall(struct.pack(">I", 1000) + b"{")
            origin_server.script(path, body="new", headers={"cache-control": "max-age=3600"})
            resp = httpx.request("PURGE", proxy.url + path, timeout=60)
        finally:
            for sock in slow:
                sock.close()
        assert resp.status_code == 200, resp.text
        assert not resp.json().get("errors"), resp.text  # no worker reported missing
        assert [r.text for r in asyncio.run(_fresh_answers(proxy.url + path))] == ["new"] * FRESH


async def _purges(url: str, bodies: list[bytes]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=120) as client:
        return await asyncio.gather(
            *(
                client.post(url, content=b, headers={"content-type": "application/json"})
                for b in bodies
            )
        )


def test_many_purges_at_once_and_one_of_many_keys_all_answer(
    origin_server: OriginServer, tmp_path: Path
) -> None:
    metrics = tmp_path / "m"
    metrics.mkdir(mode=0o700)
    paths = [f"/purged-many/{i}" for i in range(20)]
    for p in paths:
        origin_server.script(p, body="old", headers={"cache-control": "max-age=3600"})
    with running_proxy(_config(origin_server, metrics), workers=2) as proxy:
        for p in paths[:4]:
            _held_by_every_worker(proxy, p)
        for p in paths:
            origin_server.script(p, body="new", headers={"cache-control": "max-age=3600"})
        one_each = [orjson.dumps({"urls": [proxy.url + p]}) for p in paths]
        many = [f"{proxy.url}/never-stored/{i}" for i in range(20_000)] + [proxy.url + paths[0]]
        answers = asyncio.run(
            _purges(proxy.url + "/_purge", [*one_each, orjson.dumps({"urls": many})])
        )
        assert [r.status_code for r in answers] == [200] * len(answers), answers[-1].text
        assert not any(r.json().get("errors") for r in answers), [r.text for r in answers]
        for p in paths[:4]:
            assert [r.text for r in asyncio.run(_fresh_answers(proxy.url + p))] == ["new"] * FRESH
