"""Warm jobs: URLs fetched into the cache through the normal request path, a few at a
time, with a report that `GET /_warm/<id>` and the admin page read while it runs.

Each URL is one GET handed to `pipeline.handle` as if a client on this host had sent
it, so its route's auth, lookup, collapsing, fetch and storing decide everything: a
miss fetches and stores (or joins a fetch under way), a hit is answered from the cache
and costs no origin request. Only URLs whose host and path some route serves are
fetched; any other is refused in the report before it reaches the pipeline, and the
pipeline only ever talks to configured origins, so a job cannot make the proxy reach
another host. A playlist is fetched too, read for its URIs (`sources.playlist_uris`),
and each rendition it lists is expanded in turn; every job holds at most
`[warm] max_urls` URLs."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from proxy.http.paths import BadPath
from proxy.http.playlist_uris import kind_by_path
from proxy.ops.access import PROBES, is_admin_request
from proxy.pipeline import handle
from proxy.warm.sources import SourceError, Target, WarmRequest, check_url, playlist_uris

if TYPE_CHECKING:
    from proxy.serve.state import AppState

# What a report lists of its failures (the counts hold them all).
MAX_ERRORS = 20
USER_AGENT = b"edgeshield-warm"
# The client a warm request seems to come from (access lists and the access log see it).
CLIENT = ("127.0.0.1", 0)
# (URL, expand it as a playlist) still to fetch.
Queue = asyncio.Queue[tuple[str, bool]]


@dataclass(eq=False)
class Job:
    """One warm job's progress. `done` counts URLs finished whatever the outcome:
    `warmed` (fetched and stored), `hits` (already cached), `failed` (refused, an error
    answer, not storable)."""

    id: str
    source: str
    started: float
    total: int = 0
    done: int = 0
    warmed: int = 0
    hits: int = 0
    failed: int = 0
    bytes: int = 0
    truncated: bool = False
    finished: float | None = None
    errors: list[dict[str, str]] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def fail(self, url: str, reason: str) -> None:
        self.failed += 1
        self.done += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"url": url[:512], "reason": reason})

    def report(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "state": "running" if self.finished is None else "done",
            "total": self.total,
            "done": self.done,
            "warmed": self.warmed,
            "hits": self.hits,
            "failed": self.failed,
            "bytes": self.bytes,
            "truncated": self.truncated,
            "started": self.started,
            "finished": self.finished,
            "errors": self.errors,
        }


@dataclass(slots=True)
class Fetched:
    """What the pipeline answered a warm GET: status, the fields the job reads, body
    bytes sent, and the body itself when asked for (None beyond the limit)."""

    status: int = 0
    cache_status: str = ""
    content_type: str | None = None
    size: int = 0
    body: bytearray | None = None


class Warmer:
    """The jobs of this process (with `--workers N`, of this worker)."""

    def __init__(self, state: AppState) -> None:
        self.state = state
        self.jobs: dict[str, Job] = {}

    def running(self) -> int:
        return sum(1 for job in self.jobs.values() if job.finished is None)

    def submit(self, request: WarmRequest) -> Job | None:
        """Start a job; None when `max_jobs` are already running."""
        settings = self.state.settings.warm
        if self.running() >= settings.max_jobs:
            return None
        job = self.new_job(request.source)
        queue: Queue = asyncio.Queue()
        for url in request.urls:
            self._add(job, queue, url, False)
        for url in request.playlists:
            self._add(job, queue, url, True)
        self.state.spawn(self._run(job, queue))
        return job

    def new_job(self, source: str) -> Job:
        """A job in the table, the oldest finished ones dropped beyond `max_jobs`."""
        settings = self.state.settings.warm
        finished = [j for j in self.jobs.values() if j.finished is not None]
        for old in finished[: max(0, len(self.jobs) + 1 - settings.max_jobs)]:
            del self.jobs[old.id]
        job = Job(secrets.token_hex(8), source, time.time())
        self.jobs[job.id] = job
        self.state.stats.inc("edgeshield_warm_jobs", (source,))
        return job

    def finish(self, job: Job) -> None:
        job.finished = time.time()
        job.seen.clear()
        self.state.log.info(
            "warm %s (%s) done: %d URLs, %d warmed, %d hits, %d failed, %d bytes%s",
            job.id,
            job.source,
            job.total,
            job.warmed,
            job.hits,
            job.failed,
            job.bytes,
            ", truncated" if job.truncated else "",
        )

    async def _run(self, job: Job, queue: Queue) -> None:
        settings = self.state.settings.warm

        async def worker() -> None:
            while True:
                url, expand = await queue.get()
                try:
                    await self._warm_one(job, queue, url, expand)
                except Exception as exc:  # one URL's trouble never ends the job
                    self.state.log.warning("warm %s: %s failed: %r", job.id, self._shown(url), exc)
                    self._count(job, url, "failed", "internal error")
                finally:
                    queue.task_done()

        workers = [asyncio.create_task(worker()) for _ in range(settings.concurrency)]
        try:
            await queue.join()
        finally:
            for task in workers:
                task.cancel()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self.finish(job)

    def _add(self, job: Job, queue: Queue, url: str, expand: bool) -> None:
        if url in job.seen:
            return
        if job.total >= self.state.settings.warm.max_urls:
            job.truncated = True
            return
        job.seen.add(url)
        job.total += 1
        queue.put_nowait((url, expand))

    def _count(self, job: Job, url: str, result: str, reason: str = "") -> None:
        self.state.stats.inc("edgeshield_warm_urls", (result,))
        if result == "warmed":
            job.warmed += 1
            job.done += 1
        elif result == "hit":
            job.hits += 1
            job.done += 1
        else:
            job.fail(self._shown(url), reason)

    def _shown(self, url: str) -> str:
        """A URL as reports and logs show it: token values redacted."""
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        return f"{parts.scheme}://{parts.netloc}{self.state.guards.redact.target(target)}"

    async def _warm_one(self, job: Job, queue: Queue, url: str, expand: bool) -> None:
        try:
            target = check_url(url)
            self._check_route(target)
        except SourceError as exc:
            self._count(job, url, "refused", exc.reason)
            return
        limit = self.state.settings.warm.max_body_bytes if expand else 0
        got = await fetch_through(self.state, target, keep_body=limit)
        if not 200 <= got.status < 300:
            self._count(job, url, "failed", f"answered {got.status}")
            return
        hit = "; hit" in got.cache_status
        if not hit and "; stored" not in got.cache_status:
            self._count(job, url, "failed", "not stored (the answer may not be cached)")
            return
        job.bytes += 0 if hit else got.size
        self._count(job, url, "hit" if hit else "warmed")
        if expand:
            self._expand(job, queue, url, got)

    def _check_route(self, target: Target) -> None:
        """SourceError unless some route serves the URL's host and path."""
        try:
            path = self.state.normalize(unquote(target.path))
        except BadPath:
            raise SourceError("bad path") from None
        if is_admin_request("GET", path) or path in PROBES or path == "/metrics":
            raise SourceError("an operations path")
        if self.state.routes.match(target.host, path) is None:
            raise SourceError("no route serves this host and path")

    def _expand(self, job: Job, queue: Queue, url: str, got: Fetched) -> None:
        if got.body is None:
            job.errors.append({"url": self._shown(url), "reason": "playlist too large to read"})
            return
        room = self.state.settings.warm.max_urls
        uris = playlist_uris(bytes(got.body), url, got.content_type, room)
        if uris is None:
            job.errors.append({"url": self._shown(url), "reason": "not a playlist read here"})
            return
        for uri in uris:
            self._add(job, queue, uri, kind_by_path(urlsplit(uri).path) is not None)


async def fetch_through(state: AppState, target: Target, *, keep_body: int = 0) -> Fetched:
    """One GET through `pipeline.handle`, as a client on this host would send it; the
    body is counted, and kept when it is at most `keep_body` bytes."""
    got = Fetched(body=bytearray() if keep_body else None)
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Future()  # the client never leaves: the answer runs to its end
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            got.status = message["status"]
            for name, value in message.get("headers", ()):
                if name == b"cache-status":
                    got.cache_status = value.decode("latin-1")
                elif name == b"content-type":
                    got.content_type = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            got.size += len(chunk)
            if got.body is not None:
                if len(got.body) + len(chunk) > keep_body:
                    got.body = None
                else:
                    got.body += chunk

    await handle(state, _scope(target), receive, send)
    return got


def _scope(target: Target) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": target.scheme,
        "path": unquote(target.path),
        "raw_path": target.path.encode("ascii"),  # check_url: ASCII only
        "query_string": target.query.encode("ascii"),
        "root_path": "",
        "headers": [(b"host", target.authority.encode("ascii")), (b"user-agent", USER_AGENT)],
        "client": CLIENT,
        "server": None,
    }
