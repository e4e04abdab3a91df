"""Each test's CPU in junit.xml, so the suite's CPU can be looked for test by test (``benchmarks/suite_cpu.py``
sums it). Two properties on every test case: ``cpu_own`` (CPU-s of the pytest process running it, its threads
included: in-process pages, DuckDB, Polars) and ``cpu_children`` (CPU-s of the programs it started and waited
for: refreshes, CLI commands, servers, JVMs). Both count setup, call and teardown, so a module's first test
carries the module's fixtures and the test that stops a server carries the server's whole life. A program
still running when the test ends (a module's server) is counted when it is reaped, not before."""

from __future__ import annotations

import resource
from collections.abc import Generator
from typing import Any

import pytest

_STARTED = pytest.StashKey[tuple[float, float]]()


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_STARTED] = _cpu()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    if call.when == "teardown" and _STARTED in item.stash:  # the teardown's report carries the properties
        own, children = _cpu()
        own0, children0 = item.stash[_STARTED]
        item.user_properties += [("cpu_own", f"{own - own0:.2f}"), ("cpu_children", f"{children - children0:.2f}")]
    return (yield)
