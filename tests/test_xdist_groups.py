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


def test_a_groups_tests_run_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text(GROUPED.format(group="one"), encoding="utf-8")
    (tmp_path / "test_b.py").write_text(GROUPED.format(group="one"), encoding="utf-8")
    (tmp_path / "test_c.py").write_text(GROUPED.format(group="two"), encoding="utf-8")
    (tmp_path / "test_d.py").write_text(LOOSE, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.xdist_groups", "-p", "no:cacheprovider", "-n", "2",
         "--dist", "loadgroup", "-v", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    ran = re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED (\S+)", run.stdout)
    assert len(ran) == 20, run.stdout
    workers: dict[str, set[str]] = {}
    for worker, nodeid in ran:
        group = nodeid.rpartition("@")[2] if "@" in nodeid else "none"
        workers.setdefault(group, set()).add(worker)
    assert sum(n.endswith("@one") for _, n in ran) == 8 and sum(n.endswith("@two") for _, n in ran) == 4
    assert len(workers["one"]) == 1 and len(workers["two"]) == 1, ran
