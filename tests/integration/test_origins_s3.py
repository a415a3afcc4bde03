"""S3Origin against a real S3 endpoint (moto's server, IAM authentication enforced), the
scriptable test origin for the error answers moto cannot be made to give, and unit tests
for keys, URLs and signing."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from botocore.credentials import Credentials
from hypothesis import given, settings
from hypothesis import strategies as st

from config.schema import S3Origin as S3OriginSettings
from proxy.http.paths import BadPath, normalize_path
from routing.origins import build_origin
from routing.origins.base import (
    BadOriginPath,
    OriginBodyError,
    OriginBodyTimeout,
    OriginRequest,
    OriginResponse,
    OriginTimeout,
    OriginUnavailable,
)
from routing.origins.s3 import (
    MAX_ERROR_BODY,
    BadKey,
    Endpoint,
    S3AccessDenied,
    S3InvalidResponse,
    S3Origin,
    S3RequestRejected,
    S3SlowDown,
    S3WrongEndpoint,
    encode_key,
    object_key,
    parse_error,
    sign,
)
from tests.support.origin_server import OriginServer, gen_bytes
from tests.support.ports import free_port
from tests.support.s3_server import BIG, S3Server, s3_server

__all__ = ["s3_server"]  # the module-scoped moto fixture, used by name below

FAST = {"connect_timeout": 1.0, "first_byte_timeout": 2.0, "read_timeout": 2.0}
LOGGER = "edgeshield.origins.s3"
FAKE_SECRET = "fake/Secret+Key0000000000000000000000000"


def s3_settings(**kw: Any) -> S3OriginSettings:
    return S3OriginSettings.model_validate({"kind": "s3", "bucket": "media", **FAST, **kw})


@pytest.fixture
async def make() -> AsyncIterator[Any]:
    made: list[S3Origin] = []

    def factory(name: str = "bucket", transport: Any = None, **kw: Any) -> S3Origin:
        origin = S3Origin(name, s3_settings(**kw), transport=transport)
        made.append(origin)
        return origin

    yield factory
    for origin in made:
        await origin.aclose()


@pytest.fixture
def moto_origin(s3_server: S3Server, make: Any) -> Any:
    """S3Origin factory against moto, path-style, with the `edge` user's key."""

    def factory(user: str = "edge", **kw: Any) -> S3Origin:
        key = s3_server.keys[user]
        fields: dict[str, Any] = {
            "endpoint_url": s3_server.endpoint,
            "addressing": "path",
            "access_key_id": key.access_key_id,
            "secret_access_key": key.secret_access_key,
        }
        if key.session_token:
            fields["session_token"] = key.session_token
        origin: S3Origin = make(**{**fields, **kw})
        return origin

    return factory


@pytest.fixture
def scripted(origin: OriginServer, make: Any) -> Any:
    """S3Origin factory against the scriptable test origin (conftest's `origin`)."""

    def factory(**kw: Any) -> S3Origin:
        fields: dict[str, Any] = {
            "endpoint_url": origin.url,
            "addressing": "path",
            "access_key_id": "AKIDEXAMPLE",
            "secret_access_key": FAKE_SECRET,
        }
        s3: S3Origin = make(**{**fields, **kw})
        return s3

    return factory


def client_path(key: str) -> str:
    """The path of `key` as the pipeline hands it over (a client's encoding, normalised)."""
    return normalize_path(quote("/" + key, safe="/"))


async def fetch(
    origin: S3Origin, path: str, method: str = "GET", **kw: Any
) -> tuple[OriginResponse, bytes]:
    path, _, query = path.partition("?")
    resp = await origin.fetch(OriginRequest(method, path, query=query, **kw))
    return resp, b"".join([chunk async for chunk in resp.body()])


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelname == "WARNING"]


# -- the endpoint really checks signatures ---------------------------------------------


def test_unsigned_request_is_refused(s3_server: S3Server) -> None:
    response = httpx.get(f"{s3_server.endpoint}/media/hello.txt", trust_env=False)
    assert response.status_code == 403


def test_wrongly_signed_request_is_refused(s3_server: S3Server) -> None:
    key = s3_server.keys["edge"]
    url = f"{s3_server.endpoint}/media/hello.txt"
    host = f"127.0.0.1:{s3_server.port}"
    for secret, status in (
        ("wrong" + key.secret_access_key[5:], 403),
        (key.secret_access_key, 200),
    ):
        headers = sign(
            "GET", url, [("host", host)], Credentials(key.access_key_id, secret), "us-east-1"
        )
        response = httpx.get(url, headers=headers, trust_env=False)
        assert response.status_code == status
        if status == 403:
            assert b"<Code>SignatureDoesNotMatch</Code>" in response.content


