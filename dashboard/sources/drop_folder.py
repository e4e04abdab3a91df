"""``drop_folder`` sources: people and partners drop CSV, Excel or JSON files into a folder.

Each refresh takes the files that are new, adds their rows to what the folder delivered before
(upserting by ``key`` when one is set) and, once the snapshot is published, moves them to
``processed/``; a file that cannot be read, or whose snapshot is quarantined, goes to ``rejected/``
with ``<name>.reason.txt`` beside it. The snapshot's ledger (content hashes of every file taken)
makes a file count once: the same content dropped again is rejected as a repeat, and a file whose
move was interrupted by a crash is recognised and moved without being read again.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.core.config import SourceConfig, TableConfig
from dashboard.core.errors import SourceError
from dashboard.sources import csv as csv_reader
from dashboard.sources import excel as excel_reader
from dashboard.sources import json as json_reader
from dashboard.sources.columns import FILE_COL, ROW_COL, check_columns
from dashboard.sources.incremental import ExtractContext, fingerprint

READERS = {".csv": csv_reader.read, ".xlsx": excel_reader.read, ".xls": excel_reader.read,
           ".json": json_reader.read, ".jsonl": json_reader.read, ".ndjson": json_reader.read}
PROCESSED, REJECTED = "processed", "rejected"
REASON_SUFFIX = ".reason.txt"
IN_PROGRESS = (".part", ".tmp", ".crdownload", ".partial")  # uploads not finished yet: left for later


def folder_of(table: TableConfig, base_dir: Path) -> Path:
    return Path(table.path) if Path(table.path).is_absolute() else base_dir / table.path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def waiting(folder: Path) -> list[Path]:
    """Files dropped and not yet taken, oldest first (so a later file's rows win an upsert)."""
    files = [
        p for p in folder.iterdir()
        if p.is_file() and not p.name.startswith((".", "~$")) and not p.name.endswith(IN_PROGRESS)
    ]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def move(path: Path, dest_dir: Path, reason: str | None = None) -> Path:
    """Move into dest_dir under a name not yet used there; write the reason file beside it."""
    dest_dir.mkdir(exist_ok=True)
    dest, n = dest_dir / path.name, 1
    while dest.exists():
        n += 1
        dest = dest_dir / f"{path.stem}.{n}{path.suffix}"
    if reason is not None:
        (dest_dir / f"{dest.name}{REASON_SUFFIX}").write_text(reason.rstrip() + "\n", encoding="utf-8")
    os.replace(path, dest)  # same file system: the file is in exactly one place at every moment
    return dest


def _read(path: Path, table: TableConfig) -> tuple[pl.DataFrame, list[str]]:
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceError(f"{path.name}: not a CSV, Excel or JSON file (accepted: {', '.join(READERS)})")
    try:
        df = reader(path, table)
    except SourceError:
        raise
    except Exception as e:  # a reader library's own error: the file is bad, not the refresh
        raise SourceError(f"{path.name}: cannot be read: {e}") from e
    if df.height == 0:
        raise SourceError(f"{path.name}: the file has no data rows")
    missing = check_columns(df, table, path.name)
    for k in table.key:
        if k not in df.columns:
            raise SourceError(f"{path.name}: key column '{k}' is missing")
    df = df.select(pl.col(c).cast(pl.String) for c in df.columns)
    return df.with_columns(pl.lit(path.name).alias(FILE_COL), pl.int_range(1, df.height + 1, dtype=pl.Int64)
                           .alias(ROW_COL)), missing


def read(source: SourceConfig, table: TableConfig, ctx: ExtractContext) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    folder = folder_of(table, ctx.base_dir)
    if not folder.is_dir():
        raise SourceError(f"{source.name}: the drop folder {table.path} does not exist")
    fp = fingerprint(table)
    prev = ctx.previous(fp)
    ledger: dict[str, Any] = dict(prev[1].get("ledger", {})) if prev else {}
    current = ctx.previous_dir.parent.name if ctx.previous_dir else None
    taken_in = ctx.out_dir.parent.name
    frames, missing, taken = [], {}, []
    for path in waiting(folder):
        digest = sha256(path)
        seen = ledger.get(digest)
        if seen:
            if seen["snapshot"] == current and seen["name"] == path.name:  # taken, published, move cut short
                move(path, folder / PROCESSED)
            else:
                move(path, folder / REJECTED, f"already processed: the same content as {seen['name']} "
                     f"(taken {seen['at']} into snapshot {seen['snapshot']}); not read again")
            continue
        try:
            df, absent = _read(path, table)
        except SourceError as e:
            move(path, folder / REJECTED, e.message)
            continue
        frames.append(df)
        if absent:
            missing[path.name] = absent
        taken.append({"name": path.name, "sha256": digest})
        at = datetime.now(UTC).isoformat(timespec="seconds")
        ledger[digest] = {"name": path.name, "snapshot": taken_in, "at": at}
    if prev:
        frames.insert(0, pl.read_parquet(prev[0]))
    if not frames:
        raise SourceError(f"{source.name}: no files in the drop folder {table.path} yet")
    frame = pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]
    if table.key:
        frame = frame.unique(subset=table.key, keep="last", maintain_order=True)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(ctx.out_file, compression="zstd")
    ctx.write_state({"fingerprint": fp, "rows": frame.height, "taken": taken, "ledger": ledger})
    return frame, missing


def settle(table: TableConfig, base_dir: Path, state: dict[str, Any], published: bool, reasons: list[str]) -> None:
    """After the snapshot's fate is known: its new files to processed/, or to rejected/ with the reasons."""
    folder = folder_of(table, base_dir)
    for f in state.get("taken", []):
        path = folder / f["name"]
        if not path.is_file() or sha256(path) != f["sha256"]:
            continue  # already moved (or replaced by a new drop, which the next refresh takes)
        if published:
            move(path, folder / PROCESSED)
        else:
            why = "\n".join(["the snapshot with this file was quarantined:", *(f"- {r}" for r in reasons)])
            move(path, folder / REJECTED, why)
