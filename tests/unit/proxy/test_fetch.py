"""`join_or_start`: one producer per key. Decided in-process over a real app state (the
app's own lifespan builds it), not only through a subprocess."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from config.loader import load_settings
from proxy.cache.collapse import Fetch
from proxy.fetch import join_or_start, new_fetch
from proxy.http.forwarding import Forwarding
from proxy.request import Request
from proxy.serve.app import EdgeShield
from proxy.serve.state import AppState
from tests.support.asgi import Sink

KEY = "example.test/a.txt"


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[AppState]:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[server]\naccess_log = "off"\n[origins.o]\nkind = "fs"\nroot = "{tmp_path}"\n'
        '[[routes]]\norigin = "o"\n'
    )
    app = EdgeShield(load_settings(config, {}))
    lifespan: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await lifespan.put({"type": "lifespan.startup"})
    task = asyncio.ensure_future(app({"type": "lifespan"}, lifespan.get, Sink()))
    for _ in range(500):  # a hang guard: startup is a few turns of the loop
        if app.state is not None:
            break
        await asyncio.sleep(0.01)
    assert app.state is not None
    yield app.state
    await lifespan.put({"type": "lifespan.shutdown"})
    await task


def _request(**headers: str) -> Request:
    return Request(
        method="GET",
        path="/a.txt",
        query="",
        headers=headers,
        header_list=list(headers.items()),
        host="example.test",
        forwarding=Forwarding(chain=("127.0.0.1",)),
        scheme="http",
        now=1_700_000_000.0,
    )


def _starter(state: AppState, started: list[bool]) -> Callable[[bool], Fetch]:
    """What a caller passes: make the producer, registered for joiners when asked to."""

    def start(register: bool) -> Fetch:
        started.append(register)
        fetch = new_fetch(KEY)
        if register:
            state.inflight.add(fetch)
        return fetch

    return start


def _collapsed(state: AppState) -> float:
    return state.stats.counters["edgeshield_collapsed_requests"].get((), 0)


async def test_the_first_starts_and_registers_the_next_joins(state: AppState) -> None:
    started: list[bool] = []
    start = _starter(state, started)
    first, joined = join_or_start(state, _request(), KEY, start, kind=Fetch)
    assert not joined and started == [True]
    second, joined = join_or_start(state, _request(), KEY, start, kind=Fetch)
    assert joined and second is first and started == [True]
    assert _collapsed(state) == 1


@pytest.mark.parametrize(
    ("headers", "collapse"),
    [
        ({"authorization": "Bearer x"}, True),  # credentials: never shares an answer
        ({}, False),  # hit-for-miss: the last answer could not be shared
    ],
)
async def test_who_never_joins_starts_an_unregistered_fetch(
    state: AppState, headers: dict[str, str], collapse: bool
) -> None:
    started: list[bool] = []
    start = _starter(state, started)
    leader, _ = join_or_start(state, _request(), KEY, start, kind=Fetch)
    own, joined = join_or_start(
        state, _request(**headers), KEY, start, kind=Fetch, collapse=collapse
    )
    assert not joined and own is not leader
    assert started == [True, False]
    assert state.inflight.get(KEY) is leader  # the one others join is still the leader's
    assert _collapsed(state) == 0


async def test_a_fetch_that_stopped_keeping_its_body_is_not_joined(state: AppState) -> None:
    """Too large to store: a late joiner could not start from byte 0, so it fetches anew."""
    started: list[bool] = []
    start = _starter(state, started)
    leader, _ = join_or_start(state, _request(), KEY, start, kind=Fetch)
    leader.stop_keeping()
    other, joined = join_or_start(state, _request(), KEY, start, kind=Fetch)
    assert not joined and other is not leader and started == [True, True]


async def test_only_a_fetch_of_the_asked_kind_is_joined(state: AppState) -> None:
    class Other(Fetch):
        """Another kind of producer (as a slice fetch) for a key a plain fetch holds."""

    started: list[bool] = []
    plain, _ = join_or_start(state, _request(), KEY, _starter(state, started), kind=Fetch)
    other, joined = join_or_start(
        state, _request(), KEY, lambda register: Other(KEY, window=1024), kind=Other
    )
    assert not joined and isinstance(other, Other) and other is not plain
