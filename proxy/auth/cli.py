"""`edgeshield sign URL --ttl 3600 [--prefix P] [--ip A] [--kid K] [--style S] [--config F]`

Prints the signed URL (query and path styles) or the Set-Cookie value (cookie style).
Keys come from the configuration's ``[auth.keys]`` (file, plus EDGESHIELD_* variables)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from config.auth import AuthSettings
from config.loader import ConfigError, load_settings
from proxy.auth.keys import KeyError_, KeyRing
from proxy.auth.native import sign_url, signed_cookie
from proxy.http.paths import BadPath


def add_sign_parser(subparsers: Any) -> argparse.ArgumentParser:
    sign = subparsers.add_parser(
        "sign", help="mint a signed URL (or signed cookie) with a key from the config"
    )
    sign.add_argument("url", help="URL or path to sign, e.g. /videos/abc/master.m3u8")
    sign.add_argument("--ttl", type=float, default=3600.0, help="seconds of validity")
    sign.add_argument("--prefix", help="authorize everything under this path prefix")
    sign.add_argument("--ip", help="bind to a client address or CIDR block")
    sign.add_argument("--kid", help="key id (default: auth.signing_kid or the only key)")
    sign.add_argument(
        "--style", choices=("query", "path", "cookie"), default="query", help="token placement"
    )
    sign.add_argument("--bind", action="append", default=[], help="query parameter to pin")
    sign.add_argument("--not-before", type=int, help="Unix time the token starts to work")
    sign.add_argument("--config", type=Path, help="TOML config file (default: $EDGESHIELD_CONFIG)")
    return sign


def run_sign(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    path = args.config or (Path(env["EDGESHIELD_CONFIG"]) if env.get("EDGESHIELD_CONFIG") else None)
    if path is None:
        print("edgeshield sign: give --config FILE (or set EDGESHIELD_CONFIG)", file=sys.stderr)
        return 2
    try:
        auth = load_auth_settings(path, env)
        keys = KeyRing.from_settings(auth, base_dir=path.parent)
        native = auth.native
        if args.style == "cookie":
            prefix = args.prefix or urlsplit(args.url).path or "/"
            print(
                signed_cookie(
                    keys,
                    prefix=prefix,
                    ttl=args.ttl,
                    not_before=args.not_before,
                    ip=args.ip,
                    kid=args.kid,
                    cookie=native.cookie,
                )
            )
        else:
            print(
                sign_url(
                    args.url,
                    keys,
                    ttl=args.ttl,
                    not_before=args.not_before,
                    prefix=args.prefix,
                    ip=args.ip,
                    bind=args.bind,
                    style=args.style,
                    kid=args.kid,
                    param=native.param,
                    marker=native.path_marker,
                )
            )
    except ConfigError as exc:
        print(exc.format(), file=sys.stderr)
        return 2
    except (KeyError_, LookupError, ValueError, BadPath) as exc:
        print(f"edgeshield sign: {exc}", file=sys.stderr)
        return 2
    return 0


def load_auth_settings(path: Path, env: Mapping[str, str]) -> AuthSettings:
    """``[auth]`` of the configuration, loaded and checked like `serve` does."""
    return load_settings(path, env).auth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgeshield")
    add_sign_parser(parser.add_subparsers(dest="command", required=True))
    return run_sign(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
