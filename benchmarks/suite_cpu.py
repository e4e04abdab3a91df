"""Where the test suite's CPU goes, from the junit.xml of a run with tests/cpu_record.py (``make test`` writes
test-artifacts/junit.xml): CPU-s and wall seconds by module (or xdist group) and the costliest tests.

    python benchmarks/suite_cpu.py [test-artifacts/junit.xml] [--top 30]

"own" is the pytest worker's CPU while the test ran (threads included), "children" what every process under it used
meanwhile (refreshes, CLI commands, servers, JVMs), read while they run. A module's first test carries its fixtures'
setup; a process orphaned during a test leaves the count there (negative children, named on the first line)."""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Cost:
    tests: int = 0
    wall: float = 0.0
    own: float = 0.0
    children: float = 0.0

    @property
    def cpu(self) -> float:
        return self.own + self.children

    def add(self, wall: float, own: float, children: float, tests: int = 1) -> None:
        self.tests += tests
        self.wall += wall
        self.own += own
        self.children += children


def _module(classname: str) -> str:
    parts = classname.split(".")
    # the test modules themselves: tests.test_x or tests.browser.test_x, without a class name after them
    for i, part in enumerate(parts):
        if part.startswith("test_"):
            return ".".join(parts[: i + 1])
    return classname


def read(path: Path) -> tuple[dict[str, Cost], list[tuple[str, Cost]], int]:
    """Costs by module, each test's cost, and how many test cases had no CPU properties."""
    modules: dict[str, Cost] = defaultdict(Cost)
    tests: list[tuple[str, Cost]] = []
    missing = 0
    for case in ET.parse(path).iter("testcase"):
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if "cpu_own" not in props:
            missing += 1
            continue
        wall, own, children = (
            float(case.get("time", 0)),
            float(props["cpu_own"] or 0),
            float(props["cpu_children"] or 0),
        )
        modules[_module(case.get("classname", ""))].add(wall, own, children)
        tests.append((f"{case.get('classname')}::{case.get('name')}", Cost(1, wall, own, children)))
    return modules, tests, missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("junit", nargs="?", type=Path, default=Path("test-artifacts/junit.xml"))
    parser.add_argument("--top", type=int, default=30, help="how many modules and tests to list (30)")
    args = parser.parse_args(argv)
    if not args.junit.is_file():
        print(f"{args.junit}: no such file (run make test first, or name the junit.xml)", file=sys.stderr)
        return 2
    try:
        modules, tests, missing = read(args.junit)
    except ET.ParseError as err:
        print(f"{args.junit}: not a junit.xml file ({err})", file=sys.stderr)
        return 2
    if not tests:
        print(f"{args.junit}: no test case carries cpu_own (written without tests/cpu_record.py?)", file=sys.stderr)
        return 2
    total = Cost()
    for cost in modules.values():
        total.add(cost.wall, cost.own, cost.children, cost.tests)
    note = f"; {missing} without CPU properties" if missing else ""
    lost = sorted((cost.children, name) for name, cost in tests if cost.children < -0.5)
    if lost:  # tests/cpu_record.py: a process whose parent died before it leaves the count in the test it happened in
        note += (f"; {len(lost)} tests with negative children, {sum(c for c, _ in lost):,.1f} CPU-s (processes "
                 f"orphaned there left the count with what they had used), the largest in {lost[0][1]}")  # fmt: skip
    print(f"{total.tests} tests: {total.cpu:,.1f} CPU-s (own {total.own:,.1f}, children {total.children:,.1f}), "
          f"{total.wall:,.1f} s of summed wall{note}")  # fmt: skip
    print("\nby module\n" + LINE.format("CPU-s", "share", "own", "children", "wall s", "tests", "module"))
    for name, cost in sorted(modules.items(), key=lambda kv: -kv[1].cpu)[: args.top]:
        print(_row(name, cost, total, str(cost.tests)))
    print("\ncostliest tests\n" + LINE.format("CPU-s", "share", "own", "children", "wall s", "", "test"))
    for name, cost in sorted(tests, key=lambda kv: -kv[1].cpu)[: args.top]:
        print(_row(name, cost, total, ""))
    return 0


LINE = "{:>9} {:>6} {:>9} {:>9} {:>9} {:>6}  {}"


def _row(name: str, cost: Cost, total: Cost, tests: str) -> str:
    share = f"{cost.cpu / total.cpu:.1%}" if total.cpu else "-"
    cpu, own, children, wall = (f"{v:,.1f}" for v in (cost.cpu, cost.own, cost.children, cost.wall))
    return LINE.format(cpu, share, own, children, wall, tests, name)


if __name__ == "__main__":
    sys.exit(main())
