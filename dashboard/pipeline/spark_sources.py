"""A file source's standardize with [engine] kind = "spark", without its rows passing through the driver.

Each input file is a Spark task, a big one (CSV, Parquet) a task per span of it (SPAN_BYTES: whole lines or
row groups, its rows numbered as in the file): the executor reads it from the shared storage (the same reader
as one machine's, sources.read_file), standardizes its rows (standardize_rows: one definition for both
engines), drops the people on the suppression list and writes its rows as a Parquet part into the snapshot's
staging folder. The driver gets back counts and row problems only (file, row, column, value: the clear
messages). Spark jobs then remove exact duplicates over each whole table (found from a row hash) and write the
files a snapshot stages (derived/spark/standardize.finish_parts), which the gate and the quality profile read
where they lie; an entity of at most ONE_TASK_ROWS rows is finished by one task running the DuckDB engine's
own code instead.
Database, API and drop-folder sources are pulled by the driver anyway: they keep ``standardize``'s path.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from dashboard.core import parse
from dashboard.core.config import Settings, SourceConfig
from dashboard.core.entities import ENTITIES
from dashboard.core.errors import SourceError
from dashboard.pipeline.standardize import (
    RECORD_ORDER,
    REJECT_COL,
    STAGED_ZSTD,
    RowIssue,
    date_texts,
    drop_exact_duplicates,
    duplicate_columns,
    duplicate_issue,
    erased_issue,
    merge_issues,
    missing_issues,
    sort_staged,
    standardize_rows,
    suppress,
)
from dashboard.sources import READERS, SPLITTERS, read_file, table_files
from dashboard.sources.columns import FILE_COL, ROW_COL, DuplicateHeader, Span, collect_duplicates

if TYPE_CHECKING:
    from dashboard.derived.spark.standardize import Finished

PARTS = "parts"  # in a snapshot's staging folder: the executors' parts, removed before it is published
# A file of more than twice this many bytes (CSV; Parquet: its row groups' uncompressed bytes) is read in
# spans of about this size, each a task of its own: a big file is read, standardized and written by several
# executors' cores at once, each holding a span's rows
SPAN_BYTES = 8 << 20
# An entity of at most this many input rows is finished by one task running the DuckDB engine's own code
# (duplicates, order, the staged files): Spark's jobs for duplicates and the sort cost more than its rows
# there (at the small demo ~2 CPU-s an entity); a bigger one by Spark's jobs (finish_parts)
ONE_TASK_ROWS = 200_000


def on_executors(settings: Settings, source: SourceConfig) -> bool:
    """Whether ``source`` is standardized by the executors from its files (engine spark, a file source)."""
    return settings.engine.kind == "spark" and source.kind in READERS


@dataclass(frozen=True)
class FileTask:
    index: int  # the part's place in the entity's rows (tables in order, each one's files, spans in order)
    table: int  # which of the source's tables
    path: str
    span: Span | None = None  # some of the file's rows (SPLITTERS); None: all of them


@dataclass
class Part:
    """What one file's task returns: counts and row problems, never rows."""

    index: int
    file: str
    error: str | None = None  # the file could not be read: the source's extract failed
    misread: bool = False  # a span read another number of rows than it has lines: the file is read whole
    rows: int = 0
    rejected: int = 0  # rows set aside
    columns: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    headers: list[DuplicateHeader] = field(default_factory=list)
    issues: list[RowIssue] = field(default_factory=list)
    erased: int = 0
    formats: dict[str, list[str]] = field(default_factory=dict)  # each text date column's format order, as used
    texts: dict[str, pl.Series] = field(default_factory=dict)  # the first values that rank them
    # the least and greatest value of each record key (RECORD_ORDER) among its kept rows: where the staged
    # order's keys start to differ (the prefix all values share), without a Spark job reading every row again
    bounds: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)


@dataclass
class StagedEntity:
    """An entity standardized on the executors: its rows in files of the staging folder, its counts here."""

    entity: str
    checked: Path  # all its rows (kept and set aside) in their order: what the gate reads
    input_rows: int
    kept: int
    rejected: int
    issues: list[RowIssue]
    file_rows: dict[str, int]  # rows per input file (a repeated header's report counts them)