# -- reading objects -------------------------------------------------------------------


async def test_get_streams_the_object(moto_origin: Any) -> None:
    s3 = moto_origin()
    resp, body = await fetch(s3, "/big.bin")
    assert resp.status == 200 and resp.content_length == BIG
    assert body == gen_bytes(0, BIG)
    headers = dict(resp.headers)
    assert headers["cache-control"] == "max-age=60"
    assert headers["content-type"] == "application/octet-stream"
    assert headers["etag"].startswith('"')


async def test_head_has_headers_and_no_body(moto_origin: Any) -> None:
    resp, body = await fetch(moto_origin(), "/big.bin", method="HEAD")
    assert resp.status == 200 and body == b"" and resp.content_length == BIG
    assert dict(resp.headers)["content-length"] == str(BIG)


@pytest.mark.parametrize(
    "key",
    [
        "with space.txt",
        "plus+sign.txt",
        "100%.txt",
        "q?a=b&c.txt",
        "caf\u00e9/\u65e5\u672c \u2615.jpg",
        "dir/a b+c%d=e&f~g.txt",
    ],
)
async def test_odd_keys(s3_server: S3Server, moto_origin: Any, key: str) -> None:
    resp, body = await fetch(moto_origin(), client_path(key))
    assert resp.status == 200 and body == s3_server.objects["media"][key]


async def test_raw_sub_delims_from_the_client(s3_server: S3Server, moto_origin: Any) -> None:
    # A client may send "+", "=", "&" unencoded; the pipeline keeps them raw.
    path = normalize_path("/dir/a%20b+c%25d=e&f~g.txt")
    resp, body = await fetch(moto_origin(), path)
    assert resp.status == 200 and body == b"mixed"


async def test_key_prefix(moto_origin: Any) -> None:
    s3 = moto_origin(key_prefix="site/v1/")
    assert (await fetch(s3, "/inner.txt"))[1] == b"prefixed"
    assert (await fetch(s3, "/deep/er.txt"))[1] == b"deeper"
    resp, _ = await fetch(s3, "/hello.txt")  # outside the prefix
    assert resp.status == 404


async def test_client_query_never_reaches_the_bucket(moto_origin: Any) -> None:
    for query in ("acl", "tagging", "versionId=nope", "list-type=2"):
        resp, body = await fetch(moto_origin(), f"/hello.txt?{query}")
        assert resp.status == 200 and body == b"hello world\n", query


async def test_bucket_root_is_never_listed(moto_origin: Any) -> None:
    resp, body = await fetch(moto_origin(), "/")
    assert resp.status == 404 and b"hello" not in body and b"ListBucket" not in body


async def test_session_token(moto_origin: Any) -> None:
    resp, body = await fetch(moto_origin("temporary"), "/hello.txt")
    assert resp.status == 200 and body == b"hello world\n"


async def test_build_origin_makes_an_s3_origin(s3_server: S3Server) -> None:
    key = s3_server.keys["edge"]
    settings_ = s3_settings(
        endpoint_url=s3_server.endpoint,
        addressing="path",
        access_key_id=key.access_key_id,
        secret_access_key=key.secret_access_key,
    )
    origin = build_origin("media", settings_)
    try:
        assert isinstance(origin, S3Origin) and origin.name == "media"
        assert key.secret_access_key not in repr(origin)
        resp = await origin.fetch(OriginRequest("GET", "/hello.txt"))
        assert resp.status == 200
        await resp.aclose()
    finally:
        await origin.aclose()


