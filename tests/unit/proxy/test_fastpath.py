"""The fast path answers exactly what the full pipeline answers, or declines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_settings
from proxy.pipeline import handle
from proxy.serve.app import EdgeShield
from tests.support.asgi import Sink, receiver

Message = dict[str, Any]


def _scope(path: bytes, headers: list[tuple[bytes, bytes]], query: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path.decode(),
        "raw_path": path,
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8080),
    }


async def _start(config: Path) -> tuple[EdgeShield, asyncio.Queue[Message], asyncio.Future[Any]]:
    application = EdgeShield(load_settings(config, {}))
    queue: asyncio.Queue[Message] = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(application({"type": "lifespan"}, queue.get, Sink()))
    for _ in range(500):
        if application.state is not None:
            break
        await asyncio.sleep(0.01)
    return application, queue, task


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[EdgeShield]:
    (tmp_path / "a.txt").write_bytes(b"A" * 5000)
    (tmp_path / "img.jpg").write_bytes(b"not really")
    config = tmp_path / "c.toml"
    config.write_text(
        f'[server]\naccess_log = "off"\n[origins.o]\nkind = "fs"\nroot = "{tmp_path}"\n'
        '[[routes]]\npath_prefix = "/nocache"\norigin = "o"\n[routes.cache]\nenabled = false\n'
        '[[routes]]\norigin = "o"\n[routes.cache]\noverride_ttl = 3600\n'
    )
    application, queue, task = await _start(config)
    yield application
    await queue.put({"type": "lifespan.shutdown"})
    await task


async def _via_app(app: EdgeShield, scope: dict[str, Any]) -> tuple[Sink, bool]:
    sink = Sink()
    assert app.fast is not None
    served = await app.fast.serve(scope, sink)
    if not served:
        await app(scope, receiver(), sink)
    return sink, served


HOST = [(b"host", b"example.test")]


async def test_fast_answers_equal_the_full_pipeline(app: EdgeShield) -> None:
    await _via_app(app, _scope(b"/a.txt", HOST))  # miss: fills the cache
    await asyncio.sleep(0.05)
    for path, query in ((b"/a.txt", b""), (b"/./a.txt", b""), (b"//a.txt", b"")):
        scope = _scope(path, [*HOST, (b"accept", b"*/*")], query)
        fast, served = await _via_app(app, scope)
        assert served, path
        slow = Sink()
        assert app.state is not None
        await handle(app.state, dict(scope), receiver(), slow)
        f_status, f_headers, f_body = fast.response()
        s_status, s_headers, s_body = slow.response()
        assert (f_status, f_body) == (s_status, s_body) == (200, b"A" * 5000)
        for name in (b"age", b"cache-status"):  # may straddle a second boundary
            f_headers.pop(name), s_headers.pop(name)
        assert f_headers == s_headers


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (b"/a.txt", [(b"range", b"bytes=0-1")]),
        (b"/a.txt", [(b"if-none-match", b'"x"')]),
        (b"/a.txt", [(b"authorization", b"Bearer t")]),
        (b"/nocache/a.txt", []),  # route with caching off
        (b"/metrics", []),  # operations endpoints are never plans
        (b"/never-fetched.txt", []),  # nothing cached
        (b"/a%zz", []),  # invalid: the full pipeline answers 400
    ],
)
async def test_declines_what_it_must_not_answer(
    app: EdgeShield, path: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    await _via_app(app, _scope(b"/a.txt", HOST))
    await _via_app(app, _scope(b"/nocache/a.txt", HOST))
    await asyncio.sleep(0.05)
    assert app.fast is not None
    assert not await app.fast.serve(_scope(path, [*HOST, *headers]), Sink())


async def test_missing_host_and_oversized_headers_decline(app: EdgeShield) -> None:
    await _via_app(app, _scope(b"/a.txt", HOST))
    await asyncio.sleep(0.05)
    assert app.fast is not None
    assert not await app.fast.serve(_scope(b"/a.txt", []), Sink())
    big = [*HOST, (b"x-big", b"y" * 40000)]
    assert not await app.fast.serve(_scope(b"/a.txt", big), Sink())


async def test_log_lines_match_the_full_pipeline(tmp_path: Path) -> None:
    import orjson

    (tmp_path / "a.txt").write_bytes(b"A" * 100)
    log = tmp_path / "access.log"
    config = tmp_path / "c.toml"
    config.write_text(
        f'[server]\naccess_log = "{log}"\n[origins.o]\nkind = "fs"\nroot = "{tmp_path}"\n'
        '[[routes]]\norigin = "o"\n[routes.cache]\noverride_ttl = 3600\n'
    )
    application, queue, task = await _start(config)
    assert application.state is not None and application.fast is not None
    scope = _scope(b"/a.txt", HOST, b"v=1")
    await _via_app(application, scope)  # miss
    await asyncio.sleep(0.05)
    assert await application.fast.serve(dict(scope), Sink())  # fast hit
    await handle(application.state, dict(scope), receiver(), Sink())  # full-pipeline hit
    await queue.put({"type": "lifespan.shutdown"})
    await task
    *_, fast, slow = (orjson.loads(line) for line in log.read_bytes().splitlines())
    for line in (fast, slow):
        assert isinstance(line.pop("ts"), float) and isinstance(line.pop("ms"), float)
    assert fast == slow
    assert fast["path"] == "/a.txt?v=1" and fast["cache"] == "hit" and fast["bytes"] == 100


SECRET = "fastpath-secret-0123456789abcdef"


@pytest.fixture
async def signed_app(tmp_path: Path) -> AsyncIterator[EdgeShield]:
    (tmp_path / "v.mp4").write_bytes(b"V" * 3000)
    config = tmp_path / "c.toml"
    config.write_text(
        f'[server]\naccess_log = "off"\n[auth.keys.k1]\nsecret = "{SECRET}"\n'
        f'[origins.o]\nkind = "fs"\nroot = "{tmp_path}"\n'
        '[[routes]]\norigin = "o"\n[routes.cache]\noverride_ttl = 3600\n'
        '[routes.auth]\nschemes = ["native"]\n'
    )
    application, queue, task = await _start(config)
    yield application
    await queue.put({"type": "lifespan.shutdown"})
    await task


def _signed(**kw: Any) -> tuple[bytes, bytes]:
    from proxy.auth.keys import Key
    from proxy.auth.native import sign_url

    url = sign_url("/v.mp4", Key("k1", SECRET.encode()), **kw)
    path, _, query = url.partition("?")
    return path.encode(), query.encode()


async def test_signed_hits_are_verified_on_the_fast_path(signed_app: EdgeShield) -> None:
    path, query = _signed(ttl=600)
    sink, served = await _via_app(signed_app, _scope(path, HOST, query))
    assert not served and sink.response()[0] == 200  # the miss fills the cache
    await asyncio.sleep(0.05)
    sink, served = await _via_app(signed_app, _scope(path, HOST, query))
    assert served and sink.response()[0] == 200
    # unsigned, tampered, or bound to another address: declined, and the pipeline refuses
    for q in (b"", query[:-3] + (b"AAA" if not query.endswith(b"AAA") else b"BBB")):
        sink, served = await _via_app(signed_app, _scope(path, HOST, q))
        assert not served and sink.response()[0] == 403
    path, query = _signed(ttl=600, ip="203.0.113.7")
    sink, served = await _via_app(signed_app, _scope(path, HOST, query))
    assert not served and sink.response()[1][b"edgeshield-auth-reason"] == b"ip-mismatch"


async def test_a_remembered_check_ends_with_the_token(signed_app: EdgeShield) -> None:
    import time

    now = int(time.time())
    path, query = _signed(expires=now + 30)
    await _via_app(signed_app, _scope(path, HOST, query))
    await asyncio.sleep(0.05)
    assert (await _via_app(signed_app, _scope(path, HOST, query)))[1]
    fast = signed_app.fast
    assert fast is not None
    plan = next(p for p in fast.plans.values() if p is not None and p.guard is not None)
    assert plan.verified is not None and plan.verified[2] <= now + 30
    scope = _scope(path, HOST, query)
    # the same peer within the window: remembered; past the expiry: checked, and refused
    assert fast._allowed(plan, scope, now + 29)
    assert not fast._allowed(plan, scope, now + 31 + 60)
    assert plan.verified is None  # a refusal forgets
    assert fast._allowed(plan, scope, now + 1)
    assert plan.verified is not None and plan.verified[0] == "127.0.0.1"
    # another peer never reuses the memo: it is verified afresh (the token is not IP-bound)
    other = {**scope, "client": ("198.51.100.1", 1)}
    assert fast._allowed(plan, other, now + 1)
    assert plan.verified[0] == "198.51.100.1"


async def test_a_bug_while_storing_is_a_502_not_a_request_that_never_ends(
    app: EdgeShield, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault injected into the real cache (its admission check raising, as a bug would):
    the miss and a request that joined its fetch get a 502 at once, the bug is logged
    with its traceback, and the next request fetches again rather than joining a dead
    fetch."""
    assert app.state is not None
    cache = app.state.cache
    real = cache.admits

    def broken(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("injected")

    cache.admits = broken  # type: ignore[method-assign]
    scope = _scope(b"/a.txt", [(b"host", b"example.test")])
    answers = await asyncio.wait_for(
        asyncio.gather(_via_app(app, dict(scope)), _via_app(app, dict(scope))), timeout=30
    )
    assert [sink.status for sink, _ in answers] == [502, 502]
    assert "internal error" in answers[0][0].body.decode()
    assert any(r.exc_info and "injected" in str(r.exc_info[1]) for r in caplog.records)
    cache.admits = real  # type: ignore[method-assign]
    sink, _ = await asyncio.wait_for(_via_app(app, dict(scope)), timeout=30)
    assert sink.status == 200 and sink.body == b"A" * 5000


async def test_each_request_is_counted_once_for_admission(app: EdgeShield) -> None:
    """The miss (declined here, answered by the pipeline) and each fast hit count one
    request each toward the memory tier's admission."""
    assert app.state is not None
    memory = app.state.cache.memory
    scope = _scope(b"/a.txt", [(b"host", b"example.test")])
    counts, served = [], []
    for _ in range(3):
        sink, fast = await _via_app(app, dict(scope))
        assert sink.status == 200
        for _ in range(200):  # the miss is stored in the background (a hang guard)
            if memory.peek("example.test/a.txt") is not None:
                break
            await asyncio.sleep(0.01)
        served.append(fast)
        counts.append(memory.frequency("example.test/a.txt"))
    assert served == [False, True, True]
    assert counts == [1, 2, 3]
