"""Passing the configuration from `edgeshield serve` to the server engine's worker processes, which
import the app by name and so cannot receive a Python object.

What is handed over is the configuration's source (the file path and the command-line
overrides), not the built Settings: each worker loads and validates it again with the
same environment. Serialised Settings would either mask secrets or put them into an
environment variable; this way secrets stay where the operator put them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from config.loader import load_settings
from config.schema import Settings

# Not under the EDGESHIELD_ prefix, so the override loader never reads it as a setting.
HANDOFF_VAR = "_EDGESHIELD_CONFIG_SOURCE"


def handoff_value(path: Path | None, overrides: Mapping[str, Any]) -> str:
    return orjson.dumps(
        {"path": str(path) if path else None, "overrides": overrides}, default=str
    ).decode()


def settings_from_handoff(env: Mapping[str, str]) -> Settings:
    source = orjson.loads(env[HANDOFF_VAR])
    path = Path(source["path"]) if source["path"] else None
    return load_settings(path, env, overrides=source["overrides"])
