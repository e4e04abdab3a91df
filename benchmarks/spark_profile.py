"""The snapshot quality profile (derived/quality/profile.py) with engine duckdb (polars' SQL engine over the
staged frames, on the driver) and with engine spark (the same statement as a Spark job per entity over the
staged files, derived/spark/quality.py), over every entity file of a refreshed company's current snapshots:
wall time, CPU time (this process's, plus the local Spark JVM's from /proc) and rows per CPU-second. The
company is only read: its files are hard-linked into a temporary data folder (removed after), where Spark
writes its own configuration.

    .venv/bin/python benchmarks/spark_profile.py --data <company>/data --master 'local[2]' --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.spark import _cpu_of, _cpu_self, _line, parse_conf  # noqa: E402
from dashboard.core.config import parse_settings  # noqa: E402
from dashboard.core.dictionary import load_dictionary  # noqa: E402
from dashboard.derived.quality.profile import profile_frame  # noqa: E402
from dashboard.derived.spark import quality  # noqa: E402
from dashboard.derived.spark.standardize import release, session  # noqa: E402


def _linked(data: Path, folder: Path) -> list[tuple[str, str, Path]]:
    """(source, entity, file) of each current snapshot's entity files, hard-linked under ``folder``."""
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    out = []
    for source, info in manifest["sources"].items():
        for entity, e in info.get("entities", {}).items():
            target = folder / source / f"{entity}.parquet"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(data / e["file"], target)
            out.append((source, entity, target))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="a refreshed company's data folder")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--conf", action="append", default=[], help="spark.KEY=VALUE over the session's defaults")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="profile-bench-"))  # on the same file system, for the links
    try:
        engine = {"kind": "spark", "master": args.master, "conf": parse_conf(args.conf)}
        settings = parse_settings({"data_dir": str(scratch), "engine": engine}, scratch)
        files = _linked(args.data.resolve(), scratch / "snapshots")
        frames = [(s, e, p, pl.read_parquet(p)) for s, e, p in files]
        rows = sum(f.height for *_, f in frames)
        print(f"{len(frames)} entity files, {rows:,} rows")
        dictionary = load_dictionary()
        started = time.perf_counter()
        spark = session(settings)
        jvm = int(spark.sparkContext._jvm.ProcessHandle.current().pid())
        print(f"spark session ({args.master}): {time.perf_counter() - started:.1f} s to start")

        def cpu() -> float:
            return _cpu_self() + _cpu_of(jvm)

        for run in range(args.runs):
            for kind in ("duckdb", "spark"):
                wall, used = time.perf_counter(), cpu()
                for source, entity, path, frame in frames:
                    measured = quality.aggregator(settings)(f"{source}.{entity}", path) if kind == "spark" else None
                    profile_frame(frame, source, "bench", entity, {}, dictionary, measured)
                print(_line(f"run {run + 1} profile, engine {kind}", time.perf_counter() - wall, cpu() - used, rows))
    finally:
        release()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
