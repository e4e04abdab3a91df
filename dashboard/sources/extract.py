"""A pulled table's extract as its snapshot keeps it: a base file plus the delta files pulled since, oldest
first, read as one relation in which the latest version of each key wins and a deletion removes the key.

A pull adds one delta: the new snapshot hard-links its predecessor's files (no byte copied) beside the new
rows, so merging 1 % of a table costs that 1 %. When the deltas outgrow a share of the base, or grow too
many, the relation is written once as the new snapshot's base ("compaction"). Every file is written inside
the staged snapshot, never into a published one, so a kill leaves the current snapshot as it was.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

from dashboard.core.config import TableConfig
from dashboard.core.errors import SourceError
from dashboard.core.store import crash_point

COMPACT_SHARE = 0.2  # the deltas' rows reach this share of the base's rows: write one base again
COMPACT_FILES = 12  # or this many deltas: reading many small files costs more than it saves
_GONE = "__cockpit_gone"
_ROW = "__cockpit_row"


@dataclass(frozen=True)
class Extract:
    """One table's files, oldest first, and how their rows relate (key, watermark, deletion column)."""

    table: TableConfig
    base: Path
    deltas: tuple[Path, ...] = ()
    base_rows: int = 0
    delta_rows: tuple[int, ...] = field(default=())
    label: str = ""  # source.table, for messages

    @property
    def files(self) -> list[Path]:
        return [self.base, *self.deltas]

    def scan(self) -> pl.LazyFrame:
        """The merged relation: rows of a file whose key a later file holds are replaced (or deleted) by it."""
        key = list(self.table.key)
        parts: list[pl.LazyFrame] = []
        later: list[pl.LazyFrame] = []
        for i, path in reversed(list(enumerate(self.files))):
            rows = pl.scan_parquet(path)
            if i:
                rows = latest(rows, self.table)
            keys = rows.select(key)
            if later:
                newer = pl.concat(later, how="vertical_relaxed") if len(later) > 1 else later[0]
                rows = rows.join(newer, on=key, how="anti", nulls_equal=True, maintain_order="left")
            if i:
                rows = rows.filter(~pl.col(_GONE)).drop(_GONE)
            later.append(keys)
            parts.append(rows)
        parts.reverse()
        return pl.concat(parts, how="diagonal_relaxed") if len(parts) > 1 else parts[0]

    def read(self) -> pl.DataFrame:
        """The merged relation in memory, or a SourceError naming the file that cannot be read."""
        try:
            return self.scan().collect()
        except (pl.exceptions.PolarsError, OSError) as e:
            raise self.unreadable(e) from None

    def unreadable(self, e: Exception) -> SourceError:
        bad = next((p for p in self.files if not _readable(p)), None)
        where = f"the extract file {_shown(bad)}" if bad else "the extract files " + ", ".join(map(_shown, self.files))
        why = " ".join(str(e).split())[:300]
        return SourceError(
            f"{self.label}: {where} cannot be read ({why}); the current snapshot keeps serving, "
            "and `cockpit refresh --full` pulls the whole table again"
        )

    def state(self) -> dict[str, Any]:
        return {
            "base": self.base.name,
            "base_rows": self.base_rows,
            "deltas": [{"file": p.name, "rows": n} for p, n in zip(self.deltas, self.delta_rows, strict=True)],
        }


def latest(rows: pl.LazyFrame, table: TableConfig) -> pl.LazyFrame:
    """One row per key in a delta: the highest watermark, then the last pulled (a null watermark is oldest);
    with the deletion flag as ``_GONE``."""
    order = [table.watermark, _ROW] if table.watermark else [_ROW]
    return (
        rows.with_row_index(_ROW)
        .sort(order, nulls_last=False)
        .unique(subset=list(table.key), keep="last")
        .sort(_ROW)
        .drop(_ROW)
        .with_columns(gone(rows, table).alias(_GONE))
    )


def gone(rows: pl.LazyFrame, table: TableConfig) -> pl.Expr:
    """True where a row is a deletion: true, a number other than 0 (MySQL's BOOLEAN), or any other value set."""
    if not table.delete_column:
        return pl.lit(False)
    col = pl.col(table.delete_column)
    typ = rows.collect_schema()[table.delete_column]
    if typ == pl.Boolean:
        return col.fill_null(False)
    if typ.is_numeric():
        return (col != 0).fill_null(False)
    return col.is_not_null()


def _readable(path: Path) -> bool:
    try:
        pq.read_table(path)
    except Exception:  # any failure to decode counts: the caller names the file
        return False
    return True


def _shown(path: Path) -> str:
    return "/".join(path.parts[-3:])  # <snapshot>/extract/<file>


def delta_name(index: int, seq: int) -> str:
    return f"{index}.delta-{seq}.parquet"


def kept(folder: Path, index: int, state: dict[str, Any], table: TableConfig, label: str) -> Extract:
    """The current snapshot's extract as its state lists it; a listed file that is missing is an error naming it."""
    base = folder / str(state.get("base") or f"{index}.parquet")
    deltas = tuple(folder / str(d["file"]) for d in state.get("deltas", []))
    for path in (base, *deltas):
        if not path.is_file():
            raise SourceError(
                f"{label}: the extract file {_shown(path)} is missing; the current snapshot keeps serving, "
                "and `cockpit refresh --full` pulls the whole table again"
            )
    rows = [int(d.get("rows", 0)) for d in state.get("deltas", [])]
    base_rows = int(state.get("base_rows", state.get("rows")) or 0)
    return Extract(table, base, deltas, base_rows, tuple(rows), label)


