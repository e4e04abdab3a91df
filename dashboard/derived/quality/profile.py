"""Data-quality profile of one snapshot, computed once when it is staged (never on page load) and
kept beside its Parquet files as ``quality.parquet``: per entity and field the fill rate, validity
(phone, email, ID number, dates in range), uniqueness, and a few offending values, masked when personal.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.core.config import SourceConfig
from dashboard.core.dictionary import Dictionary, mask_if
from dashboard.core.entities import ENTITIES, VALIDITY_FLAGS, Column

PROFILE_FILE = "quality.parquet"
MIN_DATE = datetime(2000, 1, 1)  # earlier dates are not plausible for CRM data
FUTURE_DAYS = {"due_date": 3660}  # due dates lie ahead; other dates may be at most a day in the future
SAMPLES = 5
# Exact distinct counts cost about a second per multi-million-row text column: above this many rows
# only the record key is counted exactly (its uniqueness is flagged); other fields get an estimate.
EXACT_DISTINCT_ROWS = 1_000_000

SCHEMA: dict[str, Any] = {
    "source_system": pl.String,
    "snapshot_id": pl.String,
    "entity": pl.String,
    "column_name": pl.String,
    "source_column": pl.String,  # the input column (or "= constant") the mapping names; null if none
    "provided": pl.Boolean,  # mapped, a constant, required, or filled: the source is judged on it
    "is_key": pl.Boolean,
    "personal": pl.Boolean,
    "rows": pl.Int64,
    "filled": pl.Int64,
    "fill_rate": pl.Float64,
    "checked": pl.Int64,  # filled values a validity rule applies to (phone, email, ID number, dates)
    "invalid": pl.Int64,
    "valid_rate": pl.Float64,
    "distinct_values": pl.Int64,
    "distinct_exact": pl.Boolean,  # false: a HyperLogLog estimate (about ±2%)
    "uniqueness": pl.Float64,  # distinct ÷ filled
    "empty_samples": pl.List(pl.String),  # record ids of rows where the field is empty
    "invalid_samples": pl.List(pl.String),
    "duplicate_samples": pl.List(pl.String),  # "value ×count" of repeated record keys
    "examples": pl.List(pl.String),
    "computed_at": pl.Datetime("us", "UTC"),
}


def mapping(src: SourceConfig) -> dict[str, dict[str, str]]:
    """entity → canonical column → where it comes from: the input's header, or ``= value`` for a constant."""
    out: dict[str, dict[str, str]] = {}
    for table in src.tables:
        cols = out.setdefault(table.entity, {})
        for name, header in table.columns.items():
            cols[name] = header if name not in cols or cols[name] == header else f"{cols[name]} | {header}"
        for name, value in table.constants.items():
            cols.setdefault(name, f"= {value}")
    return out


def _invalid(col: Column, columns: list[str], now: datetime) -> pl.Expr | None:
    """True for a filled value that breaks the field's validity rule; None when it has no rule."""
    value = pl.col(col.name)
    flag = VALIDITY_FLAGS.get(col.name)
    if flag and flag in columns:
        return value.is_not_null() & ~pl.col(flag).fill_null(True)
    if col.type == "datetime":
        latest = now.replace(tzinfo=None) + timedelta(days=FUTURE_DAYS.get(col.name, 1))
        return value.is_not_null() & ~value.is_between(MIN_DATE, latest)
    return None


