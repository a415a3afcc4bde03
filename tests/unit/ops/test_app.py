"""The operations app (proxy/ops/app.py) in-process: its routes are the paths the
dispatch and the fast path keep apart, HEAD answers carry the length without the body,
and every answer is counted as `ops` traffic with the bytes it sent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.routing import Route

from config.loader import load_settings
from proxy.ops.access import is_admin_request
from proxy.ops.app import PATHS
from proxy.serve.app import EdgeShield
from tests.support.asgi import Sink, receiver

Message = dict[str, Any]


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[EdgeShield]:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[server]\naccess_log = "off"\n[origins.media]\nkind = "fs"\nroot = "{tmp_path}"\n'
        '[[routes]]\norigin = "media"\n'
    )
    application = EdgeShield(load_settings(config, {}))
    queue: asyncio.Queue[Message] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(application({"type": "lifespan"}, queue.get, Sink()))
    for _ in range(1000):  # a hang guard, not a timing assertion
        if application.state is not None and application.state.ready:
            break
        await asyncio.sleep(0.01)
    try:
        yield application
    finally:
        await queue.put({"type": "lifespan.shutdown"})
        await task


async def _ask(app: EdgeShield, method: str, path: str) -> Sink:
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"example.test")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }
    sink = Sink()
    await app(scope, receiver(), sink)
    return sink


async def test_the_routes_are_the_reserved_paths(app: EdgeShield) -> None:
    assert app.ops is not None and app.fast is not None
    routed = {route.path for route in app.ops.app.routes if isinstance(route, Route)}
    # A path with parameters (/_warm/{id}) is no fixed path: the dispatch sends it to the
    # operations app as an admin request.
    templates = {path for path in routed if "{" in path}
    assert routed - templates == PATHS == app.fast.reserved
    assert templates and all(is_admin_request("GET", p.partition("{")[0]) for p in templates)


async def test_head_answers_the_length_without_the_body(app: EdgeShield) -> None:
    get, head = await _ask(app, "GET", "/readyz"), await _ask(app, "HEAD", "/readyz")
    assert get.status == head.status == 200 and orjson.loads(get.body)["ready"] is True
    assert head.body == b"" and head.headers[b"content-length"] == b"%d" % len(get.body)
    assert head.headers[b"cache-control"] == b"no-store" and b"date" in head.headers


async def test_every_answer_is_ops_traffic_with_its_bytes(app: EdgeShield) -> None:
    assert app.state is not None
    stats = app.state.stats
    answers = [
        await _ask(app, "GET", "/healthz"),
        await _ask(app, "HEAD", "/healthz"),
        await _ask(app, "PUT", "/healthz"),  # 405
        await _ask(app, "GET", "/_admin/nope"),  # 404 from the router
        await _ask(app, "GET", "/_admin/"),  # 404, not a redirect
    ]
    assert [a.status for a in answers] == [200, 200, 405, 404, 404]
    assert answers[2].headers[b"allow"] == b"GET, HEAD"
    requests = stats.counters["edgeshield_requests"]
    assert requests[("-", "200", "ops")] == 2 and requests[("-", "404", "ops")] == 2
    assert stats.counters["edgeshield_client_bytes"][("-",)] == sum(len(a.body) for a in answers)
