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
# Java's \d, \w, \s and \b are ASCII unless its UNICODE_CHARACTER_CLASS flag is on; Python's and polars' (the
# pandas gate, standardize's phone rule) are Unicode: a phone with a full-width digit,
# 13８00138000, matched ^1[3-9]\d{9}$ there and failed on Spark. The suites' patterns run on Spark with (?U).
UNICODE = "(?U)"
_PATTERNS = ("regex", "regex_list")


def _unicode(suite: Any, on: bool) -> None:
    """The suite's regex patterns with (``on``) or without the flag; a result keeps the pattern as written."""
    for expectation in suite.expectations:
        for field in _PATTERNS:
            value = getattr(expectation, field, None)
            if value is not None:
                setattr(expectation, field, _flagged(value, on))


def _flagged(value: Any, on: bool) -> Any:
    if isinstance(value, list):
        return [_flagged(v, on) for v in value]
    plain = value.removeprefix(UNICODE) if isinstance(value, str) else value
    return UNICODE + plain if on and isinstance(plain, str) else plain


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
    settings: Settings,
    name: str,
    frame: pl.DataFrame | Path,
    suite: Any,
    result_format: dict[str, Any],
    folder: Path,
    columns: list[str] | None = None,
) -> Any:
    """``suite`` (a GX ExpectationSuite) on ``frame`` as a Spark frame; GX's validation result. ``frame`` goes
    through a Parquet file in ``folder`` (under the data folder: the source's staging folder, which its lock
    keeps); a Parquet file under the data folder already is read where it lies (its ``columns``, by default
    all). A Spark failure or a run past [engine] job_timeout_seconds is an EngineError naming ``name``."""
    spark = session(settings)
    result: list[Any] = []
    # The executors read the frame from the shared data folder (as the derived steps read snapshots): made
    # from the driver's rows instead, every task would carry its share of them.
    if isinstance(frame, Path):
        path, written = frame, False
    else:
        path, written = folder / f"gate-{uuid.uuid4().hex}.parquet", True  # not .gate-: Spark skips dot files
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)

    def work() -> None:
        sdf = spark.read.parquet(shared_uri(settings, path))
        sdf = (sdf.select(*columns) if columns else sdf).cache()
        _unicode(suite, True)
        try:
            batch = _batch_definition(spark.sparkContext.applicationId).get_batch(batch_parameters={"dataframe": sdf})
            result.append(batch.validate(suite, result_format=result_format))
        finally:
            _unicode(suite, False)
            sdf.unpersist()

    try:
        run_job(spark, settings, name, work)
    finally:
        if written:
            path.unlink(missing_ok=True)
    for outcome in result[0].results:
        kwargs = outcome.expectation_config.kwargs
        for field in _PATTERNS:
            if field in kwargs:
                kwargs[field] = _flagged(kwargs[field], False)
    return result[0]
