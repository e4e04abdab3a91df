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
from dashboard.derived.spark.jobs import in_order, run_job, shared_uri
from dashboard.derived.spark.jobs import join_files as join_on_jvm
from dashboard.derived.spark.session import build_session, probe, stop_session

T = TypeVar("T")
P = TypeVar("P")
# a standardized part's own columns (besides the file and row): which part of the source (files in the order
# the DuckDB engine concatenates them) and which of the source's tables it is
PART, TABLE = "part_index", "table_index"
_RANK = "rank_in_group"
_HASH = "row_hash"
_SORT_KEY = "__sort_key"  # the record order's key, while Spark sorts by it
# candidate hashes sent whole to every task of the comparison up to this many (16 bytes each); more are joined
# by a shuffle
_BROADCAST_ROWS = 4_000_000
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
            stop_session(spark)  # its JVM too: a long-lived process (cockpit serve's scheduler) kept one per failure
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


@dataclass(frozen=True)
class Piece:
    """One part the executors wrote (``part-<index>.parquet``): its place in the rows' order, which of the
    source's tables it holds and how many of its rows are set aside."""

    index: int
    table: int
    rejected: int


@dataclass
class Finished:
    """What the finishing job left and counted: kept and set-aside rows, and per table (its index) the exact
    duplicates removed with the (file, row) of the first few in the rows' order."""

    checked: Path
    kept: int
    rejected: int
    duplicates: dict[int, int] = field(default_factory=dict)
    samples: dict[int, list[tuple[str, int]]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Sift:
    """One part's rows sifted by an executor: its duplicates dropped (``duplicates``: the folder naming them,
    None when it has none), its rows set aside and (``kept``) the kept ones written apart."""

    index: int
    part: str
    folder: str
    duplicates: str | None
    aside: bool
    kept: bool


def part_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def finish_parts(
    settings: Settings,
    name: str,
    parts: Path,
    out: Path,
    entity: str,
    columns: Columns,
    dedupe: list[str],
    order: tuple[str, ...] | str | None,
    pieces: list[Piece],
    bounds: dict[str, tuple[str | None, str | None]] | None = None,
) -> Finished:
    """The standardized parts of one entity (``pieces``, Parquet files in ``parts`` written by the executors)
    made into what a snapshot stages, without a row passing through the driver (it gets counts):
    exact duplicates over ``dedupe`` removed within each table, the first in the rows' order kept;
    ``checked`` (beside ``parts``) all remaining rows in their order, what the gate reads;
    ``out/<entity>.parquet`` the kept rows in ``order`` (record keys, as RECORD_ORDER; a column, nulls last;
    None: the rows' order; ``bounds``: each record key's least and greatest kept value, when the parts told
    them, else a Spark job finds them), without the part's columns; ``out/<entity>.rejected.parquet`` the
    rows set aside, when there are any. Each is one file, as the DuckDB engine writes it: several files
    written at once (the parts themselves, what each part keeps, a sort's ranges) and their row groups joined
    in order (``join_files``)."""
    work_dir = parts.parent / f"{parts.name}-out"
    checked = parts.parent / f"{parts.name}-checked.parquet"
    pieces = sorted(pieces, key=lambda p: p.index)
    try:
        found = _duplicates(settings, name, parts, work_dir, columns, dedupe)
        sifts = [
            _Sift(
                p.index,
                str(parts / part_name(p.index)),
                str(work_dir),
                str(work_dir / "duplicates") if found.get(p.index) else None,
                p.rejected > 0,
                order is None,
            )
            for p in pieces
        ]
        sifts = [t for t in sifts if t.duplicates or t.aside or t.kept]
        done = map_parts(settings, name, sifts, partial(_sift, columns=columns)) if sifts else []
        sifted = {t.index: d for t, d in zip(sifts, done, strict=True)}
        result = Finished(checked, 0, 0)
        for p in pieces:
            if p.index in sifted and sifted[p.index][0]:
                dropped, first = sifted[p.index]
                result.duplicates[p.table] = result.duplicates.get(p.table, 0) + dropped
                held = result.samples.setdefault(p.table, [])
                held += first[: _SAMPLES - len(held)]
        join_files(settings, name, [_sifted(work_dir, "checked", p.index, parts) for p in pieces], checked)
        target = out / f"{entity}.parquet"
        if order is None:
            join_files(settings, name, [work_dir / "kept" / part_name(p.index) for p in pieces], target)
        else:
            _sort(settings, name, checked, work_dir / "sorted", columns, order, target, bounds)
        aside = [work_dir / "rejected" / part_name(p.index) for p in pieces if p.rejected]
        if aside:
            join_files(settings, name, aside, out / f"{entity}.rejected.parquet")
        result.kept, result.rejected = _rows(target), sum(_rows(f) for f in aside)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return result


def _sifted(work_dir: Path, kind: str, index: int, parts: Path) -> Path:
    """A part's file of ``kind`` rows where its sifting wrote one, else the part itself (nothing dropped)."""
    path = work_dir / kind / part_name(index)
    return path if path.exists() else parts / part_name(index)


def _row_hash(columns: list[str]) -> Any:
    """A row's hash over ``columns`` (Spark's 64-bit xxHash): rows with equal hashes are compared in full."""
    from pyspark.sql import functions as F

    return F.xxhash64(*columns)


def _duplicates(
    settings: Settings, name: str, parts: Path, work_dir: Path, columns: Columns, dedupe: list[str]
) -> dict[int, int]:
    """The exact duplicates over ``dedupe`` within each table of the parts, all but the first of each in the
    rows' order, written to ``work_dir/duplicates`` as (part, row); returned: how many in each part. A row
    hash finds the candidates (rows whose hash another row of their table shares) without moving the rows;
    only the candidates are compared column by column, so two rows that only share a hash are both kept."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spark = session(settings)
    hashes, dups = work_dir / "hashes", work_dir / "duplicates"
    found: dict[int, int] = {}

    def work() -> None:
        rows = spark.read.parquet(shared_uri(settings, parts)).withColumn(_HASH, _row_hash(dedupe))
        shared = rows.groupBy(TABLE, _HASH).count().filter(F.col("count") > 1).select(TABLE, _HASH)
        shared.write.mode("overwrite").parquet(shared_uri(settings, hashes))
        n = _rows_in(hashes)
        if not n:
            return
        seen = spark.read.parquet(shared_uri(settings, hashes))
        candidates = rows.join(F.broadcast(seen) if n <= _BROADCAST_ROWS else seen, [TABLE, _HASH], "left_semi")
        first = Window.partitionBy(TABLE, *dedupe).orderBy(PART, columns.row)
        ranked = candidates.withColumn(_RANK, F.row_number().over(first)).filter(F.col(_RANK) > 1)
        ranked.select(PART, columns.row).write.mode("overwrite").parquet(shared_uri(settings, dups))
        for r in spark.read.parquet(shared_uri(settings, dups)).groupBy(PART).count().collect():
            found[int(r[PART])] = int(r["count"])

    run_job(spark, settings, name, work)
    return found


def _sift(task: _Sift, columns: Columns) -> tuple[int, list[tuple[str, int]]]:
    """On an executor: one part's duplicates dropped (its checked rows written apart when it had any), its
    set-aside rows and, when asked, its kept rows written apart; how many duplicates, the first few's (file,
    row)."""
    frame = pl.read_parquet(task.part)
    folder = Path(task.folder)
    dropped, first = 0, []
    if task.duplicates:
        rows = pl.scan_parquet(f"{task.duplicates}/part-*.parquet").filter(pl.col(PART) == task.index)
        repeat = frame.get_column(columns.row).is_in(rows.select(columns.row).collect().get_column(columns.row))
        dropped = int(repeat.sum())
        first = [(f, int(r)) for f, r in frame.filter(repeat).head(_SAMPLES).select(columns.file, columns.row).rows()]
        frame = frame.filter(~repeat)
        _write(frame, folder / "checked" / part_name(task.index))
    if task.aside:
        aside = frame.filter(pl.col(columns.reject).is_not_null()).drop(PART, TABLE)
        _write(aside, folder / "rejected" / part_name(task.index))
    if task.kept:
        kept = frame.filter(pl.col(columns.reject).is_null())
        _write(
            kept.drop(columns.file, columns.row, columns.reject, PART, TABLE), folder / "kept" / part_name(task.index)
        )
    return dropped, first


def _write(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)


def _sort(
    settings: Settings,
    name: str,
    checked: Path,
    folder: Path,
    columns: Columns,
    order: tuple[str, ...] | str,
    target: Path,
    bounds: dict[str, tuple[str | None, str | None]] | None = None,
) -> None:
    """The kept rows of ``checked`` sorted by ``order`` (ties in the rows' order) into ``target``: Spark's
    sort writes each of its ranges as a file of its own, in parallel, and their row groups are joined in the
    ranges' order."""
    from pyspark.sql import functions as F

    spark = session(settings)

    def work() -> None:
        kept = spark.read.parquet(shared_uri(settings, checked)).filter(F.col(columns.reject).isNull())
        helper = (columns.file, columns.row, columns.reject, PART, TABLE, _SORT_KEY)
        keyed, by = _keyed(kept, order, bounds)
        ranked = keyed.orderBy(*by, F.col(PART), F.col(columns.row)).drop(*helper)
        ranked.write.mode("overwrite").parquet(shared_uri(settings, folder))

    run_job(spark, settings, name, work)
    join_files(settings, name, in_order(folder), target)


def join_files(settings: Settings, name: str, files: list[Path], target: Path) -> None:
    """``files`` (Parquet, one schema) made one file ``target``, their row groups in the files' order, copied
    as they are (jobs.join_files: Parquet's own writer on the driver's JVM, nothing decoded)."""
    join_on_jvm(session(settings), settings, name, files, target)


def _keyed(
    frame: Any, order: tuple[str, ...] | str, bounds: dict[str, tuple[str | None, str | None]] | None = None
) -> tuple[Any, list[Any]]:
    """``frame`` with what Spark sorts it by for a staged entity's order, and the sort keys: one column, nulls
    last; or pipeline.standardize.record_order's as one binary column (_SORT_KEY), made once per row: which
    keys a row carries (one byte), then the first 15 bytes of its first filled key after the prefix all its
    values share (from ``bounds``, each key's least and greatest value; None: a Spark job finds them). A
    sort by expressions evaluates them again at every comparison (at the large demo 138 of the interactions'
    ~185 CPU-s); a column's first 8 bytes settle most comparisons (Spark's sort prefix)."""
    from pyspark.sql import functions as F

    if isinstance(order, str):
        return frame, [F.col(order).asc_nulls_last()]
    keys = [k for k in order if k in frame.columns]
    if not keys:
        return frame, []
    if bounds is None:
        found = frame.agg(*(f(k).alias(f"{f.__name__}_{k}") for k in keys for f in (F.min, F.max))).collect()[0]
        bounds = {k: (found[f"min_{k}"], found[f"max_{k}"]) for k in keys}
    unshared = []
    for k in keys:
        low, high = bounds.get(k, (None, None))
        shared = shared_prefix(str(low or ""), str(high or ""))
        unshared.append(F.substring(F.col(k), shared + 1, 1 << 30))
    nulls = [F.col(k).isNull().cast("int") for k in keys]
    group = nulls[0] * 2
    if len(nulls) > 1:
        group = group + F.when(nulls[0] == 1, nulls[1]).otherwise(1 - nulls[1])
    value = F.coalesce(*unshared, F.lit(""))
    head = F.substring(F.encode(F.rpad(value, _KEY_CHARS, "\u0000"), "UTF-8"), 1, _KEY_CHARS)
    key = F.concat(F.unhex(F.concat(F.lit("0"), group.cast("string"))), head)  # the group's byte, then the key's
    return frame.withColumn(_SORT_KEY, key), [F.col(_SORT_KEY)]


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _rows_in(folder: Path) -> int:
    return sum(_rows(p) for p in folder.glob("*.parquet"))
