"""Source kinds: each reads one input file into a Polars frame. Adding a kind = one module + one line here.

Every reader returns the file's rows with their original column names; text inputs come back as
strings (standardization types them), typed inputs (Parquet) keep their types.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl

from dashboard.core.config import SourceConfig, TableConfig
from dashboard.core.errors import SourceError
from dashboard.sources import csv, excel, json, parquet
from dashboard.sources.columns import (
    FILE_COL,
    ROW_COL,
    DuplicateHeader,
    Span,
    check_columns,
    collect_duplicates,
    collected,
)
from dashboard.sources.incremental import ExtractContext

Reader = Callable[[Path, TableConfig], pl.DataFrame]

READERS: dict[str, Reader] = {
    "csv": csv.read,
    "excel": excel.read,
    "parquet": parquet.read,
    "json": json.read,
    "demo": parquet.read,  # the demo generator's own Parquet drops
}

# Kinds whose reader keeps one core busy a file (DuckDB parses a JSON array on one thread): a table of several
# such files reads two at a time (wechat's six event files at large: 5.1 s one after another).
ONE_CORE_KINDS = ("json",)

# Kinds whose big files can be read in spans, several readers at once (engine spark): how a file is cut
# (None: it is read whole) and how a span of it is read. JSON's and Excel's types come from the whole file.
SPLITTERS: dict[str, Callable[[Path, int], list[Span] | None]] = {
    "csv": csv.spans,
    "parquet": parquet.spans,
    "demo": parquet.spans,
}
_SPAN_READERS: dict[str, Callable[[Path, TableConfig, Span], pl.DataFrame]] = {
    "csv": csv.read,
    "parquet": parquet.read,
    "demo": parquet.read,
}

# Kinds that pull from a server or a folder and keep what they pulled with the snapshot (incremental.py).
PULLED_KINDS = ("postgres", "mysql", "http", "drop_folder")
DATABASE_KINDS = ("postgres", "mysql")  # pulled from a watermark as deltas (extract.py, database.py)


def table_files(table: TableConfig, base_dir: Path) -> list[Path]:
    pattern = table.path if Path(table.path).is_absolute() else str(base_dir / table.path)
    return [Path(p) for p in sorted(glob.glob(pattern, recursive=True)) if Path(p).is_file()]


def read_table(
    source: SourceConfig, table: TableConfig, base_dir: Path, ctx: ExtractContext | None = None
) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    """All files of one table, each row tagged with its file name and 1-based data row number.

    Also returns, per file, the mapped optional columns it lacks (required ones raise SourceError).
    Database, API and drop-folder tables need ``ctx``: where their extract and its state are kept.
    """
    if source.kind in PULLED_KINDS:
        if ctx is None:
            raise SourceError(f"{source.name}: a {source.kind} source is read by a refresh (its state is kept there)")
        return _pull(source, table, ctx)
    files = table_files(table, base_dir)
    if not files:
        raise SourceError(f"{source.name}: no file matches {table.path} (entity {table.entity})")
    frames = []
    missing: dict[str, list[str]] = {}
    found = collected()
    if source.kind in ONE_CORE_KINDS and len(files) > 1:
        with ThreadPoolExecutor(2, thread_name_prefix="cockpit-read") as pool:  # an error: the first file's
            read = list(pool.map(lambda f: _read_reporting(source, table, f, found is not None), files))
    else:
        read = [(*read_file(source, table, f), []) for f in files]
    for f, (df, absent, repeated) in zip(files, read, strict=True):
        if absent:
            missing[f.name] = absent
        if found is not None:  # in the files' order, as read one after another
            found += repeated
        frames.append(df)
    frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    return frame, missing


def _read_reporting(
    source: SourceConfig, table: TableConfig, f: Path, report: bool
) -> tuple[pl.DataFrame, list[str], list[DuplicateHeader]]:
    """``read_file`` in a thread of its own, with the repeated headers it met (``report``: someone listens)."""
    if not report:
        return (*read_file(source, table, f), [])
    with collect_duplicates() as repeated:
        return (*read_file(source, table, f), repeated)


def read_file(
    source: SourceConfig, table: TableConfig, f: Path, span: Span | None = None
) -> tuple[pl.DataFrame, list[str]]:
    """One file of a table (``read_table``; with engine spark an executor's part), its rows tagged with the
    file's name and their 1-based data row number, and the mapped optional columns it lacks. ``span``: only
    those rows (SPLITTERS), numbered as in the whole file."""
    try:
        df = READERS[source.kind](f, table) if span is None else _SPAN_READERS[source.kind](f, table, span)
    except SourceError:
        raise
    except Exception as e:  # a reader library's own error: name the file, keep the cause
        raise SourceError(f"{f.name}: cannot be read as {source.kind}: {e}") from e
    if df.height == 0:
        raise SourceError(f"{f.name}: the file has no data rows")
    absent = check_columns(df, table, f.name)
    first = 1 if span is None else span.first_row
    tagged = df.with_columns(
        pl.lit(f.name).alias(FILE_COL), pl.int_range(first, first + df.height, dtype=pl.Int64).alias(ROW_COL)
    )
    return tagged, absent


def _pull(source: SourceConfig, table: TableConfig, ctx: ExtractContext) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    from dashboard.sources import database, drop_folder, http

    if source.kind == "drop_folder":
        return drop_folder.read(source, table, ctx)  # rows keep their own file and row numbers
    if source.kind == "http":
        frame, label = http.read(source, table, ctx)
    else:
        extract, label = database.read(source, table, ctx)
        frame = extract.read()  # the base and its deltas as one relation
    if frame.height == 0:
        raise SourceError(f"{label}: no rows (an empty table is not published over the last one)")
    absent = check_columns(frame, table, label)
    tagged = frame.with_columns(
        pl.lit(label).alias(FILE_COL), pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(ROW_COL)
    )
    return tagged, ({label: absent} if absent else {})


def settle(source: SourceConfig, base_dir: Path, snapshot_dir: Path, published: bool, reasons: list[str]) -> None:
    """Once a snapshot is published or quarantined: a drop folder moves the files that snapshot took."""
    if source.kind != "drop_folder":
        return
    import json as _json

    from dashboard.sources import drop_folder
    from dashboard.sources.incremental import EXTRACT_DIR

    for i, table in enumerate(source.tables):
        try:
            state = _json.loads((snapshot_dir / EXTRACT_DIR / f"{i}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # it failed before taking any file
        drop_folder.settle(table, base_dir, state, published, reasons)
