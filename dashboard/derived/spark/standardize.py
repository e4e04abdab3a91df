"""Standardize and the gate on Spark ([engine] kind = "spark"): the refresh's session for its sources, and a
Polars function (standardize's row-wise part) run on the executors over parts of a frame, so both engines run
the same code on every row. The parts go out and come back as Arrow IPC bytes, which keeps every column's
type exactly as Polars had it (no round trip through Spark's types)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any, TypeVar

import polars as pl

from dashboard.core.config import Settings
from dashboard.derived.spark.jobs import run_job
from dashboard.derived.spark.session import build_session, probe, stop_session

T = TypeVar("T")
# rows per task at most (at least one task per core the session has): a part travels inside its task, and
# Spark warns past 1 MB a task (zstd makes 20k rows of a wide export about that)
PART_ROWS = 20_000
_held: dict[str, Any] = {}  # master → the session the refresh's sources run on, once its test job ran


def session(settings: Settings) -> Any:
    """The refresh's session for standardize and the gate: started and checked by a test job at first use,
    the same one after, until ``release`` (one Spark context per process: another master's is stopped)."""
    master = settings.engine.master
    spark = _held.get(master)
    if spark is None or spark.sparkContext._jsc is None:  # none yet, or stopped by someone else
        release()
        spark = build_session(settings)
        try:
            probe(spark, master, settings.engine.connect_timeout_seconds)
        except BaseException:
            spark.stop()
            raise
        _held[master] = spark
    return spark


def release() -> None:
    """Stop the sources' session, if one runs, and its JVM: the derived build starts its own (in another
    process), and on a cluster this one would hold the cores it needs."""
    for spark in _held.values():
        stop_session(spark)
    _held.clear()


def _ipc(frame: pl.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.write_ipc(out, compression="zstd")
    return out.getvalue()


def _apply(fn: Callable[[pl.DataFrame], tuple[pl.DataFrame, T]], blob: bytes) -> tuple[bytes, T]:
    """On an executor: one part in, ``fn``'s frame out as IPC bytes, with what else ``fn`` returned."""
    frame, extra = fn(pl.read_ipc(io.BytesIO(blob)))
    return _ipc(frame), extra


def map_parts(
    settings: Settings,
    name: str,
    frame: pl.DataFrame,
    fn: Callable[[pl.DataFrame], tuple[pl.DataFrame, T]],
    part_rows: int = PART_ROWS,
) -> list[tuple[pl.DataFrame, T]]:
    """``fn`` on consecutive parts of ``frame`` as Spark tasks (``fn`` must be importable by the executors: a
    module-level function or a partial of one), the results in the parts' order."""
    spark = session(settings)
    parts = max(spark.sparkContext.defaultParallelism, math.ceil(frame.height / part_rows))
    size = max(1, math.ceil(frame.height / parts))
    blobs = [_ipc(frame.slice(i, size)) for i in range(0, max(frame.height, 1), size)]
    out: list[tuple[bytes, T]] = []

    def work() -> None:
        rdd = spark.sparkContext.parallelize(blobs, len(blobs))
        out.extend(rdd.map(lambda blob: _apply(fn, blob)).collect())

    run_job(spark, settings, name, work)
    return [(pl.read_ipc(io.BytesIO(blob)), extra) for blob, extra in out]
