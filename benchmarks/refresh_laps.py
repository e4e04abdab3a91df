"""A whole `cockpit refresh` timed step by step: each line the refresh prints, stamped with the wall time so
far and the CPU seconds so far of the refresh's process and every process it started (with [engine]
kind = "spark" and a local master, the Spark JVM), sampled every 2 s; a line a minute while a step runs;
and the peak resident memory of them together. A step's CPU is the difference between its lines.

    cp -al $BENCH/large/data/raw $BENCH/large_spark/data/raw   # a copy of a demo's inputs, [engine] set in its config
    nice .venv/bin/python benchmarks/refresh_laps.py --config $BENCH/large_spark/cockpit.toml
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(root: int) -> list[int]:
    """``root`` and every process descending from it, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


class Usage:
    """CPU seconds and resident memory of a process tree, sampled: a process's last sample counts after it
    ends (so the JVM's CPU is kept whoever reaps it), and the peak of the tree's memory together."""

    def __init__(self, root: int) -> None:
        self.root, self.cpu, self.peak = root, dict[int, float](), 0

    def sample(self) -> float:
        rss = 0
        for pid in tree(self.root):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self.cpu[pid] = (int(fields[11]) + int(fields[12])) / TICK
            rss += int(fields[21]) * PAGE
        self.peak = max(self.peak, rss)
        return sum(self.cpu.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    args, more = parser.parse_known_args()  # the rest goes to cockpit refresh (e.g. --full, source names)
    cockpit = Path(sys.executable).with_name("cockpit")
    started = time.perf_counter()
    child = subprocess.Popen(
        [str(cockpit), "--config", args.config, "refresh", *more],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    usage = Usage(child.pid)
    lock = threading.Lock()

    def stamp(text: str) -> None:
        with lock:
            cpu = usage.sample()
        print(f"{time.perf_counter() - started:8.1f} s wall {cpu:9.1f} s cpu  {text}", flush=True)

    def follow() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            stamp(line.rstrip())

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    last = time.perf_counter()
    while child.poll() is None:
        time.sleep(2)
        with lock:
            usage.sample()
        if time.perf_counter() - last >= 60:
            stamp(f"(running; load {os.getloadavg()[0]:.1f})")
            last = time.perf_counter()
    reader.join()
    print(
        f"exit {child.returncode}; wall {time.perf_counter() - started:.1f} s; CPU of the refresh and the "
        f"processes it started {sum(usage.cpu.values()):.1f} s; peak resident memory of them together "
        f"{usage.peak / 2**30:.2f} GB"
    )


if __name__ == "__main__":
    main()
