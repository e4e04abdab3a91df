"""Rewriting the data folder's files for a privacy request: which rows name the person, dropping and erasing
them, one file at a time, crash-safe (a temp file beside it, fsync, ``os.replace``)."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dashboard.core.config import Settings
from dashboard.core.store import Store, atomic_write_text
from dashboard.ops.privacy import rowgroups
from dashboard.ops.privacy.person import Person
from dashboard.pipeline import suppression

ERASED = "[erased]"
_TMP_SUFFIX = ".privacy-tmp"
# never rewritten: input (the demo's raw files, drop folders), the demo's answer key, locks, the spill folder
_SKIP_TOP = {"raw", "demo_truth", "locks", ".spill"}
_TEXT_SUFFIXES = {".json", ".jsonl", ".html", ".csv", ".txt", ".md", ".xml"}
# columns that name a source record, and the kind of record each names
_RECORD_COLUMNS = {"source_record_id": ("customer", "lead"), "customer_ref": ("customer",), "lead_id": ("lead",)}
_KEY_COLUMNS = ("customer_key", "old_key")
_PERSON_COLUMNS = (*suppression.IDENTIFIERS, *_RECORD_COLUMNS, *_KEY_COLUMNS)


@dataclass
class FileChange:
    path: str  # relative to the data folder
    rows_removed: int
    values_erased: int


@dataclass
class Target:
    """What to take out of a table: rows naming the person (dropped) and values inside other tables (erased).

    A file is first asked a cheap question (literal search, id lookups: ``candidates``); only a file that
    may hold the person is read whole and matched exactly (the regex, with its boundaries)."""

    person: Person
    replacement: str = ERASED
    drop_by_text: bool = True  # False for retention: rows go by record and key only

    def __post_init__(self) -> None:
        self.regex = self.person.pattern()
        self.literals = self.person.literals()
        self.exact = self.person.exact()
        self.keys = sorted(self.person.keys)
        self.by_source: dict[tuple[str, str], list[str]] = {}
        for source, kind, record_id in self.person.records:
            self.by_source.setdefault((source, kind), []).append(record_id)

    def _records(self, cols: set[str]) -> list[pl.Expr]:
        """Rows whose (source_system, record column) names one of the person's records."""
        if "source_system" not in cols:
            return []
        out = []
        for c, kinds in _RECORD_COLUMNS.items():
            for (source, kind), ids in self.by_source.items() if c in cols else ():
                if kind in kinds:
                    out.append((pl.col("source_system") == source) & pl.col(c).is_in(ids))
        return out

    def _keyed(self, cols: set[str]) -> list[pl.Expr]:
        keys = [pl.col(c).is_in(self.keys) for c in _KEY_COLUMNS if c in cols and self.keys]
        return keys + self._records(cols)

    def candidates(self, schema: pl.Schema, constant: dict[str, str] | None = None) -> pl.Expr | None:
        """True on every row that may name the person (a superset of what ``drop`` and ``erase`` touch).

        ``constant``: text columns holding one value in every row (by the file's statistics, as the source and
        snapshot id); one that cannot name the person is not read for the text search."""
        cols, constant = set(schema.names()), constant or {}
        person_table = bool(cols & set(_PERSON_COLUMNS))
        conds = self._keyed(cols)
        for c, t in schema.items():
            text = self._has_literal(pl.col(c)) if self.literals else None
            if t == pl.String and c in constant and not self._names(constant[c]):
                continue
            if t == pl.String:
                whole = pl.col(c).is_in(self.exact) if self.exact and not person_table else None
                conds += [e for e in (text if self.drop_by_text or not person_table else None, whole) if e is not None]
            elif t == pl.List(pl.String) and (self.literals or self.exact):
                conds.append(pl.col(c).list.eval(self._element(pl.element(), exact_regex=False)).list.any())
        return pl.any_horizontal(conds).fill_null(False) if conds else None

    def _names(self, value: str) -> bool:
        """The cheap test (``candidates``) on one value."""
        folded = value.lower()
        return value in self.exact or any(lit.lower() in folded for lit in self.literals)

    def _has_literal(self, e: pl.Expr) -> pl.Expr:
        return e.str.contains_any(self.literals, ascii_case_insensitive=True)

    def drop(self, schema: pl.Schema) -> pl.Expr | None:
        cols = set(schema.names())
        conds = self._keyed(cols)
        if cols & set(_PERSON_COLUMNS) and self.regex and self.drop_by_text:
            conds += [pl.col(c).str.contains(self.regex) for c, t in schema.items() if t == pl.String]
        return pl.any_horizontal(conds).fill_null(False) if conds else None

    def erase(self, schema: pl.Schema) -> dict[str, pl.Expr]:
        """Per column, the expression that erases the person's values from the rows that stay."""
        out: dict[str, pl.Expr] = {}
        person_table = bool(set(schema.names()) & set(_PERSON_COLUMNS))
        for c, t in schema.items():
            if t == pl.List(pl.String) and (self.regex or self.exact):
                out[c] = pl.col(c).list.eval(pl.element().filter(~self._element(pl.element())))
            elif t == pl.String and not person_table and (self.regex or self.exact):
                col = pl.col(c)
                replaced = col.str.replace_all(self.regex, f"${{1}}{self.replacement}${{2}}") if self.regex else col
                out[c] = pl.when(col.is_in(self.exact)).then(pl.lit(self.replacement)).otherwise(replaced)
        return out

    def _element(self, e: pl.Expr, exact_regex: bool = True) -> pl.Expr:
        hit = e.is_in(self.exact)
        if self.regex and exact_regex:
            hit = hit | e.str.contains(self.regex)
        elif self.literals:
            hit = hit | self._has_literal(e)
        return hit.fill_null(False)