class _ToLoopback(httpx.AsyncBaseTransport):
    """Connects to 127.0.0.1 whatever the URL's host, leaving the Host header alone: a
    virtual-host request to moto without any DNS."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.hosts: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.hosts.append(request.headers["host"])
        request.url = request.url.copy_with(host="127.0.0.1")
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_virtual_host_addressing_against_moto(s3_server: S3Server, make: Any) -> None:
    key = s3_server.keys["edge"]
    transport = _ToLoopback()
    s3 = make(
        transport=transport,
        endpoint_url=f"http://localhost:{s3_server.port}",
        addressing="virtual",
        access_key_id=key.access_key_id,
        secret_access_key=key.secret_access_key,
    )
    resp, body = await fetch(s3, client_path("caf\u00e9/\u65e5\u672c \u2615.jpg"))
    assert resp.status == 200 and body == b"unicode"
    assert transport.hosts == [f"media.localhost:{s3_server.port}"]
    resp, _ = await fetch(s3, "/nothing-here")
    assert resp.status == 404


# -- conditionals and ranges -----------------------------------------------------------


async def test_range_is_forwarded(moto_origin: Any) -> None:
    resp, body = await fetch(moto_origin(), "/big.bin", headers=[("range", "bytes=1000-1999")])
    assert resp.status == 206 and body == gen_bytes(1000, 1000)
    assert dict(resp.headers)["content-range"] == f"bytes 1000-1999/{BIG}"


async def test_validators_are_forwarded(moto_origin: Any) -> None:
    s3 = moto_origin()
    first, _ = await fetch(s3, "/hello.txt")
    fields = dict(first.headers)
    etag, last_modified = fields["etag"], fields["last-modified"]
    resp, body = await fetch(s3, "/hello.txt", headers=[("if-none-match", etag)])
    assert resp.status == 304 and body == b""
    resp, body = await fetch(s3, "/hello.txt", headers=[("if-modified-since", last_modified)])
    assert resp.status == 304
    resp, body = await fetch(s3, "/hello.txt", headers=[("if-match", '"nope"')])
    assert resp.status == 412
    resp, body = await fetch(s3, "/hello.txt", headers=[("if-none-match", '"other"')])
    assert resp.status == 200 and body == b"hello world\n"


# -- S3 errors from the real endpoint --------------------------------------------------


async def test_no_such_key_is_a_404_response(moto_origin: Any) -> None:
    s3 = moto_origin()
    resp, body = await fetch(s3, "/missing.jpg")
    assert resp.status == 404 and b"<Code>NoSuchKey</Code>" in body
    assert resp.content_length == len(body)
    resp, body = await fetch(s3, "/missing.jpg", method="HEAD")
    assert resp.status == 404 and body == b""


async def test_no_such_bucket_is_a_404_and_logged_once(
    moto_origin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    s3 = moto_origin(name="gone", bucket="no-such-bucket")
    for _ in range(3):
        resp, body = await fetch(s3, "/a.jpg")
        assert resp.status == 404 and b"NoSuchBucket" in body
    (line,) = warnings_of(caplog)
    assert "gone" in line and "NoSuchBucket" in line


async def test_wrong_secret(
    s3_server: S3Server, make: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = s3_server.keys["edge"]
    secret = "Wr0ng/" + key.secret_access_key[6:]
    s3 = make(
        name="media-eu",
        endpoint_url=s3_server.endpoint,
        addressing="path",
        access_key_id=key.access_key_id,
        secret_access_key=secret,
    )
    for _ in range(3):
        with pytest.raises(S3AccessDenied) as info:
            await fetch(s3, "/hello.txt")
        err = info.value
        assert err.status == 502 and err.origin == "media-eu"
        assert err.reason == "s3 SignatureDoesNotMatch" and err.code == "SignatureDoesNotMatch"
        assert isinstance(err, OriginUnavailable)
        for text in (str(err), repr(err), err.reason):
            assert secret not in text and key.secret_access_key not in text
    (line,) = warnings_of(caplog)  # logged once, not once per request
    assert "media-eu" in line and "SignatureDoesNotMatch" in line
    assert secret not in caplog.text and key.secret_access_key not in caplog.text


async def test_no_permissions_is_access_denied(moto_origin: Any) -> None:
    with pytest.raises(S3AccessDenied) as info:
        await fetch(moto_origin("nobody"), "/hello.txt")
    assert info.value.reason == "s3 AccessDenied" and info.value.status == 502


async def test_unknown_access_key(s3_server: S3Server, make: Any) -> None:
    s3 = make(
        endpoint_url=s3_server.endpoint,
        addressing="path",
        access_key_id="AKIAUNKNOWNUNKNOWN00",
        secret_access_key=FAKE_SECRET,
    )
    with pytest.raises(S3AccessDenied) as info:
        await fetch(s3, "/hello.txt")
    assert info.value.reason == "s3 InvalidAccessKeyId"


async def test_wrong_session_token(
    moto_origin: Any, s3_server: S3Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = s3_server.keys["temporary"].session_token
    assert token
    with pytest.raises(S3AccessDenied) as info:
        await fetch(moto_origin("temporary", session_token=token[:-4] + "AAAA"), "/hello.txt")
    assert info.value.reason == "s3 InvalidToken"
    resp, _ = await fetch(moto_origin("temporary"), "/hello.txt")
    assert resp.status == 200
    # botocore's signer logs the canonical request (with the token) at DEBUG: kept quiet.
    assert token not in caplog.text and token[:-4] not in caplog.text


async def test_anonymous_against_a_public_bucket(s3_server: S3Server, make: Any) -> None:
    public = make(
        endpoint_url=s3_server.endpoint, addressing="path", bucket="public-media", anonymous=True
    )
    private = make(endpoint_url=s3_server.endpoint, addressing="path", anonymous=True)
    # moto fails every unsigned request once IAM authentication is on, even for public
    # buckets (real S3 evaluates the bucket policy); bucket policies and object ACLs
    # still apply to unsigned requests with authentication off.
    with s3_server.auth_disabled():
        resp, body = await fetch(public, "/open.txt")
        assert resp.status == 200 and body == b"public bytes\n"
        with pytest.raises(S3AccessDenied) as info:
            await fetch(private, "/hello.txt")
        assert info.value.reason == "s3 access denied (403)"
    # The same anonymous request with authentication back on is refused again.
    with pytest.raises(OriginUnavailable):
        await fetch(private, "/hello.txt")


async def test_other_methods_are_405_without_a_request(moto_origin: Any) -> None:
    for method in ("PUT", "DELETE", "POST", "OPTIONS"):
        resp, _ = await fetch(moto_origin(), "/hello.txt", method=method, body=b"x")
        assert resp.status == 405 and ("allow", "GET, HEAD") in resp.headers
    resp, _ = await fetch(moto_origin(), "/hello.txt")
    assert resp.status == 200  # still there


async def test_bad_paths_are_400(moto_origin: Any) -> None:
    for path in ("/a/%2E%2E/b", "/a/./b", "/%FF.jpg", "/\udcff"):
        with pytest.raises(BadOriginPath) as info:
            await fetch(moto_origin(), path)
        assert info.value.status == 400 and info.value.origin == "bucket"


# -- scripted answers (the test origin stands in for S3) --------------------------------


def xml_error(code: str, **extra: str) -> str:
    fields = "".join(f"<{k}>{v}</{k}>" for k, v in extra.items())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>m</Message>{fields}<RequestId>1</RequestId></Error>"
    )


async def test_only_safe_headers_reach_s3(origin: OriginServer, scripted: Any) -> None:
    origin.script("/media/a.jpg", body="img", headers={"etag": '"1"'})
    client_headers = [
        ("cookie", "session=1"),
        ("authorization", "Bearer client"),
        ("x-forwarded-for", "10.0.0.1"),
        ("accept-encoding", "gzip"),
        ("x-amz-security-token", "client-token"),
        ("range", "bytes=0-1"),
        ("if-none-match", '"0"'),
        ("if-none-match", '"2"'),
        ("if-modified-since", "Mon, 01 Jan 2024 00:00:00 GMT"),
    ]
    await fetch(scripted(), "/a.jpg?acl&x=1", headers=client_headers)
    stats = origin.stats()
    assert stats["last_target"]["/media/a.jpg"] == "/media/a.jpg"
    seen = stats["last_headers"]["/media/a.jpg"]
    assert set(seen) == {
        "host",
        "range",
        "if-none-match",
        "if-modified-since",
        "x-amz-date",
        "x-amz-content-sha256",
        "authorization",
    }
    assert seen["host"] == f"127.0.0.1:{origin.port}"
    assert seen["if-none-match"] == '"0", "2"'
    assert seen["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    auth = seen["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/s3/aws4_request" in auth
    assert "SignedHeaders=host;if-modified-since;if-none-match;range;" in auth
    assert FAKE_SECRET not in str(seen)


async def test_anonymous_requests_are_unsigned(origin: OriginServer, scripted: Any) -> None:
    origin.script("/media/a.jpg", body="img")
    s3 = scripted(access_key_id=None, secret_access_key=None, anonymous=True)
    _, body = await fetch(s3, "/a.jpg", headers=[("authorization", "Bearer x")])
    assert body == b"img"
    seen = origin.stats()["last_headers"]["/media/a.jpg"]
    assert set(seen) == {"host"}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, "<html>denied</html"),
        (403, "not xml at all"),
        (403, "<Other><Code>AccessDenied</Code></Other>"),
        (403, "<Error><Code>Access Denied!</Code></Error>"),
        (403, '<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x "y">]><Error><Code>&x;</Code></Error>'),
        (400, "\x00\x01garbage"),
        (404, "<html>404</html>"),
        (301, "moved"),
    ],
)
async def test_invalid_error_body_is_502(
    origin: OriginServer, scripted: Any, status: int, body: str
) -> None:
    origin.script("/media/x", status=status, body=body, headers={"content-type": "text/html"})
    with pytest.raises(S3InvalidResponse) as info:
        await fetch(scripted(), "/x")
    assert info.value.status == 502 and info.value.reason == "invalid S3 error response"


async def test_oversized_error_body_is_502(origin: OriginServer, scripted: Any) -> None:
    origin.script("/media/x", status=403, size=10 * MAX_ERROR_BODY)
    with pytest.raises(S3InvalidResponse):
        await fetch(scripted(), "/x")
    origin.script("/media/y", status=404, body=xml_error("NoSuchKey", Pad="p" * MAX_ERROR_BODY))
    with pytest.raises(S3InvalidResponse):
        await fetch(scripted(), "/y")


@pytest.mark.parametrize(
    ("status", "code", "cls", "reason"),
    [
        (403, "AccessDenied", S3AccessDenied, "s3 AccessDenied"),
        (403, "SignatureDoesNotMatch", S3AccessDenied, "s3 SignatureDoesNotMatch"),
        (403, "InvalidAccessKeyId", S3AccessDenied, "s3 InvalidAccessKeyId"),
        (400, "ExpiredToken", S3AccessDenied, "s3 ExpiredToken"),
        (403, "RequestTimeTooSkewed", S3AccessDenied, "s3 RequestTimeTooSkewed"),
        (400, "InvalidArgument", S3RequestRejected, "s3 InvalidArgument"),
        (409, "OperationAborted", S3RequestRejected, "s3 OperationAborted"),
        (503, "SlowDown", S3SlowDown, "s3 SlowDown"),
        (503, "ServiceUnavailable", S3SlowDown, "s3 ServiceUnavailable"),
    ],
)
async def test_error_codes(
    origin: OriginServer, scripted: Any, status: int, code: str, cls: type, reason: str
) -> None:
    origin.script("/media/x", status=status, body=xml_error(code, AWSAccessKeyId="AKIDEXAMPLE"))
    with pytest.raises(cls) as info:
        await fetch(scripted(), "/x")
    err = info.value
    assert (err.reason, err.code) == (reason, code)
    assert err.status == (503 if status == 503 else 502)
    assert "AKIDEXAMPLE" not in str(err)


async def test_slow_down_without_a_body(origin: OriginServer, scripted: Any) -> None:
    origin.script("/media/x", status=503, body="<html>busy</html>")
    with pytest.raises(S3SlowDown) as info:
        await fetch(scripted(), "/x")
    assert info.value.status == 503
    origin.script("/media/y", status=503, body="")
    with pytest.raises(S3SlowDown) as info:
        await fetch(scripted(), "/y")
    assert info.value.reason == "s3 unavailable (503)"


async def test_wrong_region_hints(origin: OriginServer, scripted: Any) -> None:
    s3 = scripted()
    origin.script(
        "/media/a",
        status=301,
        body=xml_error("PermanentRedirect", Endpoint="media.s3.eu-west-1.amazonaws.com"),
    )
    with pytest.raises(S3WrongEndpoint) as info:
        await fetch(s3, "/a")
    assert info.value.reason == "s3 wrong region/endpoint (use media.s3.eu-west-1.amazonaws.com)"
    origin.script(
        "/media/b",
        status=301,
        body=xml_error("PermanentRedirect"),
        headers={"x-amz-bucket-region": "eu-central-1"},
    )
    with pytest.raises(S3WrongEndpoint) as info:
        await fetch(s3, "/b")
    assert info.value.reason == "s3 wrong region/endpoint (bucket is in eu-central-1)"
    origin.script(
        "/media/c", status=400, body=xml_error("AuthorizationHeaderMalformed", Region="ap-south-1")
    )
    with pytest.raises(S3WrongEndpoint) as info:
        await fetch(s3, "/c")
    assert info.value.reason == "s3 wrong region/endpoint (bucket is in ap-south-1)"
    origin.script("/media/d", status=307, body="", headers={"location": "https://elsewhere/"})
    with pytest.raises(S3WrongEndpoint) as info:
        await fetch(s3, "/d", method="HEAD")
    assert info.value.reason == "s3 wrong region/endpoint"
    origin.script("/media/e", status=301, body=xml_error("PermanentRedirect", Endpoint="a b;c"))
    with pytest.raises(S3WrongEndpoint) as info:
        await fetch(s3, "/e")
    assert info.value.reason == "s3 wrong region/endpoint"  # an odd hint is dropped


async def test_head_errors_have_no_body(origin: OriginServer, scripted: Any) -> None:
    origin.script("/media/x", status=403, body=xml_error("AccessDenied"))
    with pytest.raises(S3AccessDenied) as info:
        await fetch(scripted(), "/x", method="HEAD")
    assert info.value.reason == "s3 access denied (403)"


async def test_5xx_passes_through(
    origin: OriginServer, scripted: Any, caplog: pytest.LogCaptureFixture
) -> None:
    origin.script("/media/x", status=500, body=xml_error("InternalError"))
    s3 = scripted()
    for _ in range(3):
        resp, body = await fetch(s3, "/x")
        assert resp.status == 500 and b"InternalError" in body
    assert warnings_of(caplog) == ["s3 origin bucket (bucket media): s3 answered 500"]


async def test_log_once_per_state_change(
    origin: OriginServer, scripted: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    s3 = scripted(name="shaky")
    origin.script("/media/ok", body="fine")
    origin.script("/media/denied", status=403, body=xml_error("AccessDenied"))
    origin.script("/media/slow", status=503, body=xml_error("SlowDown"))
    sequence = ["ok", "denied", "denied", "denied", "slow", "slow", "ok", "ok", "denied"]
    for name in sequence:
        with contextlib.suppress(S3AccessDenied, S3SlowDown):
            await fetch(s3, f"/{name}")
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert messages == [
        "s3 origin shaky (bucket media): s3 AccessDenied (the key may not read this bucket: "
        "grant s3:GetObject (and s3:ListBucket, so that missing keys answer 404 instead of "
        "403))",
        "s3 origin shaky (bucket media): s3 SlowDown (the bucket asks for fewer requests)",
        "s3 origin shaky (bucket media): answering again (was: s3 SlowDown)",
        "s3 origin shaky (bucket media): s3 AccessDenied (the key may not read this bucket: "
        "grant s3:GetObject (and s3:ListBucket, so that missing keys answer 404 instead of "
        "403))",
    ]


# -- transport failures ----------------------------------------------------------------


async def test_unreachable_endpoint(make: Any, caplog: pytest.LogCaptureFixture) -> None:
    s3 = make(
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        addressing="path",
        anonymous=True,
    )
    for _ in range(3):
        with pytest.raises(OriginUnavailable) as info:
            await fetch(s3, "/x")
        assert info.value.reason == "connect failed" and info.value.status == 502
    assert warnings_of(caplog) == ["s3 origin bucket (bucket media): connect failed"]


async def test_hanging_endpoint_is_a_timeout(origin: OriginServer, scripted: Any) -> None:
    origin.script("/media/h", mode="hang")
    s3 = scripted(first_byte_timeout=0.3)
    with pytest.raises(OriginTimeout) as info:
        await fetch(s3, "/h")
    assert info.value.status == 504 and info.value.reason == "first byte timeout"


async def test_trickling_body_is_a_read_timeout(
    origin: OriginServer, scripted: Any, caplog: pytest.LogCaptureFixture
) -> None:
    origin.script("/media/t", mode="trickle", size=50, trickle_interval=0.3)
    s3 = scripted(read_timeout=0.1)
    resp = await s3.fetch(OriginRequest("GET", "/t"))
    assert resp.status == 200
    with pytest.raises(OriginBodyTimeout):
        async for _ in resp.body():
            pass
    assert warnings_of(caplog) == ["s3 origin bucket (bucket media): read timeout"]


async def test_trickling_error_body_is_bounded(origin: OriginServer, scripted: Any) -> None:
    origin.script("/media/t", status=403, mode="trickle", size=50, trickle_interval=0.3)
    with pytest.raises(OriginBodyTimeout):
        await fetch(scripted(read_timeout=0.1), "/t")


async def test_close_mid_body(origin: OriginServer, scripted: Any) -> None:
    origin.script("/media/c", mode="close-mid", size=200_000)
    resp = await scripted().fetch(OriginRequest("GET", "/c"))
    with pytest.raises(OriginBodyError):
        async for _ in resp.body():
            pass


# -- keys, URLs and signatures (no network) --------------------------------------------


@pytest.mark.parametrize(
    ("path", "prefix", "key"),
    [
        ("/a/b.jpg", "", "a/b.jpg"),
        ("/a%20b.jpg", "", "a b.jpg"),
        ("/a+b=c&d.jpg", "", "a+b=c&d.jpg"),
        ("/100%25", "", "100%"),
        ("/caf%C3%A9/%E2%98%95", "", "caf\u00e9/\u2615"),
        ("/x.jpg", "media/", "media/x.jpg"),
        ("/x.jpg", "v2-", "v2-x.jpg"),
        ("/dir/", "", "dir/"),
        ("/", "", ""),
        ("/", "p/", "p/"),
        ("/a//b", "", "a//b"),
        ("/a/...", "", "a/..."),
    ],
)
def test_object_key(path: str, prefix: str, key: str) -> None:
    assert object_key(path, prefix) == key


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/a/../b", "dot segment in key"),
        ("/a/%2E%2E/b", "dot segment in key"),
        ("/..", "dot segment in key"),
        ("/a/./b", "dot segment in key"),
        ("/a/.", "dot segment in key"),
        ("/a%00b", "control character in key"),
        ("/a%0Ab", "control character in key"),
        ("/%FF", "key is not UTF-8"),
        ("/\udcff", "undecodable path"),
        ("/" + "k" * 1025, "key too long"),
    ],
)
def test_bad_keys(path: str, reason: str) -> None:
    with pytest.raises(BadKey) as info:
        object_key(path)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("a/b.jpg", "a/b.jpg"),
        ("a b", "a%20b"),
        ("a+b", "a%2Bb"),
        ("100%", "100%25"),
        ("~x_y-z.w", "~x_y-z.w"),
        ("?#&=;:@$,", "%3F%23%26%3D%3B%3A%40%24%2C"),
        ("!*'()", "%21%2A%27%28%29"),
        ("caf\u00e9 \u2615", "caf%C3%A9%20%E2%98%95"),
        ("a//b/", "a//b/"),
    ],
)
def test_encode_key(key: str, encoded: str) -> None:
    assert encode_key(key) == encoded


KEYS = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": FAKE_SECRET}


@pytest.mark.parametrize(
    ("fields", "url"),
    [
        ({}, "https://media.s3.us-east-1.amazonaws.com/a%20b.jpg"),
        ({"region": "eu-west-1"}, "https://media.s3.eu-west-1.amazonaws.com/a%20b.jpg"),
        ({"addressing": "path"}, "https://s3.us-east-1.amazonaws.com/media/a%20b.jpg"),
        (
            {"endpoint_url": "https://acc123.r2.cloudflarestorage.com", "region": "auto"},
            "https://media.acc123.r2.cloudflarestorage.com/a%20b.jpg",
        ),
        (
            {"endpoint_url": "https://s3.us-west-004.backblazeb2.com", "region": "us-west-004"},
            "https://media.s3.us-west-004.backblazeb2.com/a%20b.jpg",
        ),
        (
            {"endpoint_url": "http://127.0.0.1:9000", "addressing": "path"},
            "http://127.0.0.1:9000/media/a%20b.jpg",
        ),
        (
            {"endpoint_url": "http://[::1]:9000", "addressing": "path"},
            "http://[::1]:9000/media/a%20b.jpg",
        ),
        (
            {"endpoint_url": "https://storage.googleapis.com:443/", "addressing": "path"},
            "https://storage.googleapis.com/media/a%20b.jpg",
        ),
        (
            {"endpoint_url": "https://gw.example/s3/", "addressing": "path"},
            "https://gw.example/s3/media/a%20b.jpg",
        ),
        (
            {"endpoint_url": "https://gw.example:8443/s3"},
            "https://media.gw.example:8443/s3/a%20b.jpg",
        ),
    ],
)
def test_urls(fields: dict[str, Any], url: str) -> None:
    endpoint = Endpoint.for_settings(s3_settings(**KEYS, **fields))
    assert endpoint.url_for("a b.jpg") == url
    parsed = httpx.URL(url)
    assert endpoint.authority == parsed.netloc.decode()
    assert endpoint.path_for("a b.jpg").encode() == parsed.raw_path


def test_signature_for_virtual_host_addressing() -> None:
    origin = S3Origin("v", s3_settings(**KEYS, region="eu-west-1", session_token="TOKEN/x+="))
    assert origin.endpoint.authority == "media.s3.eu-west-1.amazonaws.com"
    request = OriginRequest("GET", "/a b.jpg", headers=[("range", "bytes=0-9"), ("cookie", "c")])
    headers = dict(origin.request_headers("GET", "a b.jpg", request))
    assert headers["host"] == "media.s3.eu-west-1.amazonaws.com"
    assert headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert headers["x-amz-security-token"] == "TOKEN/x+="
    assert "cookie" not in headers
    auth = headers["authorization"]
    assert "/eu-west-1/s3/aws4_request" in auth
    assert "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token," in auth
    assert FAKE_SECRET not in str(headers)


def test_signature_matches_botocores_own_client() -> None:
    """The same request signed by a boto3 S3 client carries the same signature."""
    import datetime
    from unittest import mock

    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        region_name="eu-west-1",
        aws_access_key_id=KEYS["access_key_id"],
        aws_secret_access_key=KEYS["secret_access_key"],
        config=Config(
            s3={"addressing_style": "virtual", "payload_signing_enabled": False},
            response_checksum_validation="when_required",  # no x-amz-checksum-mode
        ),
    )
    captured: dict[str, str] = {}

    def capture(request: Any, **_: Any) -> None:
        captured.update({k.lower(): _text(v) for k, v in request.headers.items()})
        captured["url"] = request.url
        raise _Stop

    client.meta.events.register("before-send.s3.GetObject", capture)
    when = datetime.datetime(2024, 5, 1, 12, 0, 0)
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        with pytest.raises(_Stop):
            client.get_object(Bucket="media", Key="caf\u00e9/a b+c.jpg", Range="bytes=0-9")
        origin = S3Origin("v", s3_settings(**KEYS, region="eu-west-1"))
        request = OriginRequest("GET", "/caf%C3%A9/a%20b+c.jpg", headers=[("range", "bytes=0-9")])
        key = origin.key_for(request.path)
        ours = dict(origin.request_headers("GET", key, request))
    assert origin.endpoint.url_for(key) == captured["url"]
    assert ours["x-amz-content-sha256"] == captured["x-amz-content-sha256"]
    assert ours["authorization"] == captured["authorization"]


class _Stop(Exception):
    pass


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_anonymous_requests_carry_no_signature() -> None:
    origin = S3Origin("a", s3_settings(anonymous=True))
    headers = origin.request_headers("GET", "k", OriginRequest("GET", "/k"))
    assert headers == [("host", "media.s3.us-east-1.amazonaws.com")]


def test_parse_error() -> None:
    info = parse_error(xml_error("NoSuchKey", Key="a").encode())
    assert info is not None and info.code == "NoSuchKey"
    namespaced = b'<Error xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Code>X1</Code></Error>'
    assert parse_error(namespaced) is not None
    info = parse_error(xml_error("AuthorizationHeaderMalformed", Region="eu-west-1").encode())
    assert info is not None and info.region == "eu-west-1"
    info = parse_error(xml_error("X", Region="EU WEST; rm -rf").encode())
    assert info is not None and info.region is None
    for bad in (b"", b"<Error>", b"<Error></Error>", b"<Err><Code>A</Code></Err>"):
        assert parse_error(bad) is None


# -- property: no request path leaves the bucket ---------------------------------------

_segment = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/"),
    min_size=0,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    segments=st.lists(_segment, min_size=1, max_size=6),
    prefix=st.sampled_from(["", "media/", "v2-", "a/b/"]),
    addressing=st.sampled_from(["path", "virtual"]),
    encode=st.booleans(),
)
def test_paths_never_leave_the_bucket(
    segments: list[str], prefix: str, addressing: str, encode: bool
) -> None:
    raw = "/" + "/".join(quote(s, safe="" if encode else "!$&'()*+,;=:@.") for s in segments)
    try:
        path = normalize_path(raw)
    except BadPath:
        return
    endpoint = Endpoint.for_settings(
        s3_settings(**KEYS, key_prefix=prefix, addressing=addressing, region="eu-west-1")
    )
    try:
        key = object_key(path, prefix)
    except BadKey:
        return
    url = httpx.URL(endpoint.url_for(key))
    base = "/media/" if addressing == "path" else "/"
    host = "s3.eu-west-1.amazonaws.com"
    assert url.host == (host if addressing == "path" else "media." + host)
    raw_path = url.raw_path.decode("ascii")
    assert raw_path.startswith(base) and "?" not in raw_path and "#" not in raw_path
    segments_out = [unquote(s) for s in raw_path[len(base) :].split("/")]
    assert "." not in segments_out and ".." not in segments_out
    assert unquote(raw_path[len(base) :]) == prefix + unquote(path)[1:]


@pytest.fixture(autouse=True)
def _s3_warnings_captured(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    yield
