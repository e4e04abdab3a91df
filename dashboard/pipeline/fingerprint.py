"""What a refresh may skip (issue 22): a source whose inputs are byte for byte those its current snapshot
was made from, and a derived step whose inputs are those the current build's step read.

A fingerprint covers everything a result is made from: the input files' bytes, the settings that shape
it, the privacy suppression list, and the code itself (dashboard/core, sources, pipeline, derived and the
expectation suites), so an upgrade never serves a result the new code would not make.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard.core import duck
from dashboard.core.config import Settings, SourceConfig
from dashboard.core.store import Manifest, Store, write_json
from dashboard.pipeline import suppression
from dashboard.sources import DATABASE_KINDS, PULLED_KINDS, table_files
from dashboard.sources.incremental import EXTRACT_DIR

_PACKAGE = Path(__file__).resolve().parents[1]
_CODE = ("core", "sources", "pipeline", "derived")
# Settings that change what is shown, not what a snapshot or a derived table holds.
DATABASE = "database:"  # a database source's inputs: its settings (what it pulls is known once pulled)
DIGEST_CACHE = "file_digests"  # runs/file_digests/<source>.json: each input file's digest by size and times
_SETTLED_NS = 2_000_000_000
_PRESENTATION = {"language", "labels", "query", "security", "scheduler", "notifications", "alerts", "reports"}
# Where the derived build runs, which changes no table (tests/test_derive_child.py): switching it keeps what was made.
_WHERE_BUILT = {"derive_in_child", "derive_in_process_below"}
# How much memory the build may use, which changes no table either (DuckDB spills past it): a derived build in a
# child process runs with [build_memory] less what the refresh's process holds (derive_child.child_settings).
_MEMORY = {"memory_limit", "build_memory"}
# Settings of other sections that only the pages and the CLI read (how often the big screen redraws, the
# thresholds the quality heatmap colours by, the lateness the status tolerates): changing one keeps every
# snapshot and derived step (tests/test_incremental.py).
_DISPLAY = {
    "analytics": {"kiosk_refresh_seconds"},
    "quality": {"fill_rate_threshold", "validity_threshold", "uniqueness_threshold", "stale_grace_minutes"},
}
# The rows each field applies to ([quality.applies_when]) shape only the fields' fill rates: no snapshot (its stored
# profile is measured again under the conditions of the day: quality.tables.fill_where_applies) and no derived step
# but field_quality, whose key names them (derive._quality_keys). A change keeps every snapshot and the other steps.
_PROFILE_ONLY = {"quality": {"applies_when"}}


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def file_digest(path: Path) -> str:
    h = hashlib.blake2b(digest_size=20)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def cached_digests(cache: Path, files: Sequence[Path]) -> list[str]:
    """``file_digest`` of each file, read again only when its size, mtime, ctime or inode changed since the
    digest in ``cache`` (a JSON file, one per source) was made: hashing every raw file each refresh cost ~2.5 s
    of CPU at large. A file changed within the last seconds is not cached, since a write in the same clock tick
    would leave its mtime as it was."""
    try:
        known = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    known = known if isinstance(known, dict) else {}
    now, out, fresh = time.time_ns(), [], {}
    for f in files:
        st = f.stat()
        key, seen = str(f.resolve()), [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        entry = known.get(key)
        made = entry[-1] if isinstance(entry, list) and entry[:-1] == seen else file_digest(f)
        if now - st.st_mtime_ns > _SETTLED_NS:
            fresh[key] = [*seen, made]
        out.append(made)
    if fresh != known:
        write_json(cache, fresh)
    return out


@functools.cache
def code_version() -> str:
    """The code and suites that make snapshots and derived tables (read once per process)."""
    files = sorted(p for d in _CODE for p in (_PACKAGE / d).rglob("*") if p.suffix in (".py", ".toml", ".sql"))
    files += sorted((_PACKAGE.parent / "expectations").glob("*.json"))
    return digest([(p.relative_to(_PACKAGE.parent).as_posix(), file_digest(p)) for p in files])


def settings_version(settings: Settings) -> str:
    exclude: dict[str, Any] = {k: True for k in _PRESENTATION | _MEMORY | {"sources"}} | {"engine": _WHERE_BUILT}
    exclude |= {section: fields | _PROFILE_ONLY.get(section, set()) for section, fields in _DISPLAY.items()}
    data = settings.model_dump(mode="json", exclude=exclude)
    return digest(data, [s.model_dump(mode="json") for s in settings.sources])  # files: by their bytes


def source_inputs(settings: Settings, src: SourceConfig) -> str | None:
    """The fingerprint of one source's inputs, or None when it cannot be known without pulling them (an API,
    a drop folder) or a table has no file (the refresh reports that). A database source's has no data in it
    (DATABASE + its settings): it is pulled every time, and its snapshot kept when the pull brings nothing
    new (unchanged_pull)."""
    listed = settings.data_path / suppression.LIST_FILE
    suppressed = file_digest(listed) if listed.is_file() else None
    if src.kind in DATABASE_KINDS:
        return DATABASE + digest(code_version(), settings_version(settings), src.model_dump(mode="json"), suppressed)
    if src.kind in PULLED_KINDS:
        return None
    listed_files = [table_files(table, settings.base_dir) for table in src.tables]
    if not all(listed_files):
        return None
    cache = Store(settings.data_path).runs / DIGEST_CACHE / f"{src.name}.json"
    made = iter(cached_digests(cache, [f for files in listed_files for f in files]))
    tables = [[(f.name, f.stat().st_size, next(made)) for f in files] for files in listed_files]
    return digest(code_version(), settings_version(settings), src.model_dump(mode="json"), tables, suppressed)


def unchanged(store: Store, manifest: Manifest, src: SourceConfig, inputs: str | None) -> dict[str, Any] | None:
    """The current manifest entry of ``src`` when it was made from ``inputs`` and its files are all there."""
    if inputs is not None and inputs.startswith(DATABASE):
        return None  # known only once pulled
    return _same_inputs(store, manifest, src, inputs)


def _same_inputs(store: Store, manifest: Manifest, src: SourceConfig, inputs: str | None) -> dict[str, Any] | None:
    entry = manifest["sources"].get(src.name)
    if inputs is None or not entry or entry.get("inputs") != inputs:
        return None
    files = [store.abs(info["file"]) for info in (entry.get("entities") or {}).values()]
    return entry if all(f.is_file() for f in files) else None


def unchanged_pull(store: Store, src: SourceConfig, inputs: str | None, stage_dir: Path) -> dict[str, Any] | None:
    """The current manifest entry of a database source whose pull, just staged in ``stage_dir``, brought no row
    its current snapshot lacks (every table: nothing at or past the watermark, or only rows it has as they
    are) and whose settings are those that snapshot was made with: it stays current, like unchanged files.
    Its staged folder and running attempt are then removed. None: publish the pull."""
    if inputs is None or not inputs.startswith(DATABASE):
        return None
    entry = _same_inputs(store, store.read_manifest(), src, inputs)
    states = [stage_dir / EXTRACT_DIR / f"{i}.json" for i in range(len(src.tables))]
    if entry is None or not all(_pulled_nothing(p) for p in states):
        return None
    shutil.rmtree(stage_dir, ignore_errors=True)
    (store.runs / "attempts" / src.name / f"{stage_dir.name}.json").unlink(missing_ok=True)
    return entry


def _pulled_nothing(state_file: Path) -> bool:
    try:
        return json.loads(state_file.read_text(encoding="utf-8")).get("unchanged") is True
    except (OSError, ValueError):
        return False


def entity_files(manifest: Manifest, entities: Iterable[str]) -> dict[str, list[str]]:
    """Each entity's published files across sources, as the manifest names them (a new snapshot: a new path)."""
    wanted = set(entities)
    out: dict[str, list[str]] = {e: [] for e in sorted(wanted)}
    for _source, entry in sorted(manifest["sources"].items()):
        for entity, info in sorted((entry.get("entities") or {}).items()):
            if entity in wanted:
                out[entity].append(info["file"])
    return out


