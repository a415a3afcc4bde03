"""The downstream CDN purge adapters against a real HTTP server on loopback
(tests.support.recording_server): the exact requests each vendor gets (method, path,
headers, body), batching, retries, deadlines and failures, and the fan-out."""

from __future__ import annotations

import asyncio
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Iterator
from typing import Any

import botocore.session
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from pydantic import TypeAdapter

from config.cdn import CdnSettings
from proxy.cdn_purge import CdnPurger, CdnPurgeResult, build_adapter
from proxy.cdn_purge.base import CdnAdapter
from tests.support.ports import free_port
from tests.support.recording_server import Recorded, RecordingServer, Reply

CF_TOKEN = "cf-token-Zx81"
FASTLY_TOKEN = "fastly-token-Q2"
BUNNY_KEY = "bunny-key-7f3e"
AWS_KEY_ID = "AKIDEXAMPLE1"
AWS_SECRET = "aws-secret-wJalrXUtnFEMI"
AWS_TOKEN = "aws-session-token-Fw0"
SECRETS = (CF_TOKEN, FASTLY_TOKEN, BUNNY_KEY, AWS_SECRET, AWS_TOKEN)
CF_NS = "{http://cloudfront.amazonaws.com/doc/2020-05-31/}"
# Retries in these tests wait milliseconds, not seconds.
FAST = {"backoff_base": 0.02, "backoff_max": 0.1, "timeout": 2.0, "deadline": 5.0}


def vendor_reply(request: Recorded) -> Reply:
    """What each vendor answers to a successful call (shapes from their API docs)."""
    if request.path.startswith("/client/v4/"):
        return Reply(200, json={"success": True, "errors": [], "result": {"id": "cf-purge-1"}})
    if request.path.endswith("/invalidation"):
        xml = (
            f'<?xml version="1.0"?><Invalidation xmlns="{CF_NS[1:-1]}"><Id>I2J0I21PCUYOIK</Id>'
            "<Status>InProgress</Status><CreateTime>2024-01-01T00:00:00Z</CreateTime>"
            "<InvalidationBatch><Paths><Quantity>0</Quantity></Paths>"
            "<CallerReference>x</CallerReference></InvalidationBatch></Invalidation>"
        )
        return Reply(201, headers={"content-type": "text/xml"}, body=xml)
    if request.path.startswith(("/purge/", "/service/")):
        return Reply(200, json={"status": "ok", "id": "108-1391560174-974124"})
    return Reply(200)  # Bunny answers an empty 200


@pytest.fixture(scope="module")
def recording() -> Iterator[RecordingServer]:
    with RecordingServer(vendor_reply) as server:
        yield server


@pytest.fixture
def server(recording: RecordingServer) -> RecordingServer:
    recording.reset(vendor_reply)
    return recording


def cdn(server: RecordingServer | None, **fields: Any) -> CdnSettings:
    """Settings of one CDN; without a server, its API is a port nobody listens on."""
    base = server.url if server is not None else f"http://127.0.0.1:{free_port()}"
    settings: CdnSettings = TypeAdapter(CdnSettings).validate_python(
        {"base_url": base, **FAST, **fields}
    )
    return settings


def cloudflare(server: RecordingServer | None, **fields: Any) -> CdnSettings:
    defaults = {"name": "cf", "zone_id": "023e105f4ecef8ad", "api_token": CF_TOKEN}
    return cdn(server, kind="cloudflare", **{**defaults, **fields})


def fastly(server: RecordingServer | None, **fields: Any) -> CdnSettings:
    defaults = {"name": "fastly", "service_id": "SU1Z0isxPaozGVKXdv0eY", "api_token": FASTLY_TOKEN}
    return cdn(server, kind="fastly", **{**defaults, **fields})


def bunny(server: RecordingServer | None, **fields: Any) -> CdnSettings:
    return cdn(server, kind="bunny", **{"name": "bunny", "api_key": BUNNY_KEY, **fields})


def cloudfront(server: RecordingServer | None, **fields: Any) -> CdnSettings:
    defaults = {
        "name": "cloudfront",
        "distribution_id": "EDFDVBD6EXAMPLE",
        "access_key_id": AWS_KEY_ID,
        "secret_access_key": AWS_SECRET,
    }
    return cdn(server, kind="cloudfront", **{**defaults, **fields})


