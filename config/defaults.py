"""The built-in configuration used when no config file is given.

It is plain data, shaped exactly like a parsed TOML file, so it goes through the same
environment overrides and the same validation as a file (``config.loader.load_settings``).
``config/examples/demo.toml`` is the same configuration written out as TOML; a unit test
keeps the two identical.
"""

from __future__ import annotations

import copy
from typing import Any, Final

# Where `make run` (`edgeshield demo --out var/demo`) generates the demo media. Relative
# paths are resolved against the working directory of the process.
DEMO_ROOT: Final = "var/demo"
# The key `edgeshield demo` makes beside the folder to sign the demo stream's URL
# (proxy/demo/stream.py), and the stream's directory, the one route that needs a token.
DEMO_KEY_FILE: Final = "var/demo.key"
DEMO_STREAM_PREFIX: Final = "/video/stream"

_DEFAULT_CONFIG: Final[dict[str, Any]] = {
    "server": {
        "host": "127.0.0.1",
        "port": 8080,
    },
    "auth": {
        "signing_kid": "demo",
        "keys": {"demo": {"secret_file": DEMO_KEY_FILE, "encoding": "base64"}},
    },
    "origins": {
        "demo": {"kind": "fs", "root": DEMO_ROOT},
    },
    "routes": [
        {
            "host": "*",
            "path_prefix": DEMO_STREAM_PREFIX,
            "origin": "demo",
            "auth": {"schemes": ["native"], "playlists": {}},
            "access": {"cors": {}},
        },
        {
            "host": "*",
            "path_prefix": "/",
            "origin": "demo",
            "images": True,
            "cache": {"default_ttl": 300, "stale_while_revalidate": 60},
        },
    ],
}


def default_config() -> dict[str, Any]:
    """A fresh, mutable copy of the built-in configuration (callers may change it freely)."""
    return copy.deepcopy(_DEFAULT_CONFIG)
