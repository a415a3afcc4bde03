"""An S3-compatible bucket as an origin: AWS S3, Cloudflare R2, Backblaze B2, MinIO, GCS
(interoperability API), Wasabi. GET and HEAD only.

- The request path `/a/b.jpg` is the key `key_prefix + "a/b.jpg"`: the pipeline's
  percent-encoded path is decoded once and re-encoded the way S3 (and SigV4's canonical
  URI) expects, every byte but A-Z a-z 0-9 `-_.~/` as %XX (botocore's own `percent_encode`).
  Keys with "." or ".." segments are refused (400) so that no server or intermediary can
  resolve them into another bucket; an empty key (the bucket root, which S3 would answer
  with a listing) is a local 404 without asking S3.
- The client's query string never reaches the bucket (S3 reads `?acl`, `?versionId=`,
  `?list-type=` ... as operations); it still takes part in the cache key upstream.
- Only Range, If-None-Match, If-Modified-Since, If-Match and If-Unmodified-Since are
  forwarded; cookies, Authorization and all other client fields are dropped.
- Requests are signed with botocore's SigV4 signer for S3 (`S3SigV4Auth`, service "s3",
  `x-amz-content-sha256: UNSIGNED-PAYLOAD`), or sent unsigned in anonymous mode. No
  cryptography is written here.
- Transport, timeouts and streaming are the http origin's (`routing.origins.http`).

S3 error responses are mapped deliberately (docs/origins.md has the table):

| S3 answer                                         | result                              |
|---------------------------------------------------|-------------------------------------|
| 2xx, 304, 412, 416                                | passed through                      |
| 404 (NoSuchKey, NoSuchBucket, HEAD without body)  | passed through as a 404 response    |
| 403/400 credentials or permissions (AccessDenied, | S3AccessDenied, 502                 |
|   SignatureDoesNotMatch, InvalidAccessKeyId, ...) |                                     |
| 3xx (PermanentRedirect ...), 400 wrong region     | S3WrongEndpoint, 502 (region hint)  |
| other 4xx                                         | S3RequestRejected, 502              |
| 503 (SlowDown)                                    | S3SlowDown, 503                     |
| other 5xx                                         | passed through (stale-if-error)     |
| error body not S3 XML, or over 64 KiB             | S3InvalidResponse, 502              |

Only the S3 error *code* (checked to be a short word) and region/endpoint hints (checked
against strict patterns) are ever used from an error body: S3 puts the access key id,
the string to sign and the canonical request (with any session token) into some error
bodies, so bodies are never logged. Failures are logged once per change of state per
origin, not once per request.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import httpx
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.utils import percent_encode

from config.schema import S3Origin as S3OriginSettings
from routing.origins.base import (
    BadOriginPath,
    OriginError,
    OriginRequest,
    OriginResponse,
    OriginUnavailable,
)
from routing.origins.http import HttpResponse, new_client, send_streaming

log = logging.getLogger("edgeshield.origins.s3")
# botocore's signer logs the canonical request at DEBUG, and with temporary credentials
# that includes the session token: keep it quiet even when edgeshield logs at debug.
logging.getLogger("botocore.auth").setLevel(logging.INFO)

# Client request fields S3 gets; everything else stays here.
FORWARDED_HEADERS = (
    "range",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
)
# At most this much of an error body is read (real S3 error documents are < 2 KiB).
MAX_ERROR_BODY = 64 * 1024
MAX_KEY_BYTES = 1024  # S3's limit for a key, in UTF-8 bytes

# Error codes that mean "these credentials may not read this bucket" (status 400 or 403).
ACCESS_CODES = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidSecurity",
        "InvalidToken",
        "RequestTimeTooSkewed",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
_HINTS = {
    "AccessDenied": "the key may not read this bucket: grant s3:GetObject (and "
    "s3:ListBucket, so that missing keys answer 404 instead of 403)",
    "SignatureDoesNotMatch": "check secret_access_key and region",
    "InvalidAccessKeyId": "check access_key_id (and endpoint_url: keys belong to one service)",
    "ExpiredToken": "the session_token has expired",
    "InvalidToken": "check session_token",
    "RequestTimeTooSkewed": "this machine's clock is off",
    "NoSuchBucket": "check bucket, endpoint_url and addressing",
    "SlowDown": "the bucket asks for fewer requests",
}
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9.]{0,63}")
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_HOSTNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
_UNSIGNED_PAYLOAD = Config(s3={"payload_signing_enabled": False})
_NOT_FOUND = b"not found\n"
_NOT_ALLOWED = b"method not allowed\n"


class S3Error(OriginUnavailable):
    """S3 answered, but not with something the proxy can serve. `code` is S3's error code
    (e.g. "AccessDenied") when the answer had one."""

    def __init__(self, origin: str, reason: str, code: str | None = None) -> None:
        super().__init__(origin, reason)
        self.code = code


class S3AccessDenied(S3Error):
    """The credentials were refused, or may not read the object (AccessDenied,
    SignatureDoesNotMatch, InvalidAccessKeyId, ExpiredToken, ...). A group with
    `failover_on = ["403"]` fails over on it (moving between buckets)."""

    failover_kind = "403"


class S3WrongEndpoint(S3Error):
    """A redirect or a wrong-region error: the bucket lives elsewhere."""


class S3RequestRejected(S3Error):
    """Any other 4xx error from S3 (InvalidRequest, InvalidBucketName, ...)."""


class S3InvalidResponse(S3Error):
    """An error answer whose body is not an S3 XML error document."""


class S3SlowDown(S3Error):
    """503 (SlowDown): S3 throttles this bucket or prefix."""

    status = 503


# -- keys and URLs ---------------------------------------------------------------------


class BadKey(ValueError):
    """The request path cannot be a safe S3 key; `reason` is short and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def object_key(path: str, key_prefix: str = "") -> str:
    """The S3 key for a normalised, percent-encoded request path ("" for the bucket
    root). Raises BadKey when the path cannot be a safe key."""
    try:
        raw = unquote_to_bytes(path)
    except UnicodeError:
        raise BadKey("undecodable path") from None
    if raw.startswith(b"/"):
        raw = raw[1:]
    key = key_prefix.encode("utf-8") + raw
    if any(b < 0x20 or b == 0x7F for b in key):
        raise BadKey("control character in key")
    if any(segment in (b".", b"..") for segment in key.split(b"/")):
        raise BadKey("dot segment in key")
    if len(key) > MAX_KEY_BYTES:
        raise BadKey("key too long")
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        raise BadKey("key is not UTF-8") from None