@pytest.fixture
async def adapters() -> AsyncIterator[list[CdnAdapter]]:
    """Adapters made by a test, closed after it."""
    made: list[CdnAdapter] = []
    yield made
    for adapter in made:
        await adapter.aclose()


def make(adapters: list[CdnAdapter], settings: CdnSettings) -> CdnAdapter:
    adapter = build_adapter(settings)
    adapters.append(adapter)
    return adapter


def assert_no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# -- Cloudflare --------------------------------------------------------------------------


async def test_cloudflare_requests_and_batches(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    adapter = make(adapters, cloudflare(server))
    urls = [f"https://www.example.com/img/{i}.jpg" for i in range(250)]
    result = await adapter.purge(
        urls + urls[:5],  # duplicates are sent once
        ["product-1", "product-2"],
        ["https://www.example.com/img/", "https://www.example.com/q?a=1"],
        ["www.example.com"],
        False,
    )
    assert result.ok and result.error is None
    requests = server.requests
    assert len(requests) == 3 + 1 + 1 + 1 == result.calls == result.attempts
    for request in requests:
        assert request.method == "POST"
        assert request.path == "/client/v4/zones/023e105f4ecef8ad/purge_cache"
        assert request.header("authorization") == f"Bearer {CF_TOKEN}"
        assert request.header("content-type") == "application/json"
    bodies = [request.json() for request in requests]
    files = [body["files"] for body in bodies if "files" in body]
    # 100 per call (documented); calls run concurrently, so they arrive in any order.
    assert sorted(len(batch) for batch in files) == [50, 100, 100]
    assert sorted(url for batch in files for url in batch) == sorted(urls)
    assert {"tags": ["product-1", "product-2"]} in bodies
    assert {"prefixes": ["www.example.com/img/"]} in bodies  # no scheme
    assert {"hosts": ["www.example.com"]} in bodies
    assert all(len(body) == 1 for body in bodies)  # one kind per call
    assert result.sent.urls == 250 and result.sent.prefixes == 1 and result.sent.hosts == 1
    assert [(s.what, s.count) for s in result.skipped] == [("prefixes", 1)]  # the query one
    assert result.ids == ("cf-purge-1",) * 6
    assert result.statuses == (200,) * 6


async def test_cloudflare_soft_everything_and_batch_size(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    adapter = make(adapters, cloudflare(server, batch_size=30))
    result = await adapter.purge([f"https://a.example/{i}" for i in range(31)], [], [], [], True)
    assert result.ok
    assert [r.path for r in server.requests] == [
        "/client/v4/zones/023e105f4ecef8ad/invalidate_cache"
    ] * 2
    assert sorted(len(r.json()["files"]) for r in server.requests) == [1, 30]

    server.reset()
    result = await adapter.purge(["https://a.example/x"], ["t"], [], [], False, everything=True)
    [request] = server.requests
    assert request.json() == {"purge_everything": True}
    assert result.ok and result.sent.everything

    server.reset()
    hard = make(adapters, cloudflare(server, soft_via_invalidate=False))
    result = await hard.purge(["https://a.example/x"], [], [], [], True)
    assert server.requests[0].path.endswith("/purge_cache")
    assert [s.what for s in result.skipped] == ["soft"]


async def test_cloudflare_success_false_is_a_failure(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    server.script(
        Reply(200, json={"success": False, "errors": [{"code": 1134, "message": "bad zone"}]})
    )
    result = await make(adapters, cloudflare(server)).purge(["https://a.example/x"], [], [], [])
    assert not result.ok
    assert result.attempts == 1  # an answer, not a transient failure: not retried
    assert result.error == "HTTP 200, success false: 1134 bad zone"


# -- Fastly ------------------------------------------------------------------------------


async def test_fastly_urls_keys_and_soft(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    adapter = make(adapters, fastly(server))
    keys = [f"key-{i}" for i in range(300)]
    result = await adapter.purge(
        ["https://www.example.com/a%20b.jpg?w=100&h=50", "https://img.example.com/x/"],
        [*keys, "has space"],
        ["https://www.example.com/img/"],
        ["www.example.com"],
        True,
    )
    assert result.ok
    requests = server.requests
    for request in requests:
        assert request.method == "POST"
        assert request.header("fastly-key") == FASTLY_TOKEN
        assert request.header("fastly-soft-purge") == "1"
    url_calls = sorted(r.target for r in requests if r.path.startswith("/purge/"))
    assert url_calls == [
        "/purge/img.example.com/x/",
        "/purge/www.example.com/a%20b.jpg?w=100&h=50",
    ]
    batches = [r for r in requests if r.path == "/service/SU1Z0isxPaozGVKXdv0eY/purge"]
    assert all(r.header("content-type") == "application/json" for r in batches)
    sent_keys = [r.json()["surrogate_keys"] for r in batches]
    assert sorted(len(batch) for batch in sent_keys) == [44, 256]  # 256 keys per call
    assert sorted(key for batch in sent_keys for key in batch) == sorted(keys)
    assert {(s.what, s.count) for s in result.skipped} == {
        ("tags", 1),
        ("prefixes", 1),
        ("hosts", 1),
    }
    assert result.sent.urls == 2 and result.sent.tags == 300
    assert result.ids.count("108-1391560174-974124") == 2  # the URL purges' ids

    server.reset()
    await adapter.purge(["https://www.example.com/a.jpg"], [], [], [], False)
    assert server.requests[0].header("fastly-soft-purge") is None


async def test_fastly_purge_all(server: RecordingServer, adapters: list[CdnAdapter]) -> None:
    result = await make(adapters, fastly(server)).purge(soft=True, everything=True)
    [request] = server.requests
    assert request.target == "/service/SU1Z0isxPaozGVKXdv0eY/purge_all"
    assert request.header("fastly-soft-purge") is None  # purge_all cannot be soft
    assert result.ok and [s.what for s in result.skipped] == ["soft"]


# -- Bunny -------------------------------------------------------------------------------


async def test_bunny_urls_wildcards_and_tags(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    adapter = make(adapters, bunny(server, pull_zone=4242))
    result = await adapter.purge(
        ["https://cdn.example.com/a.jpg?v=2", "https://cdn.example.com/dir/"],
        ["product-123"],
        ["https://cdn.example.com/img/"],
        ["cdn.example.com"],
        False,
    )
    assert result.ok
    requests = server.requests
    assert all(r.method == "POST" and r.header("accesskey") == BUNNY_KEY for r in requests)
    purges = [r.params for r in requests if r.path == "/purge"]
    assert sorted(purges, key=lambda p: p["url"]) == [
        {"url": ["https://cdn.example.com/*"], "async": ["false"]},
        {"url": ["https://cdn.example.com/a.jpg?v=2"], "async": ["false"]},
        {"url": ["https://cdn.example.com/dir/"], "async": ["false"], "exactPath": ["true"]},
        {"url": ["https://cdn.example.com/img/*"], "async": ["false"]},
    ]
    [tag] = [r for r in requests if r.path != "/purge"]
    assert tag.path == "/pullzone/4242/purgeCache"
    assert tag.header("content-type") == "application/json"
    assert tag.json() == {"CacheTag": "product-123"}
    assert result.calls == 5 and result.skipped == ()

    server.reset()
    no_zone = make(adapters, bunny(server, async_purge=True))
    result = await no_zone.purge(["https://cdn.example.com/a.jpg"], ["t1", "t2"], [], [], True)
    [request] = server.requests
    assert request.params["async"] == ["true"]
    assert {(s.what, s.count) for s in result.skipped} == {("tags", 2), ("soft", 0)}


# -- CloudFront --------------------------------------------------------------------------


def verify_sigv4(request: Recorded, server: RecordingServer, key_id: str, secret: str) -> None:
    """Recompute the SigV4 signature of a recorded request with botocore."""
    authorization = request.header("authorization") or ""
    match = re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/us-east-1/cloudfront/aws4_request, "
        r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})",
        authorization,
    )
    assert match is not None, authorization
    assert match[1] == key_id
    amz_date = request.header("x-amz-date")
    assert amz_date is not None and amz_date.startswith(match[2])
    signed = match[3].split(";")
    assert "host" in signed and "x-amz-date" in signed
    aws = AWSRequest(method=request.method, url=server.url + request.target, data=request.body)
    for name in signed:
        aws.headers[name] = request.header(name)
    aws.context["timestamp"] = amz_date
    token = request.header("x-amz-security-token")
    signer = SigV4Auth(Credentials(key_id, secret, token), "cloudfront", "us-east-1")
    expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
    assert expected == match[4]


def invalidation_batch(request: Recorded) -> tuple[int, list[str], str]:
    root = ET.fromstring(request.body)
    assert root.tag == f"{CF_NS}InvalidationBatch"
    quantity = int(root.findtext(f"{CF_NS}Paths/{CF_NS}Quantity") or "-1")
    items = [p.text or "" for p in root.iterfind(f"{CF_NS}Paths/{CF_NS}Items/{CF_NS}Path")]
    return quantity, items, root.findtext(f"{CF_NS}CallerReference") or ""


async def test_cloudfront_signed_invalidations(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    adapter = make(
        adapters,
        cloudfront(server, session_token=AWS_TOKEN, batch_size=2, hosts=["www.example.com"]),
    )
    result = await adapter.purge(
        ["https://www.example.com/a.jpg?w=1", "/b c.jpg", "https://other.example/x.jpg"],
        ["tag-1"],
        ["https://www.example.com/img/", "/video/"],
        [],
        True,
    )
    assert result.ok, result.error
    requests = server.requests
    assert len(requests) == 2 == result.calls  # 4 paths, 2 per invalidation
    batches, references = set(), []
    for request in requests:
        assert request.method == "POST"
        assert request.path == "/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation"
        assert (request.header("authorization") or "").startswith("AWS4-HMAC-SHA256 ")
        assert request.header("x-amz-security-token") == AWS_TOKEN
        verify_sigv4(request, server, AWS_KEY_ID, AWS_SECRET)
        quantity, items, reference = invalidation_batch(request)
        assert quantity == len(items) == 2
        assert all(item.startswith("/") for item in items)
        batches.add(tuple(items))
        references.append(reference)
    assert batches == {("/a.jpg?w=1", "/b%20c.jpg"), ("/img/*", "/video/*")}
    assert len(set(references)) == 2 and all(r.startswith("edgeshield-") for r in references)
    assert {(s.what, s.count) for s in result.skipped} == {("urls", 1), ("tags", 1), ("soft", 0)}
    assert result.ids == ("I2J0I21PCUYOIK",) * 2
    assert result.statuses == (201, 201)

    server.reset()
    await adapter.purge(["/a.jpg"], [], ["/img/"], ["www.example.com"], False)
    [request] = server.requests
    assert invalidation_batch(request)[:2] == (1, ["/*"])  # a host purge covers the rest


async def test_cloudfront_request_matches_botocores_own_client(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    """A stock botocore client, pointed at the same server with endpoint_url, sends the
    same request as the adapter: same path, same XML but for the CallerReference, same
    signed headers, no Content-Type."""
    client = botocore.session.get_session().create_client(
        "cloudfront",
        region_name="us-east-1",
        endpoint_url=server.url,
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=AWS_SECRET,
        config=BotoConfig(retries={"total_max_attempts": 1}),
    )
    answer = await asyncio.to_thread(
        client.create_invalidation,
        DistributionId="EDFDVBD6EXAMPLE",
        InvalidationBatch={
            "Paths": {"Quantity": 2, "Items": ["/a.jpg", "/img/*"]},
            "CallerReference": "REF",
        },
    )
    assert answer["Invalidation"]["Id"] == "I2J0I21PCUYOIK"
    await make(adapters, cloudfront(server)).purge(["/a.jpg"], [], ["/img/"])
    sdk, ours = server.requests
    assert ours.method == sdk.method == "POST" and ours.target == sdk.target
    reference = invalidation_batch(ours)[2]
    assert ours.body == sdk.body.replace(b">REF<", f">{reference}<".encode())
    signed = re.compile(r"SignedHeaders=([^,]+),")
    assert signed.findall(ours.header("authorization") or "") == signed.findall(
        sdk.header("authorization") or ""
    )
    assert ours.header("content-type") is None and sdk.header("content-type") is None
    verify_sigv4(sdk, server, AWS_KEY_ID, AWS_SECRET)  # the checker checks the SDK too


async def test_cloudfront_default_credential_chain(
    server: RecordingServer, adapters: list[CdnAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    adapter = make(adapters, cloudfront(server, access_key_id=None, secret_access_key=None))
    result = await adapter.purge(["/a.jpg"])
    assert result.ok, result.error
    [request] = server.requests
    verify_sigv4(request, server, "AKIDFROMENV", AWS_SECRET)


async def test_cloudfront_retries_keep_the_caller_reference(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    throttled = (
        "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
        "<Message>Rate exceeded</Message></Error></ErrorResponse>"
    )
    server.script(Reply(503), Reply(400, body=throttled))
    result = await make(adapters, cloudfront(server)).purge(["/a.jpg"])
    assert result.ok and result.statuses == (503, 400, 201)
    references = {invalidation_batch(r)[2] for r in server.requests}
    assert len(references) == 1  # CloudFront dedupes a resent batch by its reference
    for request in server.requests:
        verify_sigv4(request, server, AWS_KEY_ID, AWS_SECRET)

    server.reset()
    server.script(
        Reply(400, body=throttled.replace("Throttling", "TooManyInvalidationsInProgress"))
    )
    result = await make(adapters, cloudfront(server)).purge(["/a.jpg"])
    assert not result.ok and result.attempts == 1
    assert result.error == "HTTP 400: TooManyInvalidationsInProgress"


# -- retries, deadlines, failures ---------------------------------------------------------


async def test_retries_429_with_retry_after_then_500_then_success(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    server.script(Reply(429, headers={"retry-after": "1"}), Reply(500))
    result = await make(adapters, cloudflare(server)).purge(["https://a.example/x"])
    assert result.ok
    assert result.attempts == 3 and result.statuses == (429, 500, 200)
    first, second, third = server.requests
    assert second.at - first.at >= 0.95  # Retry-After honoured
    assert third.at - second.at < 0.5  # then the short configured backoff
    assert first.body == second.body == third.body


async def test_gives_up_after_max_attempts(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    server.reset(Reply(500))
    result = await make(adapters, fastly(server, max_attempts=3)).purge(
        ["https://a.example/x"], ["k"]
    )
    assert isinstance(result, CdnPurgeResult)
    assert not result.ok
    assert result.attempts == 6 and result.statuses == (500,) * 6
    assert result.calls == result.failed_calls == 2
    assert result.error == "2 of 2 calls failed; first: HTTP 500 (after 3 attempts)"


async def test_retry_after_beyond_the_deadline_fails_at_once(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    server.script(Reply(429, headers={"retry-after": "30"}))
    result = await make(adapters, bunny(server, deadline=3.0)).purge(["https://a.example/x"])
    assert not result.ok and result.attempts == 1  # decided without waiting: its reason
    assert result.error == "HTTP 429 (no time left to retry after 30.0s)"


async def test_client_errors_are_not_retried_and_secrets_stay_out(
    server: RecordingServer, adapters: list[CdnAdapter], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"success": False, "errors": [{"code": 10000, "message": f"bad token {CF_TOKEN}"}]}
    server.script(Reply(403, json=echo))
    results = [await make(adapters, cloudflare(server)).purge(["https://a.example/x"])]
    server.script(Reply(401, json={"Message": f"key {BUNNY_KEY} refused"}))
    results.append(await make(adapters, bunny(server)).purge(["https://a.example/x"]))
    server.script(
        Reply(403, body="<ErrorResponse><Error><Code>AccessDenied</Code></Error></ErrorResponse>")
    )
    results.append(await make(adapters, cloudfront(server)).purge(["/x"]))
    assert [(r.ok, r.attempts) for r in results] == [(False, 1)] * 3
    assert results[0].error == "HTTP 403: 10000 bad token ***"
    assert results[1].error == "HTTP 401: key *** refused"
    assert results[2].error == "HTTP 403: AccessDenied"
    assert_no_secrets(caplog.text)
    assert_no_secrets(repr(results) + repr([r.to_dict() for r in results]))
    assert "cdn purge cf (cloudflare): failed" in caplog.text


async def test_unreachable_cdn_fails_within_the_deadline(adapters: list[CdnAdapter]) -> None:
    closed = cloudflare(None, deadline=1.0, max_attempts=20)  # a port nobody listens on
    result = await make(adapters, closed).purge(["https://a.example/x"], ["t"])
    assert not result.ok and result.statuses == ()
    # Two calls (URLs, tags), retried until the deadline: their 20 attempts each would
    # take longer than it (backoff 0.02 s doubling to 0.1 s), so it is what stopped them.
    assert 1 < result.attempts < 2 * 20
    # The last attempts end refused, or cut by the deadline on a busy machine: either
    # way both calls are reported failed.
    error = result.error or ""
    assert error.startswith("2 of 2 calls failed; first: "), error
    assert "connection failed" in error or "no time left to retry" in error, error


async def test_a_slow_cdn_times_out_per_attempt(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    server.reset(Reply(200, delay=3.0))
    result = await make(adapters, fastly(server, timeout=0.3, max_attempts=2)).purge(
        ["https://a.example/x"]
    )
    # Both attempts ended by the per-attempt timeout: waited out, the 200 would be a success.
    assert not result.ok and result.attempts == 2
    assert result.error == "timed out (after 2 attempts)"


async def test_paths_and_the_hosts_filter(
    server: RecordingServer, adapters: list[CdnAdapter]
) -> None:
    adapter = make(adapters, cloudflare(server, hosts=["www.example.com", "IMG.example.com"]))
    result = await adapter.purge(
        ["/a.jpg", "https://other.example/b.jpg", "ftp://www.example.com/c"],
        [],
        [],
        ["img.example.com", "other.example"],
        False,
    )
    bodies = [r.json() for r in server.requests]
    assert {"files": ["https://www.example.com/a.jpg", "https://img.example.com/a.jpg"]} in bodies
    assert {"hosts": ["img.example.com"]} in bodies
    assert sorted((s.what, s.count, s.reason) for s in result.skipped) == [
        ("hosts", 1, "host not served by this CDN"),
        ("urls", 1, "host not served by this CDN"),
        ("urls", 1, "not an absolute http(s) URL"),
    ]

    server.reset()
    unhosted = make(adapters, cloudflare(server))
    result = await unhosted.purge(["/a.jpg"])
    assert server.requests == [] and result.ok and result.calls == 0
    assert [(s.what, s.count) for s in result.skipped] == [("urls", 1)]


# -- the fan-out -------------------------------------------------------------------------


async def test_purger_fans_out_concurrently(server: RecordingServer) -> None:
    def slow(request: Recorded) -> Reply:
        reply = vendor_reply(request)
        return Reply(reply.status, reply.headers, reply.body, reply.json, delay=1.0)

    server.reset(slow)
    patient = {"timeout": 5.0, "deadline": 10.0}
    purger = CdnPurger.from_settings(
        [
            cloudflare(server, **patient),
            fastly(server, **patient),
            bunny(server, **patient),
            cloudfront(server, **patient),
            cloudflare(None, name="down", deadline=1.0),
        ],
        keep=7,
    )
    try:
        results = await purger.purge(["https://www.example.com/a.jpg"], [], [], [], False)
        assert [r.name for r in results] == ["cf", "fastly", "bunny", "cloudfront", "down"]
        assert [r.ok for r in results] == [True, True, True, True, False]
        assert len(server.requests) == 4
        # At the same time, measured on the requests alone: each reached its API before
        # the first answer was due (1 s after the first arrival); one after another, each
        # would have waited for the previous answer (3 s from first to last).
        arrivals = sorted(r.at for r in server.requests)
        assert arrivals[-1] - arrivals[0] < 1.0

        task = purger.submit(["https://www.example.com/b.jpg"], soft=True)
        assert purger.pending == 1
        later = await task
        assert [r.soft for r in later] == [True] * 5
        recent = purger.recent()
        assert len(recent) == 7  # bounded
        assert recent[0] is later[-1]  # newest first
        assert recent[0].to_dict()["name"] == "down"
        await asyncio.sleep(0)
        assert purger.pending == 0
    finally:
        await purger.aclose()
