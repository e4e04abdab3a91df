"""The quality profile's measures on Spark ([engine] kind = "spark"): an entity's aggregate statement
(derived/quality/profile.py, DuckDB SQL) transpiled and run as a Spark job over the file the snapshot stages,
on the sources' session, so the profile's pass over every row happens on the executors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboard.core.config import Settings
from dashboard.derived.quality.profile import TABLE, Aggregate
from dashboard.derived.spark.jobs import run_job, shared_uri, spark_query
from dashboard.derived.spark.standardize import session


def aggregates(settings: Settings, name: str, path: Path, sql: str, args: dict[str, Any]) -> dict[str, Any]:
    """``sql``'s one row over the Parquet file at ``path`` (under the data folder, which the workers see),
    read as ``TABLE``. A Spark failure or a run past [engine] job_timeout_seconds is an EngineError naming
    ``name``."""
    spark = session(settings)
    text, bound = spark_query(sql, args)
    out: list[dict[str, Any]] = []

    def work() -> None:
        spark.read.parquet(shared_uri(settings, path)).createOrReplaceTempView(TABLE)
        out.append(spark.sql(text, bound).collect()[0].asDict())

    run_job(spark, settings, name, work)
    return out[0]


def aggregator(settings: Settings) -> Callable[[str, Path], Aggregate]:
    """For SnapshotProfile: the Spark job that measures the entity staged at a path, named for its errors."""

    def on_spark(name: str, path: Path) -> Aggregate:
        return lambda sql, args: aggregates(settings, name, path, sql, args)

    return on_spark
