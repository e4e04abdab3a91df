"""The gate on Spark ([engine] kind = "spark"): the same GX suites, run by GX's own Spark execution engine on
a Spark frame of the standardized entity, with the same results format as the pandas one."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.core.config import Settings
from dashboard.derived.spark.jobs import run_job, shared_uri
from dashboard.derived.spark.standardize import session

_batches: dict[str, Any] = {}  # per Spark application: GX's engine holds the session it was made with


def _batch_definition(app: str) -> Any:
    if app not in _batches:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        # persist=False: the frame is cached here, and let go of once its suite has run
        asset = context.data_sources.add_spark("cockpit", persist=False).add_dataframe_asset("frame")
        _batches.clear()  # an earlier application's engine: its session is stopped
        _batches[app] = asset.add_batch_definition_whole_dataframe("whole")
    return _batches[app]


def validate(
    settings: Settings, name: str, frame: pl.DataFrame, suite: Any, result_format: dict[str, Any], folder: Path
) -> Any:
    """``suite`` (a GX ExpectationSuite) on ``frame`` as a Spark frame; GX's validation result. ``frame`` goes
    through a Parquet file in ``folder`` (under the data folder: the source's staging folder, which its lock
    keeps). A Spark failure or a run past [engine] job_timeout_seconds is an EngineError naming ``name``."""
    spark = session(settings)
    result: list[Any] = []
    # The executors read the frame from the shared data folder (as the derived steps read snapshots): made
    # from the driver's rows instead, every task would carry its share of them.
    path = folder / f"gate-{uuid.uuid4().hex}.parquet"  # not .gate-: Spark skips files named with a dot
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)

    def work() -> None:
        sdf = spark.read.parquet(shared_uri(settings, path)).cache()
        try:
            batch = _batch_definition(spark.sparkContext.applicationId).get_batch(batch_parameters={"dataframe": sdf})
            result.append(batch.validate(suite, result_format=result_format))
        finally:
            sdf.unpersist()

    try:
        run_job(spark, settings, name, work)
    finally:
        path.unlink(missing_ok=True)
    return result[0]
