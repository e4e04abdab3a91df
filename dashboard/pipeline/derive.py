"""The derived build of a refresh: identity links, quality tables, channel analytics. It is built from
the pending manifest (snapshots moved into place but not yet named) and published by the same
atomic manifest swap as those snapshots, so readers never see new snapshots with old summaries."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import polars as pl

from dashboard.core.config import Settings
from dashboard.core.duck import quote_path, work_connection
from dashboard.core.store import Manifest, Store, crash_point, new_id, now_utc
from dashboard.derived import analytics, personal
from dashboard.derived.analytics import ANALYTICS_TABLES
from dashboard.derived.churn import build as churn
from dashboard.derived.churn.build import CHURN_TABLES
from dashboard.derived.golden import GOLDEN_TABLES, write_golden
from dashboard.derived.identity import build_links, previous_table, redirects
from dashboard.derived.quality.tables import QUALITY_TABLES, write_quality_tables
from dashboard.derived.spark import jobs as spark_jobs
from dashboard.derived.tables import DERIVED_TABLES, READ_FROM, attach_views
from dashboard.pipeline.progress import Lap


def build_derived(
    settings: Settings,
    store: Store,
    manifest: Manifest,
    progress: Callable[[str], None] | None = None,
    lap: Lap | None = None,
) -> Manifest:
    """Build from ``manifest`` (pending); return it with its new "derived" entry. Writes no manifest.
    ``progress`` hears each step as it starts, ``lap`` is called with each step's name (and the rows of
    the table it is about) when it ends."""
    say = progress or (lambda _m: None)
    done = lap or _no_lap
    build_id = new_id("b")
    stage = store.staging / "derived" / build_id
    stage.mkdir(parents=True)
    # DuckDB held to settings.memory_limit, spilling past it; with [engine] kind = "spark" also a Spark
    # session, started and checked before any work (None otherwise)
    with work_connection(settings) as con, spark_jobs.engine(settings) as spark:
        attach_views(con, store, manifest, in_memory=frozenset())  # the old summaries are rebuilt, not read
        say("deriving: identity resolution")
        previous = previous_table(
            store, manifest, "identity_links", ["source_system", "source_record_id", "customer_key"]
        )
        records, links, _model = build_links(settings, con, previous)  # exact, then Splink; overrides win
        links.write_parquet(stage / "identity_links.parquet")
        moved = redirects(  # keys that disappeared (merged) → where their records are now
            previous,
            links,
            previous_table(store, manifest, "customer_redirects", ["old_key", "customer_key", "merged_at"]),
            now_utc().replace(tzinfo=None),
        )
        moved.write_parquet(stage / "customer_redirects.parquet")
        del previous
        done("identity", links.height)
        say("deriving: quality tables")
        write_quality_tables(settings, store, manifest, con, links, stage)  # profiles were made at publish
        done("quality")
        say("deriving: channel analytics")
        if spark is not None:  # the same SQL as Spark jobs, the same files (dashboard/derived/spark)
            spark_jobs.analytics_tables(spark, con, settings, store, manifest, stage)
        else:
            analytics.build(  # attribution follows each won lead's customer through the links
                con,
                links,
                settings.analytics.attribution_half_life_days,
                settings.analytics.attribution_exclude_channels,
            )
            for table in ANALYTICS_TABLES:
                target = quote_path(stage / f"{table}.parquet")  # our staging path, quoted
                con.execute(f"COPY {table} TO {target} (FORMAT parquet, COMPRESSION zstd)")
        done("analytics", _rows(stage / "lead_facts.parquet"))
        say("deriving: golden customer records")
        write_golden(con, settings, records, links, stage)  # golden customers: reads lead_facts
        del records
        done("golden", _rows(stage / "customer_golden.parquet"))
        say("deriving: churn scores")
        churn.build(con, settings, links, stage, progress=say)  # churn scores, model card, calibration
        done("churn", _rows(stage / "churn_scores.parquet"))
        say("deriving: personal-data profile")
        entity_files = {
            (entity, source): store.abs(info["file"])
            for source, entry in manifest["sources"].items()
            for entity, info in (entry.get("entities") or {}).items()
        }
        derived_files = {t: stage / f"{t}.parquet" for t in DERIVED_TABLES if t not in READ_FROM}
        personal_tables = personal.write_tables(con, settings.data_path, entity_files, derived_files, stage)
        done("personal")
    crash_point("derived_staged")
    dest = store.derived / build_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(stage, dest)
    derived = {
        "build_id": build_id,
        "built_at": now_utc().isoformat(),
        "snapshots": {s: e["snapshot_id"] for s, e in manifest["sources"].items()},
        "tables": {
            **{t: store.rel(dest / f"{t}.parquet") for t in QUALITY_TABLES},
            "identity_links": store.rel(dest / "identity_links.parquet"),
            "customer_redirects": store.rel(dest / "customer_redirects.parquet"),
            **{t: store.rel(dest / f"{t}.parquet") for t in GOLDEN_TABLES},
            **{t: store.rel(dest / f"{t}.parquet") for t in ANALYTICS_TABLES},
            **{t: store.rel(dest / f"{t}.parquet") for t in CHURN_TABLES},
            **{t: store.rel(dest / f.name) for t, f in personal_tables.items()},  # with the keys' tokens
        },
    }
    return {**manifest, "derived": derived}


def _no_lap(step: str, rows: int | None = None) -> None:
    return None


def _rows(path: Path) -> int:
    return int(pl.scan_parquet(path).select(pl.len()).collect().item())  # from the file's footer
