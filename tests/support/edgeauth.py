"""Akamai's own token generator (PyPI akamai-edgeauth), imported without its side
effect: the module sets TZ=GMT in os.environ on import, which every later subprocess of
the test run would inherit."""

from __future__ import annotations

import os

_saved = os.environ.get("TZ")
from akamai.edgeauth import EdgeAuth  # noqa: E402

if _saved is None:
    os.environ.pop("TZ", None)
else:
    os.environ["TZ"] = _saved

__all__ = ["EdgeAuth"]