def encode_key(key: str) -> str:
    """A key as it appears in the URL path and in SigV4's canonical URI."""
    encoded: str = percent_encode(key, safe="/~")
    return encoded


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where requests for one bucket go: the URL scheme, the Host value (with the port
    unless it is the scheme's default) and the path up to the key."""

    scheme: str
    host: str
    port: int | None
    base_path: str  # "" or "/prefix", then "/bucket" for path-style

    @classmethod
    def for_settings(cls, settings: S3OriginSettings) -> Endpoint:
        endpoint = (
            str(settings.endpoint_url)
            if settings.endpoint_url is not None
            else f"https://s3.{settings.region}.amazonaws.com"
        )
        url = httpx.URL(endpoint)
        host = url.host
        prefix = url.raw_path.decode("ascii").split("?", 1)[0].rstrip("/")
        if settings.addressing == "virtual":
            host = f"{settings.bucket}.{host}"
        else:
            prefix = f"{prefix}/{settings.bucket}"
        return cls(url.scheme, host, url.port, prefix)

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def path_for(self, key: str) -> str:
        return f"{self.base_path}/{encode_key(key)}"

    def url_for(self, key: str) -> str:
        return f"{self.scheme}://{self.authority}{self.path_for(key)}"


def sign(
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    credentials: Credentials,
    region: str,
) -> list[tuple[str, str]]:
    """`headers` (which must include host) plus X-Amz-Date, X-Amz-Content-SHA256
    (UNSIGNED-PAYLOAD), X-Amz-Security-Token (with a session token) and Authorization,
    from botocore's SigV4 signer for S3. Every given header is signed."""
    request = AWSRequest(method=method, url=url)
    for name, value in headers:
        request.headers[name] = value
    request.context["client_config"] = _UNSIGNED_PAYLOAD
    S3SigV4Auth(credentials, "s3", region).add_auth(request)
    return [(name.lower(), value) for name, value in request.headers.items()]


# -- S3 error documents ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3ErrorInfo:
    code: str | None
    region: str | None = None  # where the bucket is, when S3 says so
    endpoint: str | None = None  # the endpoint S3 redirects to


def parse_error(body: bytes) -> S3ErrorInfo | None:
    """The code and hints of an S3 XML error document; None when the body is not one.
    Only values matching strict patterns are kept: the rest of an error body (request
    ids, the access key id, the canonical request) is never used."""
    if len(body) > MAX_ERROR_BODY or b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return None
    try:
        root = ET.fromstring(body)
    except (ET.ParseError, ValueError):
        return None
    if root.tag.rsplit("}", 1)[-1] != "Error":
        return None
    fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in root}
    code = fields.get("Code", "")
    if not _CODE.fullmatch(code):
        return None
    region = fields.get("Region") or fields.get("BucketRegion") or ""
    endpoint = fields.get("Endpoint", "")
    return S3ErrorInfo(
        code=code,
        region=region if _REGION.fullmatch(region) else None,
        endpoint=endpoint if _HOSTNAME.fullmatch(endpoint) else None,
    )


