"""The admin page's data (proxy/ops/status.py), the page itself (proxy/ops/page.py),
and the top-objects table (proxy/ops/top_objects.py), against an app started in-process."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.loader import load_settings
from proxy.ops.page import PAGE
from proxy.ops.status import fast_hits, response, status
from proxy.ops.top_objects import MAX_KEY, TopObjects
from proxy.serve.app import EdgeShield
from tests.support.asgi import Sink, receiver

Message = dict[str, Any]
HOST = (b"host", b"example.test")


def _scope(
    path: bytes,
    query: bytes = b"",
    headers: tuple[tuple[bytes, bytes], ...] = (),
    method: str = "GET",
) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path.decode(),
        "raw_path": path,
        "query_string": query,
        "headers": [HOST, *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }


async def _request(app: EdgeShield, *args: Any, **kw: Any) -> Sink:
    sink = Sink()
    await app(_scope(*args, **kw), receiver(), sink)
    await asyncio.sleep(0.01)  # a miss stores once the producer task is done
    return sink


@asynccontextmanager
async def _running(tmp_path: Path, config_text: str) -> AsyncIterator[EdgeShield]:
    """The app with its lifespan, as uvicorn runs it."""
    config = tmp_path / "c.toml"
    config.write_text(config_text)
    application = EdgeShield(load_settings(config, {}))
    queue: asyncio.Queue[Message] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(application({"type": "lifespan"}, queue.get, Sink()))
    for _ in range(500):
        if application.state is not None and application.state.ready:
            break
        await asyncio.sleep(0.01)
    try:
        yield application
    finally:
        await queue.put({"type": "lifespan.shutdown"})
        await task


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[EdgeShield]:
    (tmp_path / "a.txt").write_bytes(b"A" * 5000)
    (tmp_path / "b.txt").write_bytes(b"B" * 300)
    config = (
        f'[server]\naccess_log = "off"\n[origins.media]\nkind = "fs"\nroot = "{tmp_path}"\n'
        '[[routes]]\npath_prefix = "/nocache"\nstrip_prefix = "/nocache"\norigin = "media"\n'
        "[routes.cache]\nenabled = false\n"
        '[[routes]]\norigin = "media"\n[routes.cache]\noverride_ttl = 3600\n'
    )
    async with _running(tmp_path, config) as application:
        yield application


async def test_status_after_traffic(app: EdgeShield) -> None:
    state = app.state
    assert state is not None
    answers = [await _request(app, b"/a.txt") for _ in range(4)]  # a miss, 3 fast hits
    answers += [await _request(app, b"/b.txt") for _ in range(2)]  # a miss, a fast hit
    answers.append(await _request(app, b"/a.txt", headers=((b"range", b"bytes=0-9"),)))
    answers.append(await _request(app, b"/nocache/a.txt"))  # pass
    answers.append(await _request(app, b"/missing.txt"))  # a 404 miss
    assert [a.status for a in answers] == [200] * 6 + [206, 200, 404]
    ops = await _request(app, b"/metrics")  # operations endpoints are not traffic
    assert ops.status == 200
    state.recent_purges.append({"id": "first", "soft": False, "purged": {"memory": 1}})
    state.recent_purges.append({"id": "second", "soft": True, "purged": {"memory": 0}})

    doc = status(state, 1234.5, fast_hits(app.fast))

    assert doc["generated"] == 1234.5 and doc["ready"] is True
    assert doc["outcomes"] == {"hit": 5, "miss": 3, "pass": 1}
    assert doc["requests"] == 9
    assert (doc["hits"], doc["lookups"]) == (5, 8) and doc["hit_ratio"] == pytest.approx(5 / 8)
    routes = {r["route"]: r for r in doc["routes"]}
    assert len(routes) == 2
    nocache, cached = (routes[r.name] for r in state.routes.routes)
    assert (nocache["requests"], nocache["lookups"], nocache["hit_ratio"]) == (1, 0, None)
    assert (cached["requests"], cached["hits"], cached["lookups"]) == (8, 5, 8)
    assert cached["client_bytes"] + nocache["client_bytes"] == sum(len(a.body) for a in answers)
    assert doc["bytes"]["client"] == sum(len(a.body) for a in answers)
    origin_bytes = sum(state.stats.counters["edgeshield_origin_bytes"].values())
    assert doc["bytes"]["origin"] == origin_bytes >= 5000 + 300 + 5000
    assert doc["bytes"]["offload"] == pytest.approx(1 - origin_bytes / doc["bytes"]["client"])

    top = [(t["object"], t["requests"]) for t in doc["top_objects"]]
    assert top[:2] == [("example.test/a.txt", 5), ("example.test/b.txt", 2)]
    assert set(top[2:]) == {("example.test/nocache/a.txt", 1), ("example.test/missing.txt", 1)}
    assert not any("metrics" in key for key, _ in top)

    assert [p["id"] for p in doc["recent_purges"]] == ["second", "first"]
    assert doc["recent_purges"][0]["purged"] == {"memory": 0}
    (memory,) = doc["tiers"]
    assert memory["name"] == "memory" and memory["entries"] == 3  # a, b, missing (404)
    assert memory["bytes"] > 5300 and memory["max_bytes"] > memory["bytes"]
    (origin,) = doc["origins"]
    assert (origin["name"], origin["kind"], origin["state"], origin["ejected"]) == (
        "media",
        "fs",
        "up",
        False,
    )
    assert origin["ewma_ms"] is not None and origin["bytes"] == origin_bytes
    assert sum(origin["requests"].values()) == 4  # a, b, nocache/a, missing


async def test_status_before_any_traffic(app: EdgeShield) -> None:
    assert app.state is not None
    doc = status(app.state, 0.0)
    assert doc["requests"] == 0 and doc["hit_ratio"] is None
    assert doc["bytes"] == {"client": 0, "origin": 0, "offload": None}
    assert doc["top_objects"] == [] and doc["recent_purges"] == []


async def test_endpoints_through_the_app(app: EdgeShield) -> None:
    await _request(app, b"/a.txt")
    page = await _request(app, b"/_admin")
    assert page.status == 200 and page.headers[b"content-type"].startswith(b"text/html")
    assert page.headers[b"cache-control"] == b"no-store" and page.body == PAGE
    head = await _request(app, b"/_admin", method="HEAD")
    assert head.status == 200 and head.body == b""
    data = await _request(app, b"/_admin/status.json")
    assert data.status == 200 and data.headers[b"content-type"] == b"application/json"
    assert orjson.loads(data.body)["top_objects"] == [
        {"object": "example.test/a.txt", "requests": 1}
    ]
    # the admin paths are never fast-path plans, whatever is cached
    assert app.fast is not None and {"/_admin", "/_admin/status.json"} <= app.fast.reserved


async def test_response_tolerates_odd_purge_records(app: EdgeShield) -> None:
    assert app.state is not None
    app.state.recent_purges.append({"id": "x", "time": 1.5, "by_tier": {1: 2}, "obj": object()})
    code, body, content_type = response(app.state, app.fast, 10.0)
    assert code == 200 and content_type == b"application/json"
    (purge,) = orjson.loads(body)["recent_purges"]
    assert purge["by_tier"] == {"1": 2} and purge["obj"].startswith("<object")


def test_page_is_self_contained_with_a_matching_csp() -> None:
    text = PAGE.decode()
    assert "@" not in re.sub(r"@media", "", text)  # every placeholder filled
    # no external anything: no URLs with a scheme or //host, no src= attributes
    assert not re.search(r"https?:|[\"'(]//|\bsrc\s*=", text)
    assert "innerHTML" not in text and "insertAdjacentHTML" not in text
    assert "document.write" not in text
    (csp,) = re.findall(r'http-equiv="Content-Security-Policy" content="([^"]+)"', text)
    (script,) = re.findall(r"<script>(.*?)</script>", text, re.S)
    (style,) = re.findall(r"<style>(.*?)</style>", text, re.S)

    def digest(s: str) -> str:
        return base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()

    assert f"script-src 'sha256-{digest(script)}'" in csp
    assert f"style-src 'sha256-{digest(style)}'" in csp
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp


# -- the top-objects table ---------------------------------------------------------------

keys = st.lists(st.sampled_from([f"h/{i}" for i in range(40)]) | st.text(max_size=8))


@given(keys, st.integers(min_value=1, max_value=8))
@settings(max_examples=300, deadline=None)
def test_the_table_stays_bounded_and_never_overcounts(seq: list[str], cap: int) -> None:
    table = TopObjects(cap)
    for key in seq:
        table.add(key)
        assert len(table.counts) <= 2 * cap
    true = Counter(seq)
    assert all(n <= true[k] for k, n in table.counts.items())
    if len(true) <= 2 * cap:  # never pruned: exact
        assert table.counts == dict(true) and table.pruned == 0
    top = table.top(5)
    assert [n for _, n in top] == sorted((n for _, n in top), reverse=True)


@given(st.integers(min_value=1, max_value=16), st.integers(min_value=0, max_value=300))
@settings(max_examples=100, deadline=None)
def test_a_key_that_stays_on_top_is_never_dropped(cap: int, noise: int) -> None:
    table = TopObjects(cap)
    for i in range(noise):
        table.add("hot")
        table.add(f"cold-{i}")  # each once: the hot key always leads
    table.add("hot")
    assert table.top(1) == [("hot", noise + 1)]


def test_top_merges_fast_path_hits_and_cuts_long_keys() -> None:
    table = TopObjects(4)
    table.add("a", 3)
    table.add("b")
    long = "x" * (MAX_KEY + 50)
    table.add(long)
    assert all(len(k) <= MAX_KEY for k in table.counts)
    merged = table.top(3, iter([("b", 5), ("c", 1), ("d", 0), (long, 1)]))
    assert merged == [("b", 6), ("a", 3), (long[:MAX_KEY], 2)]


async def test_what_is_counted(app: EdgeShield) -> None:
    state = app.state
    assert state is not None
    table = state.top_objects
    await _request(app, b"/a.txt", b"v=1")
    await _request(app, b"/a.txt", b"v=1", method="HEAD")
    await _request(app, b"/./a.txt", b"v=1", headers=((b"range", b"bytes=0-1"),))
    await _request(app, b"/a.txt", method="POST")  # not a GET/HEAD: not counted
    await _request(app, b"/a%zz")  # refused before routing: not counted
    await _request(app, b"/_admin/status.json")  # operations: not counted
    assert table.counts == {"example.test/a.txt?v=1": 3}


async def test_signed_urls_count_without_their_token(tmp_path: Path) -> None:
    from proxy.auth.keys import Key
    from proxy.auth.native import sign_url

    secret = "admin-status-secret-0123456789abcdef"
    (tmp_path / "v.mp4").write_bytes(b"V" * 3000)
    config = (
        f'[server]\naccess_log = "off"\n[auth.keys.k1]\nsecret = "{secret}"\n'
        f'[origins.o]\nkind = "fs"\nroot = "{tmp_path}"\n'
        '[[routes]]\norigin = "o"\n[routes.cache]\noverride_ttl = 3600\n'
        '[routes.auth]\nschemes = ["native"]\n'
    )
    path, _, query = sign_url("/v.mp4", Key("k1", secret.encode()), ttl=600).partition("?")
    async with _running(tmp_path, config) as application:
        assert application.state is not None
        for _ in range(3):  # a miss, then fast-path hits
            assert (await _request(application, path.encode(), query.encode())).status == 200
        doc = status(application.state, 0.0, fast_hits(application.fast))
    assert doc["top_objects"] == [{"object": "example.test/v.mp4", "requests": 3}]


class _FakeTier:
    name = "redis"

    def stats(self) -> dict[str, Any]:
        return {"hits": 3, "misses": 1, "errors": 2, "circuit_state": "open"}


async def test_lower_tiers_are_listed_with_their_own_stats(app: EdgeShield) -> None:
    state = app.state
    assert state is not None
    state.cache.lower = (*state.cache.lower, _FakeTier())  # type: ignore[arg-type]
    memory, redis = status(state, 0.0)["tiers"]
    assert memory["name"] == "memory"
    assert redis == {"name": "redis", "hits": 3, "misses": 1, "errors": 2, "circuit_state": "open"}
