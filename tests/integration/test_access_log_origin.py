"""The access log's `origin` is the origin that answered: a failover group whose first
member fails logs the member that answered, not the group's first member (issue 16)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.origin_server import OriginServer, running_origin
from tests.support.proxy_server import running_proxy


@pytest.fixture(scope="module")
def secondary() -> Iterator[OriginServer]:
    with running_origin() as server:
        yield server


def _config(primary: OriginServer, secondary: OriginServer, log: Path) -> str:
    return f"""
[server]
access_log = "{log}"
[origins.a]
kind = "http"
url = "{primary.url}"
[origins.b]
kind = "http"
url = "{secondary.url}"
[groups.media]
policy = "failover"
members = ["a", "b"]
[[routes]]
path_prefix = "/bare"
origin = "b"
[[routes]]
origin = "media"
"""


def _records(log: Path, path: str) -> list[dict[str, Any]]:
    lines = [orjson.loads(line) for line in log.read_bytes().splitlines()]
    return [r for r in lines if r["path"] == path]


def test_the_log_names_the_origin_that_answered(
    origin: OriginServer, secondary: OriginServer, tmp_path: Path
) -> None:
    secondary.reset()
    name = uuid.uuid4().hex
    moved, kept, passed = f"/f-{name}", f"/k-{name}", f"/p-{name}"
    origin.script(moved, status=500, body="down", headers={"cache-control": "no-store"})
    origin.script(kept, body="A", headers={"cache-control": "max-age=60"})
    origin.script(passed, status=503, body="down")
    secondary.script(moved, body="B", headers={"cache-control": "max-age=60"})
    secondary.script(passed, body="B")
    secondary.script(f"/bare/{name}", body="bare", headers={"cache-control": "max-age=60"})
    log = tmp_path / "access.log"
    with (
        running_proxy(_config(origin, secondary, log)) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10) as client,
    ):
        assert client.get(moved).text == "B"  # miss: a 500 from a, failed over to b
        assert client.get(moved).text == "B"  # hit
        assert client.get(kept).text == "A"  # miss answered by a
        assert client.options(passed).text == "B"  # pass (OPTIONS is retried), failed over
        assert client.get(f"/bare/{name}").text == "bare"
    # the log is flushed when the proxy stops
    miss, hit = _records(log, moved)
    assert (miss["cache"], miss["origin"]) == ("miss", "b")
    # a hit names the route's origin (the group's first member), as the fast path does
    assert (hit["cache"], hit["origin"]) == ("hit", "a")
    assert [(r["cache"], r["origin"]) for r in _records(log, kept)] == [("miss", "a")]
    assert [(r["cache"], r["origin"]) for r in _records(log, passed)] == [("pass", "b")]
    assert [r["origin"] for r in _records(log, f"/bare/{name}")] == ["b"]
