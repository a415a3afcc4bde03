"""config/ is plain data: importing all of it loads nothing from transforms/ (the image
presets' grammar lives there, and transforms imports config, never the reverse)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import config

ROOT = Path(__file__).resolve().parents[3]


def test_config_imports_nothing_from_transforms() -> None:
    modules = sorted(f"config.{m.name}" for m in pkgutil.iter_modules(config.__path__))
    assert "config.images" in modules and "config.loader" in modules
    script = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transforms'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
