"""make test's ``-n 2 --dist loadgroup``: the tests of an xdist group run on one worker (tests/xdist_groups.py)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GROUPED = """
import pytest

pytestmark = pytest.mark.xdist_group("{group}")


@pytest.mark.parametrize("i", range(4))
def test_grouped(i):
    pass
"""
LOOSE = """
import pytest


@pytest.mark.parametrize("i", range(8))
def test_loose(i):
    pass
"""


def _grouped_run(folder: Path) -> subprocess.CompletedProcess[str]:
    """The test modules in ``folder`` run as make test runs the suite (-n 2 --dist loadgroup), passing."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.xdist_groups", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", "-v", "--rootdir", str(folder), str(folder)],
        cwd=folder, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def test_a_groups_tests_run_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(GROUPED.format(group="one"), encoding="utf-8")
    (tmp_path / "test_b.py").write_text(GROUPED.format(group="one"), encoding="utf-8")
    (tmp_path / "test_c.py").write_text(GROUPED.format(group="two"), encoding="utf-8")
    (tmp_path / "test_d.py").write_text(LOOSE, encoding="utf-8")
    run = _grouped_run(tmp_path)
    ran = re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED (\S+)", run.stdout)
    assert len(ran) == 20, run.stdout
    workers: dict[str, set[str]] = {}
    for worker, nodeid in ran:
        group = nodeid.rpartition("@")[2] if "@" in nodeid else "none"
        workers.setdefault(group, set()).add(worker)
    assert sum(n.endswith("@one") for _, n in ran) == 8 and sum(n.endswith("@two") for _, n in ran) == 4
    assert len(workers["one"]) == 1 and len(workers["two"]) == 1, ran


MADE_ONCE = """
import os
import time

import pytest

from tests.conftest import made_once

pytestmark = pytest.mark.xdist_group("{group}")


def make(folder):
    with open({log!r} + "/made", "a") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")
    time.sleep(2)  # the other worker asks meanwhile
    (folder / "made").write_text("yes")


def test_shared(tmp_path_factory):
    folder = made_once(tmp_path_factory, "shared", make)
    assert (folder / "made").read_text() == "yes"
    with open({log!r} + "/seen", "a") as f:
        f.write(os.environ["PYTEST_XDIST_WORKER"] + " " + str(folder) + "\\n")
"""


def test_a_folder_made_once_is_made_by_one_worker_for_both(tmp_path: Path) -> None:
    """tests/conftest.py made_once (the demos every worker reads): two workers ask at once, one makes it."""
    log = tmp_path / "log"
    log.mkdir()
    for group in ("one", "two"):  # one test per group: one on each worker
        (tmp_path / f"test_{group}.py").write_text(MADE_ONCE.format(group=group, log=str(log)), encoding="utf-8")
    _grouped_run(tmp_path)
    seen = dict(line.split() for line in (log / "seen").read_text().splitlines())
    assert len(seen) == 2 and len(set(seen.values())) == 1, seen  # both workers, one folder
    assert len((log / "made").read_text().split()) == 1, seen  # made by one of them
