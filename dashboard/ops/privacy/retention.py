"""Retention (``cockpit privacy retention``): rows past ``[privacy.retention]`` after their last activity,
listed per source, entity and place, and removed from every snapshot kept and the derived build."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dashboard.core import audit
from dashboard.core.config import Settings
from dashboard.core.store import Store, crash_point
from dashboard.ops.privacy.files import (
    FileChange,
    Target,
    _clean_temp_files,
    _recount_manifest,
    _replace_parquet,
    exclusive,
    rewrite_parquet,
)
from dashboard.ops.privacy.person import Person, _files, _read
from dashboard.pipeline.review import Who

# the dates that are a row's own activity
ACTIVITY = {
    "customers": ("created_at", "updated_at"),
    "leads": ("created_at",),
    "lead_events": ("occurred_at",),
    "orders": ("ordered_at",),
    "interactions": ("occurred_at",),
    "contracts": ("signed_at", "paid_at", "due_date"),
    "marketing_spend": ("spend_date",),
}
# activity a customer or lead has in the other tables of its snapshot: (table, its dates, the column naming it)
LINKED = {
    "customers": (
        "source_record_id",
        (
            ("orders", ("ordered_at",), "customer_ref"),
            ("interactions", ("occurred_at",), "customer_ref"),
            ("contracts", ("signed_at", "paid_at"), "customer_ref"),
            ("leads", ("created_at",), "customer_ref"),
        ),
    ),
    "leads": ("lead_id", (("lead_events", ("occurred_at",), "lead_id"), ("interactions", ("occurred_at",), "lead_id"))),
}
CASCADE = {"leads": ("lead_events", "lead_id")}  # a lead's funnel events go with it
# what retention reads of a table: its dates and the columns naming records (never the whole table)
_DATED_COLUMNS = sorted(
    {c for cols in ACTIVITY.values() for c in cols} | {"source_record_id", "lead_id", "customer_ref"}
)


@dataclass
class Expired:
    path: Path
    source: str
    entity: str
    where: str  # current | retained | quarantine | rejected
    rows: int
    mask: pl.Series  # True: the row is past its retention


def _folders(store: Store) -> Iterator[tuple[str, str, Path]]:
    """(source, current|retained|quarantine, folder) of every snapshot kept on disk."""
    manifest = store.read_manifest()
    for top, label in ((store.snapshots, "retained"), (store.quarantine, "quarantine")):
        for source_dir in sorted(top.iterdir()) if top.exists() else []:
            current = (manifest["sources"].get(source_dir.name) or {}).get("snapshot_id")
            for folder in sorted(p for p in source_dir.iterdir() if p.is_dir()):
                yield source_dir.name, "current" if label == "retained" and folder.name == current else label, folder


def _last_activity(frame: pl.DataFrame, entity: str, tables: dict[str, pl.DataFrame]) -> pl.Series:
    own = [pl.col(c) for c in ACTIVITY.get(entity, ()) if c in frame.columns]
    key, links = LINKED.get(entity, ("", ()))
    out = frame.select(key) if key in frame.columns else pl.DataFrame({"__none": [None] * frame.height})
    for i, (table, dates, ref) in enumerate(links if key in frame.columns else ()):
        other = tables.get(table)
        cols = [c for c in dates if other is not None and c in other.columns]
        if other is None or ref not in other.columns or not cols:
            continue
        latest = other.group_by(ref).agg(pl.max_horizontal(cols).max().alias(f"__l{i}"))
        out = out.join(latest, left_on=key, right_on=ref, how="left", maintain_order="left")
        own.append(pl.lit(out.get_column(f"__l{i}")))
    if not own:
        return pl.repeat(None, frame.height, dtype=pl.Datetime("us"), eager=True)
    return frame.select(pl.max_horizontal(own)).to_series()


def _expired_in(folder: Path, source: str, where: str, cutoffs: dict[str, dt.datetime]) -> list[Expired]:
    files = {p.name.removesuffix(".parquet"): p for p in folder.glob("*.parquet")}
    tables = {name: _read(p, _DATED_COLUMNS) for name, p in files.items() if name in ACTIVITY}
    out: dict[str, Expired] = {}
    for name, path in files.items():
        entity, rejected = name.removesuffix(".rejected"), name.endswith(".rejected")
        if entity not in cutoffs or entity not in ACTIVITY:
            continue
        frame = tables[name] if not rejected else _read(path, _DATED_COLUMNS)
        last = _last_activity(frame, entity, {} if rejected else tables)
        mask = (last < cutoffs[entity]).fill_null(False)
        out[name] = Expired(path, source, entity, "rejected" if rejected else where, frame.height, mask)
    for entity, (child, ref) in CASCADE.items():
        parent, kid = out.get(entity), tables.get(child)
        if parent is None or kid is None or ref not in kid.columns:
            continue
        gone = tables[entity].filter(parent.mask).get_column(ref)
        mask = kid.get_column(ref).is_in(gone.implode()).fill_null(False)
        if child in out:
            mask = mask | out[child].mask
        out[child] = Expired(files[child], source, child, where, kid.height, mask)
    return list(out.values())


def _cutoffs(settings: Settings, now: dt.datetime | None) -> dict[str, dt.datetime]:
    """entity → the last-activity time before which its rows go (naive local time, as the data holds it)."""
    now = now or dt.datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)
    return {e: now - dt.timedelta(days=d) for e, d in settings.privacy.retention_days().items()}


def expired_rows(settings: Settings, now: dt.datetime | None = None) -> list[Expired]:
    cutoffs = _cutoffs(settings, now)
    store = Store(settings.data_path)
    return (
        [e for s, where, folder in _folders(store) for e in _expired_in(folder, s, where, cutoffs)] if cutoffs else []
    )


def retention_preview(settings: Settings, now: dt.datetime | None = None) -> pl.DataFrame:
    """Per source, entity and place (current snapshot, older retained ones, quarantine, rejected rows): files,
    rows and the rows past their retention."""
    rows = [(e.source, e.entity, e.where, e.rows, int(e.mask.sum())) for e in expired_rows(settings, now)]
    frame = pl.DataFrame(
        rows,
        schema={"source": pl.String, "entity": pl.String, "where": pl.String, "rows": pl.Int64, "expired": pl.Int64},
        orient="row",
    )
    return (
        frame.group_by("source", "entity", "where")
        .agg(pl.len().alias("files"), pl.col("rows").sum(), pl.col("expired").sum())
        .sort("source", "entity", "where")
    )


@dataclass
class RetentionResult:
    changes: list[FileChange]
    by_entity: dict[str, int]

    @property
    def rows(self) -> int:
        return sum(c.rows_removed for c in self.changes)

    def lines(self) -> list[str]:
        out = [f"{c.path}: {c.rows_removed} rows removed" for c in self.changes]
        per = ", ".join(f"{e} {n}" for e, n in sorted(self.by_entity.items())) or "nothing expired"
        return [*out, f"{len(self.changes)} files rewritten, {self.rows} rows removed ({per})"]


def apply_retention(
    settings: Settings,
    who: Who,
    wait: float = 0,
    now: dt.datetime | None = None,
) -> RetentionResult:
    """Remove expired rows from every snapshot kept on disk, then their records from the derived build."""
    root = settings.data_path
    changes: list[FileChange] = []
    by_entity: dict[str, int] = {}
    gone = Person()
    with exclusive(settings, wait, "cockpit privacy retention") as store:
        _clean_temp_files(root)
        for e in expired_rows(settings, now):
            n = int(e.mask.sum())
            if not n:
                continue
            if e.where == "current" and e.entity in ("customers", "leads"):
                kind, col = ("customer", "source_record_id") if e.entity == "customers" else ("lead", "lead_id")
                ids = _read(e.path, [col]).filter(e.mask).get_column(col).to_list()
                gone.records |= {(e.source, kind, i) for i in ids}
            arrow = pq.read_table(e.path)
            _replace_parquet(e.path, arrow.filter(pa.array(~e.mask)))
            changes.append(FileChange(e.path.relative_to(root).as_posix(), n, 0))
            by_entity[e.entity] = by_entity.get(e.entity, 0) + n
            crash_point(f"privacy_file:{len(changes)}")
        gone.keys = _keys_left_without_records(root, store, gone)
        target = Target(gone, drop_by_text=False)
        for path in _files(root, "derived") if not gone.empty else []:
            change = rewrite_parquet(root, path, target)
            if change:
                changes.append(change)
        _recount_manifest(store, {c.path for c in changes})
    result = RetentionResult(changes, by_entity)
    audit.record(
        settings, "privacy_retention", who.name, who.role, who.client, "retention", result.rows, removed=by_entity
    )
    return result


def _keys_left_without_records(root: Path, store: Store, gone: Person) -> set[str]:
    """Golden customers every source record of which expired."""
    tables = (store.read_manifest().get("derived") or {}).get("tables") or {}
    if "identity_links" not in tables or not gone.records:
        return set()
    links = _read(root / tables["identity_links"], ["source_system", "source_record_id", "customer_key"])
    ids = gone.record_ids(("customer", "lead"))
    flagged = links.with_columns(
        pl.concat_str("source_system", "source_record_id", separator="\x1f").is_in(ids).alias("gone")
    )
    return set(flagged.group_by("customer_key").agg(pl.col("gone").all()).filter("gone").get_column("customer_key"))