def frame_digest(frame: pl.DataFrame) -> str:
    """The same rows in any order give the same digest: a parallel scan reads them in no fixed order, so a
    full build from the same records is no more tied to one order than a reused one."""
    rows = frame.hash_rows(seed=0).sort().to_numpy().tobytes()
    return digest(pl.__version__, frame.columns, [str(t) for t in frame.dtypes], hashlib.sha256(rows).hexdigest())


# -- what changed since the current build: rows, for the steps that remake only what they touch -----------
# The columns that name a changed row's record, per entity (with source_system, every entity's lineage).
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "customers": ("source_system", "source_record_id"),
    "leads": ("source_system", "lead_id", "customer_ref"),
    "lead_events": ("source_system", "lead_id"),
    "orders": ("source_system", "customer_ref"),
    "contracts": ("source_system", "customer_ref"),
    "interactions": ("source_system", "customer_ref", "lead_id"),
}


def changed_rows(
    con: duckdb.DuckDBPyConnection, old: Path | None, new: Path | None, keys: Sequence[str]
) -> pl.DataFrame | None:
    """The distinct ``keys`` of the rows one file holds and the other does not, duplicates counted (a row is
    every column but snapshot_id, which names the snapshot, not the data); a missing file has no rows.
    None when they cannot be compared row by row (their columns differ)."""
    cols = {p: _columns(con, p) for p in (old, new) if p is not None}
    if len({frozenset(c) for c in cols.values()}) > 1:
        return None
    names = sorted(next(iter(cols.values())) - {"snapshot_id"}) if cols else []
    if not names or not set(keys) <= set(names):
        return None
    sel = ", ".join(f'"{c}"' for c in names)
    key_sel = ", ".join(f'"{k}"' for k in keys)
    if old is None or new is None:  # every row of the one file
        one = old or new
        assert one is not None
        return con.sql(f"SELECT DISTINCT {key_sel} FROM read_parquet({duck.quote_path(one)})").pl()

    def rows(p: Path, side: int) -> str:  # our own published path, quoted
        path = duck.quote_path(p)
        return f"SELECT {key_sel}, hash({sel}) AS {_ROW_HASH}, {side} AS {_SIDE} FROM read_parquet({path})"

    # Each row by its keys and a hash of every column, counted +1 in the new file and -1 in the old: a count
    # other than 0 is a row one file holds more often than the other. The same rows as the two EXCEPT ALLs
    # over every column, which grouped whole rows and cost 5x the CPU at large (4.8 CPU-s for 1.3M orders);
    # a changed row kept its keys and its 64-bit hash with a chance of 2^-64.
    grouped = f"""SELECT {key_sel} FROM ({rows(new, 1)} UNION ALL {rows(old, -1)})
        GROUP BY {key_sel}, {_ROW_HASH} HAVING sum({_SIDE}) <> 0"""
    return con.sql(f"SELECT DISTINCT {key_sel} FROM ({grouped})").pl()


