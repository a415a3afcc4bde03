"""Code blocks taken from the docs, so the text a reader copies is what the tests run."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
AUTH_DOC = REPO / "docs" / "auth.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def code_block(doc: Path, language: str, containing: str) -> str:
    """The one fenced ``language`` block of ``doc`` that contains ``containing``."""
    blocks = [
        body
        for lang, body in _FENCE.findall(doc.read_text(encoding="utf-8"))
        if lang == language and containing in body
    ]
    if len(blocks) != 1:
        raise LookupError(f"{doc.name}: {len(blocks)} {language} blocks with {containing!r}")
    return blocks[0]


def node_binary() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    if found is None:
        raise RuntimeError("node is required (make system-packages installs nodejs)")
    return found


def run_doc_js_signer(tmp: Path, cases: list[dict[str, Any]]) -> list[str]:
    """signNative(case) for each case, by node running the JavaScript in docs/auth.md."""
    module = tmp / "edgeshield-sign.js"
    module.write_text(code_block(AUTH_DOC, "js", "function signNative"), encoding="utf-8")
    script = (
        "const {signNative} = require(process.argv[1]);"
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(cases.map(signNative)));"
    )
    done = subprocess.run(
        [node_binary(), "-e", script, str(module)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    tokens: list[str] = json.loads(done.stdout)
    return tokens
