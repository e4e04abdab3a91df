"""Standardize and the gate on Spark ([engine] kind = "spark"): the refresh's session for its sources; Polars
functions (standardize's row-wise part) run on the executors, so both engines run the same code on every row;
and the job that makes a snapshot's staged files from the parts the executors wrote. A file source's tasks
read their files themselves (pipeline/spark_sources.py) and return counts; a frame the driver holds anyway (a
database's or an API's rows) goes out and comes back in parts as Arrow IPC bytes, which keeps every column's
type exactly as Polars had it (no round trip through Spark's types)."""

from __future__ import annotations

import io
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from dashboard.core.config import Settings
from dashboard.core.parse import shared_prefix
from dashboard.derived.spark.jobs import run_job, shared_uri
from dashboard.derived.spark.session import build_session, probe, stop_session

T = TypeVar("T")
P = TypeVar("P")
# a standardized part's own columns (besides the file and row): which part of the source (files in the order
# the DuckDB engine concatenates them) and which of the source's tables it is
PART, TABLE = "part_index", "table_index"
_RANK = "rank_in_group"
_SAMPLES = 5  # duplicates named per table (pipeline.standardize.SAMPLE_SIZE)
_KEY_CHARS = 15  # record order: the bytes of a key compared (pipeline.standardize._KEY_BYTES, twice less one)
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


def map_parts(settings: Settings, name: str, parts: list[P], fn: Callable[[P], T]) -> list[T]:
    """``fn`` on each of ``parts`` as a Spark task of its own, the results in the parts' order (``fn`` must be
    importable by the executors: a module-level function or a partial of one)."""
    spark = session(settings)
    out: list[T] = []

    def work() -> None:
        out.extend(spark.sparkContext.parallelize(parts, max(1, len(parts))).map(fn).collect())

    run_job(spark, settings, name, work)
    return out


def map_frame(
    settings: Settings,
    name: str,
    frame: pl.DataFrame,
    fn: Callable[[pl.DataFrame], tuple[pl.DataFrame, T]],
    part_rows: int = PART_ROWS,
) -> list[tuple[pl.DataFrame, T]]:
    """``fn`` on consecutive parts of ``frame`` (one held by the driver: a database's or an API's rows), sent
    to the executors as Arrow IPC bytes and back, the results in the parts' order."""
    spark = session(settings)
    parts = max(spark.sparkContext.defaultParallelism, math.ceil(frame.height / part_rows))
    size = max(1, math.ceil(frame.height / parts))
    blobs = [_ipc(frame.slice(i, size)) for i in range(0, max(frame.height, 1), size)]
    out = map_parts(settings, name, blobs, partial(_apply, fn))
    return [(pl.read_ipc(io.BytesIO(blob)), extra) for blob, extra in out]


@dataclass(frozen=True)
class Columns:
    """The columns of a folder of standardized parts: each part's rows carry their file, their row in it,
    why a row is set aside (null: kept), and the part's and its table's place in the source (PART, TABLE)."""

    file: str
    row: str
    reject: str


@dataclass
class Finished:
    """What the finishing job left and counted: kept and set-aside rows, and per table (its index) the exact
    duplicates removed with the (file, row) of the first few in the rows' order."""

    checked: Path
    kept: int
    rejected: int
    duplicates: dict[int, int] = field(default_factory=dict)
    samples: dict[int, list[tuple[str, int]]] = field(default_factory=dict)


