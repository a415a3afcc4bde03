"""CloudFront: CreateInvalidation, POST /2020-05-31/distribution/{Id}/invalidation.

The XML body is made by botocore's own serializer from the service model:

    <InvalidationBatch xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">
      <Paths><Quantity>2</Quantity><Items><Path>/a.jpg</Path><Path>/img/*</Path></Items>
      </Paths><CallerReference>edgeshield-<uuid4 hex></CallerReference>
    </InvalidationBatch>

and every attempt is signed with botocore's SigV4 signer (service "cloudfront", region
us-east-1 by default), so X-Amz-Date is fresh on each retry. The request goes out through
httpx like every other adapter, which keeps the purge async, inside the common retry
loop and deadline. (A botocore client with `endpoint_url` works against any endpoint as
well, but its calls block a thread and retry on their own schedule.)

What is sent: URLs become their path (and query), prefixes their path plus the "*"
wildcard, a host purge or purge everything becomes "/*" (the distribution serves its
hosts from one cache; "/*" counts as one path), and once "/*" is in a batch nothing else
is needed. Paths are batched by `batch_size`; each batch has its own CallerReference,
kept across its retries, so a retry of a request CloudFront did receive returns the same
invalidation instead of creating a second one. Tags and soft purges do not exist in
CloudFront and are reported as skipped.

Throttling error codes are retried like 429/5xx. TooManyInvalidationsInProgress is not:
invalidations take minutes to finish, far beyond a purge's deadline.

Credentials: the configured key pair, or botocore's default chain (environment, shared
files, container and instance roles), resolved in a thread on first use.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any
from urllib.parse import quote, urlsplit

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from config.cdn import CloudFrontCdn
from proxy.cdn_purge.base import (
    Call,
    CallFailed,
    HttpAdapter,
    Plan,
    PurgeCounts,
    Skipped,
    Targets,
    Verdict,
    chunks,
    retryable_status,
    url_host,
)

# botocore's signer logs the canonical request at DEBUG, session token included.
logging.getLogger("botocore.auth").setLevel(logging.INFO)

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
    }
)
# Kept as they are in a path ("%": the proxy's paths are already percent-encoded).
_PATH_SAFE = "/%!$&'()*+,;=:@~"
_QUERY_SAFE = _PATH_SAFE + "?"


class CloudFrontAdapter(HttpAdapter):
    kind = "cloudfront"
    settings: CloudFrontCdn

    def __init__(self, settings: CloudFrontCdn, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.settings = settings
        self._session = botocore.session.Session()
        model = self._session.get_service_model("cloudfront")
        self._operation = model.operation_model("CreateInvalidation")
        self._serializer = create_serializer(model.protocol, include_validation=True)
        self._parser = create_parser(model.protocol)
        self._credentials: Credentials | None = None
        self._secrets: list[str] = []
        if settings.access_key_id is not None and settings.secret_access_key is not None:
            token = settings.session_token
            self._credentials = Credentials(
                settings.access_key_id.get_secret_value(),
                settings.secret_access_key.get_secret_value(),
                token.get_secret_value() if token is not None else None,
            )
        self._resolving = asyncio.Lock()

    def secrets(self) -> list[str]:
        return self._secrets

    # -- the plan ----------------------------------------------------------------------

    def plan(self, targets: Targets) -> Plan:
        skipped: list[Skipped] = []
        if targets.soft:
            skipped.append(Skipped("soft", 0, "CloudFront has no soft purge: invalidated"))
        if targets.tags:
            skipped.append(Skipped("tags", len(targets.tags), "CloudFront has no tag purge"))
        if targets.everything:
            return Plan(self._calls(["/*"]), skipped, PurgeCounts(everything=True))

        url_paths = self._paths(targets.urls, "urls", skipped)
        prefix_paths = [
            path if path.endswith("*") else path + "*"
            for path in self._paths(targets.prefixes, "prefixes", skipped)
        ]
        hosts, skip = self.own_hosts(targets.hosts)
        skipped += skip
        paths = list(dict.fromkeys([*url_paths, *prefix_paths, *(["/*"] if hosts else [])]))
        if "/*" in paths:
            paths = ["/*"]
        sent = PurgeCounts(urls=len(url_paths), prefixes=len(prefix_paths), hosts=len(hosts))
        return Plan(self._calls(paths), skipped, sent)

    def _paths(self, values: tuple[str, ...], what: str, skipped: list[Skipped]) -> list[str]:
        """Invalidation paths for URLs or paths; URLs of other hosts are left out."""
        hosts = self.settings.hosts
        paths: list[str] = []
        foreign = invalid = 0
        for value in values:
            if value.startswith("/"):
                path, query = value.partition("?")[::2]
            else:
                host = url_host(value)
                if host is None:
                    invalid += 1
                    continue
                if hosts and host not in hosts:
                    foreign += 1
                    continue
                parts = urlsplit(value)
                path, query = parts.path or "/", parts.query
            path = quote(path, safe=_PATH_SAFE)
            paths.append(f"{path}?{quote(query, safe=_QUERY_SAFE)}" if query else path)
        if foreign:
            skipped.append(Skipped(what, foreign, "host not served by this CDN"))
        if invalid:
            skipped.append(Skipped(what, invalid, "not a path or an absolute http(s) URL"))
        return list(dict.fromkeys(paths))

    def _calls(self, paths: list[str]) -> list[Call]:
        calls = []
        for batch in chunks(paths, self.settings.batch_size):
            reference = f"edgeshield-{uuid.uuid4().hex}"
            request = self._serializer.serialize_to_request(
                {
                    "DistributionId": self.settings.distribution_id,
                    "InvalidationBatch": {
                        "Paths": {"Quantity": len(batch), "Items": batch},
                        "CallerReference": reference,
                    },
                },
                self._operation,
            )
            query = request.get("query_string") or ""
            url = self.url(request["url_path"], query if isinstance(query, str) else "")
            headers = [(name.lower(), str(value)) for name, value in request["headers"].items()]
            calls.append(
                Call(
                    "paths",
                    len(batch),
                    request["method"],
                    url,
                    headers,
                    request["body"],
                    extra={"caller_reference": reference},
                )
            )
        return calls

    # -- signing -----------------------------------------------------------------------

    async def prepare_headers(self, call: Call) -> list[tuple[str, str]]:
        credentials = await self._frozen_credentials()
        request = AWSRequest(method=call.method, url=str(call.url), data=call.body)
        for name, value in call.headers:
            request.headers[name] = value
        SigV4Auth(credentials, "cloudfront", self.settings.region).add_auth(request)
        return [(name.lower(), value) for name, value in request.headers.items()]

    async def _frozen_credentials(self) -> Credentials:
        """Current credentials; the default chain and refreshes may do I/O (files,
        the instance metadata service), so they run in a thread."""
        if self._credentials is None:
            async with self._resolving:
                if self._credentials is None:
                    try:
                        found = await asyncio.to_thread(self._session.get_credentials)
                    except Exception as exc:  # a broken profile must not escape as a bug
                        raise CallFailed(f"AWS credentials: {type(exc).__name__}") from None
                    if found is None:
                        raise CallFailed(
                            "no AWS credentials: set access_key_id and secret_access_key, "
                            "or configure botocore's default chain"
                        )
                    self._credentials = found
        credentials = self._credentials
        if isinstance(credentials, RefreshableCredentials):
            try:
                frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
            except Exception as exc:
                raise CallFailed(f"AWS credentials refresh: {type(exc).__name__}") from None
        else:
            frozen = credentials.get_frozen_credentials()
        for secret in (frozen.secret_key, frozen.token, frozen.access_key):
            if secret and secret not in self._secrets:
                self._secrets.append(secret)
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    # -- answers -----------------------------------------------------------------------

    def interpret(self, call: Call, status: int, body: bytes) -> Verdict:
        parsed = self._parse(status, body)
        if 200 <= status < 300:
            invalidation = parsed.get("Invalidation")
            purge_id = invalidation.get("Id") if isinstance(invalidation, dict) else None
            return Verdict(ok=True, purge_id=purge_id if isinstance(purge_id, str) else None)
        error = parsed.get("Error")
        code = error.get("Code") if isinstance(error, dict) else None
        retry = retryable_status(status) or code in THROTTLING_CODES
        # botocore makes up the status as the code when the body is not CloudFront's XML.
        known = isinstance(code, str) and code and code != str(status)
        detail = f": {code}" if known else ""
        return Verdict(ok=False, retry=retry, error=f"HTTP {status}{detail}")

    def _parse(self, status: int, body: bytes) -> dict[str, Any]:
        try:
            parsed = self._parser.parse(
                {"status_code": status, "headers": {}, "body": body},
                self._operation.output_shape,
            )
        except Exception:  # not CloudFront's XML (a proxy's error page ...)
            return {}
        return parsed if isinstance(parsed, dict) else {}
