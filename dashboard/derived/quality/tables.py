"""The data-quality tables of each derived build, all small: per-field metrics of every retained
(and quarantined) snapshot, the validation history of every refresh attempt, and whether the sources
that know a golden customer agree about its phone, email and name.

Profiles are read, not recomputed: each snapshot's ``quality.parquet`` was written when it was staged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard.core import audit
from dashboard.core.config import Settings
from dashboard.core.dictionary import Dictionary, for_settings, mask_if
from dashboard.core.entities import Condition
from dashboard.core.store import Manifest, Store
from dashboard.derived.quality.profile import SCHEMA, mapping, measure_fill, profile_snapshot, read_profile

# The tables this module writes, and their columns (also when no build exists yet).
TABLES: dict[str, dict[str, str]] = {
    # per-field profile of every retained and quarantined snapshot (derived/quality/profile.py, made at publish)
    "field_quality": {
        "source_system": "VARCHAR",
        "snapshot_id": "VARCHAR",
        "entity": "VARCHAR",
        "column_name": "VARCHAR",
        "source_column": "VARCHAR",
        "provided": "BOOLEAN",
        "is_key": "BOOLEAN",
        "personal": "BOOLEAN",
        "rows": "BIGINT",
        "filled": "BIGINT",
        "applies_when": "VARCHAR",  # the rows the field applies to ("stage = won"); null: every row
        "applies_rows": "BIGINT",
        "applies_filled": "BIGINT",
        "fill_rate": "DOUBLE",  # applies_filled ÷ applies_rows
        "checked": "BIGINT",
        "invalid": "BIGINT",
        "valid_rate": "DOUBLE",
        "distinct_values": "BIGINT",
        "distinct_exact": "BOOLEAN",
        "uniqueness": "DOUBLE",
        "empty_samples": "VARCHAR[]",
        "invalid_samples": "VARCHAR[]",
        "duplicate_samples": "VARCHAR[]",
        "examples": "VARCHAR[]",
        "computed_at": "TIMESTAMPTZ",
        "state": "VARCHAR",  # current | previous | quarantined
        "snapshot_at": "TIMESTAMPTZ",
    },
    # one row per refresh attempt, and per expectation result (this module)
    "validation_runs": {
        "source_system": "VARCHAR",
        "snapshot_id": "VARCHAR",
        "started_at": "TIMESTAMPTZ",
        "finished_at": "TIMESTAMPTZ",
        "status": "VARCHAR",
        "rows": "BIGINT",
        "rejected_rows": "BIGINT",
        "expectations": "BIGINT",
        "failed": "BIGINT",
        "failed_blocking": "BIGINT",
        "reason": "VARCHAR",
        "reviewed_by": "VARCHAR",
        "reviewed_at": "TIMESTAMPTZ",
        "review_reason": "VARCHAR",
    },
    "validation_results": {
        "source_system": "VARCHAR",
        "snapshot_id": "VARCHAR",
        "finished_at": "TIMESTAMPTZ",
        "status": "VARCHAR",
        "suite": "VARCHAR",
        "expectation": "VARCHAR",
        "column_name": "VARCHAR",
        "success": "BOOLEAN",
        "blocking": "BOOLEAN",
        "element_count": "BIGINT",
        "unexpected_count": "BIGINT",
        "unexpected_percent": "DOUBLE",
        "observed": "VARCHAR",
        "samples": "VARCHAR[]",
    },
    # per golden customer and field (phone, email, name) that two or more sources give: do they agree?
    "identity_consistency": {
        "customer_key": "VARCHAR",
        "field": "VARCHAR",
        "n_sources": "BIGINT",
        "n_values": "BIGINT",
        "conflict": "BOOLEAN",
        "examples": "VARCHAR[]",
    },
}

HISTORY_LIMIT = 200  # attempts per source kept in the history table (all stay in runs/attempts/)
QUALITY_TABLES: tuple[str, ...] = (
    "field_quality",
    "validation_runs",
    "validation_results",
    "identity_consistency",
)


def write_quality_tables(
    settings: Settings,
    store: Store,
    manifest: Manifest,
    con: duckdb.DuckDBPyConnection,
    links: pl.DataFrame,
    folder: Path,
    consistency: bool = True,
    tables: Iterable[str] = QUALITY_TABLES,
    kept: KeptHistory | None = None,
) -> None:
    """Writes ``<table>.parquet`` for every name in QUALITY_TABLES (or ``tables``) into a derived build's folder
    (``consistency`` false: all but identity_consistency, which the Spark engine makes from CONFLICTS_SQL).
    ``kept``: the current build's validation history, whose rows of a source with the same attempts are kept."""
    dictionary = for_settings(settings)
    wanted = set(tables)
    if "field_quality" in wanted:
        retained_metrics(settings, store, manifest, dictionary).write_parquet(folder / "field_quality.parquet")
    if wanted & {"validation_runs", "validation_results"}:
        runs, results = validation_history(store, history_sources(settings, store), dictionary, kept)
        runs.write_parquet(folder / "validation_runs.parquet")
        results.write_parquet(folder / "validation_results.parquet")
    if consistency and "identity_consistency" in wanted:
        identity_consistency(con, links).write_parquet(folder / "identity_consistency.parquet")


