"""Standardize and the gate on both engines: every table of every demo source read once, then standardized
and checked by its suite with engine duckdb and with engine spark, with wall time, CPU time (this process,
the local Spark JVM and its Python workers: every process descending from this one) and input rows per
CPU-second. The Spark session's start is timed on its own line, not in the steps.

    mkdir -p /tmp/std_medium && cp cockpit.toml /tmp/std_medium/
    .venv/bin/python benchmarks/spark_standardize.py --config /tmp/std_medium/cockpit.toml --size medium
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.core.config import EngineConfig, Settings, SourceConfig, TableConfig, load_settings
from dashboard.pipeline.standardize import release_engine, standardize
from dashboard.pipeline.validate import validate
from dashboard.sources import read_table
from dashboard.sources.incremental import ExtractContext

Table = tuple[SourceConfig, TableConfig, pl.DataFrame, dict[str, list[str]]]


def _stat(pid: str) -> tuple[int, int] | None:
    """(parent pid, user + system ticks of the process and its reaped children), or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def tree_cpu(root: int = os.getpid()) -> float:
    """CPU seconds of ``root`` and every process descending from it (the JVM, its Python workers)."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(p))}
    ours, ticks = {root}, 0
    for pid in sorted(stats):  # parents start before their children: lower pids first, mostly
        parent, used = stats[pid]
        if pid == root or parent in ours:
            ours.add(pid)
            ticks += used
    return ticks / os.sysconf("SC_CLK_TCK")


def _timed(work: Callable[[], Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), tree_cpu()
    work()
    return time.perf_counter() - wall, tree_cpu() - cpu


def _tables(settings: Settings, scratch: Path) -> list[Table]:
    out = []
    for src in settings.sources:
        for i, table in enumerate(src.tables):
            ctx = ExtractContext(settings.base_dir, scratch / src.name / str(i), None)
            raw, missing = read_table(src, table, settings.base_dir, ctx.at(i))
            out.append((src, table, raw, missing))
    return out


def _one(settings: Settings, table: Table, now: datetime) -> tuple[tuple[float, float], tuple[float, float]]:
    """(wall, cpu) of standardizing one table, then of its gate."""
    src, config, raw, missing = table
    held: list[Any] = []
    std = _timed(lambda: held.append(standardize(raw, config, src, settings, "bench", missing)))
    gate = _timed(lambda: validate(held[0].frame, config.entity, src.name, src.quality, now, settings))
    return std, gate


def run(settings: Settings, tables: list[Table]) -> None:
    label = settings.engine.kind + (f" {settings.engine.master}" if settings.engine.kind == "spark" else "")
    now = datetime.now()
    totals = {"standardize": [0.0, 0.0], "gate": [0.0, 0.0]}
    for table in tables:
        for step, (wall, cpu) in zip(totals, _one(settings, table, now), strict=True):
            totals[step][0] += wall
            totals[step][1] += cpu
    rows = sum(t[2].height for t in tables)
    for step, (wall, cpu) in totals.items():
        print(f"{label:18s} {step:12s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  {rows / cpu / 1e3:7.1f}k rows per CPU-s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--size", default="medium", help="demo size generated when the folder has no demo yet")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    settings = load_settings(args.config)
    if not (settings.data_path / "raw" / "demo").is_dir():
        from dashboard.demo import generate

        generate(settings.data_path, args.size, 42)
    tables = _tables(settings, settings.data_path / ".bench_extract")
    print(f"{sum(t[2].height for t in tables):,} input rows in {len(tables)} tables; {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    run(settings, tables)
    spark = settings.model_copy(
        update={"engine": EngineConfig.model_validate({"kind": "spark", "master": args.master})}
    )
    from dashboard.derived.spark.standardize import session

    wall, cpu = _timed(lambda: session(spark))
    print(f"spark {args.master} session start wall {wall:.2f} s  cpu {cpu:.2f} s")
    try:
        run(spark, tables)
    finally:
        release_engine(spark)
    print(f"load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
