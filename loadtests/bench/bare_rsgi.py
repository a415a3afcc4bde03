"""bare_asgi.py's app on granian's RSGI interface: the same objects and headers, sent
with one `response_bytes` call. The ceiling of what a Python app can do on granian;
edgeshield itself is an ASGI app.

    EDGESHIELD_BENCH_DIR=/tmp/objs python -m granian --interface rsgi \\
        loadtests.bench.bare_rsgi:app
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from loadtests.bench import bare_asgi

_NOT_FOUND = [("content-type", "text/plain")]


class App:
    def __init__(self) -> None:
        self.objects: dict[str, tuple[list[tuple[str, str]], bytes]] = {}

    def __rsgi_init__(self, loop: Any) -> None:
        bare_asgi.load(Path(os.environ[bare_asgi.ENV_DIR]))
        for path, (headers, body) in bare_asgi.OBJECTS.items():
            # RSGI headers are str pairs; granian adds content-length itself.
            pairs = [(k.decode(), v.decode()) for k, v in headers if k != b"content-length"]
            self.objects[path] = (pairs, body)

    async def __call__(self, scope: Any, protocol: Any) -> None:
        found = self.objects.get(scope.path)
        if found is None:
            protocol.response_bytes(404, _NOT_FOUND, b"not found\n")
            return
        headers, body = found
        protocol.response_bytes(200, headers, b"" if scope.method == "HEAD" else body)


app = App()