def check_key_types(previous: Extract, delta: Path, label: str) -> None:
    """A key column whose type changed in the source cannot match its old rows: a full pull is needed."""
    old, new = pq.read_schema(previous.base), pq.read_schema(delta)
    for k in previous.table.key:
        if k in old.names and k in new.names and old.field(k).type != new.field(k).type:
            raise SourceError(
                f"{label}: key column '{k}' is {new.field(k).type} in the new rows but {old.field(k).type} in the "
                "extract; `cockpit refresh --full` pulls the whole table again"
            )


def counts(previous: Extract, prior_rows: int, delta: Path) -> tuple[int, int, int]:
    """(rows of the merged relation with ``delta``, keys updated or deleted, keys deleted). Reads the previous
    relation's key columns only, and the delta."""
    key = list(previous.table.key)
    new = latest(pl.scan_parquet(delta), previous.table)
    try:
        matched = (
            previous.scan()
            .select(key)
            .join(new.select(*key, _GONE), on=key, how="inner", nulls_equal=True)
            .collect()
        )
        kept_rows = int(new.filter(~pl.col(_GONE)).select(pl.len()).collect().item())
    except (pl.exceptions.PolarsError, OSError) as e:
        raise replace(previous, deltas=(*previous.deltas, delta)).unreadable(e) from None
    changed = matched.unique(subset=key)
    deleted = int(changed.get_column(_GONE).sum())
    return prior_rows - matched.height + kept_rows, changed.height, deleted


def same_rows(previous: Extract, delta: Path) -> bool:
    """Whether ``delta`` holds only rows ``previous`` already has as they are: no new key, no deletion, no
    changed value. A pull from a watermark (``>=``) takes the rows at the last one again every time; this
    tells such a pull from one that brought something. Reads the delta and the previous rows of its keys."""
    key = list(previous.table.key)
    try:
        new = latest(pl.scan_parquet(delta), previous.table).collect()
        if new.get_column(_GONE).any():
            return False
        new = new.drop(_GONE)
        old = previous.scan().join(new.lazy().select(key), on=key, how="semi", nulls_equal=True).collect()
    except (pl.exceptions.PolarsError, OSError) as e:
        raise replace(previous, deltas=(*previous.deltas, delta)).unreadable(e) from None
    if old.height != new.height or set(old.columns) != set(new.columns):
        return False
    old = old.select(new.columns)
    return old.schema == new.schema and old.sort(key, nulls_last=True).equals(new.sort(key, nulls_last=True))


def rows_digest(path: Path) -> str:
    """A whole-table pull's rows as a multiset (their order aside), with the column names and types: a table
    without a watermark is pulled whole every time, and the same digest as the current extract's says it
    brought nothing new (``same_table`` then compares the rows themselves)."""
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError):
        return ""
    head = json.dumps([pl.__version__, frame.columns, [str(t) for t in frame.dtypes]]).encode()
    return hashlib.sha256(head + frame.hash_rows(seed=0).sort().to_numpy().tobytes()).hexdigest()


def same_table(previous: Path, pulled: Path) -> bool:
    """Whether two whole-table extracts hold the same rows, as many times each, in any order."""
    try:
        old, new = pl.read_parquet(previous), pl.read_parquet(pulled)
    except (pl.exceptions.PolarsError, OSError):
        return False
    if old.schema != new.schema or old.height != new.height:
        return False
    return old.sort(old.columns, nulls_last=True).equals(new.sort(new.columns, nulls_last=True))


def extend(previous: Extract, delta: Path | None, delta_rows: int, out_dir: Path, index: int) -> Extract:
    """The new snapshot's extract: the previous files linked into ``out_dir`` with ``delta`` after them, or,
    once the deltas outgrow the base, all of them written as one new base (``delta`` removed)."""
    deltas, rows = list(previous.deltas), list(previous.delta_rows)
    if delta is not None:
        deltas.append(delta)
        rows.append(delta_rows)
    whole = replace(previous, deltas=tuple(deltas), delta_rows=tuple(rows))
    if deltas and (sum(rows) >= COMPACT_SHARE * max(previous.base_rows, 1) or len(deltas) > COMPACT_FILES):
        return compact(whole, out_dir / f"{index}.parquet")
    base = _link(previous.base, out_dir / f"{index}.parquet")
    linked = tuple(d if d.parent == out_dir else _link(d, out_dir / d.name) for d in deltas)
    crash_point("extract_delta")
    return replace(whole, base=base, deltas=linked)


def compact(extract: Extract, out: Path) -> Extract:
    """The merged relation written as one base file at ``out`` (a temp file renamed into place), streaming."""
    tmp = out.with_name(out.name + ".tmp")
    try:
        extract.scan().sink_parquet(tmp, compression="zstd")
    except (pl.exceptions.PolarsError, OSError) as e:
        tmp.unlink(missing_ok=True)
        raise extract.unreadable(e) from None
    os.replace(tmp, out)
    for d in extract.deltas:
        if d.parent == out.parent:  # the new delta, now inside the base; the old ones belong to their snapshots
            d.unlink()
    crash_point("extract_compacted")
    return replace(extract, base=out, deltas=(), base_rows=pq.ParquetFile(out).metadata.num_rows, delta_rows=())


def _link(src: Path, dest: Path) -> Path:
    """Snapshots are immutable: a new one shares its predecessor's extract files (a copy where links fail)."""
    with contextlib.suppress(FileNotFoundError):
        dest.unlink()
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)
    return dest
