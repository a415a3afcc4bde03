"""The JSON answers of purges (proxy/purge/report.py); purges yielding to the loop are
tested in test_engine.py."""

from __future__ import annotations

import orjson

from proxy.purge.report import PurgeReport, error_response, new_purge_id, report_response
from proxy.purge.request import PurgeError


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
