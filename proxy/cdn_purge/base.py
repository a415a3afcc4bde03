"""What every CDN purge adapter shares: the result type, the normalised purge targets, and
the engine that sends an adapter's API calls with retries inside one deadline.

An adapter turns a purge into a plan (`plan`): the API calls to make, what it cannot send
(`Skipped`, e.g. prefixes to a CDN without prefix purges) and what the calls cover. The
engine (`HttpAdapter.purge`) runs the calls, at most `concurrency` at once, each retried on
connection errors, timeouts, 429 and 5xx with exponential backoff and jitter (or after the
CDN's Retry-After), until `max_attempts` or the purge's `deadline`. It never raises: every
outcome, including a bug, becomes a `CdnPurgeResult`.

Secrets never reach a log line or a result: only the adapter's name, kind, statuses and
counts are logged, and any text taken from a CDN's answer is shortened, stripped of
control characters and has the adapter's secrets masked (`redact`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from config.cdn import _CdnBase
from proxy.http.dates import parse_http_date

log = logging.getLogger("edgeshield.purge.cdn")

# CDN answers are a few hundred bytes of JSON or XML; anything longer is cut here.
MAX_ANSWER_BYTES = 64 * 1024
# Statuses and purge ids kept per result (10 000 URLs through Bunny are 10 000 calls).
MAX_STATUSES = 100
MAX_ERROR_CHARS = 300
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


# -- results ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skipped:
    """Part of a purge one CDN did not get, and why. `what` is "urls", "tags", "prefixes",
    "hosts", "everything" or "soft" (count 0: the purge was sent as a hard purge)."""

    what: str
    count: int
    reason: str


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    """Items the CDN was sent (URLs after host expansion, paths for CloudFront)."""

    urls: int = 0
    tags: int = 0
    prefixes: int = 0
    hosts: int = 0
    everything: bool = False


@dataclass(frozen=True, slots=True)
class CdnPurgeResult:
    """One CDN's part of one purge."""

    name: str
    kind: str
    ok: bool
    started: float  # wall-clock time.time() of the start
    duration: float  # seconds
    soft: bool  # a soft purge was asked for
    calls: int  # API calls planned (batches, or one per URL)
    failed_calls: int  # calls that did not succeed (including those never sent)
    attempts: int  # HTTP attempts, retries included
    statuses: tuple[int, ...]  # status of every answered attempt, in order (first 100)
    sent: PurgeCounts
    skipped: tuple[Skipped, ...]
    ids: tuple[str, ...]  # purge / invalidation ids the CDN returned (first 100)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, for the admin page."""
        return {
            "name": self.name,
            "kind": self.kind,
            "ok": self.ok,
            "started": self.started,
            "duration": round(self.duration, 3),
            "soft": self.soft,
            "calls": self.calls,
            "failed_calls": self.failed_calls,
            "attempts": self.attempts,
            "statuses": list(self.statuses),
            "sent": {
                "urls": self.sent.urls,
                "tags": self.sent.tags,
                "prefixes": self.sent.prefixes,
                "hosts": self.sent.hosts,
                "everything": self.sent.everything,
            },
            "skipped": [
                {"what": s.what, "count": s.count, "reason": s.reason} for s in self.skipped
            ],
            "ids": list(self.ids),
            "error": self.error,
        }


class CdnAdapter(Protocol):
    name: str
    kind: str

    async def purge(
        self,
        urls: Sequence[str] = (),
        tags: Sequence[str] = (),
        prefixes: Sequence[str] = (),
        hosts: Sequence[str] = (),
        soft: bool = False,
        *,
        everything: bool = False,
    ) -> CdnPurgeResult: ...

    async def aclose(self) -> None: ...


