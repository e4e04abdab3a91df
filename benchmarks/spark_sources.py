"""The sources' part of a refresh (extract, standardize, the gate, the staged files and their quality profile:
``refresh_source`` for each source) on one engine, one process per run: wall time, CPU time (this process, the
local Spark JVM and its Python workers: every process descending from this one) and the driver's peak resident
memory (this process's high-water mark, VmHWM), the number that says whether the driver holds the sources.

    mkdir -p $BENCH/src_small && cp cockpit.toml $BENCH/src_small/
    .venv/bin/python benchmarks/spark_sources.py --config $BENCH/src_small/cockpit.toml --size small --engine spark

``--source crm`` (repeatable): only that source. Each run refreshes into the same data folder (its snapshots
are left in place; a run does not publish a manifest, so every run reads the sources again).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.spark import Peaks, tree_cpu  # noqa: E402
from dashboard.core.config import EngineConfig, load_settings  # noqa: E402
from dashboard.core.store import Store  # noqa: E402
from dashboard.pipeline.progress import Tracker  # noqa: E402
from dashboard.pipeline.refresh import refresh_source  # noqa: E402
from dashboard.pipeline.standardize import release_engine, start_engine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--size", default="small", help="demo size generated when the folder has no demo yet")
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="spark")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--source", action="append", default=[], help="only this source (repeatable); all if none")
    args = parser.parse_args()
    settings = load_settings(args.config)
    if not (settings.data_path / "raw" / "demo").is_dir():
        from dashboard.demo import generate

        generate(settings.data_path, args.size, 42)
    engine = {"kind": args.engine} | ({"master": args.master} if args.engine == "spark" else {})
    settings = settings.model_copy(update={"engine": EngineConfig.model_validate(engine)})
    names = args.source or settings.source_names
    store, peaks = Store(settings.data_path), Peaks()
    print(f"{args.engine} {args.master if args.engine == 'spark' else ''}: {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    wall, cpu = time.perf_counter(), tree_cpu()
    start_engine(settings)
    print(f"  session start wall {time.perf_counter() - wall:.2f} s  cpu {tree_cpu() - cpu:.2f} s", flush=True)
    wall, cpu, rows = time.perf_counter(), tree_cpu(), 0
    try:
        with Tracker(store, names) as tracker:
            for name in names:
                w, c = time.perf_counter(), tree_cpu()
                result, _pending = refresh_source(settings, store, settings.source(name), tracker)
                rows += sum(result.rows.values())
                steps = ", ".join(f"{k} {v['seconds']:.1f}" for k, v in result.steps.items())
                print(f"  {name}: {result.status}, {sum(result.rows.values()):,} rows, wall "
                      f"{time.perf_counter() - w:.2f} s, cpu {tree_cpu() - c:.2f} s ({steps})", flush=True)  # fmt: skip
    finally:
        release_engine(settings)
    wall, cpu = time.perf_counter() - wall, tree_cpu() - cpu
    print(f"{args.engine:8s} sources wall {wall:7.2f} s  cpu {cpu:7.2f} s  {rows:,} rows staged")
    print(f"  {peaks.report()}; load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