def profile_frame(
    frame: pl.DataFrame, source: str, snapshot_id: str, entity: str, sources: dict[str, str], dictionary: Dictionary
) -> pl.DataFrame:
    """One parallel pass of aggregates over one entity's published rows, then a few samples."""
    ent, now, n = ENTITIES[entity], datetime.now(UTC), frame.height
    cols = [c for c in ent.columns if c.name in frame.columns]
    key = ent.key if ent.key in frame.columns else None
    rules = {c.name: r for c in cols if (r := _invalid(c, frame.columns, now)) is not None}
    exact = {c.name for c in cols if c.name == key or n <= EXACT_DISTINCT_ROWS}

    def distinct(name: str) -> pl.Expr:
        values = pl.col(name).drop_nulls()
        return (values.n_unique() if name in exact else values.approx_n_unique()).alias(f"d_{name}")

    agg = frame.select(
        *[pl.col(c.name).count().alias(f"f_{c.name}") for c in cols],
        *[distinct(c.name) for c in cols],
        *[rule.sum().alias(f"i_{name}") for name, rule in rules.items()],
    ).row(0, named=True)
    samples = _Samples(frame, key, dictionary.personal(entity, key or ""))
    records = []
    for c in cols:
        filled = int(agg[f"f_{c.name}"])
        unique = min(int(agg[f"d_{c.name}"]), filled)
        invalid = int(agg[f"i_{c.name}"]) if c.name in rules else None
        personal = dictionary.personal(entity, c.name)
        records.append(
            {
                "source_system": source,
                "snapshot_id": snapshot_id,
                "entity": entity,
                "column_name": c.name,
                "source_column": sources.get(c.name),
                "provided": c.name in sources or c.required or c.name == key or filled > 0,
                "is_key": c.name == key,
                "personal": personal,
                "rows": n,
                "filled": filled,
                "fill_rate": filled / n if n else None,
                "checked": filled if c.name in rules else None,
                "invalid": invalid,
                "valid_rate": (filled - invalid) / filled if invalid is not None and filled else None,
                "distinct_values": unique,
                "distinct_exact": c.name in exact,
                "uniqueness": unique / filled if filled else None,
                "empty_samples": samples.empty(c.name) if filled < n else [],
                "invalid_samples": samples.values(rules[c.name], c.name, personal) if invalid else [],
                "duplicate_samples": samples.duplicates(c.name, personal) if c.name == key and unique < filled else [],
                "examples": samples.values(pl.col(c.name).is_not_null(), c.name, personal, 3),
                "computed_at": now,
            }
        )
    return pl.DataFrame(records, schema=SCHEMA)


class _Samples:
    """A few values of one field that show a problem, masked when personal."""

    def __init__(self, frame: pl.DataFrame, key: str | None, key_personal: bool) -> None:
        self.frame, self.key, self.key_personal = frame, key, key_personal

    def empty(self, name: str) -> list[str]:
        """Which records lack the field: their key, or their row number in the snapshot file."""
        ident = pl.col(self.key) if self.key else pl.format("row {}", pl.int_range(1, pl.len() + 1))
        picked = self.frame.select(ident.alias("id"), pl.col(name)).filter(pl.col(name).is_null()).head(SAMPLES)
        return [mask_if(v, self.key_personal, self.key or "") for v in picked.get_column("id").to_list()]

    def values(self, where: pl.Expr, name: str, personal: bool, limit: int = SAMPLES) -> list[str]:
        picked = self.frame.lazy().filter(where).select(name).head(limit * 4).collect().get_column(name)
        return list(dict.fromkeys(mask_if(v, personal, name) for v in picked.to_list()))[:limit]

    def duplicates(self, name: str, personal: bool) -> list[str]:
        counts = (
            self.frame.select(name)
            .drop_nulls()
            .group_by(name)
            .len()
            .filter(pl.col("len") > 1)
            .sort(["len", name], descending=[True, False])
        )
        return [f"{mask_if(v, personal, name)} ×{n}" for v, n in counts.head(SAMPLES).iter_rows()]


class SnapshotProfile:
    """Collects one snapshot's entity profiles while refresh stages it; written beside its files."""

    def __init__(self, src: SourceConfig, snapshot_id: str, dictionary: Dictionary) -> None:
        self.source, self.snapshot_id, self.dictionary = src.name, snapshot_id, dictionary
        self.sources = mapping(src)
        self.frames: list[pl.DataFrame] = []

    def add(self, frame: pl.DataFrame, entity: str) -> None:
        m = self.sources.get(entity, {})
        self.frames.append(profile_frame(frame, self.source, self.snapshot_id, entity, m, self.dictionary))

    def write(self, folder: Path) -> None:
        out = pl.concat(self.frames) if self.frames else pl.DataFrame(schema=SCHEMA)
        out.write_parquet(folder / PROFILE_FILE)


def profile_snapshot(
    folder: Path, source: str, snapshot_id: str, sources: dict[str, dict[str, str]], dictionary: Dictionary
) -> pl.DataFrame:
    """Profile of a snapshot folder's entity files (a snapshot written before profiles existed)."""
    frames = [
        profile_frame(pl.read_parquet(path), source, snapshot_id, entity, sources.get(entity, {}), dictionary)
        for entity in ENTITIES
        if (path := folder / f"{entity}.parquet").is_file()
    ]
    return pl.concat(frames) if frames else pl.DataFrame(schema=SCHEMA)


def read_profile(folder: Path) -> pl.DataFrame | None:
    path = folder / PROFILE_FILE
    return pl.read_parquet(path) if path.is_file() else None