# -- targets ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Targets:
    """One purge's input, stripped and deduplicated (first occurrence kept).

    urls: absolute http(s) URLs, or paths ("/a.jpg?x=1") that adapters expand with the
    configured hosts; prefixes: the same, as URL prefixes ("https://h/img/", "/img/");
    hosts: bare host names; tags: cache tags / surrogate keys."""

    urls: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    soft: bool = False
    everything: bool = False

    @classmethod
    def of(
        cls,
        urls: Iterable[str],
        tags: Iterable[str],
        prefixes: Iterable[str],
        hosts: Iterable[str],
        soft: bool,
        everything: bool,
    ) -> Targets:
        return cls(
            _unique(urls),
            _unique(tags),
            _unique(prefixes),
            _unique(h.lower() for h in hosts),
            bool(soft),
            bool(everything),
        )


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def chunks(items: Sequence[str], size: int) -> list[list[str]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


# -- API calls -------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """One API request of a plan. `what`/`count` say what it covers (for the result)."""

    what: str
    count: int
    method: str
    url: httpx.URL
    headers: list[tuple[str, str]]
    body: bytes = b""
    # Adapter-specific data (CloudFront: the batch's CallerReference).
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Verdict:
    """How an adapter reads one answer."""

    ok: bool
    retry: bool = False
    error: str | None = None
    purge_id: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    calls: list[Call]
    skipped: list[Skipped]
    sent: PurgeCounts


class CallFailed(Exception):
    """An adapter could not prepare a call (e.g. no AWS credentials); not retried."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class _Tally:
    """Counters of one purge while its calls run (all on one event loop)."""

    attempts: int = 0
    statuses: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    failed: int = 0
    first_error: str | None = None

    def status(self, code: int) -> None:
        if len(self.statuses) < MAX_STATUSES:
            self.statuses.append(code)

    def fail(self, error: str) -> None:
        self.failed += 1
        if self.first_error is None:
            self.first_error = error


# -- the engine ------------------------------------------------------------------------


class HttpAdapter:
    """Base of the four adapters: subclasses implement `plan` and may override
    `interpret` (reading an answer), `prepare_headers` (per-attempt signing) and
    `secrets` (values masked in any text kept from an answer)."""

    kind = "?"

    def __init__(
        self, settings: _CdnBase, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.base = settings.api_base
        self._random = random.Random()
        self._client = httpx.AsyncClient(
            limits=httpx.Limits(
                max_connections=settings.concurrency,
                max_keepalive_connections=settings.concurrency,
            ),
            timeout=settings.timeout,
            follow_redirects=False,  # a redirect from a purge API is an error, not a hint
            trust_env=False,  # like the origins: no proxy or netrc from the environment
            transport=transport,
        )

    # -- to implement ------------------------------------------------------------------

    def plan(self, targets: Targets) -> Plan:
        raise NotImplementedError

    def interpret(self, call: Call, status: int, body: bytes) -> Verdict:
        """Default reading: 2xx is success; 429 and 5xx are retried; the rest fails."""
        if 200 <= status < 300:
            return Verdict(ok=True)
        return Verdict(ok=False, retry=retryable_status(status), error=f"HTTP {status}")

    async def prepare_headers(self, call: Call) -> list[tuple[str, str]]:
        return call.headers

    def secrets(self) -> list[str]:
        return []

    # -- the common part ---------------------------------------------------------------

    async def purge(
        self,
        urls: Sequence[str] = (),
        tags: Sequence[str] = (),
        prefixes: Sequence[str] = (),
        hosts: Sequence[str] = (),
        soft: bool = False,
        *,
        everything: bool = False,
    ) -> CdnPurgeResult:
        """Purge at this CDN. Never raises (cancellation aside)."""
        started = time.time()
        t0 = time.monotonic()
        deadline = t0 + self.settings.deadline
        tally = _Tally()
        plan = Plan([], [], PurgeCounts())
        try:
            targets = Targets.of(urls, tags, prefixes, hosts, soft, everything)
            plan = self.plan(targets)
            if plan.calls:
                limit = asyncio.Semaphore(self.settings.concurrency)
                await asyncio.gather(
                    *(self._run_limited(limit, call, deadline, tally) for call in plan.calls)
                )
        except Exception as exc:  # a bug must not break the local purge that called us
            log.error(
                "cdn purge %s (%s): internal error %s",
                self.name,
                self.kind,
                type(exc).__name__,
                exc_info=True,
            )
            tally.fail(f"internal error ({type(exc).__name__})")
        ok = tally.failed == 0
        error = None
        if not ok:
            calls = len(plan.calls)
            error = tally.first_error
            if calls > 1:
                error = f"{tally.failed} of {calls} calls failed; first: {error}"
        result = CdnPurgeResult(
            name=self.name,
            kind=self.kind,
            ok=ok,
            started=started,
            duration=time.monotonic() - t0,
            soft=bool(soft),
            calls=len(plan.calls),
            failed_calls=tally.failed,
            attempts=tally.attempts,
            statuses=tuple(tally.statuses),
            sent=plan.sent,
            skipped=tuple(plan.skipped),
            ids=tuple(tally.ids),
            error=error,
        )
        _log_result(result)
        return result

    async def _run_limited(
        self, limit: asyncio.Semaphore, call: Call, deadline: float, tally: _Tally
    ) -> None:
        async with limit:
            try:
                await self._run(call, deadline, tally)
            except Exception as exc:  # a bug in one call must not orphan the others
                log.error(
                    "cdn purge %s (%s): internal error %s",
                    self.name,
                    self.kind,
                    type(exc).__name__,
                    exc_info=True,
                )
                tally.fail(f"internal error ({type(exc).__name__})")

    async def _run(self, call: Call, deadline: float, tally: _Tally) -> None:
        """One call with its retries; the outcome goes into `tally`."""
        settings = self.settings
        error = "deadline exceeded before the call was sent"
        for attempt in range(1, settings.max_attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tally.fail(f"{error} (deadline exceeded)" if attempt > 1 else error)
                return
            retry_after: float | None = None
            try:
                headers = await self.prepare_headers(call)
                tally.attempts += 1
                status, answer_headers, body = await self._exchange(
                    call, headers, min(settings.timeout, remaining)
                )
            except CallFailed as exc:
                tally.fail(self.redact(exc.reason))
                return
            except (httpx.TransportError, TimeoutError) as exc:
                error = _transport_error(exc)
                retry = True
            else:
                tally.status(status)
                verdict = self.interpret(call, status, body)
                if verdict.ok:
                    if verdict.purge_id and len(tally.ids) < MAX_STATUSES:
                        tally.ids.append(self.redact(verdict.purge_id))
                    return
                error = self.redact(verdict.error or f"HTTP {status}")
                retry = verdict.retry
                if retry:
                    retry_after = parse_retry_after(answer_headers.get("retry-after"))
            if not retry:
                tally.fail(error)
                return
            if attempt == settings.max_attempts:
                tally.fail(f"{error} (after {attempt} attempts)")
                return
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            if time.monotonic() + delay >= deadline:
                tally.fail(f"{error} (no time left to retry after {delay:.1f}s)")
                return
            log.debug(
                "cdn purge %s (%s): %s, retry %d in %.2fs",
                self.name,
                self.kind,
                error,
                attempt,
                delay,
            )
            await asyncio.sleep(delay)

    async def _exchange(
        self, call: Call, headers: list[tuple[str, str]], seconds: float
    ) -> tuple[int, httpx.Headers, bytes]:
        # asyncio.timeout backs up httpx's per-phase timeouts: a trickling answer must not
        # outlive the attempt either.
        async with asyncio.timeout(seconds):
            request = self._client.build_request(
                call.method,
                call.url,
                headers=headers,
                content=call.body,
                timeout=httpx.Timeout(seconds),
            )
            response = await self._client.send(request, stream=True)
            try:
                body = bytearray()
                async for chunk in response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_ANSWER_BYTES:
                        break
            finally:
                await response.aclose()
        return response.status_code, response.headers, bytes(body[:MAX_ANSWER_BYTES])

    def _backoff(self, attempt: int) -> float:
        """Exponential, capped, with jitter so that shields purging at once spread out:
        uniformly between half and all of base * 2**(attempt-1)."""
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
        return self._random.uniform(ceiling / 2, ceiling)

    def redact(self, text: str) -> str:
        """Text from a CDN answer made safe to keep and log."""
        for secret in self.secrets():
            if secret:
                text = text.replace(secret, "***")
        text = _CONTROL.sub(" ", text).strip()
        if len(text) > MAX_ERROR_CHARS:
            text = text[: MAX_ERROR_CHARS - 3] + "..."
        return text

    # -- helpers for the plans ---------------------------------------------------------

    def url(self, path: str, query: str = "") -> httpx.URL:
        """The API URL for an already percent-encoded `path` (and raw `query`)."""
        base = httpx.URL(self.base)
        raw = base.raw_path.split(b"?", 1)[0].rstrip(b"/") + path.encode("ascii")
        if query:
            raw += b"?" + query.encode("ascii")
        return base.copy_with(raw_path=raw)

    def absolute_urls(self, values: Sequence[str], what: str) -> tuple[list[str], list[Skipped]]:
        """`values` as absolute http(s) URLs for this CDN: paths are expanded with the
        configured hosts, URLs for other hosts are left out."""
        hosts = self.settings.hosts
        out: list[str] = []
        relative = foreign = invalid = 0
        for value in values:
            if value.startswith("/"):
                if not hosts:
                    relative += 1
                    continue
                out.extend(f"https://{host}{value}" for host in hosts)
                continue
            host = url_host(value)
            if host is None:
                invalid += 1
            elif hosts and host not in hosts:
                foreign += 1
            else:
                out.append(value)
        skipped = []
        if relative:
            skipped.append(Skipped(what, relative, "a path without a host, and no hosts set"))
        if foreign:
            skipped.append(Skipped(what, foreign, "host not served by this CDN"))
        if invalid:
            skipped.append(Skipped(what, invalid, "not an absolute http(s) URL"))
        return list(dict.fromkeys(out)), skipped

    def own_hosts(self, values: Sequence[str]) -> tuple[list[str], list[Skipped]]:
        hosts = self.settings.hosts
        if not hosts:
            return list(values), []
        mine = [h for h in values if h in hosts]
        foreign = len(values) - len(mine)
        skipped = [Skipped("hosts", foreign, "host not served by this CDN")] if foreign else []
        return mine, skipped

    async def aclose(self) -> None:
        await self._client.aclose()


# -- small pieces ----------------------------------------------------------------------


def retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or an HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = parse_http_date(value)
    if when is None:
        return None
    return max(0.0, when - (time.time() if now is None else now))


def url_host(url: str) -> str | None:
    """The lower-case host[:port] of an absolute http(s) URL; None otherwise."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    if "@" in parts.netloc:
        return None
    return parts.netloc.lower()


def _transport_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    return f"transport error ({type(exc).__name__})"


def _log_result(result: CdnPurgeResult) -> None:
    sent = result.sent
    counts = f"urls={sent.urls} tags={sent.tags} prefixes={sent.prefixes} hosts={sent.hosts}" + (
        " everything" if sent.everything else ""
    )
    skipped = sum(s.count for s in result.skipped)
    if result.ok:
        log.info(
            "cdn purge %s (%s): ok, %d calls, %d attempts, %s, skipped=%d, %.2fs",
            result.name,
            result.kind,
            result.calls,
            result.attempts,
            counts,
            skipped,
            result.duration,
        )
    else:
        log.warning(
            "cdn purge %s (%s): failed, %s; %d calls, %d attempts, statuses=%s, %s, %.2fs",
            result.name,
            result.kind,
            result.error,
            result.calls,
            result.attempts,
            ",".join(map(str, result.statuses[:10])) or "-",
            counts,
            result.duration,
        )
