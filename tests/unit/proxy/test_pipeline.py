"""The pipeline's decisions, direct: which step answers a request, with what `Answer`, and
the bytes the client got. In-process over a real app state (its own lifespan) and a real
loopback origin on the same loop; no subprocess.

`decide` parses and routes as `handle` does, then runs `STEPS` one by one, so each test
names the step that answered; `handle` itself answers the request no route takes."""

from __future__ import annotations

import asyncio
import re
import tomllib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import pyvips

from config.schema import Settings
from proxy.cache.entry import Entry, Uncacheable
from proxy.cache.keys import url_key
from proxy.exchange import Answer, Exchange, Outcome
from proxy.pipeline import STEPS, handle, parse
from proxy.serve.state import AppState
from proxy.variants import routing_path
from tests.support.asgi import Sink
from tests.support.inprocess import body_receiver, http_scope, running_origin_app, running_state
from tests.support.origin_server import OriginApp, Script

ARCHITECTURE = Path(__file__).parents[3] / "docs" / "architecture.md"
HOST = "example.test"
CDN = "https://cdn-a.example.net"
FRESH_SWR = "max-age=60, stale-while-revalidate=120"
PNG = pyvips.Image.black(16, 16).pngsave_buffer()

CONFIG = """
[server]
access_log = "off"
[auth.keys.k1]
secret = "pipeline-test-only-key-0123456789"
[origins.o]
kind = "http"
url = "{url}"
[[routes]]
path_prefix = "/private"
origin = "o"
[routes.auth]
schemes = ["native"]
[[routes]]
path_prefix = "/cors"
origin = "o"
[routes.access.cors]
allow_origins = ["https://app.example.com"]
[[routes]]
path_prefix = "/steer"
origin = "o"
mode = "steer"
[[routes.steer.cdns]]
base_url = "{cdn}"
[[routes]]
path_prefix = "/img"
origin = "o"
images = true
[[routes]]
path_prefix = "/nocache"
origin = "o"
[routes.cache]
enabled = false
[[routes]]
path_prefix = "/ro"
origin = "o"
read_only = true
[[routes]]
path_prefix = "/"
origin = "o"
"""


class Decision(NamedTuple):
    step: str  # the name of the step that answered
    answer: Answer
    sink: Sink  # what the client got


class Env(NamedTuple):
    state: AppState
    origin: OriginApp

    def script(self, path: str, body: bytes = b"", **fields: Any) -> None:
        headers = fields.pop("headers", {"cache-control": FRESH_SWR})
        self.origin.scripts[path] = Script(path, headers=list(headers.items()), body=body, **fields)

    def asked(self, method: str, path: str) -> int:
        return int(self.origin.stats.requests[f"{method} {path}"])


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with running_origin_app() as (origin, url):
        text = CONFIG.format(url=url, cdn=CDN)
        async with running_state(Settings.model_validate(tomllib.loads(text))) as state:
            yield Env(state, origin)


async def decide(
    state: AppState,
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    *,
    body: bytes = b"",
    later: float = 0.0,
) -> Decision:
    """One request through parse, route and the steps; `later`: seconds added to the
    request's clock (how a stored entry ages without the test waiting)."""
    scope = http_scope(method, target, headers)
    bunny_path, scope = state.guards.split_bunny(scope)
    req = parse(state, scope)
    req.now += later
    path_token = state.guards.split_path(req)
    route = state.routes.match(
        req.host, req.path if state.images is None else routing_path(req.path)
    )
    assert route is not None, target
    sink = Sink()
    ex = Exchange(
        state, route, req, body_receiver(body), sink, req.key, 0.0, path_token, bunny_path
    )
    for step in STEPS:
        answer = await step(ex)
        if answer is not None:
            return Decision(step.__name__, answer, sink)
    raise AssertionError("no step answered")


async def stored(state: AppState, path: str) -> Entry | Uncacheable | None:
    """What the memory tier holds for the path once the producer is done (stores happen
    after the last byte went out); a generous hang guard, no timing asserted."""
    key = url_key(HOST, path, "")
    for _ in range(3000):
        if state.inflight.get(key) is None and (found := state.cache.lookup(key, {})) is not None:
            return found
        await asyncio.sleep(0.01)
    return state.cache.lookup(key, {})


