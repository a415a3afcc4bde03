"""Fastly: header Fastly-Key: <token>, and Fastly-Soft-Purge: 1 for soft purges.

- URL: POST /purge/<host><path>, one call per URL. The URL's query string becomes the
  API call's query string, as Fastly's own Go client (go-fastly `Purge`) sends it.
- Surrogate keys: POST /service/{service_id}/purge with {"surrogate_keys": [...]}, up
  to 256 keys per call (the documented batch limit). The JSON body rather than the
  Surrogate-Key request header: both are documented, and a body has no header-size
  limit in between. Keys containing whitespace cannot exist (Fastly's Surrogate-Key
  response header separates keys with spaces), so they are skipped.
- Everything: POST /service/{service_id}/purge_all, which Fastly never does softly.
- Fastly has no purge by prefix or by host: those are skipped (tag responses with
  surrogate keys instead).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from config.cdn import FastlyCdn
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

# Characters kept as they are in the purge path (the request path is already
# percent-encoded by the proxy; "%" stays so nothing is encoded twice).
_PATH_SAFE = "/%!$&'()*+,;=:@~"
_QUERY_SAFE = _PATH_SAFE + "?"


class FastlyAdapter(HttpAdapter):
    kind = "fastly"
    settings: FastlyCdn

    def __init__(self, settings: FastlyCdn, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.settings = settings

    def secrets(self) -> list[str]:
        return [self.settings.api_token.get_secret_value()]

    def _headers(self, soft: bool, json: bool = False) -> list[tuple[str, str]]:
        headers = [
            ("fastly-key", self.settings.api_token.get_secret_value()),
            ("accept", "application/json"),
        ]
        if soft:
            headers.append(("fastly-soft-purge", "1"))
        if json:
            headers.append(("content-type", "application/json"))
        return headers

    def plan(self, targets: Targets) -> Plan:
        service = self.settings.service_id
        skipped: list[Skipped] = []
        if targets.everything:
            if targets.soft:
                skipped.append(Skipped("soft", 0, "Fastly's purge_all is always a hard purge"))
            call = Call(
                "everything",
                1,
                "POST",
                self.url(f"/service/{service}/purge_all"),
                self._headers(soft=False),
            )
            return Plan([call], skipped, PurgeCounts(everything=True))

        calls: list[Call] = []
        urls, skip = self.absolute_urls(targets.urls, "urls")
        skipped += skip
        for url in urls:
            parts = urlsplit(url)
            path = quote(parts.path or "/", safe=_PATH_SAFE)
            query = quote(parts.query, safe=_QUERY_SAFE)
            api_url = self.url(f"/purge/{parts.netloc.lower()}{path}", query)
            calls.append(Call("urls", 1, "POST", api_url, self._headers(targets.soft)))

        keys = [key for key in targets.tags if not any(ch.isspace() for ch in key)]
        if len(keys) < len(targets.tags):
            skipped.append(
                Skipped("tags", len(targets.tags) - len(keys), "surrogate keys have no spaces")
            )
        batch_url = self.url(f"/service/{service}/purge")
        for batch in chunks(keys, self.settings.batch_size):
            body = orjson.dumps({"surrogate_keys": batch})
            headers = self._headers(targets.soft, json=True)
            calls.append(Call("tags", len(batch), "POST", batch_url, headers, body))

        if targets.prefixes:
            skipped.append(Skipped("prefixes", len(targets.prefixes), "Fastly has no prefix purge"))
        if targets.hosts:
            skipped.append(Skipped("hosts", len(targets.hosts), "Fastly has no host purge"))
        return Plan(calls, skipped, PurgeCounts(urls=len(urls), tags=len(keys)))

    def interpret(self, call: Call, status: int, body: bytes) -> Verdict:
        try:
            answer = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            answer = None
        if 200 <= status < 300:
            purge_id = None
            if isinstance(answer, dict):
                # Single purges answer {"status": "ok", "id": ...}; batches {key: id, ...}.
                found = answer.get("id") if call.what != "tags" else None
                purge_id = found if isinstance(found, str) else None
            return Verdict(ok=True, purge_id=purge_id)
        detail = ""
        if isinstance(answer, dict):
            msg = answer.get("msg") or answer.get("detail")
            if isinstance(msg, str):
                detail = f": {msg}"
        return Verdict(ok=False, retry=retryable_status(status), error=f"HTTP {status}{detail}")
