"""Golden records, the identity-consistency quality table (derived.spark.steps), churn's per-day tables and
churn's features at the cutoffs a fit reads (derived.spark.churn) on the Spark engine against the DuckDB
engine, on a refreshed company's snapshots and current build: wall time, CPU time (this process's, plus the
local Spark JVM's from /proc) and input rows per CPU-second per step.
Reads the company; writes only into a temporary folder under its data folder, removed after.

    .venv/bin/python benchmarks/spark_steps.py --config $BENCH/spark_medium/cockpit.toml --master 'local[2]'
    .venv/bin/python benchmarks/spark_steps.py --config $BENCH/spark_medium/cockpit.toml --steps churn_features
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.spark import Peaks, _cpu_self, _line, _timed, opened, parse_conf, spark_started  # noqa: E402
from dashboard.core.config import Settings  # noqa: E402
from dashboard.core.store import Manifest, Store  # noqa: E402
from dashboard.derived import golden  # noqa: E402
from dashboard.derived.churn import features as churn_features  # noqa: E402
from dashboard.derived.identity import read_records  # noqa: E402
from dashboard.derived.quality.tables import identity_consistency  # noqa: E402
from dashboard.derived.spark import churn as spark_churn  # noqa: E402
from dashboard.derived.spark import served as spark_served  # noqa: E402
from dashboard.derived.spark import steps as spark_steps  # noqa: E402

# what each step reads (besides identity's links): its "input rows"
INPUTS = {
    "golden": ("customers", "leads", "orders", "contracts", "interactions", "lead_facts"),
    "quality": ("customers", "leads"),
    "churn": ("orders", "interactions"),
    "churn_features": ("orders", "interactions", "contracts"),
}
CUTOFFS = 4  # churn_features: today's and three windows back, as a fit's backtest reads them (labels for those)


def _count(con: duckdb.DuckDBPyConnection, tables: tuple[str, ...]) -> int:
    return sum(int(con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in tables)  # our own names


class Steps:
    """Each step once on DuckDB (``spark`` None) or on Spark, into ``folder``."""

    def __init__(self, settings: Settings, store: Store, manifest: Manifest, con: duckdb.DuckDBPyConnection) -> None:
        self.settings, self.store, self.manifest, self.con = settings, store, manifest, con
        self.links = con.sql("SELECT * FROM identity_links").pl()

    def stage(self, folder: Path) -> Path:
        folder.mkdir(parents=True)
        self.links.write_parquet(folder / "identity_links.parquet")
        derived = self.manifest["derived"]["tables"]
        shutil.copyfile(self.store.abs(derived["lead_facts"]), folder / "lead_facts.parquet")
        return folder

    def golden(self, spark: Any, folder: Path) -> Callable[[], None]:
        records = read_records(self.con)
        if spark is None:
            return lambda: golden.write_golden(self.con, self.settings, records, self.links, folder)
        return lambda: spark_steps.golden_tables(
            spark, self.con, self.settings, self.store, self.manifest, records, folder
        )

    def quality(self, spark: Any, folder: Path) -> Callable[[], None]:
        if spark is None:
            return lambda: identity_consistency(self.con, self.links).write_parquet(folder / "consistency.parquet")
        return lambda: spark_steps.identity_consistency(
            spark, self.con, self.settings, self.store, self.manifest, folder
        )

    def churn(self, spark: Any, folder: Path) -> Callable[[], None]:
        latest = churn_features.day_number(date.today() + timedelta(days=1))
        priorities = {s.name: s.priority for s in self.settings.sources}
        if spark is None:
            return lambda: churn_features.load_events(self.con, self.links, priorities, latest)
        make = spark_churn.SparkDays(spark, self.settings, self.store, self.manifest, folder)

        def run() -> None:
            with churn_features.day_tables_from(make):
                churn_features.load_events(self.con, self.links, priorities, latest)

        return run

    def churn_features(self, spark: Any, folder: Path) -> Callable[[], None]:
        """The per-day tables, then the features at today's cutoff and CUTOFFS - 1 windows of the horizon
        back with their labels (the fit and the scoring themselves are the driver's on both engines)."""
        latest = churn_features.day_number(date.today() + timedelta(days=1))
        priorities = {s.name: s.priority for s in self.settings.sources}
        h = self.settings.churn.horizon_days
        con = self.con

        def run() -> None:
            with spark_served.churn_on(spark, self.settings, self.store, self.manifest, folder):  # None: DuckDB's
                churn_features.load_events(con, self.links, priorities, latest)
                last = churn_features.activity_range(con)[1]
                d = math.floor(last or 0) + 1
                for k in range(CUTOFFS):
                    churn_features.features_at(con, d - k * h, h)
                    if k:
                        churn_features.active_at(con, d - k * h, h)
                churn_features.drop_days(con)

        return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="cockpit.toml of a refreshed company")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument(
        "--steps", default="golden,quality,churn,churn_features", help="which steps to time (comma-separated)"
    )
    parser.add_argument("--runs", type=int, default=2, help="Spark runs per step in one session (the first is cold)")
    parser.add_argument("--conf", action="append", default=[], help="spark.KEY=VALUE over the session's defaults")
    args = parser.parse_args()
    names, whole = [s for s in args.steps.split(",") if s in INPUTS], Peaks()
    with opened(args.config, args.master, parse_conf(args.conf), "bench-steps") as bench:
        steps = Steps(bench.settings, bench.store, bench.manifest, bench.con)
        rows = {name: _count(bench.con, INPUTS[name]) + steps.links.height for name in names}
        print(f"{', '.join(f'{n} {r:,}' for n, r in rows.items())} input rows (with the identity links); "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")  # fmt: skip
        for name in names:
            work, peaks = getattr(steps, name)(None, steps.stage(bench.folder / f"duckdb-{name}")), Peaks()
            print(_line(f"duckdb: {name}", *_timed(work, _cpu_self), rows[name]))
            print(f"  {peaks.report(hwm=False)} (sampled during the run)")
        with spark_started(bench) as spark:
            for name in names:

                def make(run: int, name: str = name) -> Callable[[], None]:
                    return getattr(steps, name)(spark, steps.stage(bench.folder / f"spark-{name}-{run}"))

                bench.spark_runs(name, args.runs, rows[name], make)
            print(f"whole benchmark: {whole.report()}")


if __name__ == "__main__":
    main()
