"""Runs `edgeshield serve` on granian with some of granian's options replaced, for
granian_options_bench.py:

    python -m loadtests.bench.granian_variant '{"runtime_mode": "st"}' serve --config C

The first argument is a JSON object of `granian.server.Server` keyword arguments that
replace what proxy/serve/engines.py passes; everything after it is edgeshield's own
command line. Enum options take their value ("st", "rust", "rloop", "rsgi"), and
`pipeline_flush`, `keep_alive` and `max_buffer_size` replace those fields of
`http1_settings`. `target` and `factory` swap the app while keeping every other option
edgeshield sets, which is how the bare ASGI and RSGI references run
(loadtests/bench/bare_asgi.py, bare_rsgi.py),
serving the folder in $BENCH_OBJECTS_DIR.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loadtests.bench import bare_asgi  # noqa: E402

HTTP1_FIELDS = ("pipeline_flush", "keep_alive", "max_buffer_size")
# The bare apps' folder, handed over under a name edgeshield's configuration ignores.
OBJECTS_VAR = "BENCH_OBJECTS_DIR"


def granian_kwargs(overrides: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` (what engines.py passes to granian) with `overrides` applied."""
    from granian.constants import Interfaces, Loops, RuntimeModes, TaskImpl

    enums = {
        "runtime_mode": RuntimeModes,
        "loop": Loops,
        "task_impl": TaskImpl,
        "interface": Interfaces,
    }
    merged = dict(kwargs)
    http1 = {k: overrides[k] for k in HTTP1_FIELDS if k in overrides}
    if http1:
        merged["http1_settings"] = dataclasses.replace(merged["http1_settings"], **http1)
    for key, value in overrides.items():
        if key in HTTP1_FIELDS:
            continue
        merged[key] = enums[key](value) if key in enums else value
    return merged


def patch_granian(overrides: dict[str, Any]) -> None:
    """Make engines.run_granian's `Server(...)` apply `overrides` (it imports
    granian.server.Server when it runs, so replacing the module attribute is enough)."""
    import granian.server

    base = granian.server.Server

    class Variant(base):  # type: ignore[misc,valid-type]
        def __init__(self, target: str, **kwargs: Any) -> None:
            if "target" in overrides:
                # A bare app's folder: set only now, after edgeshield loaded its
                # configuration, which would take an EDGESHIELD_* variable for a setting.
                os.environ[bare_asgi.ENV_DIR] = os.environ[OBJECTS_VAR]
            merged = granian_kwargs(overrides, {"target": target, **kwargs})
            super().__init__(**merged)

    granian.server.Server = Variant  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    overrides = json.loads(argv[0])
    if not isinstance(overrides, dict):
        raise SystemExit("the first argument must be a JSON object")
    patch_granian(overrides)
    from proxy.serve.cli import main as serve

    return serve(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
