"""Cloudflare: POST /client/v4/zones/{zone_id}/purge_cache, Authorization: Bearer <token>.

Bodies (one kind per call, at most `batch_size` items, 100 by default):
    {"files": ["https://www.example.com/a.jpg", ...]}      purge by URL
    {"tags": ["product-1", ...]}                            purge by cache tag
    {"prefixes": ["www.example.com/img/", ...]}             purge by prefix (no scheme)
    {"hosts": ["www.example.com", ...]}                     purge by host name
    {"purge_everything": true}

Soft purges go to POST .../invalidate_cache with the same bodies (Cloudflare marks the
content stale and revalidates it with the origin) unless `soft_via_invalidate = false`.
A 2xx answer counts only with `"success": true`; `result.id` is kept as the purge id.
Prefixes with a query string or fragment are refused by Cloudflare, so they are skipped.
"""

from __future__ import annotations

from typing import Any

import orjson

from config.cdn import CloudflareCdn
from proxy.cdn_purge.base import (
    Call,
    HttpAdapter,
    Plan,
    PurgeCounts,
    Skipped,
    Targets,
    Verdict,
    chunks,
    retryable_status,
)


class CloudflareAdapter(HttpAdapter):
    kind = "cloudflare"
    settings: CloudflareCdn

    def __init__(self, settings: CloudflareCdn, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.settings = settings

    def secrets(self) -> list[str]:
        return [self.settings.api_token.get_secret_value()]

    def plan(self, targets: Targets) -> Plan:
        settings = self.settings
        skipped: list[Skipped] = []
        soft = targets.soft and settings.soft_via_invalidate
        if targets.soft and not soft:
            skipped.append(Skipped("soft", 0, "sent as a hard purge (soft_via_invalidate off)"))
        endpoint = "invalidate_cache" if soft else "purge_cache"
        url = self.url(f"/client/v4/zones/{settings.zone_id}/{endpoint}")
        headers = [
            ("authorization", f"Bearer {settings.api_token.get_secret_value()}"),
            ("content-type", "application/json"),
            ("accept", "application/json"),
        ]

        def call(what: str, count: int, body: dict[str, Any]) -> Call:
            return Call(what, count, "POST", url, headers, orjson.dumps(body))

        if targets.everything:
            # Everything covers whatever else was asked for.
            return Plan(
                [call("everything", 1, {"purge_everything": True})],
                skipped,
                PurgeCounts(everything=True),
            )
        files, skip = self.absolute_urls(targets.urls, "urls")
        skipped += skip
        prefix_urls, skip = self.absolute_urls(targets.prefixes, "prefixes")
        skipped += skip
        prefixes = []
        with_query = 0
        for prefix in prefix_urls:
            bare = prefix.split("://", 1)[1]
            if "?" in bare or "#" in bare:
                with_query += 1
            else:
                prefixes.append(bare)
        if with_query:
            skipped.append(
                Skipped("prefixes", with_query, "Cloudflare prefixes cannot have a query")
            )
        hosts, skip = self.own_hosts(targets.hosts)
        skipped += skip
        calls = [
            call(what, len(batch), {field: batch})
            for what, field, items in (
                ("urls", "files", files),
                ("tags", "tags", list(targets.tags)),
                ("prefixes", "prefixes", prefixes),
                ("hosts", "hosts", hosts),
            )
            for batch in chunks(items, settings.batch_size)
        ]
        sent = PurgeCounts(
            urls=len(files), tags=len(targets.tags), prefixes=len(prefixes), hosts=len(hosts)
        )
        return Plan(calls, skipped, sent)

    def interpret(self, call: Call, status: int, body: bytes) -> Verdict:
        try:
            answer = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            answer = {}
        if 200 <= status < 300:
            if answer.get("success") is True:
                result = answer.get("result")
                purge_id = result.get("id") if isinstance(result, dict) else None
                return Verdict(ok=True, purge_id=purge_id if isinstance(purge_id, str) else None)
            return Verdict(ok=False, error=f"HTTP {status}, success false{_errors(answer)}")
        return Verdict(
            ok=False, retry=retryable_status(status), error=f"HTTP {status}{_errors(answer)}"
        )


def _errors(answer: dict[str, Any]) -> str:
    """': <code> <message>' of Cloudflare's first error, if it sent one."""
    errors = answer.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return ""
    first = errors[0]
    return f": {first.get('code', '')} {first.get('message', '')}".rstrip()