async def until(condition: Callable[[], bool]) -> None:
    """Wait for what the test needs next; a generous hang guard, not a timing."""
    for _ in range(3000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("still waiting after 30 s")


def collapsed(state: AppState) -> float:
    return state.stats.counters["edgeshield_collapsed_requests"].get((), 0)


def test_steps_run_in_the_documented_order() -> None:
    """docs/architecture.md's `STEPS, in order` block names the code's steps, in order."""
    block = ARCHITECTURE.read_text().split("STEPS, in order", 1)[1].split("\nrecord", 1)[0]
    documented = re.findall(r"^  (\w+) ", block, flags=re.MULTILINE)
    assert [step.__name__ for step in STEPS] == documented
    assert documented == [
        "auth",
        "refuse_unsigned",
        "steer_",
        "variant",
        "lookup",
        "pass_",
        "refuse",
    ]


async def test_no_route_is_a_404_deny_before_any_step(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "server": {"access_log": "off"},
            "origins": {"o": {"kind": "fs", "root": str(tmp_path)}},
            "routes": [{"host": "only.example.test", "origin": "o"}],
        }
    )
    async with running_state(settings) as state:
        sink = Sink()
        await handle(state, http_scope("GET", "/a.txt"), body_receiver(b""), sink)
        assert sink.status == 404 and b"no route" in sink.body
        assert state.stats.counters["edgeshield_requests"][("-", "404", "deny")] == 1


async def test_auth_refuses_a_guarded_route_without_a_token(env: Env) -> None:
    env.script("/private/a.txt", b"secret bytes")
    step, answer, sink = await decide(env.state, "GET", "/private/a.txt")
    assert step == "auth"
    assert answer == Answer(403, len(sink.body), Outcome.DENY, "missing")
    assert sink.status == 403 and sink.headers[b"edgeshield-auth-reason"] == b"missing"
    assert b"secret bytes" not in sink.body
    assert env.asked("GET", "/private/a.txt") == 0


async def test_auth_answers_a_cors_preflight(env: Env) -> None:
    preflight = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "GET"),
    ]
    step, answer, sink = await decide(env.state, "OPTIONS", "/cors/a.txt", preflight)
    assert step == "auth"
    assert answer.outcome is Outcome.PREFLIGHT and answer.status == sink.status < 300
    assert sink.headers[b"access-control-allow-origin"] == b"https://app.example.com"
    assert env.origin.stats.total == 0  # the origin never sees a preflight


async def test_steering_redirects_to_the_healthy_cdn(env: Env) -> None:
    step, answer, sink = await decide(env.state, "GET", "/steer/a.txt?v=1")
    assert step == "steer_"
    assert answer == Answer(302, 0, Outcome.STEER, "")
    assert sink.status == 302 and sink.body == b""
    assert sink.headers[b"location"] == f"{CDN}/steer/a.txt?v=1".encode()
    assert env.origin.stats.total == 0


async def test_image_options_are_the_variant_step_the_plain_source_is_lookup(env: Env) -> None:
    env.script(
        "/img/pic.png", PNG, headers={"cache-control": "max-age=60", "content-type": "image/png"}
    )
    step, answer, sink = await decide(env.state, "GET", "/img/pic.png?w=8&fm=png")
    assert step == "variant"
    assert answer.status == 200 and answer.outcome is Outcome.MISS
    resized = pyvips.Image.new_from_buffer(sink.body, "")
    assert (resized.width, resized.height) == (8, 8)
    assert answer.sent == len(sink.body)

    step, answer, sink = await decide(env.state, "GET", "/img/pic.png")
    assert step == "lookup"
    assert answer.status == 200 and sink.body == PNG


async def test_a_cached_get_misses_then_hits_then_stands_in_stale(env: Env) -> None:
    env.script("/a.txt", b"cached body", headers={"cache-control": FRESH_SWR, "etag": '"v1"'})
    first = await decide(env.state, "GET", "/a.txt")
    assert first.step == "lookup"
    assert first.answer == Answer(200, 11, Outcome.MISS, "")
    assert first.sink.body == b"cached body"
    assert isinstance(await stored(env.state, "/a.txt"), Entry)

    hit = await decide(env.state, "GET", "/a.txt")
    assert (hit.step, hit.answer) == ("lookup", Answer(200, 11, Outcome.HIT, ""))
    assert hit.sink.body == b"cached body" and b"hit" in hit.sink.headers[b"cache-status"]

    stale = await decide(env.state, "GET", "/a.txt", later=100.0)  # past 60 s, within swr
    assert (stale.step, stale.answer) == ("lookup", Answer(200, 11, Outcome.STALE, ""))
    assert stale.sink.body == b"cached body"
    await until(lambda: env.asked("GET", "/a.txt") == 2)  # the one background refresh
    assert isinstance(await stored(env.state, "/a.txt"), Entry)

    conditional = env.origin.stats.conditional["/a.txt"]
    expired = await decide(env.state, "GET", "/a.txt", later=1000.0)  # past swr too
    # Refetched with its validators; the origin's 304 keeps the stored body.
    assert (expired.step, expired.answer) == ("lookup", Answer(200, 11, Outcome.STALE, ""))
    assert expired.sink.body == b"cached body"
    assert env.asked("GET", "/a.txt") == 3
    assert env.origin.stats.conditional["/a.txt"] == conditional + 1


