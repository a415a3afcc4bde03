"""Bunny: header AccessKey: <account API key>.

- URL: POST /purge?url=<url>&async=<true|false>, one call per URL. A URL ending in "/"
  gets exactPath=true: without it Bunny treats the trailing slash as a wildcard and
  purges everything under it (and bills it against the much lower prefix rate limit).
- Prefix: the same call with "*" appended (Bunny's wildcard purge).
- Host: a wildcard purge of https://<host>/*.
- Tag: POST /pullzone/{pull_zone}/purgeCache with {"CacheTag": "<tag>"} (responses
  tagged with the CDN-Tag header), one call per tag; needs `pull_zone`.
- Everything: POST /pullzone/{pull_zone}/purgeCache without a body; needs `pull_zone`.
Bunny has no soft purge: a soft purge is sent as a hard one.

Bunny rate-limits purges with a token bucket per account and purge type (exact URLs
about 5 per second, wildcards about 0.5 per second, 429 beyond); `concurrency` and the
retries (which honour Retry-After) keep within it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from config.cdn import BunnyCdn
from proxy.cdn_purge.base import (
    Call,
    HttpAdapter,
    Plan,
    PurgeCounts,
    Skipped,
    Targets,
    Verdict,
    retryable_status,
)


class BunnyAdapter(HttpAdapter):
    kind = "bunny"
    settings: BunnyCdn

    def __init__(self, settings: BunnyCdn, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.settings = settings

    def secrets(self) -> list[str]:
        return [self.settings.api_key.get_secret_value()]

    def _headers(self, json: bool = False) -> list[tuple[str, str]]:
        headers = [
            ("accesskey", self.settings.api_key.get_secret_value()),
            ("accept", "application/json"),
        ]
        if json:
            headers.append(("content-type", "application/json"))
        return headers

    def _url_call(self, what: str, url: str, exact_path: bool = False) -> Call:
        params = {"url": url, "async": "true" if self.settings.async_purge else "false"}
        if exact_path:
            params["exactPath"] = "true"
        return Call(what, 1, "POST", self.url("/purge", urlencode(params)), self._headers())

    def plan(self, targets: Targets) -> Plan:
        zone = self.settings.pull_zone
        skipped: list[Skipped] = []
        if targets.soft:
            skipped.append(Skipped("soft", 0, "Bunny has no soft purge: sent as a hard purge"))
        if targets.everything:
            if zone is None:
                skipped.append(Skipped("everything", 1, "needs pull_zone"))
                return Plan([], skipped, PurgeCounts())
            call = Call(
                "everything", 1, "POST", self.url(f"/pullzone/{zone}/purgeCache"), self._headers()
            )
            return Plan([call], skipped, PurgeCounts(everything=True))

        calls: list[Call] = []
        urls, skip = self.absolute_urls(targets.urls, "urls")
        skipped += skip
        calls += [self._url_call("urls", url, exact_path=url.endswith("/")) for url in urls]

        prefixes, skip = self.absolute_urls(targets.prefixes, "prefixes")
        skipped += skip
        wildcards = list(dict.fromkeys(p if p.endswith("*") else p + "*" for p in prefixes))
        calls += [self._url_call("prefixes", url) for url in wildcards]

        hosts, skip = self.own_hosts(targets.hosts)
        skipped += skip
        calls += [self._url_call("hosts", f"https://{host}/*") for host in hosts]

        tags: list[str] = []
        if targets.tags and zone is None:
            skipped.append(Skipped("tags", len(targets.tags), "tag purges need pull_zone"))
        elif targets.tags:
            tags = list(targets.tags)
            tag_url = self.url(f"/pullzone/{zone}/purgeCache")
            calls += [
                Call(
                    "tags",
                    1,
                    "POST",
                    tag_url,
                    self._headers(json=True),
                    orjson.dumps({"CacheTag": tag}),
                )
                for tag in tags
            ]
        sent = PurgeCounts(
            urls=len(urls), tags=len(tags), prefixes=len(wildcards), hosts=len(hosts)
        )
        return Plan(calls, skipped, sent)

    def interpret(self, call: Call, status: int, body: bytes) -> Verdict:
        if 200 <= status < 300:
            return Verdict(ok=True)
        detail = ""
        try:
            answer = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            answer = None
        if isinstance(answer, dict) and isinstance(answer.get("Message"), str):
            detail = f": {answer['Message']}"
        return Verdict(ok=False, retry=retryable_status(status), error=f"HTTP {status}{detail}")