def standardize_file(
    task: FileTask,
    source: SourceConfig,
    settings: Settings,
    snapshot_id: str,
    folder: str,
    formats: dict[int, dict[str, list[str]]] | None = None,
) -> Part:
    """On an executor: one input file read, standardized, suppressed and written as ``folder``'s part ``index``.
    ``formats``: per table, its date columns' format order (from the whole table); None: the part's own."""
    from dashboard.derived.spark.standardize import PART, TABLE, part_name

    table = source.tables[task.table]
    with collect_duplicates() as headers:
        try:
            raw, missing = read_file(source, table, Path(task.path), task.span)
        except SourceError as e:
            return Part(task.index, Path(task.path).name, error=e.message)
    if task.span is not None and raw.height != task.span.rows:  # a line break inside a quoted value
        return Part(task.index, Path(task.path).name, misread=True, rows=raw.height)
    texts = {c: t.cast(pl.String).drop_nulls().head(parse.FORMAT_SAMPLE) for c, t in date_texts(raw, table).items()}
    own = {c: parse.datetime_formats(t, settings.timezone, table.date_format) for c, t in texts.items()}
    used = own if formats is None else formats[task.table]
    frame, issues = standardize_rows(raw, table, source, settings, snapshot_id, used)
    frame, erased = suppress(frame, ENTITIES[table.entity], source, settings)
    part = frame.with_columns(pl.lit(task.index, pl.Int32).alias(PART), pl.lit(task.table, pl.Int32).alias(TABLE))
    part.write_parquet(Path(folder) / part_name(task.index))
    kept = frame.filter(pl.col(REJECT_COL).is_null())
    keys = [k for k in RECORD_ORDER.get(table.entity, ()) if k in kept.columns]
    return Part(
        task.index,
        Path(task.path).name,
        rows=raw.height,
        rejected=int(frame.get_column(REJECT_COL).is_not_null().sum()),
        columns=frame.columns,
        missing=missing,
        headers=list(headers) if task.span is None or task.span.first_row == 1 else [],  # the file's, once
        issues=issues,
        erased=erased.count if erased else 0,
        formats=used,
        texts=texts,
        bounds={k: _low_high(kept.get_column(k)) for k in keys},
    )


def standardize_entity(
    settings: Settings,
    source: SourceConfig,
    entity: str,
    snapshot_id: str,
    stage_dir: Path,
    order: tuple[str, ...] | str | None,
    headers: list[DuplicateHeader],
) -> StagedEntity:
    """``entity``'s tables of ``source`` standardized on the executors into ``stage_dir``: ``<entity>.parquet``
    (kept rows in ``order``: RECORD_ORDER's keys, a column, or None) and ``<entity>.rejected.parquet``, as
    the DuckDB engine stages them. Repeated headers the readers met are added to ``headers``."""
    from dashboard.derived.spark.standardize import Columns, Piece, finish_parts, map_parts

    tables = [i for i, t in enumerate(source.tables) if t.entity == entity]
    tasks: list[FileTask] = []
    for i in tables:
        table = source.tables[i]
        files = table_files(table, settings.base_dir)
        if not files:
            raise SourceError(f"{source.name}: no file matches {table.path} (entity {entity})")
        for f in files:
            whole: list[Span | None] = [None]
            cut = SPLITTERS[source.kind](f, SPAN_BYTES) if source.kind in SPLITTERS else None
            for span in cut or whole:
                tasks.append(FileTask(len(tasks), i, str(f), span))
    folder = stage_dir / PARTS / entity
    folder.mkdir(parents=True, exist_ok=True)
    job = f"standardize {source.name}.{entity}"
    work = partial(standardize_file, source=source, settings=settings, snapshot_id=snapshot_id, folder=str(folder))
    parts = map_parts(settings, job, tasks, work)
    failed = next((p.error for p in parts if p.error), None)
    if failed:
        raise SourceError(failed)
    # A file a span of which read another number of rows than it has lines (a quoted value across lines):
    # read whole, as one task, in its first span's place.
    misread = {t.path for t, p in zip(tasks, parts, strict=True) if p.misread}
    if misread:
        tasks, parts = _read_whole(settings, job, tasks, parts, misread, work, folder)
    # A date that reads two ways (03/04/2024) is read as the whole table's first values say, as on one machine:
    # a part that ranked its formats otherwise is standardized again with the table's order.
    formats = {i: _table_formats(settings, source, i, _of_table(tasks, parts, i)) for i in tables}
    again = [t for t, p in zip(tasks, parts, strict=True) if p.formats != formats[t.table]]
    if again:
        redone = {r.index: r for r in map_parts(settings, job, again, partial(work, formats=formats))}
        parts = [redone.get(p.index, p) for p in parts]
    ent = ENTITIES[entity]
    name = f"the staged files of {source.name}.{entity}"
    if sum(p.rows for p in parts) <= ONE_TASK_ROWS:
        one = _OneTask(str(folder), [t.index for t in tasks], str(stage_dir), entity, order)
        [finished] = map_parts(settings, name, [one], _finish_in_one_task)
    else:
        finished = finish_parts(
            settings,
            name,
            folder,
            stage_dir,
            entity,
            Columns(FILE_COL, ROW_COL, REJECT_COL),
            duplicate_columns(parts[0].columns, ent),
            order,
            [Piece(t.index, t.table, p.rejected) for t, p in zip(tasks, parts, strict=True)],
            _bounds(parts),
        )
    issues: list[RowIssue] = []
    file_rows: dict[str, int] = {}
    for i in tables:
        mine = _of_table(tasks, parts, i)
        rows: dict[str, int] = {}  # per file: its spans' rows
        for p in mine:
            rows[p.file] = rows.get(p.file, 0) + p.rows
        missing = {p.file: p.missing for p in mine}
        for file, n in rows.items():
            issues += missing_issues(ent, file, missing[file], n)
        issues += merge_issues([p.issues for p in mine])
        erased = sum(p.erased for p in mine)
        if erased:
            issues.append(erased_issue(ent, erased))
        if finished.duplicates.get(i):
            issues.append(duplicate_issue(ent, finished.duplicates[i], finished.samples.get(i, [])))
        headers += [h for p in mine for h in p.headers]
        file_rows |= rows
    return StagedEntity(
        entity,
        finished.checked,
        sum(p.rows for p in parts),
        finished.kept,
        finished.rejected,
        issues,
        file_rows,
    )


