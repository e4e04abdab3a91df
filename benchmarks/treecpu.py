"""Run a command and print the CPU time of its whole process tree: every process descended from it, the ones it
never waits for included (a pyspark gateway's JVM, a standalone cluster's daemons and executors, a database server
started by ``pg_ctl``), which ``/usr/bin/time`` and ``getrusage`` leave out. Each process's user + system time is read
from /proc every ``--every`` seconds and its last reading kept, so a process that lives less than that interval is
missed (its parent's reaped-children time, printed beside, counts the ones it waited for).

    python benchmarks/treecpu.py -- python -m pytest -n 0 tests/test_spark_churn.py

Linux only (/proc). Also samples the tree's resident memory (its processes' RSS summed; pages shared between
processes counted in each). Prints one line on stderr when the command ends and exits with the command's exit code;
``--by-name`` adds a line per command name (java, chromium-headle..., python, postgres: /proc's name, cut at 15
characters), its processes' CPU-s summed, the largest first.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> tuple[int, float, str, int] | None:
    """(parent pid, own user + system CPU seconds, command name, resident bytes) of ``pid``, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2 :].split()  # after the command name, which may hold spaces
    name = text[text.find("(") + 1 : text.rfind(")")]
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, name, int(fields[21]) * PAGE


def _sample(tree: set[int], seen: dict[int, float], names: dict[int, str]) -> int:
    """Add the current descendants of ``tree`` to it and keep each tree process's latest CPU reading in ``seen``
    (and its command name in ``names``); the tree's resident bytes now (each process's RSS summed)."""
    stats = {int(d): s for d in os.listdir("/proc") if d.isdigit() and (s := _stat(int(d))) is not None}
    grew = True
    while grew:
        grew = False
        for pid, (parent, *_) in stats.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    for pid in tree & stats.keys():
        seen[pid] = max(seen.get(pid, 0.0), stats[pid][1])
        names[pid] = stats[pid][2]
    return sum(stats[pid][3] for pid in tree & stats.keys())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--every", type=float, default=0.5, help="seconds between two readings of /proc")
    ap.add_argument("--by-name", action="store_true", help="also print each command name's CPU-s (java, chromium...)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command (after --)")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("no command given")
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    tree: set[int] = {proc.pid}
    seen: dict[int, float] = {}
    names: dict[int, str] = {}
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _sample(tree, seen, names))
        time.sleep(args.every)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(
        f"treecpu: {time.perf_counter() - start:.1f} s wall, {sum(seen.values()):.1f} CPU-s sampled over "
        f"{len(seen)} processes (reaped children {reaped.ru_utime + reaped.ru_stime:.1f} CPU-s), "
        f"the tree's peak RSS {peak / 2**30:.2f} GiB, exit {proc.returncode}, load {os.getloadavg()[0]:.1f} at the end",
        file=sys.stderr,
    )
    if args.by_name:
        by_name: dict[str, float] = {}
        for pid, cpu in seen.items():
            by_name[names[pid]] = by_name.get(names[pid], 0.0) + cpu
        for name, cpu in sorted(by_name.items(), key=lambda item: -item[1]):
            print(f"treecpu:   {cpu:8.1f} CPU-s  {name}", file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
