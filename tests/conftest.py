"""Shared fixtures: a real test origin process and a real edgeshield process per module."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.support.origin_server import OriginServer, running_origin
from tests.support.proxy_server import ENGINES, ProxyServer, proxy_config, running_proxy

# A busy 2-core CI machine must not fail a property on time alone, and CI runs the same
# examples every time (derandomized per test): a red CI is a real failure, reproducible.
# Local runs keep exploring new examples.
settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


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
def engine(request: pytest.FixtureRequest) -> str | None:
    """The server engine a module's proxies run on: the default (None), or each of
    ENGINES in turn in a module that sets ON_EVERY_ENGINE = True."""
    return getattr(request, "param", None)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames and getattr(metafunc.module, "ON_EVERY_ENGINE", False):
        metafunc.parametrize("engine", ENGINES, indirect=True, scope="module")


@pytest.fixture(scope="module")
def proxy(origin_server: OriginServer, engine: str | None) -> Iterator[ProxyServer]:
    """edgeshield in front of the module's origin with the default route policy."""
    with running_proxy(
        proxy_config(origin_server.url, origin={"first_byte_timeout": 2.0, "read_timeout": 1.0}),
        engine=engine,
    ) as server:
        yield server


# The attack table (issue 11's figure): one line per module of tests/integration/attacks/
# counting its attacks and how they ended. Fed by the reports, which pytest-xdist hands to
# the controlling process too, so it prints the same with or without -n.
ATTACKS = "tests/integration/attacks/"


class AttackTable:
    def __init__(self) -> None:
        self.results: dict[str, Counter[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.nodeid.startswith(ATTACKS):
            return
        module = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
        counts = self.results.setdefault(module, Counter())
        if report.when == "call":
            counts[report.outcome] += 1
        elif report.failed:  # a fixture (a server that would not start) failed
            counts["failed"] += 1

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        write = terminalreporter.write_line
        write(
            "attack table (each: clean answer, nothing poisoned, connection kept or closed cleanly)"
        )
        total: Counter[str] = Counter()
        for module, counts in sorted(self.results.items()):
            total.update(counts)
            write(
                f"  {module:<28} {sum(counts.values()):>4} attacks  {counts['passed']:>4} held"
                f"  {counts['failed']:>3} failed"
            )
        write(
            f"  {'all':<28} {sum(total.values()):>4} attacks  {total['passed']:>4} held"
            f"  {total['failed']:>3} failed"
        )


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(AttackTable(), "attack-table")
