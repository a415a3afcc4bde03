"""The attack table (issue 11's figure): each test here replays one hostile input against
a real `edgeshield serve` and asserts a clean answer, no poisoned entry and no dropped
connection. At the end of a run, one line per module counts the attacks and how they ended."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

RESULTS = pytest.StashKey[dict[str, Counter[str]]]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RESULTS] = {}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    module = report.nodeid.split("::")[0].rsplit("/", 1)[-1]
    counts = item.config.stash[RESULTS].setdefault(module, Counter())
    if report.when == "call":
        counts[report.outcome] += 1
    elif report.failed:  # a fixture (a server that would not start) failed
        counts["failed"] += 1
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    results = config.stash.get(RESULTS, {})
    if not results:
        return
    write = terminalreporter.write_line
    write("attack table (each: clean answer, nothing poisoned, connection kept or closed cleanly)")
    total: Counter[str] = Counter()
    for module, counts in sorted(results.items()):
        total.update(counts)
        write(
            f"  {module:<28} {sum(counts.values()):>4} attacks  {counts['passed']:>4} held"
            f"  {counts['failed']:>3} failed"
        )
    write(
        f"  {'all':<28} {sum(total.values()):>4} attacks  {total['passed']:>4} held"
        f"  {total['failed']:>3} failed"
    )
