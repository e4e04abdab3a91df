"""What every reader's rows carry and must have: the file and row columns of row-level error reports,
and the check that a file holds the columns its table maps."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass

import polars as pl

from dashboard.core.config import TableConfig
from dashboard.core.entities import ENTITIES
from dashboard.core.errors import SourceError

# Columns every reader's output gains, for row-level error reports.
FILE_COL = "__file"
ROW_COL = "__row"


@dataclass(frozen=True)
class Span:
    """Some of a file's data rows, read on their own (engine spark: a big file is several tasks): ``start`` to
    ``stop`` (a CSV file's bytes after its header, each a line's start; a Parquet file's rows), the first
    one's data row number in the file (what a row problem names) and how many rows it should read (a CSV
    span's lines: a reader that reads another number read a line break inside a quoted value)."""

    start: int
    stop: int
    first_row: int
    rows: int


def check_columns(raw: pl.DataFrame, table: TableConfig, file: str) -> list[str]:
    """Mapped columns missing from one file; raises when a required canonical column cannot be had."""
    entity = ENTITIES[table.entity]
    missing = [src for src in table.columns.values() if src not in raw.columns]
    for col in entity.required:
        src = table.columns.get(col)
        if col == entity.key and entity.key not in entity.required:
            continue
        if src is not None and src not in raw.columns:
            raise SourceError(
                f"{file}: required column '{src}' (mapped to {table.entity}.{col}) is missing; "
                f"the file has: {', '.join(raw.columns[:30])}"
            )
        if src is None and col not in table.constants and col not in raw.columns:
            raise SourceError(
                f"{file}: no column for required {table.entity}.{col}: map it in "
                f'[[sources.tables]] columns = {{ {col} = "..." }} or give a constant'
            )
    return missing


# -- duplicate headers: every column is kept, the repeats as name_2, name_3 ... and each one reported ------
@dataclass(frozen=True)
class DuplicateHeader:
    """One header that names several columns of one file: where, and the names they are read as."""

    file: str
    header: str
    positions: tuple[int, ...]  # 1-based column positions (JSON: key positions within a record)
    names: tuple[str, ...]  # what each of those columns is read as: header, header_2, ...
    where: str = "columns"  # JSON: "keys" (of the first record that repeats one)
    record: str | None = None  # JSON: that record ("line 3", "record 1")

    def describe(self) -> str:
        pos = ", ".join(str(p) for p in self.positions[:-1]) + f" and {self.positions[-1]}"
        names = ", ".join(f"'{n}'" for n in self.names[:-1]) + f" and '{self.names[-1]}'"
        times = _TIMES.get(len(self.positions), f"{len(self.positions)} times")
        what = "key" if self.where == "keys" else "header"
        return (
            f"{self.file}{f' {self.record}' if self.record else ''}: {what} '{self.header}' appears {times} "
            f"({self.where} {pos}); "
            f"kept as {names}, the first is the one a mapping by that name reads"
        )


_TIMES = {2: "twice", 3: "three times"}
_found: ContextVar[list[DuplicateHeader] | None] = ContextVar("duplicate_headers", default=None)


@contextlib.contextmanager
def collect_duplicates() -> Iterator[list[DuplicateHeader]]:
    """The duplicate headers the readers meet while this is open (a refresh reports them)."""
    found: list[DuplicateHeader] = []
    token = _found.set(found)
    try:
        yield found
    finally:
        _found.reset(token)


def collected() -> list[DuplicateHeader] | None:
    """The list an open ``collect_duplicates`` gathers into (None: none is open here)."""
    return _found.get()


def unique_headers(
    file: str, headers: Sequence[str | None], where: str = "columns", record: str | None = None, *, report: bool = True
) -> list[str]:
    """Headers trimmed and made unique: a repeated one becomes ``name_2``, ``name_3`` (never dropped), and is
    reported to ``collect_duplicates``. A blank header is not reported: it is ``__UNNAMED__<index>``."""
    names = [(h or "").strip() or f"__UNNAMED__{i}" for i, h in enumerate(headers)]
    taken = set(names)
    seen: dict[str, list[int]] = {}
    out: list[str] = []
    for i, name in enumerate(names):
        if name in seen:
            n = len(seen[name]) + 1
            while f"{name}_{n}" in taken:
                n += 1
            new = f"{name}_{n}"
            taken.add(new)
        else:
            new = name
        seen.setdefault(name, []).append(i)
        out.append(new)
    found = _found.get() if report else None
    if found is not None:
        for name, idx in seen.items():
            if len(idx) > 1:
                positions, read_as = tuple(i + 1 for i in idx), tuple(out[i] for i in idx)
                found.append(DuplicateHeader(file, name, positions, read_as, where, record))
    return out