async def test_a_miss_joins_the_fetch_in_flight(env: Env) -> None:
    """The second request for a key being fetched is collapsed onto the first's fetch."""
    env.script("/held.txt", b"0123456789", hold_after=2)
    first = asyncio.ensure_future(decide(env.state, "GET", "/held.txt"))
    await until(lambda: env.asked("GET", "/held.txt") == 1)
    second = asyncio.ensure_future(decide(env.state, "GET", "/held.txt"))
    await until(lambda: collapsed(env.state) == 1)
    env.origin.gates.setdefault("/held.txt", asyncio.Event()).set()
    leader, joiner = await first, await second
    assert leader.answer == Answer(200, 10, Outcome.MISS, "")
    assert (joiner.step, joiner.answer) == ("lookup", Answer(200, 10, Outcome.COLLAPSED, ""))
    assert leader.sink.body == joiner.sink.body == b"0123456789"
    assert env.asked("GET", "/held.txt") == 1


async def test_hit_for_miss_fetches_again_without_collapsing(env: Env) -> None:
    """After an answer that could not be shared, each request fetches its own, even while
    another fetch of the key is still in flight."""
    env.script("/mine.txt", b"private", headers={"cache-control": "private"})
    first = await decide(env.state, "GET", "/mine.txt")
    assert (first.step, first.answer) == ("lookup", Answer(200, 7, Outcome.MISS, ""))
    assert isinstance(await stored(env.state, "/mine.txt"), Uncacheable)

    env.script("/mine.txt", b"private", headers={"cache-control": "private"}, hold_after=2)
    held = asyncio.ensure_future(decide(env.state, "GET", "/mine.txt"))
    await until(lambda: env.asked("GET", "/mine.txt") == 2)
    assert env.state.inflight.get(url_key(HOST, "/mine.txt", "")) is None  # none to join
    again = asyncio.ensure_future(decide(env.state, "GET", "/mine.txt"))
    await until(lambda: env.asked("GET", "/mine.txt") == 3)  # while the other is held
    env.origin.gates.setdefault("/mine.txt", asyncio.Event()).set()
    for done in (await held, await again):
        assert (done.step, done.answer) == ("lookup", Answer(200, 7, Outcome.MISS, ""))
        assert done.sink.body == b"private"
        assert b"collapsed" not in done.sink.headers[b"cache-status"]
    assert collapsed(env.state) == 0


async def test_a_route_without_a_cache_passes(env: Env) -> None:
    env.script("/nocache/a.txt", b"relayed")
    for _ in range(2):
        step, answer, sink = await decide(env.state, "GET", "/nocache/a.txt")
        assert (step, answer) == ("pass_", Answer(200, 7, Outcome.PASS, ""))
        assert sink.body == b"relayed"
    assert env.asked("GET", "/nocache/a.txt") == 2
    assert env.state.cache.lookup(url_key(HOST, "/nocache/a.txt", ""), {}) is None


@pytest.mark.parametrize("method", ["POST", "PROPFIND", "DELETE"])
async def test_other_methods_pass_and_a_success_invalidates_the_url(env: Env, method: str) -> None:
    env.script("/doc.txt", b"v1")
    await decide(env.state, "GET", "/doc.txt")
    assert isinstance(await stored(env.state, "/doc.txt"), Entry)

    step, answer, sink = await decide(env.state, method, "/doc.txt", body=b"form=1")
    assert (step, answer) == ("pass_", Answer(200, 2, Outcome.PASS, ""))
    assert sink.body == b"v1"
    assert env.asked(method, "/doc.txt") == 1
    assert env.origin.stats.last_headers["/doc.txt"]["content-length"] == "6"  # relayed
    assert env.state.cache.lookup(url_key(HOST, "/doc.txt", ""), {}) is None

    env.script("/doc.txt", b"v2")
    after = await decide(env.state, "GET", "/doc.txt")
    assert after.answer.outcome is Outcome.MISS and after.sink.body == b"v2"


async def test_a_read_only_route_refuses_unsafe_methods(env: Env) -> None:
    env.script("/ro/a.txt", b"kept")
    await decide(env.state, "GET", "/ro/a.txt")
    step, answer, sink = await decide(env.state, "DELETE", "/ro/a.txt")
    assert (step, answer) == ("pass_", Answer(405, len(sink.body), Outcome.DENY, "read-only"))
    assert sink.headers[b"allow"] == b"GET, HEAD"
    assert env.asked("DELETE", "/ro/a.txt") == 0
    assert isinstance(await stored(env.state, "/ro/a.txt"), Entry)  # nothing invalidated


@pytest.mark.parametrize("method", ["CONNECT", "TRACE"])
async def test_connect_and_trace_are_refused(env: Env, method: str) -> None:
    step, answer, sink = await decide(env.state, method, "/a.txt")
    assert (step, answer) == ("refuse", Answer(501, len(sink.body), Outcome.DENY, "method"))
    assert sink.headers[b"connection"] == b"close"
    assert env.origin.stats.total == 0