def history_sources(settings: Settings, store: Store) -> list[str]:
    """The configured sources, then any other source with attempts on record."""
    history = store.runs / "attempts"
    attempted = sorted(p.name for p in history.iterdir()) if history.is_dir() else []
    return [*settings.source_names, *(s for s in attempted if s not in settings.source_names)]


def history_keys(store: Store, sources: list[str]) -> dict[str, str]:
    """Per source, what its validation history rows are made from: its attempt files and the files of
    quarantine decisions (each by name, size and time; a record is written whole, never in place)."""

    def listed(files: Iterable[Path]) -> list[tuple[str, int, int]]:
        return [(p.name, (st := p.stat()).st_size, st.st_mtime_ns) for p in sorted(files)]

    decided = listed((store.runs / "audit").glob("*/*-quarantine_*.parquet"))
    out = {}
    for source in sources:
        attempts = listed((store.runs / "attempts" / source).glob("*.json"))
        out[source] = hashlib.sha256(json.dumps([source, attempts, decided]).encode()).hexdigest()
    return out


@dataclass(frozen=True)
class KeptHistory:
    """The current build's validation_runs and validation_results, and the sources whose rows are still
    those (their attempts and the decisions the same)."""

    runs: pl.DataFrame
    results: pl.DataFrame
    sources: frozenset[str]


