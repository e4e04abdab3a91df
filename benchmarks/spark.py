"""The Spark engine against the DuckDB engine on one machine: the steps that run as Spark jobs (lead facts,
attribution, filter values: derived.spark.jobs) timed on both, on a refreshed company's snapshots, with
wall time, CPU time and input rows per CPU-second (the per-core throughput the README's sizing uses).
Reads the company's snapshots; writes only into a temporary folder under its data folder, removed after.

    mkdir -p /tmp/spark_medium && cp cockpit.toml /tmp/spark_medium/
    .venv/bin/cockpit --config /tmp/spark_medium/cockpit.toml demo --size medium --no-serve
    .venv/bin/python benchmarks/spark.py --config /tmp/spark_medium/cockpit.toml --master 'local[2]'
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from dashboard.core.config import EngineConfig, Settings, load_settings
from dashboard.core.duck import quote_path, work_connection
from dashboard.core.store import Store
from dashboard.derived import analytics
from dashboard.derived.spark import jobs
from dashboard.derived.spark.session import build_session
from dashboard.derived.tables import attach_views

INPUTS = ("leads", "lead_events", "interactions")


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_of(pid: int) -> float:
    """User + system seconds of another process of ours (the local Spark JVM), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(run: Callable[[], None], cpu: Callable[[], float]) -> tuple[float, float]:
    wall, used = time.perf_counter(), cpu()
    run()
    return time.perf_counter() - wall, cpu() - used


def _line(label: str, wall: float, cpu: float, rows: int) -> str:
    return f"{label:34s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  {rows / cpu / 1e3:8.0f}k input rows per CPU-second"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="cockpit.toml of a refreshed company")
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()
    base = load_settings(args.config)
    engine = EngineConfig.model_validate({"kind": "spark", "master": args.master})
    settings: Settings = base.model_copy(update={"engine": engine})
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    folder = settings.data_path / ".spark" / f"bench-{os.getpid()}"
    try:
        with work_connection(settings) as con:
            attach_views(con, store, manifest, in_memory=frozenset())
            rows = sum(int(con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in INPUTS)
            links = con.sql("SELECT * FROM identity_links").pl()
            print(f"{rows:,} input rows ({', '.join(INPUTS)}); {links.height:,} identity links; "
                  f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")  # fmt: skip
            duck_dir = folder / "duckdb"
            duck_dir.mkdir(parents=True)

            def on_duckdb() -> None:
                analytics.build(
                    con, links, settings.analytics.attribution_half_life_days,
                    settings.analytics.attribution_exclude_channels,
                )  # fmt: skip
                for table in analytics.ANALYTICS_TABLES:
                    con.execute(f"COPY {table} TO {quote_path(duck_dir / f'{table}.parquet')} (FORMAT parquet)")

            wall, cpu = _timed(on_duckdb, _cpu_self)
            print(_line("duckdb: lead facts + attribution", wall, cpu, rows))
            started = time.perf_counter()
            spark = build_session(settings)
            jvm = int(spark.sparkContext._jvm.ProcessHandle.current().pid())
            print(f"spark session ({args.master}): {time.perf_counter() - started:.1f} s to start")
            try:
                for run in ("first", "second"):
                    stage = folder / f"spark-{run}"
                    stage.mkdir(parents=True)
                    links.write_parquet(stage / "identity_links.parquet")

                    def on_spark(stage: Path = stage) -> None:
                        jobs.analytics_tables(spark, con, settings, store, manifest, stage)

                    wall, cpu = _timed(on_spark, lambda: _cpu_self() + _cpu_of(jvm))
                    print(_line(f"spark {args.master} ({run} run)", wall, cpu, rows))
            finally:
                spark.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
