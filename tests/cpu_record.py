"""Each test's CPU in junit.xml, so the suite's CPU can be looked for test by test (``benchmarks/suite_cpu.py``
sums it). Two properties on every test case: ``cpu_own`` (CPU-s of the pytest process running it, its threads
included: in-process pages, DuckDB, Polars) and ``cpu_children`` (CPU-s of every process under it: refreshes, CLI
commands, servers, JVMs and what they started). Both count setup, call and teardown, so a module's first test
carries the module's fixtures.

A process under pytest is counted while it runs, not when it is reaped: ``getrusage(RUSAGE_CHILDREN)`` alone
counts a child when it is waited for, which for a pyspark JVM kept across modules or a server of the whole run
came many tests later (a 0.5-second test carried a 196 CPU-s JVM). The descendants' CPU is read from /proc (Linux):
each live or exited-but-unreaped process's own user + system time and its reaped children's, plus what pytest's
process reaped; a process left to init when its parent died (a killed refresh's child) drops out of the count."""

from __future__ import annotations

import os
import resource
from collections.abc import Generator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

_STARTED = pytest.StashKey[tuple[float, float]]()
TICKS = os.sysconf("SC_CLK_TCK")


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process under it (from /proc: Linux)."""
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        for task in Path(f"/proc/{out[-1]}/task").glob("*"):
            with suppress(OSError):  # ended meanwhile
                todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def process_cpu(pid: int) -> float:
    """CPU-s of process ``pid`` (live or exited and not yet reaped): its own user + system time and its reaped
    children's, from /proc/<pid>/stat (utime, stime, cutime, cstime: the 14th to 17th fields); 0 once it is gone."""
    with suppress(OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # the fields after the name
        return sum(int(f) for f in fields[11:15]) / TICKS
    return 0.0


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    under = sum(map(process_cpu, process_tree(os.getpid())[1:]))  # the worker itself first
    return own.ru_utime + own.ru_stime, reaped.ru_utime + reaped.ru_stime + under


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
