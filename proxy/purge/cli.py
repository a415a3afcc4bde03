"""`edgeshield purge --url U --prefix P --tag T [--host H] [--soft] [--all]
[--endpoint http://127.0.0.1:8080] [--token-env NAME | --token-file PATH]`

POSTs one ``/_purge`` request and prints the JSON answer. Exit status: 0 when the
server answered 2xx, 1 when it refused or could not be reached (the error on stderr),
2 for a usage problem found before sending (as `edgeshield sign`). When the endpoint's
scheme is not the one the server speaks there (http to a TLS listener, or https to a
plain one), the request fails without saying why; the error then names the scheme the
server answered with, found by one `/healthz` request in it (no token sent).

The admin token is read from an environment variable (default EDGESHIELD_PURGE_TOKEN,
falling back to the server's own EDGESHIELD_ADMIN__TOKEN) or a file, never from the
command line, where any local user could read it in `ps`. With no token at all the
request goes without one, which a server without a configured token accepts from
loopback clients."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = ["DEFAULT_ENDPOINT", "DEFAULT_TOKEN_ENV", "add_purge_parser", "main", "run_purge"]

DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
DEFAULT_TOKEN_ENV = "EDGESHIELD_PURGE_TOKEN"
SERVER_TOKEN_ENV = "EDGESHIELD_ADMIN__TOKEN"


def add_purge_parser(subparsers: Any) -> argparse.ArgumentParser:
    purge = subparsers.add_parser(
        "purge", help="purge URLs, prefixes or surrogate keys from a running edgeshield"
    )
    purge.add_argument(
        "--url", action="append", default=[], help="URL to purge (absolute, or a path with --host)"
    )
    purge.add_argument(
        "--prefix", action="append", default=[], help="path or URL prefix to purge (a ban)"
    )
    purge.add_argument("--tag", action="append", default=[], help="surrogate key to purge")
    purge.add_argument("--host", help="host for paths given to --url and --prefix")
    purge.add_argument("--soft", action="store_true", help="mark stale instead of removing")
    purge.add_argument(
        "--all", action="store_true", help='purge everything, or confirm a prefix "/"'
    )
    add_admin_client_options(purge)
    return purge


def add_admin_client_options(parser: argparse.ArgumentParser) -> None:
    """--endpoint, --token-env | --token-file, --timeout: how a CLI reaches a running
    edgeshield's operations endpoints (`purge`, `warm`)."""
    parser.add_argument(
        "--endpoint", default=DEFAULT_ENDPOINT, help=f"edgeshield base URL ({DEFAULT_ENDPOINT})"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--token-env",
        help=f"environment variable holding the admin token (default {DEFAULT_TOKEN_ENV}, "
        f"then {SERVER_TOKEN_ENV})",
    )
    source.add_argument("--token-file", type=Path, help="file holding the admin token")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request (30)")


def run_purge(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    if not (args.url or args.prefix or args.tag or args.all):
        print("edgeshield purge: give --url, --prefix, --tag or --all", file=sys.stderr)
        return 2
    try:
        token = _token(args, env)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"edgeshield purge: {exc}", file=sys.stderr)
        return 2
    body: dict[str, Any] = {
        "urls": args.url,
        "prefixes": args.prefix,
        "tags": args.tag,
        "all": args.all,
        "soft": args.soft,
    }
    if args.host:
        body["host"] = args.host
    headers = {"content-type": "application/json", "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    url = args.endpoint.rstrip("/") + "/_purge"

    import httpx  # only this subcommand needs it; keeps `edgeshield serve` start-up lean

    try:
        with httpx.Client(timeout=args.timeout, trust_env=False) as client:
            response = client.post(url, content=orjson.dumps(body), headers=headers)
    except (httpx.HTTPError, ValueError) as exc:
        hint = ""
        if isinstance(exc, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
            other = _speaks_other_scheme(args.endpoint, args.timeout)
            if other is not None:
                hint = f"; the server there speaks {other.split(':')[0]}: --endpoint {other}"
        print(f"edgeshield purge: {url}: {type(exc).__name__}: {exc}{hint}", file=sys.stderr)
        return 1
    text = _pretty(response.content)
    if response.is_success:
        print(text)
        return 0
    print(f"edgeshield purge: HTTP {response.status_code}: {text}", file=sys.stderr)
    return 1


def _speaks_other_scheme(endpoint: str, timeout: float) -> str | None:
    """`endpoint` with the other scheme when the server answers `/healthz` in it, else
    None. Only the scheme is learnt, so the certificate is not checked (no token goes)."""
    import httpx

    try:
        parts = urlsplit(endpoint)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    other = f"{'https' if parts.scheme == 'http' else 'http'}://{parts.netloc}"
    try:
        with httpx.Client(timeout=min(timeout, 5.0), verify=False, trust_env=False) as client:
            client.get(other + "/healthz")
    except httpx.HTTPError:
        return None
    return other


def _token(args: argparse.Namespace, env: Mapping[str, str]) -> str | None:
    if args.token_file is not None:
        token = args.token_file.read_text("utf-8").strip()
        if not token:
            raise ValueError(f"{args.token_file}: empty token file")
        return token
    if args.token_env is not None:
        token = env.get(args.token_env, "").strip()
        if not token:
            raise ValueError(f"${args.token_env} is not set")
        return token
    return (env.get(DEFAULT_TOKEN_ENV) or env.get(SERVER_TOKEN_ENV) or "").strip() or None


def _pretty(content: bytes) -> str:
    """JSON indented; the error message alone for {"error": ...}; other bodies as text."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return content.decode("utf-8", "replace").strip()
    if isinstance(data, dict) and set(data) == {"error"}:
        return str(data["error"])
    return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgeshield")
    add_purge_parser(parser.add_subparsers(dest="command", required=True))
    return run_purge(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
