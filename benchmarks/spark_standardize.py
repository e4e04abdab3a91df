"""Standardize and the gate on both engines: every table of every demo source read once, then standardized
and checked by its suite with engine duckdb and with engine spark, with wall time, CPU time (this process,
the local Spark JVM and its Python workers: every process descending from this one) and input rows per
CPU-second. The Spark session's start is timed on its own line, not in the steps.

    mkdir -p $BENCH/std_medium && cp cockpit.toml $BENCH/std_medium/
    .venv/bin/python benchmarks/spark_standardize.py --config $BENCH/std_medium/cockpit.toml --size medium

``--source crm`` (repeatable) reads and times only that source's tables: at the large demo, reading all nine
sources at once holds ~20M rows in this process before the first step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.spark import Peaks, tree_cpu  # noqa: E402
from dashboard.core.config import EngineConfig, Settings, SourceConfig, TableConfig, load_settings  # noqa: E402
from dashboard.pipeline.standardize import release_engine, standardize  # noqa: E402
from dashboard.pipeline.validate import validate  # noqa: E402
from dashboard.sources import read_table  # noqa: E402
from dashboard.sources.incremental import ExtractContext  # noqa: E402

Table = tuple[SourceConfig, TableConfig, pl.DataFrame, dict[str, list[str]]]


def _timed(work: Callable[[], Any]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), tree_cpu()
    work()
    return time.perf_counter() - wall, tree_cpu() - cpu


def _tables(settings: Settings, scratch: Path, only: set[str]) -> list[Table]:
    out = []
    for src in settings.sources:
        if only and src.name not in only:
            continue
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
    now, peaks = datetime.now(), Peaks()
    totals = {"standardize": [0.0, 0.0], "gate": [0.0, 0.0]}
    for table in tables:
        for step, (wall, cpu) in zip(totals, _one(settings, table, now), strict=True):
            totals[step][0] += wall
            totals[step][1] += cpu
            print(f"  {label} {table[0].name}/{table[1].entity} ({table[2].height:,} rows) {step}: "
                  f"wall {wall:.2f} s, cpu {cpu:.2f} s", flush=True)  # fmt: skip
    rows = sum(t[2].height for t in tables)
    for step, (wall, cpu) in totals.items():
        print(f"{label:18s} {step:12s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  {rows / cpu / 1e3:7.1f}k rows per CPU-s")
    print(f"  {peaks.report(hwm=False)} (sampled during these runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--size", default="medium", help="demo size generated when the folder has no demo yet")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--source", action="append", default=[], help="only this source (repeatable); all if none")
    args = parser.parse_args()
    settings, whole = load_settings(args.config), Peaks()
    if not (settings.data_path / "raw" / "demo").is_dir():
        from dashboard.demo import generate

        generate(settings.data_path, args.size, 42)
    tables = _tables(settings, settings.data_path / ".bench_extract", set(args.source))
    if not tables:
        raise SystemExit(f"--source {', '.join(args.source)}: no such source in {args.config}")
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
    print(f"load at the end {os.getloadavg()[0]:.1f}; whole benchmark: {whole.report()}")


if __name__ == "__main__":
    main()
