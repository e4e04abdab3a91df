"""A pulled table kept with its snapshot: ``<snapshot>/extract/<n>.parquet`` (the base), the delta files
pulled since (extract.py), and ``<n>.json`` holding the watermark and the files. The next refresh pulls
only rows at or past the watermark and adds them as a delta (upsert by key, deletions drop the key).

A snapshot that is quarantined keeps its own extract but never becomes current, so the next refresh
starts again from the published snapshot's watermark: nothing is skipped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import threading
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dashboard.core.config import TableConfig
from dashboard.core.errors import SourceError

EXTRACT_DIR = "extract"
STATE_VERSION = 2  # 2: a base and delta files (version 1: the base alone)


@dataclass(frozen=True)
class ExtractContext:
    """Where one table's extract goes and where the current snapshot's extract is."""

    base_dir: Path  # the config's folder: secrets file, relative paths
    out_dir: Path  # <staged snapshot>/extract
    previous_dir: Path | None = None  # <current snapshot>/extract; None before a first publish
    index: int = 0  # the table's place in its source
    full: bool = False  # `cockpit refresh --full`: pull whole tables again, whatever the watermark

    def at(self, index: int) -> ExtractContext:
        return replace(self, index=index)

    @property
    def out_file(self) -> Path:
        return self.out_dir / f"{self.index}.parquet"

    def previous(self, fingerprint: str) -> tuple[Path, dict[str, Any]] | None:
        """The current snapshot's extract of this table, if it was made by the same definition."""
        if self.previous_dir is None:
            return None
        data, state_file = self.previous_dir / f"{self.index}.parquet", self.previous_dir / f"{self.index}.json"
        try:
            state: dict[str, Any] = json.loads(state_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        if state.get("fingerprint") != fingerprint or not data.is_file():
            return None  # the table's definition changed: start over with a full extraction
        return data, state

    def write_state(self, state: dict[str, Any]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"version": STATE_VERSION, **state}, ensure_ascii=False, indent=2, default=str)
        (self.out_dir / f"{self.index}.json").write_text(text, encoding="utf-8")


def fingerprint(table: TableConfig) -> str:
    """What makes an old extract reusable: the same rows, key, watermark and deletion rule."""
    parts = [table.table, table.query, table.key, table.watermark, table.delete_column, table.url, table.path]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


# -- watermarks as JSON ------------------------------------------------------------------------------
def dump_value(v: Any) -> dict[str, Any] | None:
    if v is None:
        return None
    if isinstance(v, datetime):
        return {"type": "datetime", "value": v.isoformat()}
    if isinstance(v, date):
        return {"type": "date", "value": v.isoformat()}
    if isinstance(v, bool | int | float):
        return {"type": type(v).__name__, "value": v}
    return {"type": "str", "value": str(v)}


def load_value(d: dict[str, Any] | None) -> Any:
    if d is None:
        return None
    t, v = d["type"], d["value"]
    if t == "datetime":
        return datetime.fromisoformat(v)
    if t == "date":
        return date.fromisoformat(v)
    return v


# -- streaming writer -----------------------------------------------------------------------------------
def plain(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Driver-specific extension types (PostgreSQL numeric, uuid, json ...) as their storage: text."""
    if not any(isinstance(f.type, pa.BaseExtensionType) for f in batch.schema):
        return batch
    cols = [c.storage if isinstance(c.type, pa.BaseExtensionType) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(cols, names=batch.schema.names)


def deleted_mask(batch: pa.RecordBatch | pa.Table, column: str) -> pa.Array:
    """True where the row is a deletion: true, a number other than 0 (MySQL's BOOLEAN), or any other value set."""
    col = batch.column(column)
    if pa.types.is_boolean(col.type):
        return pc.fill_null(col, False)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return pc.fill_null(pc.not_equal(col, 0), False)
    return pc.is_valid(col)


def low_cardinality(batch: pa.RecordBatch) -> list[str]:
    """Columns worth dictionary encoding, judged on the first batch: trying it on ids, names and emails
    cost a third of the extract time (benchmarks/extract.py)."""
    out = []
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        if batch.num_rows and pc.count_distinct(col).as_py() <= max(10, batch.num_rows // 20):
            out.append(name)
    return out


class BatchWriter:
    """Arrow batches → one Parquet file; tracks the watermark's maximum.

    Encoding and compression run on a thread of their own while the driver reads the next batch
    (both release the GIL); at most ``QUEUED`` batches wait, so memory stays a few batches.
    """

    QUEUED = 2

    def __init__(self, path: Path, watermark: str | None, delete_column: str | None, drop_deleted: bool) -> None:
        self.path, self.watermark, self.delete_column, self.drop_deleted = path, watermark, delete_column, drop_deleted
        self.rows = 0
        self.deleted = 0
        self.high: Any = None
        self.schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None
        self._queue: queue.Queue[pa.RecordBatch | None] = queue.Queue(self.QUEUED)
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None

    def __enter__(self) -> BatchWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return self

    def _drain(self) -> None:
        assert self._writer is not None
        try:
            while (batch := self._queue.get()) is not None:
                if self._failed is None:
                    self._writer.write_batch(batch)
        except BaseException as e:  # handed to the reading thread, raised there
            self._failed = e
            while self._queue.get() is not None:  # keep taking, so the reader never blocks
                pass

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._failed is not None:
            raise self._failed

    def write(self, batch: pa.RecordBatch) -> None:
        batch = plain(batch)
        if self._writer is None:
            self._check_columns(batch.schema)
            self.schema = batch.schema
            self._writer = pq.ParquetWriter(
                self.path, batch.schema, compression="zstd", use_dictionary=low_cardinality(batch)
            )
            self._thread = threading.Thread(target=self._drain, name="parquet-writer", daemon=True)
            self._thread.start()
        elif batch.schema != self.schema:
            batch = batch.cast(self.schema)  # a driver may type an all-null batch loosely
        if self.watermark and batch.num_rows:
            m = pc.max(batch.column(self.watermark)).as_py()
            if m is not None and (self.high is None or m > self.high):
                self.high = m
        if self.delete_column and self.drop_deleted:
            mask = deleted_mask(batch, self.delete_column)
            self.deleted += int(pc.sum(mask).as_py() or 0)
            batch = batch.filter(pc.invert(mask))
        if self._failed is not None:
            raise self._failed
        self._queue.put(batch)
        self.rows += batch.num_rows

    def _check_columns(self, schema: pa.Schema) -> None:
        for key, col in (("watermark", self.watermark), ("delete_column", self.delete_column)):
            if col and col not in schema.names:
                raise SourceError(f"{key} column '{col}' is not in the result (it has: {', '.join(schema.names[:30])})")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._stop()
        finally:
            if self._writer is not None:
                self._writer.close()
            if exc_type is not None or self._failed is not None:
                self.path.unlink(missing_ok=True)  # a partial extract is never kept


def remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
