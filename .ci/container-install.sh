#!/bin/sh
# Install edgeshield into a fresh virtual environment and prove it works there.
#
#   sh .ci/container-install.sh SRC_DIR VENV_DIR
#
# The Dockerfile's builder stage runs exactly this (the runtime stage copies VENV_DIR),
# and tests/e2e/test_container_install.py runs it too, so the image's install
# steps are tested without a Docker engine. PYTHON picks the interpreter (default
# python3); pip reads its usual PIP_* variables (PIP_CONSTRAINT pins versions).
set -eu

if [ "$#" -ne 2 ]; then
    echo "usage: $0 SRC_DIR VENV_DIR" >&2
    exit 64
fi
src=$1
venv=$2

"${PYTHON:-python3}" -m venv "$venv"
# A wheel build of the project (pip builds one from the source tree), with its
# dependencies. No compiler is needed: every dependency has a wheel, and pyvips (an
# sdist) falls back to its pure-Python ABI mode, loading libvips from pyvips-binary.
"$venv/bin/python" -m pip install --no-input "$src"
"$venv/bin/python" -m pip check

# Fail the build here, not in production, if the bundled libvips cannot load or lacks
# an encoder on this base image: a real resize to WebP and AVIF.
"$venv/bin/python" - <<'PY'
# The server's parser and event loop (as `serve` runs them), and every runtime import.
import httptools
import uvloop
import proxy.serve.app
import pyvips

source = pyvips.Image.black(64, 48, bands=3) + 128
for suffix, magic in ((".webp", b"WEBP"), (".avif", b"ftyp")):
    out = source.thumbnail_image(32).write_to_buffer(suffix)
    if magic not in out[:16]:
        raise SystemExit(f"pyvips wrote no {suffix} image")
print(f"pyvips {pyvips.__version__}, libvips {pyvips.version(0)}.{pyvips.version(1)}: ok")
PY
"$venv/bin/edgeshield" --version