# -- responses -------------------------------------------------------------------------


class BufferedResponse:
    """An OriginResponse whose (small) body is already in memory."""

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        content_length: int | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.content_length: int | None = len(body) if content_length is None else content_length
        self._body = body

    async def body(self) -> AsyncIterator[bytes]:
        body, self._body = self._body, b""
        if body:
            yield body

    async def aclose(self) -> None:
        self._body = b""


class S3Response:
    """Passes S3's streaming response through. A broken body marks the origin failed; a
    complete one (when `healthy`) marks it answering again."""

    def __init__(self, inner: OriginResponse, state: _State, *, healthy: bool = True) -> None:
        self.status = inner.status
        self.headers = inner.headers
        self.content_length = inner.content_length
        self._inner = inner
        self._state = state
        self._healthy = healthy

    async def body(self) -> AsyncIterator[bytes]:
        chunks = self._inner.body()
        try:
            async for chunk in chunks:
                yield chunk
        except OriginError as exc:
            self._state.failed(exc.reason)
            raise
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        if self._healthy:
            self._state.ok()

    async def aclose(self) -> None:
        await self._inner.aclose()


class _State:
    """What went wrong last with one origin, so that a failure is logged when it starts
    (or changes), not on every request, and the recovery once."""

    def __init__(self, origin: str, bucket: str) -> None:
        self.origin = origin
        self.bucket = bucket
        self.last: str | None = None

    def failed(self, reason: str, code: str | None = None) -> None:
        if reason == self.last:
            return
        self.last = reason
        hint = _HINTS.get(code or "")
        log.warning(
            "s3 origin %s (bucket %s): %s%s",
            self.origin,
            self.bucket,
            reason,
            f" ({hint})" if hint else "",
        )

    def ok(self) -> None:
        if self.last is None:
            return
        log.info(
            "s3 origin %s (bucket %s): answering again (was: %s)",
            self.origin,
            self.bucket,
            self.last,
        )
        self.last = None


# -- the origin ------------------------------------------------------------------------