def rewrite_parquet(root: Path, path: Path, target: Target) -> FileChange | None:
    """Drop and erase in one file; written only when something changes (temp file, fsync, os.replace).

    The cheap ``candidates`` test runs on every row; the exact match (regex, list filters) only on the few
    rows it picks. Only the row groups holding a picked row are read whole and written again, the others are
    copied byte for byte (``rowgroups``); the file keeps its row order (snapshots are sorted by date or by
    record for row-group skipping)."""
    layout = rowgroups.Layout.of(path)
    maybe = target.candidates(pl.Schema(pl.read_parquet_schema(path)), layout.constant_strings())
    if maybe is None:
        return None
    # the test reads only the columns it looks at (text, lists, ids)
    picked = pl.read_parquet(path, columns=sorted(set(maybe.meta.root_names()))).select(maybe).to_series()
    if not picked.any():
        return None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}{_TMP_SUFFIX}")
    counts = _rewrite_groups(path, tmp, layout, picked, target) if _by_groups(layout, picked) else None
    if counts is None:  # one row group, a file mostly changed or mostly holes, another writer's nesting
        counts = _rewrite_whole(path, tmp, picked, target)
    if counts is None or counts == (0, 0):
        return None
    _commit(tmp, path)
    return FileChange(path.relative_to(root).as_posix(), *counts)


def _by_groups(layout: rowgroups.Layout, picked: pl.Series) -> bool:
    """Worth replacing row groups: more than one, at most half the data written again, and the file's zeroed
    bytes (earlier replacements' old row groups, not reclaimed) stay below its live data; otherwise the whole
    file is written again, compacted."""
    if len(layout.rows) < 2 or not layout.plain():
        return False
    live = layout.live_bytes()
    changed = sum(layout.group_bytes(i) for i in _dirty_groups(layout, picked))
    return changed * 2 <= live and layout.holes + changed <= live


def _dirty_groups(layout: rowgroups.Layout, picked: pl.Series) -> list[int]:
    ends = list(itertools.accumulate(layout.rows))
    return sorted({bisect.bisect_right(ends, int(r)) for r in picked.arg_true()})


def _rewrite_groups(
    path: Path, tmp: Path, layout: rowgroups.Layout, picked: pl.Series, target: Target
) -> tuple[int, int] | None:
    starts = [0, *itertools.accumulate(layout.rows)]
    parquet = pq.ParquetFile(path)
    arrow_schema = parquet.schema_arrow
    new: dict[int, pa.Table] = {}
    removed = erased = 0
    try:
        for i in _dirty_groups(layout, picked):
            frame = pl.from_arrow(parquet.read_row_group(i))
            assert isinstance(frame, pl.DataFrame)
            result = _apply(frame, picked.slice(starts[i], layout.rows[i]), target)
            if result is not None:
                kept, r, e = result
                new[i], removed, erased = kept.to_arrow().cast(arrow_schema), removed + r, erased + e
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None  # a type polars gives back differently: the whole file is rewritten instead
    if not new:
        return 0, 0
    return (removed, erased) if rowgroups.replace_groups(path, tmp, layout, new, arrow_schema) else None


def _rewrite_whole(path: Path, tmp: Path, picked: pl.Series, target: Target) -> tuple[int, int] | None:
    result = _apply(pl.read_parquet(path), picked, target)
    if result is None:
        return None
    kept, removed, erased = result
    kept.write_parquet(tmp, compression="zstd", compression_level=1)  # the fastest zstd: a rewrite is on the clock
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    return removed, erased