@dataclass(frozen=True)
class _OneTask:
    folder: str  # the entity's parts
    indexes: list[int]  # in the rows' order
    stage_dir: str
    entity: str
    order: tuple[str, ...] | str | None


def _finish_in_one_task(task: _OneTask) -> Finished:
    """On an executor: a small entity's parts made into its staged files by the DuckDB engine's own code
    (exact duplicates within each table, the kept rows' order, the files as refresh writes them)."""
    from dashboard.derived.spark.standardize import PART, TABLE, Finished, part_name

    folder, stage = Path(task.folder), Path(task.stage_dir)
    rows = pl.concat([pl.read_parquet(folder / part_name(i)) for i in task.indexes], how="diagonal_relaxed")
    checked = folder.parent / f"{folder.name}-checked.parquet"
    done = Finished(checked, 0, 0)
    tables = []
    for table in rows.partition_by(TABLE, maintain_order=True):
        kept, issue = drop_exact_duplicates(table.drop(PART, TABLE), ENTITIES[task.entity])
        tables.append(kept)
        if issue:
            at = int(table.get_column(TABLE)[0])
            done.duplicates[at] = issue.count
            done.samples[at] = [(s["file"], int(s["row"])) for s in issue.samples]
    frame = pl.concat(tables, how="diagonal_relaxed")
    frame.write_parquet(checked)
    keep = sort_staged(frame.filter(pl.col(REJECT_COL).is_null()), task.order)
    keep.drop(FILE_COL, ROW_COL, REJECT_COL).write_parquet(
        stage / f"{task.entity}.parquet", compression="zstd", compression_level=STAGED_ZSTD
    )
    aside = frame.filter(pl.col(REJECT_COL).is_not_null())
    if aside.height:
        aside.write_parquet(stage / f"{task.entity}.rejected.parquet")
    done.kept, done.rejected = keep.height, aside.height
    return done


def _read_whole(
    settings: Settings,
    job: str,
    tasks: list[FileTask],
    parts: list[Part],
    files: set[str],
    work: partial[Part],
    folder: Path,
) -> tuple[list[FileTask], list[Part]]:
    """``files`` read again whole, each as one task in its first span's place; their spans' parts removed."""
    from dashboard.derived.spark.standardize import map_parts, part_name

    whole, kept = [], []
    for t, p in zip(tasks, parts, strict=True):
        if t.path not in files:
            kept.append((t, p))
        else:
            (folder / part_name(t.index)).unlink(missing_ok=True)
            if t.span is None or t.span.first_row == 1:
                whole.append(FileTask(t.index, t.table, t.path))
    redone = map_parts(settings, job, whole, work)
    both = sorted([*kept, *zip(whole, redone, strict=True)], key=lambda tp: tp[0].index)
    return [t for t, _ in both], [p for _, p in both]


def _low_high(values: pl.Series) -> tuple[str | None, str | None]:
    """A text key's least and greatest value (None where it has none)."""
    low, high = values.min(), values.max()
    return (None if low is None else str(low), None if high is None else str(high))


def _bounds(parts: list[Part]) -> dict[str, tuple[str | None, str | None]]:
    """Each record key's least and greatest kept value over all ``parts`` (None: no part has one)."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for key in dict.fromkeys(k for p in parts for k in p.bounds):
        low = [b[0] for p in parts if (b := p.bounds.get(key)) and b[0] is not None]
        high = [b[1] for p in parts if (b := p.bounds.get(key)) and b[1] is not None]
        out[key] = (min(low, default=None), max(high, default=None))
    return out


def _of_table(tasks: list[FileTask], parts: list[Part], table: int) -> list[Part]:
    """The parts of the source's table ``table``, in the rows' order."""
    return [p for t, p in zip(tasks, parts, strict=True) if t.table == table]


def _table_formats(settings: Settings, source: SourceConfig, table: int, parts: list[Part]) -> dict[str, list[str]]:
    """A table's date columns' format order from its parts' first values, in the parts' order."""
    names = dict.fromkeys(c for p in parts for c in p.texts)
    columns = {c: [p.texts[c] for p in parts if c in p.texts] for c in names}
    first = source.tables[table].date_format
    return {c: parse.datetime_formats(pl.concat(texts), settings.timezone, first) for c, texts in columns.items()}


def remove_parts(stage_dir: Path) -> None:
    """The executors' parts and the finishing job's files: not part of the snapshot."""
    shutil.rmtree(stage_dir / PARTS, ignore_errors=True)
