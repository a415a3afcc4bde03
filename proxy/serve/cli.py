"""`edgeshield` command line: serve, check-config, demo, purge, warm."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from config.handoff import HANDOFF_VAR, handoff_value
from config.loader import ConfigError, check_config, load_settings, origin_overrides
from config.schema import FsOrigin, Settings
from config.tls import tls_errors
from proxy.auth.cli import add_sign_parser, run_sign
from proxy.purge.cli import add_purge_parser, run_purge
from proxy.serve.logs import configure_logging
from proxy.warm.cli import add_warm_parser, run_warm
from transforms.image.imgix import preset_errors

# Settings checks beyond the schema, run by serve and check-config (not by workers).
CHECKS = (preset_errors, tls_errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="edgeshield", description="Edge delivery proxy and origin shield for media."
    )
    parser.add_argument("--version", action="version", version=f"edgeshield {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the proxy")
    serve.add_argument(
        "--config",
        type=Path,
        help="TOML config file (default: $EDGESHIELD_CONFIG or the embedded demo)",
    )
    serve.add_argument(
        "--origin",
        help="proxy and cache one origin, an http(s) URL or a folder (like varnishd -b)",
    )
    serve.add_argument(
        "--default-ttl",
        type=float,
        metavar="SECONDS",
        help="with --origin: how long answers without freshness information stay fresh "
        "(like varnishd -t; default: the Last-Modified heuristic, else not stored)",
    )
    serve.add_argument("--host", help="address to listen on (default: [server] host, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: [server] port, 8080)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (default: [server] workers, 1)"
    )
    serve.add_argument(
        "--server",
        choices=("granian", "uvicorn"),
        help="HTTP server engine (default: [server] engine, granian)",
    )
    serve.add_argument("--tls-cert", type=Path, help="serve HTTPS with this PEM certificate chain")
    serve.add_argument("--tls-key", type=Path, help="the PEM private key of --tls-cert")

    check = sub.add_parser("check-config", help="validate a config file and print every error")
    check.add_argument(
        "files", type=Path, nargs="+", metavar="file", help="TOML config file(s) to check"
    )

    add_sign_parser(sub)

    demo = sub.add_parser("demo", help="generate the demo media folder")
    demo.add_argument(
        "--out", type=Path, default=Path("var/demo"), help="folder to write (default: var/demo)"
    )
    demo.add_argument("--force", action="store_true", help="write the files again if present")

    add_purge_parser(sub)
    add_warm_parser(sub)

    args = parser.parse_args(argv)
    configure_logging()
    if args.command == "check-config":
        worst = 0
        for path in args.files:
            code, text = check_config(path, os.environ, checks=CHECKS)
            print(text, file=sys.stdout if code == 0 else sys.stderr)
            worst = max(worst, code)
        return worst
    if args.command == "sign":
        return run_sign(args)
    if args.command == "demo":
        from proxy.demo.media import generate_demo

        written = generate_demo(args.out, force=args.force)
        print(f"demo media in {args.out}: {len(written)} file(s) written")
        return 0
    if args.command == "purge":
        return run_purge(args)
    if args.command == "warm":
        return run_warm(args)
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    try:
        if args.origin or args.default_ttl is not None:
            overrides.update(origin_overrides(args.origin, args.default_ttl))
        server = {
            k: v
            for k, v in (
                ("host", args.host),
                ("port", args.port),
                ("workers", args.workers),
                ("engine", args.server),
            )
            if v is not None
        }
        tls = {k: str(v) for k, v in (("cert", args.tls_cert), ("key", args.tls_key)) if v}
        if tls:
            server["tls"] = tls
        if server:
            overrides["server"] = server
        path = args.config or (
            Path(os.environ["EDGESHIELD_CONFIG"]) if os.environ.get("EDGESHIELD_CONFIG") else None
        )
        settings = load_settings(path, os.environ, overrides=overrides, checks=CHECKS)
    except ConfigError as exc:
        print(exc.format(), file=sys.stderr)
        return 2
    configure_logging(settings.server.log_level)
    _ensure_demo(settings, embedded=path is None and not args.origin)
    return run(settings, path, overrides)


def _ensure_demo(settings: Settings, *, embedded: bool) -> None:
    """The embedded default serves demo media; make it (or bring it up to date: its
    signing key, its signed page) before serving. Nothing is written when it is current."""
    if not embedded:
        return
    for origin in settings.origins.values():
        if isinstance(origin, FsOrigin):
            from proxy.demo.media import generate_demo

            generate_demo(origin.root)


def run(settings: Settings, path: Path | None, overrides: dict[str, Any]) -> int:
    """Serve on the configured engine. Each worker process loads `path` + `overrides`
    again itself (config/handoff.py), on either engine."""
    from proxy.serve.engines import ENGINES

    server = settings.server
    problem = _unbindable(server.host, server.port)
    if problem is not None:
        # Before any worker starts: the engines' own bind errors are tracebacks without
        # the address.
        print(f"edgeshield: cannot listen on {problem}", file=sys.stderr)
        return 2
    disk_lock: int | None = None
    disk = settings.cache.disk.path
    if disk is not None:
        # The workers share the directory (proxy/cache/disk.py): this process holds its
        # lock for all of them. Otherwise each worker locks its own, and this is only a
        # look first. Either way a second instance on it is refused here, with the reason,
        # not by workers failing to start.
        from proxy.cache.disk import DiskTierBusy, share_directory

        try:
            if settings.disk_shared:
                disk_lock = share_directory(str(disk))
            else:
                _free_disk_directory(disk, server.workers)
        except (DiskTierBusy, OSError) as exc:
            print(f"edgeshield: cache.disk.path: {exc}", file=sys.stderr)
            return 2
    owned_dir: Path | None = None
    if server.workers > 1 and server.metrics_dir is None:
        owned_dir = Path(tempfile.mkdtemp(prefix="edgeshield-metrics-"))
        overrides = {
            **overrides,
            "server": {**overrides.get("server", {}), "metrics_dir": str(owned_dir)},
        }
    os.environ[HANDOFF_VAR] = handoff_value(path, overrides)
    try:
        ENGINES[server.engine](settings)
    finally:
        if owned_dir is not None:
            shutil.rmtree(owned_dir, ignore_errors=True)
        if disk_lock is not None:
            os.close(disk_lock)
    return 0


def _free_disk_directory(path: Path, workers: int) -> None:
    """Raise DiskTierBusy unless a worker's disk directory is free: `path` for one
    worker, else one of <path>/w0... (each worker takes the first it can lock)."""
    from proxy.cache.disk import DiskTierBusy, lock_directory

    dirs = [path] if workers == 1 else [path / f"w{i}" for i in range(workers)]
    for folder in dirs[:-1]:
        try:
            os.close(lock_directory(str(folder)))
            return
        except DiskTierBusy:
            continue
    os.close(lock_directory(str(dirs[-1])))


def _unbindable(host: str, port: int) -> str | None:
    """Why host:port cannot be listened on (in use, not an address here), or None."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            shown = f"[{host}]" if family == socket.AF_INET6 else host
            return f"{shown}:{port}: {exc.strerror or exc}"
    return None


def _version() -> str:
    try:
        return importlib.metadata.version("edgeshield")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