_ROW_HASH, _SIDE = "__row_hash", "__side"  # changed_rows' own columns (no entity's)


def _columns(con: duckdb.DuckDBPyConnection, path: Path) -> frozenset[str]:
    return frozenset(r[0] for r in con.sql(f"DESCRIBE SELECT * FROM read_parquet({duck.quote_path(path)})").fetchall())


def entity_changes(
    con: duckdb.DuckDBPyConnection, store: Store, manifest: Manifest, entities: Iterable[str]
) -> dict[str, pl.DataFrame] | None:
    """Per entity, the ROW_KEYS of the rows that differ between the snapshots the current derived build was
    made from and those of ``manifest`` (pending); None when that cannot be told (no current build, an old
    snapshot already gone, a file whose columns changed): then everything counts as changed."""
    before: dict[str, str] | None = (manifest.get("derived") or {}).get("snapshots")
    if before is None:
        return None
    wanted = sorted(set(entities))
    out: dict[str, list[pl.DataFrame]] = {e: [] for e in wanted}
    now = {s: e for s, e in manifest["sources"].items()}
    for source in sorted(set(before) | set(now)):
        old_id, entry = before.get(source), now.get(source)
        if entry is not None and entry["snapshot_id"] == old_id:
            continue
        old_dir = store.snapshots / source / old_id if old_id else None
        if old_dir is not None and not old_dir.is_dir():
            return None
        files = (entry or {}).get("entities") or {}
        for entity in wanted:
            old = old_dir / f"{entity}.parquet" if old_dir is not None else None
            new = store.abs(files[entity]["file"]) if entity in files else None
            old = old if old is not None and old.is_file() else None
            if old is None and new is None:
                continue
            got = changed_rows(con, old, new, ROW_KEYS[entity])
            if got is None:
                return None
            out[entity].append(got)
    return {
        e: pl.concat(frames, how="vertical_relaxed")
        if frames
        else pl.DataFrame(schema=dict.fromkeys(ROW_KEYS[e], pl.String))
        for e, frames in out.items()
    }
