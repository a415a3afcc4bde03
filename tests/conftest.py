"""Shared fixtures: a real test origin process and a real edgeshield process per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.origin_server import OriginServer, running_origin
from tests.support.proxy_server import ProxyServer, proxy_config, running_proxy


@pytest.fixture(scope="module")
def origin_server() -> Iterator[OriginServer]:
    with running_origin() as server:
        yield server


@pytest.fixture
def origin(origin_server: OriginServer) -> OriginServer:
    if not origin_server.running:
        origin_server.restart()
    origin_server.reset()
    return origin_server


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer) -> Iterator[ProxyServer]:
    """edgeshield in front of the module's origin with the default route policy."""
    with running_proxy(
        proxy_config(origin_server.url, origin={"first_byte_timeout": 2.0, "read_timeout": 1.0})
    ) as server:
        yield server
