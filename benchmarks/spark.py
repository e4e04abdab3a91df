"""The Spark engine against the DuckDB engine on one machine: the steps that run as Spark jobs (lead facts,
attribution, filter values: derived.spark.jobs; identity, whose pass-2 pairs Splink's Spark linker scores:
derived.spark.identity) timed on both, on a refreshed company's snapshots, with wall time, CPU time and
input rows per CPU-second (the per-core throughput the README's sizing uses).
Reads the company's snapshots; writes only into a temporary folder under its data folder, removed after.

    mkdir -p /tmp/spark_medium && cp cockpit.toml /tmp/spark_medium/
    .venv/bin/cockpit --config /tmp/spark_medium/cockpit.toml demo --size medium --no-serve
    .venv/bin/python benchmarks/spark.py --config /tmp/spark_medium/cockpit.toml --master 'local[2]'
    .venv/bin/python benchmarks/spark.py --config /tmp/spark_medium/cockpit.toml --steps identity
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard.core.config import EngineConfig, Settings, load_settings
from dashboard.core.duck import quote_path, work_connection
from dashboard.core.store import Store
from dashboard.derived import analytics
from dashboard.derived.identity import Model, build_links, read_records
from dashboard.derived.spark import identity as spark_identity
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


def identity(settings: Settings, con: duckdb.DuckDBPyConnection, spark: Any, jvm: int, folder: Path) -> None:
    """The identity step on DuckDB, then with pass 1, the clusters and the candidate pairs' scoring on Spark; each
    model's laps (wall s), and the Spark scoring's own wall and CPU time against the candidate records it scored."""
    records = read_records(con)
    both = lambda: _cpu_self() + _cpu_of(jvm)  # noqa: E731
    scoring: dict[str, tuple[float, float]] = {}
    on_spark = spark_identity.scorer(spark, settings, folder)

    def timed_score(feats: pl.DataFrame, trained: dict[str, Any], model: Model) -> pl.DataFrame:
        out: list[pl.DataFrame] = []
        scoring["score"] = _timed(lambda: out.append(on_spark(feats, trained, model)), both)
        return out[0]

    made: list[tuple[pl.DataFrame, pl.DataFrame, Model | None]] = []
    for label, score, cpu in (("duckdb", None, _cpu_self), (f"spark {settings.engine.master}", timed_score, both)):

        def run(score: Any = score) -> None:  # with Spark: pass 1 and the clusters there too, as a refresh does
            graph = spark_identity.SparkGraph(spark, settings, folder) if score is not None else None
            made.append(build_links(settings, con, None, records, score, graph=graph))

        wall, used = _timed(run, cpu)
        model = made[-1][2]
        stats = model.stats if model else {}
        laps = ", ".join(f"{k.removeprefix('seconds_')} {v:.1f}" for k, v in stats.items() if k.startswith("seconds_"))
        pairs = stats.get("pairs_linked")
        print(_line(f"identity on {label}", wall, used, records.height) + f"  [{laps}; {pairs} pairs]")
    if "score" in scoring:
        print(_line("  of which Splink scoring on Spark", *scoring["score"], records.height))
    (_, duck, _), (_, spark_links, _) = made
    same = spark_links.drop("confidence").equals(duck.drop("confidence"))
    print(f"the same links on both engines (keys, records, rules): {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="cockpit.toml of a refreshed company")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--steps", default="analytics,identity", help="which steps to time (comma-separated)")
    args = parser.parse_args()
    steps = set(args.steps.split(","))
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

            if "analytics" in steps:
                wall, cpu = _timed(on_duckdb, _cpu_self)
                print(_line("duckdb: lead facts + attribution", wall, cpu, rows))
            started = time.perf_counter()
            spark = build_session(settings)
            jvm = int(spark.sparkContext._jvm.ProcessHandle.current().pid())
            print(f"spark session ({args.master}): {time.perf_counter() - started:.1f} s to start")
            try:
                for run in ("first", "second") if "analytics" in steps else ():
                    stage = folder / f"spark-{run}"
                    stage.mkdir(parents=True)
                    links.write_parquet(stage / "identity_links.parquet")

                    def on_spark(stage: Path = stage) -> None:
                        jobs.analytics_tables(spark, con, settings, store, manifest, stage)

                    wall, cpu = _timed(on_spark, lambda: _cpu_self() + _cpu_of(jvm))
                    print(_line(f"spark {args.master} ({run} run)", wall, cpu, rows))
                if "identity" in steps:
                    identity(settings, con, spark, jvm, folder / "identity")
            finally:
                spark.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