def finish_parts(
    settings: Settings,
    name: str,
    parts: Path,
    out: Path,
    entity: str,
    columns: Columns,
    dedupe: list[str],
    order: tuple[str, ...] | str | None,
) -> Finished:
    """The standardized parts of one entity (Parquet files in ``parts``, written by the executors) made into
    what a snapshot stages, by Spark jobs that read and write the shared data folder (the driver gets counts):
    exact duplicates over ``dedupe`` removed within each table, the first in the rows' order kept;
    ``checked`` (beside ``parts``) all remaining rows in their order, what the gate reads;
    ``out/<entity>.parquet`` the kept rows in ``order`` (record keys, as RECORD_ORDER; a column, nulls last;
    None: the rows' order), without the part's columns; ``out/<entity>.rejected.parquet`` the rows set aside,
    when there are any. Each is one file, as the DuckDB engine writes it."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = session(settings)
    done: list[Finished] = []
    seq = [F.col(PART), F.col(columns.row)]
    work_dir = parts.parent / f"{parts.name}-out"
    checked = parts.parent / f"{parts.name}-checked.parquet"

    def write(frame: Any, target: Path) -> None:
        folder = work_dir / target.name
        frame.coalesce(1).write.mode("overwrite").parquet(shared_uri(settings, folder))
        [written] = sorted(folder.glob("part-*.parquet"))
        written.replace(target)

    def work() -> None:
        rows = spark.read.parquet(shared_uri(settings, parts))
        first = Window.partitionBy(TABLE, *dedupe).orderBy(*seq)
        ranked = rows.withColumn(_RANK, F.row_number().over(first))
        write(ranked.filter(F.col(_RANK) == 1).drop(_RANK).orderBy(*seq), checked)
        result, total = Finished(checked, 0, 0), _rows(checked)
        if total < _rows_in(parts):
            by_table = Window.partitionBy(TABLE).orderBy(*seq)
            dups = ranked.filter(F.col(_RANK) > 1).withColumn(_RANK, F.row_number().over(by_table))
            for r in dups.groupBy(TABLE).count().collect():
                result.duplicates[int(r[TABLE])] = int(r["count"])
            picked = dups.filter(F.col(_RANK) <= _SAMPLES).orderBy(*seq).select(TABLE, columns.file, columns.row)
            for r in picked.collect():
                result.samples.setdefault(int(r[TABLE]), []).append((r[columns.file], int(r[columns.row])))
        staged = spark.read.parquet(shared_uri(settings, checked))
        kept = staged.filter(F.col(columns.reject).isNull())
        helper = (columns.file, columns.row, columns.reject, PART, TABLE)
        write(kept.orderBy(*_order(kept, order), *seq).drop(*helper), out / f"{entity}.parquet")
        result.kept = _rows(out / f"{entity}.parquet")
        result.rejected = total - result.kept
        if result.rejected:
            aside = staged.filter(F.col(columns.reject).isNotNull()).orderBy(*seq).drop(PART, TABLE)
            write(aside, out / f"{entity}.rejected.parquet")
        done.append(result)

    try:
        run_job(spark, settings, name, work)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return done[0]


def _order(frame: Any, order: tuple[str, ...] | str | None) -> list[Any]:
    """Spark's sort keys for a staged entity's order (pipeline.standardize.record_order's, as Spark columns:
    which keys a row carries, then the first 15 bytes of its first filled key after the prefix all its
    values share, compared as bytes; or one column, nulls last; or none)."""
    from pyspark.sql import functions as F

    if order is None:
        return []
    if isinstance(order, str):
        return [F.col(order).asc_nulls_last()]
    keys = [k for k in order if k in frame.columns]
    if not keys:
        return []
    bounds = frame.agg(*(f(k).alias(f"{f.__name__}_{k}") for k in keys for f in (F.min, F.max))).collect()[0]
    unshared = []
    for k in keys:
        shared = shared_prefix(str(bounds[f"min_{k}"] or ""), str(bounds[f"max_{k}"] or ""))
        unshared.append(F.substring(F.col(k), shared + 1, 1 << 30))
    nulls = [F.col(k).isNull().cast("int") for k in keys]
    group = nulls[0] * 2
    if len(nulls) > 1:
        group = group + F.when(nulls[0] == 1, nulls[1]).otherwise(1 - nulls[1])
    value = F.coalesce(*unshared, F.lit(""))
    head = F.substring(F.encode(F.rpad(value, _KEY_CHARS, "\u0000"), "UTF-8"), 1, _KEY_CHARS)
    return [group, head]


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _rows_in(folder: Path) -> int:
    return sum(_rows(p) for p in folder.glob("*.parquet"))
