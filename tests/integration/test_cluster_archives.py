"""A batch-download manifest (proxy/archive/) whose URL another instance owns: the owner
answers the hop with the manifest, and the instance the client asked builds the ZIP from
it, reading each member through its own cache, as without a cluster. Were the owner to
answer with its finished ZIP, the asking instance would take that as the object: one
too large for memory would be cut into slices fetched from the origin, where the URL
holds the manifest, not the ZIP."""

from __future__ import annotations

import io
import zipfile
from contextlib import ExitStack

import httpx

from tests.integration.test_archives import _files, _manifest
from tests.integration.test_cluster import HOST, SECRET, owner_port
from tests.support.origin_server import OriginServer
from tests.support.ports import free_port
from tests.support.proxy_server import proxy_config, running_proxy


def test_a_manifest_owned_by_another_instance_is_zipped_where_it_was_asked(
    origin_server: OriginServer,
) -> None:
    files = _files(origin_server, [40_000, 50_000, 30_000])  # a 120 KB archive
    ports = [free_port(), free_port()]
    for _ in range(50):  # a manifest path the second instance owns
        path = _manifest(origin_server, files)
        if owner_port(path, ports) == ports[1]:
            break
    peers = ", ".join(f'"http://127.0.0.1:{p}"' for p in ports)
    with ExitStack() as stack:
        a, _ = (
            stack.enter_context(
                running_proxy(
                    proxy_config(
                        origin_server.url, cache_settings={"memory_max_object_bytes": 65536}
                    )
                    + f'[cluster]\nself = "http://127.0.0.1:{p}"\npeers = [{peers}]\n'
                    + f'secret = "{SECRET}"\n'
                )
            )
            for p in ports
        )
        before = origin_server.stats()["requests"].get(f"GET {path}", 0)
        for _ in range(2):  # the miss, then the hit of what the asking instance kept
            resp = httpx.get(a.url + path, headers={"host": HOST}, timeout=30)
            assert resp.status_code == 200, resp.text
            with zipfile.ZipFile(io.BytesIO(resp.content)) as archive:
                assert archive.testzip() is None
                assert [archive.read(n) for n in archive.namelist()] == [
                    data for _, data in files.values()
                ]
        requests = origin_server.stats()["requests"]
        assert requests.get(f"GET {path}", 0) - before == 1  # the owner's one fetch
        assert not [k for k in requests if k.startswith(f"GET {path}") and "range" in k]