class S3Origin:
    """Objects of one bucket. `transport` replaces httpx's network transport (tests)."""

    def __init__(
        self,
        name: str,
        settings: S3OriginSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.endpoint = Endpoint.for_settings(settings)
        self._base_url = httpx.URL(f"{self.endpoint.scheme}://{self.endpoint.authority}/")
        self._credentials: Credentials | None = None
        if not settings.anonymous:
            assert settings.access_key_id is not None and settings.secret_access_key is not None
            token = settings.session_token
            self._credentials = Credentials(
                settings.access_key_id.get_secret_value(),
                settings.secret_access_key.get_secret_value(),
                token.get_secret_value() if token is not None else None,
            )
        self._state = _State(name, settings.bucket)
        self._client = new_client(settings, transport)

    def __repr__(self) -> str:
        return f"S3Origin({self.name!r}, bucket={self.settings.bucket!r})"

    def key_for(self, path: str) -> str:
        try:
            return object_key(path, self.settings.key_prefix)
        except BadKey as exc:
            raise BadOriginPath(self.name, exc.reason) from None

    def request_headers(
        self, method: str, key: str, request: OriginRequest
    ) -> list[tuple[str, str]]:
        """What S3 gets: Host, the forwarded client fields and, unless anonymous, the
        SigV4 fields."""
        forwarded: dict[str, str] = {}
        for name, value in request.headers:
            lname = name.lower()
            if lname in FORWARDED_HEADERS:
                forwarded[lname] = f"{forwarded[lname]}, {value}" if lname in forwarded else value
        headers = [("host", self.endpoint.authority), *forwarded.items()]
        if self._credentials is None:
            return headers
        url = self.endpoint.url_for(key)
        return sign(method, url, headers, self._credentials, self.settings.region)

    async def fetch(self, request: OriginRequest) -> OriginResponse:
        method = request.method.upper()
        if method not in ("GET", "HEAD"):
            return _local(405, _NOT_ALLOWED, head=False, extra=[("allow", "GET, HEAD")])
        key = self.key_for(request.path)
        if not key:
            return _local(404, _NOT_FOUND, head=method == "HEAD")
        try:
            headers = self.request_headers(method, key, request)
            url = self._base_url.copy_with(raw_path=self.endpoint.path_for(key).encode("ascii"))
        except (UnicodeError, httpx.InvalidURL):
            raise BadOriginPath(self.name, "invalid path") from None
        encoded = [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers]
        try:
            response = await send_streaming(
                self._client, self.name, self.settings, method, url, encoded
            )
        except OriginError as exc:
            self._state.failed(exc.reason)
            raise
        try:
            return await self._answer(method, response)
        except S3Error as exc:
            self._state.failed(exc.reason, exc.code)
            raise
        except OriginError as exc:
            self._state.failed(exc.reason)
            raise

    async def _answer(self, method: str, response: HttpResponse) -> OriginResponse:
        """Map S3's answer: pass it on, or raise the S3Error it stands for."""
        status = response.status
        if status < 300 or status in (304, 412, 416):
            if status in (304, 412, 416) or response.content_length == 0 or method == "HEAD":
                self._state.ok()
            return S3Response(response, self._state)
        if status >= 500 and status != 503:
            # S3's own trouble, passed on: the pipeline may serve stale (stale-if-error).
            self._state.failed(f"s3 answered {status}")
            return S3Response(response, self._state, healthy=False)
        if status == 404 and method == "HEAD":
            self._state.ok()
            return S3Response(response, self._state)
        if method == "HEAD" or response.content_length == 0:
            body = b""
            await response.aclose()
        else:
            body = await self._error_body(response)
        info = parse_error(body) if body else S3ErrorInfo(code=None)
        if status == 503:  # throttling, whatever the body says (a proxy's HTML page ...)
            code = info.code if info is not None else None
            raise S3SlowDown(self.name, f"s3 {code or 'unavailable (503)'}", code or "SlowDown")
        if info is None:
            raise S3InvalidResponse(self.name, "invalid S3 error response")
        code = info.code
        if status == 404:
            if code == "NoSuchBucket":
                self._state.failed("s3 NoSuchBucket", code)
            else:
                self._state.ok()
            return BufferedResponse(status, response.headers, body)
        region = info.region or _header_region(response.headers)
        if 300 <= status < 400 or (code == "AuthorizationHeaderMalformed" and region):
            where = f"bucket is in {region}" if region else None
            if where is None and info.endpoint:
                where = f"use {info.endpoint}"
            reason = "s3 wrong region/endpoint" + (f" ({where})" if where else "")
            raise S3WrongEndpoint(self.name, reason, code)
        if code in ACCESS_CODES or (code is None and status == 403):
            raise S3AccessDenied(self.name, f"s3 {code or 'access denied (403)'}", code)
        raise S3RequestRejected(self.name, f"s3 {code or f'rejected ({status})'}", code)

    async def _error_body(self, response: HttpResponse) -> bytes:
        """Up to MAX_ERROR_BODY + 1 bytes of an error body; the connection is released."""
        data = bytearray()
        chunks = response.body()
        try:
            async for chunk in chunks:
                data += chunk
                if len(data) > MAX_ERROR_BODY:
                    break
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
            await response.aclose()
        return bytes(data)

    async def aclose(self) -> None:
        await self._client.aclose()


def _header_region(headers: list[tuple[str, str]]) -> str | None:
    for name, value in headers:
        if name == "x-amz-bucket-region" and _REGION.fullmatch(value.strip()):
            return value.strip()
    return None


def _local(
    status: int, body: bytes, *, head: bool, extra: list[tuple[str, str]] | None = None
) -> BufferedResponse:
    headers = [
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(body))),
        *(extra or []),
    ]
    return BufferedResponse(status, headers, b"" if head else body, content_length=len(body))
