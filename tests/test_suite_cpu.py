"""tests/cpu_record.py writes each test's CPU into junit.xml and benchmarks/suite_cpu.py sums it: a test that burns
CPU in pytest's own process and one that waits on a child that burns it are told apart, and counted; a child that
outlives its test is counted where it burned."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUMMARY = [sys.executable, str(REPO / "benchmarks" / "suite_cpu.py")]
CHILD = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass"

BURNING = f"""
import subprocess, sys, time

from tests.cpu_record import process_cpu

CHILD = {CHILD!r}

def _burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

def test_own():
    _burn(0.6)

def test_child():
    subprocess.run([sys.executable, "-c", CHILD], check=True)

def test_idle():
    time.sleep(0.3)

KEPT = []

def test_starts_a_server_that_burns():
    KEPT.append(subprocess.Popen([sys.executable, "-c", CHILD + "\\ntime.sleep(60)"]))
    end = time.monotonic() + 30
    while time.monotonic() < end and process_cpu(KEPT[0].pid) < 0.55:
        time.sleep(0.1)

def test_stops_it():
    KEPT[0].kill()
    KEPT[0].wait()
"""


def test_each_tests_cpu_reaches_junit_and_the_summary(tmp_path: Path) -> None:
    (tmp_path / "test_burning.py").write_text(BURNING, encoding="utf-8")
    junit = tmp_path / "junit.xml"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.cpu_record",
         f"--junitxml={junit}", "--rootdir", str(tmp_path), str(tmp_path / "test_burning.py")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    props = {
        case.get("name"): {p.get("name"): float(p.get("value", "nan")) for p in case.iter("property")}
        for case in ET.parse(junit).iter("testcase")
    }
    assert props["test_own"]["cpu_own"] >= 0.55 and props["test_own"]["cpu_children"] < 0.1
    assert props["test_child"]["cpu_children"] >= 0.55 and props["test_child"]["cpu_own"] < 0.5
    assert props["test_idle"]["cpu_own"] < 0.2 and props["test_idle"]["cpu_children"] == 0
    # a process still running when its test ends is counted in the test it burned in, not the one that reaps it
    assert props["test_starts_a_server_that_burns"]["cpu_children"] >= 0.55
    assert props["test_stops_it"]["cpu_children"] < 0.2

    summary = subprocess.run([*SUMMARY, str(junit), "--top", "2"], capture_output=True, text=True, timeout=60)
    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[0].startswith("5 tests: ")
    costliest = lines[lines.index("costliest tests") + 2 :]
    assert len(costliest) == 2 and not any("test_idle" in line for line in costliest)


def test_the_summary_names_a_file_without_cpu(tmp_path: Path) -> None:
    bare = tmp_path / "junit.xml"
    bare.write_text(
        '<testsuites><testsuite><testcase classname="tests.test_x" name="t" time="1"/></testsuite></testsuites>'
    )
    run = subprocess.run([*SUMMARY, str(bare)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and str(bare) in run.stderr and "cpu_own" in run.stderr
    missing = tmp_path / "none.xml"
    run = subprocess.run([*SUMMARY, str(missing)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and str(missing) in run.stderr
