"""Batched purging yields to the loop (proxy/purge/batch.py); the JSON answers
(proxy/purge/report.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import orjson
import pytest

from proxy.purge.batch import DEFAULT_BATCH, apply_batched, apply_batched_async, batches
from proxy.purge.report import PurgeReport, error_response, new_purge_id, report_response
from proxy.purge.request import PurgeError

T = TypeVar("T")


async def _with_ticker(work: Awaitable[T]) -> tuple[T, int]:
    """Run `work` while another task counts how often it gets the loop."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    start = ticks
    result = await work
    task.cancel()
    return result, ticks - start


def test_batches_split_and_yield() -> None:
    async def collect() -> list[list[int]]:
        return [batch async for batch in batches(range(1050), 500)]

    got, ticks = asyncio.run(_with_ticker(collect()))
    assert [len(b) for b in got] == [500, 500, 50]
    assert [x for b in got for x in b] == list(range(1050))
    assert ticks >= 2  # other tasks ran between the batches


def test_ten_thousand_urls_never_block_more_than_a_batch() -> None:
    seen: list[int] = []
    counter = {"ticks": 0}

    def invalidate(key: str) -> int:
        seen.append(counter["ticks"])
        return 2 if key.endswith("0") else 1

    async def main() -> int:
        async def ticker() -> None:
            while True:
                counter["ticks"] += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        total = await apply_batched([f"h/{i}" for i in range(10_000)], invalidate)
        task.cancel()
        return total

    total = asyncio.run(main())
    assert total == 10_000 + 1_000
    # Within a batch nothing else runs; between batches the ticker does.
    per_batch = [seen[i : i + DEFAULT_BATCH] for i in range(0, len(seen), DEFAULT_BATCH)]
    assert all(len(set(b)) == 1 for b in per_batch)
    assert len({b[0] for b in per_batch}) == len(per_batch) == 20


def test_apply_batched_async() -> None:
    calls: list[list[str]] = []

    async def delete(keys: list[str]) -> int:
        calls.append(keys)
        return len(keys)

    total = asyncio.run(apply_batched_async([f"k{i}" for i in range(7)], delete, size=3))
    assert total == 7 and [len(c) for c in calls] == [3, 3, 1]


def test_bad_batch_size() -> None:
    async def main() -> None:
        async for _ in batches([1], 0):
            pass

    with pytest.raises(ValueError):
        asyncio.run(main())


def test_report_json() -> None:
    report = PurgeReport(soft=True, id="abc")
    report.count("memory", 3)
    report.count("redis")
    report.bans = 2
    report.tags = 1
    report.cdn.append({"name": "fastly", "status": 200})
    status, headers, body = report_response(report)
    assert status == 200
    assert orjson.loads(body) == {
        "id": "abc",
        "soft": True,
        "purged": {"memory": 3, "redis": 1, "disk": 0},
        "bans": 2,
        "tags": 1,
        "cdn": [{"name": "fastly", "status": 200}],
    }
    assert (b"content-type", b"application/json") in headers
    assert (b"cache-control", b"no-store") in headers
    assert (b"content-length", str(len(body)).encode()) in headers
    report.errors.append("redis: connection refused")
    assert orjson.loads(report_response(report)[2])["errors"] == ["redis: connection refused"]


def test_ids_are_distinct() -> None:
    ids = {new_purge_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 16 for i in ids)
    assert PurgeReport().id != PurgeReport().id


def test_error_response_carries_the_challenge() -> None:
    error = PurgeError(401, "a bearer token is required", ((b"www-authenticate", b"Bearer"),))
    status, headers, body = error_response(error)
    assert status == 401
    assert orjson.loads(body) == {"error": "a bearer token is required"}
    assert (b"www-authenticate", b"Bearer") in headers
