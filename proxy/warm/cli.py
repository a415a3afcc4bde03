"""`edgeshield warm TARGET [--wait] [--endpoint URL] [--token-env NAME | --token-file PATH]`

TARGET is a file (a sitemap, a JSON body as `POST /_warm` takes it, or URLs one a line,
`#` comments allowed) or a playlist's URL (`http(s)://...`: fetched with all its
renditions and segments). One `POST /_warm` to a running edgeshield, with the token and
endpoint options of `edgeshield purge`; prints the job's report. With `--wait`, asks for
the report every second on the same connection (with `--workers N` a job belongs to
the worker that accepted it) until the job is done, printing each change of progress.
Exit status: 0 when the server took the job (with `--wait`: and no URL failed), 1 when
it refused, could not be reached, or URLs failed, 2 for a usage problem."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from proxy.purge.cli import _pretty, _speaks_other_scheme, _token, add_admin_client_options
from proxy.warm.sources import lines_of_urls

# A file larger than this is refused before sending (the server's default limit).
MAX_FILE_BYTES = 8 * 1024 * 1024
POLL_SECONDS = 1.0


def add_warm_parser(subparsers: Any) -> argparse.ArgumentParser:
    warm = subparsers.add_parser(
        "warm", help="warm a running edgeshield's cache from URLs, a sitemap or a playlist"
    )
    warm.add_argument(
        "target", help="a file of URLs, a sitemap or a JSON body; or a playlist's http(s) URL"
    )
    warm.add_argument("--wait", action="store_true", help="follow the job until it is done")
    add_admin_client_options(warm)
    return warm


def request_body(target: str) -> tuple[bytes, str]:
    """(body, content type) of the POST for `target`; OSError or ValueError when the
    file cannot be read or is too large."""
    if target.startswith(("http://", "https://")):
        return orjson.dumps({"playlist": target}), "application/json"
    path = Path(target)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise ValueError(f"{target}: larger than {MAX_FILE_BYTES} bytes")
    data = path.read_bytes()
    start = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if start == b"<":
        return data, "application/xml"
    if start == b"{":
        return data, "application/json"
    urls = lines_of_urls(data.decode("utf-8").splitlines())
    if not urls:
        raise ValueError(f"{target}: no URLs in it")
    return orjson.dumps({"urls": urls}), "application/json"


def run_warm(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    try:
        token = _token(args, env)
        body, content_type = request_body(args.target)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"edgeshield warm: {exc}", file=sys.stderr)
        return 2
    headers = {"content-type": content_type, "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    base = args.endpoint.rstrip("/")

    import httpx  # only this subcommand needs it, as in `edgeshield purge`

    try:
        # One client, one connection: the job's worker answers the polls.
        with httpx.Client(timeout=args.timeout, trust_env=False) as client:
            response = client.post(base + "/_warm", content=body, headers=headers)
            if not response.is_success:
                text = _pretty(response.content)
                print(f"edgeshield warm: HTTP {response.status_code}: {text}", file=sys.stderr)
                return 1
            report = orjson.loads(response.content)
            if not args.wait:
                print(_pretty(response.content))
                return 0
            report = _follow(client, base, report, headers)
    except (httpx.HTTPError, ValueError) as exc:
        hint = ""
        if isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
            other = _speaks_other_scheme(args.endpoint, args.timeout)
            if other is not None:
                hint = f"; the server there speaks {other.split(':')[0]}: --endpoint {other}"
        print(f"edgeshield warm: {base}: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 1
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 1 if report.get("failed") else 0


def _follow(
    client: Any, base: str, report: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    """Poll `GET /_warm/<id>` until the job is done; progress lines on stderr."""
    shown = None
    while report.get("state") != "done":
        progress = (report.get("done"), report.get("total"))
        if progress != shown:
            print(f"warm {report['id']}: {progress[0]} of {progress[1]}", file=sys.stderr)
            shown = progress
        time.sleep(POLL_SECONDS)
        response = client.get(f"{base}/_warm/{report['id']}", headers=headers)
        response.raise_for_status()
        report = orjson.loads(response.content)
    return report