def snapshot_time(snapshot_id: str) -> datetime | None:
    """Snapshot ids start with their UTC creation time: ``20261122T003000123Z-3fa2``."""
    try:
        return datetime.strptime(snapshot_id[:18], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    except ValueError:
        return None


def retained_metrics(settings: Settings, store: Store, manifest: Manifest, dictionary: Dictionary) -> pl.DataFrame:
    """Profiles of the retained published snapshots (state current / previous) and of quarantined ones."""
    frames = []
    for source, entry in manifest["sources"].items():
        ids = [entry["snapshot_id"], *entry.get("previous", [])][: settings.retention]
        for i, sid in enumerate(ids):
            frames.append(_profile(settings, store.snapshots / source / sid, source, sid, dictionary, i == 0))
    for folder in sorted(store.quarantine.glob("*/*")) if store.quarantine.exists() else []:
        frames.append(_profile(settings, folder, folder.parent.name, folder.name, dictionary, None))
    found = [f for f in frames if f is not None]
    if not found:
        return pl.DataFrame(schema={**SCHEMA, "state": pl.String, "snapshot_at": pl.Datetime("us", "UTC")})
    return pl.concat(found, how="vertical_relaxed")


def _profile(
    settings: Settings, folder: Path, source: str, sid: str, dictionary: Dictionary, current: bool | None
) -> pl.DataFrame | None:
    if not folder.is_dir():
        return None
    profile = read_profile(folder)
    if profile is None:  # a snapshot from before profiles were kept: profiled once more, not stored
        known = source in settings.source_names
        sources = mapping(settings.source(source)) if known else {}
        profile = profile_snapshot(folder, source, sid, sources, dictionary, settings.quality.applies)
    else:
        profile = fill_where_applies(profile, folder, settings.quality.applies, dictionary)
    state = "quarantined" if current is None else "current" if current else "previous"
    return profile.with_columns(state=pl.lit(state), snapshot_at=pl.lit(snapshot_time(sid), pl.Datetime("us", "UTC")))


def fill_where_applies(
    profile: pl.DataFrame, folder: Path, applies: Callable[[str, str], dict[str, Condition]], dictionary: Dictionary
) -> pl.DataFrame:
    """A stored profile whose fields' fill rates are over the rows each applies to now (``applies``:
    QualityConfig.applies): a field profiled before its condition was declared, or under another, is measured
    again from its snapshot file, reading only the field, its condition's column and the record key."""
    if "applies_when" not in profile.columns:  # profiled before conditions: every row
        profile = profile.with_columns(
            applies_when=pl.lit(None, pl.String), applies_rows=pl.col("rows"), applies_filled=pl.col("filled")
        )
    out = profile.select(list(SCHEMA))
    if out.is_empty():
        return out
    source = str(out["source_system"][0])
    for entity in out["entity"].unique().to_list():
        wanted = applies(source, entity)
        mine = out.filter(pl.col("entity") == entity)
        stored = dict(zip(mine["column_name"], mine["applies_when"], strict=True))
        stale = {c: wanted.get(c) for c, text in stored.items() if text != (wanted[c].text if c in wanted else None)}
        if stale:
            measured = measure_fill(folder / f"{entity}.parquet", entity, stale, dictionary)
            out = out.update(measured, on=["entity", "column_name"], include_nulls=True)
    return out


# -- validation history ---------------------------------------------------------------------------
def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _entity(suite: str) -> str:
    return suite.rsplit(".", 1)[-1]


def _describe(o: dict[str, Any]) -> str:
    """The failed expectation in one line, without its sample values (those may be personal)."""
    column = o.get("column")
    where = f" on column '{column}'" if column else ""
    if o.get("unexpected_count") is not None:
        pct = o.get("unexpected_percent")
        detail = f"{o['unexpected_count']} rows failed" + (f" ({pct:.1f}%)" if pct is not None else "")
    else:
        detail = f"observed {o.get('observed')}"
    return f"'{o.get('suite')}' {o.get('expectation')}{where}: {detail}"


def validation_history(
    store: Store, sources: list[str], dictionary: Dictionary, kept: KeptHistory | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(one row per attempt, one row per expectation result or read error), newest first; the rows of a
    source ``kept`` holds as they are are taken from it, its attempts not read again."""
    same = kept.sources if kept is not None else frozenset()
    reviews = (  # the last decision wins
        {(a["source"], a["snapshot_id"]): a for a in audit.decisions(store)} if set(sources) - same else {}
    )
    runs: list[pl.DataFrame] = [pl.DataFrame(schema=RUNS_SCHEMA)]
    results: list[pl.DataFrame] = [pl.DataFrame(schema=RESULTS_SCHEMA)]
    for source in sources:
        if kept is not None and source in same:
            runs.append(kept.runs.filter(pl.col("source_system") == source))
            results.append(kept.results.filter(pl.col("source_system") == source))
            continue
        source_runs: list[dict[str, Any]] = []
        source_results: list[dict[str, Any]] = []
        for a in store.attempts(source, limit=HISTORY_LIMIT):
            review = reviews.get((source, str(a.get("snapshot_id"))), {})
            run = _run(source, a, review)
            source_runs.append(run)
            source_results += _results(run, a, dictionary)
        runs.append(pl.DataFrame(source_runs, schema=RUNS_SCHEMA))
        results.append(pl.DataFrame(source_results, schema=RESULTS_SCHEMA))
    return pl.concat(runs), pl.concat(results)


def _run(source: str, a: dict[str, Any], review: dict[str, Any]) -> dict[str, Any]:
    outcomes = a.get("expectations") or []
    failed = [o for o in outcomes if not o.get("success")]
    reasons = [_describe(o) for o in failed if o.get("blocking")] if outcomes else a.get("reasons") or []
    return {
        "source_system": source,
        "snapshot_id": str(a.get("snapshot_id")),
        "started_at": _ts(a.get("started_at")),
        "finished_at": _ts(a.get("finished_at")),
        "status": review.get("status") or a.get("status"),
        "rows": sum(int(v) for v in (a.get("rows") or {}).values()),
        "rejected_rows": int(a.get("rejected_rows") or 0),
        "expectations": len(outcomes),
        "failed": len(failed),
        "failed_blocking": sum(1 for o in failed if o.get("blocking")),
        "reason": str(reasons[0]) if reasons else None,
        "reviewed_by": review.get("who"),
        "reviewed_at": _ts(review.get("at")),
        "review_reason": review.get("reason"),
    }


def _results(run: dict[str, Any], a: dict[str, Any], dictionary: Dictionary) -> list[dict[str, Any]]:
    """Every expectation's result, samples masked where the column is personal; a read error is one row."""
    keys = {k: run[k] for k in ("source_system", "snapshot_id", "finished_at", "status")}
    outcomes = a.get("expectations") or []
    if not outcomes:
        return [
            {**keys, "expectation": "read_error", "success": False, "blocking": True, "observed": str(r), "samples": []}
            for r in a.get("reasons") or []
        ]
    out = []
    for o in outcomes:
        column = o.get("column")
        personal = dictionary.personal(_entity(str(o.get("suite"))), str(column))
        out.append(
            {
                **keys,
                "suite": o.get("suite"),
                "expectation": o.get("expectation"),
                "column_name": column,
                "success": bool(o.get("success")),
                "blocking": bool(o.get("blocking")),
                "element_count": o.get("element_count"),
                "unexpected_count": o.get("unexpected_count"),
                "unexpected_percent": o.get("unexpected_percent"),
                "observed": None if o.get("unexpected_count") is not None else str(o.get("observed")),
                "samples": [mask_if(v, personal, str(column)) for v in o.get("samples") or []],
            }
        )
    return out


_TS = pl.Datetime("us", "UTC")
RUNS_SCHEMA: dict[str, Any] = {
    "source_system": pl.String, "snapshot_id": pl.String, "started_at": _TS, "finished_at": _TS,
    "status": pl.String, "rows": pl.Int64, "rejected_rows": pl.Int64, "expectations": pl.Int64,
    "failed": pl.Int64, "failed_blocking": pl.Int64, "reason": pl.String, "reviewed_by": pl.String,
    "reviewed_at": _TS, "review_reason": pl.String,
}  # fmt: skip
RESULTS_SCHEMA: dict[str, Any] = {
    "source_system": pl.String, "snapshot_id": pl.String, "finished_at": _TS, "status": pl.String,
    "suite": pl.String, "expectation": pl.String, "column_name": pl.String, "success": pl.Boolean,
    "blocking": pl.Boolean, "element_count": pl.Int64, "unexpected_count": pl.Int64,
    "unexpected_percent": pl.Float64, "observed": pl.String, "samples": pl.List(pl.String),
}  # fmt: skip


# -- cross-source consistency ------------------------------------------------------------------------
# One row per golden customer and field (phone, email, name) that at least two sources give; it
# conflicts when their values differ. Only valid phones and emails; names compared without spaces and
# case. min/max instead of count(DISTINCT): the same answer at a fraction of the cost on millions of
# records; exact counts and the masked examples are computed for the conflicts only. A masked name
# carries a short hash so that two different names stay distinguishable.
CONFLICTS_SQL = """
WITH multi AS (
    SELECT customer_key FROM links GROUP BY customer_key HAVING min(source_system) <> max(source_system)
),
keyed AS (
    SELECT l.customer_key, l.source_system, l.source_record_id, l.record_kind
    FROM links AS l SEMI JOIN multi AS m ON m.customer_key = l.customer_key
),
recs AS (
    SELECT source_system, source_record_id, 'customer' AS record_kind, name,
           CASE WHEN phone_valid THEN phone END AS phone, CASE WHEN email_valid THEN email END AS email
    FROM customers
    UNION ALL
    SELECT source_system, lead_id, 'lead', name,
           CASE WHEN phone_valid THEN phone END, CASE WHEN email_valid THEN email END
    FROM leads
),
joined AS (
    SELECT k.customer_key, r.source_system, nullif(trim(r.name), '') AS name, r.phone, r.email
    FROM recs AS r JOIN keyed AS k USING (source_system, source_record_id, record_kind)
),
long AS (
    SELECT customer_key, source_system, 'phone' AS field, phone AS value, phone AS raw
    FROM joined WHERE phone IS NOT NULL
    UNION ALL
    SELECT customer_key, source_system, 'email', email, email FROM joined WHERE email IS NOT NULL
    UNION ALL
    SELECT customer_key, source_system, 'name', lower(replace(replace(name, ' ', ''), '\u3000', '')), name
    FROM joined WHERE name IS NOT NULL
),
per AS (
    SELECT customer_key, field, min(value) <> max(value) AS conflict
    FROM long GROUP BY ALL
    HAVING min(source_system) <> max(source_system)
),
conflicts AS (
    SELECT l.customer_key, l.field,
           count(DISTINCT l.source_system) AS n_sources, count(DISTINCT l.value) AS n_values,
           list_sort(list(DISTINCT l.source_system || ': ' || CASE l.field
               WHEN 'phone' THEN left(l.raw, 3) || '****' || right(l.raw, 4)
               WHEN 'email' THEN left(l.raw, 1) || '***@' || split_part(l.raw, '@', 2)
               ELSE left(l.raw, 1) || repeat('*', least(greatest(length(l.raw) - 1, 1), 3))
                    || ' #' || left(md5(l.value), 4) END)) AS examples
    FROM long AS l
    SEMI JOIN per AS p ON p.customer_key = l.customer_key AND p.field = l.field AND p.conflict
    GROUP BY ALL
)
SELECT p.customer_key, p.field, c.n_sources, coalesce(c.n_values, 1) AS n_values, p.conflict, c.examples
FROM per AS p LEFT JOIN conflicts AS c USING (customer_key, field)
ORDER BY p.conflict DESC, p.field, p.customer_key
"""


def identity_consistency(con: duckdb.DuckDBPyConnection, links: pl.DataFrame) -> pl.DataFrame:
    """CONFLICTS_SQL over ``links`` with each customer_key as its rank among the keys (an integer in the text's
    order, so the rows come out in the same order), spelled again at the end: grouping, joining and sorting
    millions of links by text keys was most of the statement (large: 4.3 CPU-s)."""
    ranks, keys = _key_ranks(links.get_column("customer_key"))
    con.register("links", links.with_columns(ranks))
    try:
        found = con.sql(CONFLICTS_SQL).pl()
    finally:
        con.unregister("links")
    return found.with_columns(keys.gather(found.get_column("customer_key")))


def _key_ranks(keys: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(each key's rank among the distinct keys, from 0 in the text's order; the distinct keys in that order).
    The build writes its links in key order, where the ranks are the runs of equal keys (a rank of unsorted
    text costs ~20x more)."""
    if not keys.null_count() and keys.is_sorted():
        runs = keys.rle()
        return keys.rle_id().alias(keys.name), runs.struct.field("value").alias(keys.name)
    distinct = keys.drop_nulls().unique().sort()  # an empty key has no rank (and stays empty)
    return (keys.rank("dense") - 1).cast(pl.UInt32).alias(keys.name), distinct