def _apply(frame: pl.DataFrame, picked: pl.Series, target: Target) -> tuple[pl.DataFrame, int, int] | None:
    """``frame`` without the rows naming the person, the person's values erased from the rows that stay (in
    their places); None when nothing changes."""
    schema = frame.schema
    sub = frame.filter(picked)
    drop, erase = target.drop(schema), target.erase(schema)
    gone = sub.select(drop).to_series() if drop is not None else pl.repeat(False, sub.height, eager=True)
    stay, erased = sub.filter(~gone), 0
    if erase:
        after = stay.with_columns(e.alias(c) for c, e in erase.items())
        for c in erase:
            if schema[c] == pl.List(pl.String):
                erased += int((stay.get_column(c).list.len() - after.get_column(c).list.len()).fill_null(0).sum())
            else:
                erased += int(stay.get_column(c).ne_missing(after.get_column(c)).sum())
        stay = after
    removed = int(gone.sum())
    if not removed and not erased:
        return None
    if erased:  # changed rows go back in their places
        numbered = frame.with_row_index("__row")
        rows = numbered.filter(picked).get_column("__row").filter(~gone)
        merged = pl.concat([numbered.filter(~picked), stay.with_columns(rows.alias("__row")).select(numbered.columns)])
        kept = merged.sort("__row").drop("__row")
    else:
        kept = frame.filter(~pl.repeat(False, frame.height, eager=True).scatter(picked.arg_true().filter(gone), True))
    return kept, removed, erased


def _replace_parquet(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}{_TMP_SUFFIX}")
    pq.write_table(table, tmp, compression="zstd")
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    _commit(tmp, path)


def _commit(tmp: Path, path: Path) -> None:
    """Rename the (fsynced) temp file over the old one: a kill leaves the old file or the new one (and a temp
    file a rerun deletes)."""
    os.replace(tmp, path)


def rewrite_text(root: Path, path: Path, target: Target) -> FileChange | None:
    """JSON: every string value that names the person is erased; other text: the identifiers inside it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None
    count = 0
    regex = re.compile(target.regex.removeprefix("(?i)"), re.IGNORECASE) if target.regex else None
    exact = set(target.exact)

    def scrub(s: str) -> str:
        nonlocal count
        if s in exact:
            count += 1
            return target.replacement
        if regex is None:
            return s
        new, n = regex.subn(lambda m: f"{m.group(1)}{target.replacement}{m.group(2)}", s)
        count += n
        return new

    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None
        new_text = json.dumps(_walk(data, scrub), ensure_ascii=False, indent=2)
    else:
        new_text = scrub(text) if regex else text
    if not count:
        return None
    atomic_write_text(path, new_text)
    return FileChange(path.relative_to(root).as_posix(), 0, count)


def _walk(value: Any, scrub: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [_walk(v, scrub) for v in value]
    if isinstance(value, dict):
        return {k: _walk(v, scrub) for k, v in value.items()}
    return value


def _data_files(root: Path) -> list[Path]:
    """Every file an erasure looks at, snapshots first and the derived builds (which find the person) last."""
    order = {"snapshots": 0, "quarantine": 1, "staging": 2, "runs": 3, "derived": 4}
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in _SKIP_TOP or path.name.startswith("."):
            continue
        if rel.parts[:2] in (("runs", "audit"), ("runs", "privacy")):
            continue  # the audit log keeps its events (pseudonymized below); the privacy folder holds no person
        if path.suffix == ".parquet" or path.suffix in _TEXT_SUFFIXES:
            out.append(path)
    return sorted(out, key=lambda p: (order.get(p.relative_to(root).parts[0], 3), str(p)))


def _clean_temp_files(root: Path) -> None:
    """Temp files a killed erasure left: they may hold the person, and nothing names them."""
    for tmp in root.rglob(f"*{_TMP_SUFFIX}"):
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def exclusive(settings: Settings, wait: float, holder: str) -> Iterator[Store]:
    """Every source lock and the publish lock, as a refresh takes them (same order: no deadlock). Busy (exit 4)
    when a refresh holds one past ``wait`` seconds."""
    store = Store(settings.data_path)
    names = set(settings.source_names)
    for top in (store.snapshots, store.quarantine):
        names |= {p.name for p in top.iterdir()} if top.exists() else set()
    with store.source_locks(sorted(names), wait, holder), store.lock(wait):
        yield store


def _recount_manifest(store: Store, changed: set[str]) -> None:
    """The manifest's row counts follow the rewritten files, and its new version tells every reader's cache."""
    manifest = store.read_manifest()
    for entry in manifest.get("sources", {}).values():
        for info in entry.get("entities", {}).values():
            if info.get("file") in changed:
                info["rows"] = pq.read_metadata(store.abs(info["file"])).num_rows
    if changed:
        store.write_manifest(manifest)
