"""The derived build after each publish: quality metrics and identity links, published by the same
atomic manifest swap as snapshots."""

from __future__ import annotations

import os

import duckdb
import polars as pl

from dashboard import analytics
from dashboard.config import Settings
from dashboard.identity import RECORDS_SQL, link_exact
from dashboard.pipeline.store import Store, crash_point, new_id, now_utc
from dashboard.quality import column_metrics
from dashboard.warehouse import attach_views, quote_path


def build_derived(settings: Settings, store: Store) -> str:
    manifest = store.read_manifest()
    build_id = new_id("b")
    stage = store.staging / "derived" / build_id
    stage.mkdir(parents=True)
    con = duckdb.connect(":memory:")
    try:
        attach_views(con, store, manifest)
        metrics = [
            column_metrics(con, store.abs(info["file"]), source, entry["snapshot_id"], entity)
            for source, entry in manifest["sources"].items()
            for entity, info in entry["entities"].items()
        ]
        quality = pl.concat(metrics) if metrics else pl.DataFrame()
        quality.write_parquet(stage / "quality_metrics.parquet")
        links = link_exact(con.sql(RECORDS_SQL).pl())
        links.write_parquet(stage / "identity_links.parquet")
        analytics.build(con, settings.analytics.attribution_half_life_days)
        for table in ("lead_facts", "attribution"):
            target = quote_path(stage / f"{table}.parquet")  # our staging path, quoted
            con.execute(f"COPY {table} TO {target} (FORMAT parquet, COMPRESSION zstd)")
    finally:
        con.close()
    crash_point("derived_staged")
    dest = store.derived / build_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(stage, dest)
    manifest = store.read_manifest()
    manifest["derived"] = {
        "build_id": build_id,
        "built_at": now_utc().isoformat(),
        "snapshots": {s: e["snapshot_id"] for s, e in manifest["sources"].items()},
        "tables": {
            "quality_metrics": store.rel(dest / "quality_metrics.parquet"),
            "identity_links": store.rel(dest / "identity_links.parquet"),
            "lead_facts": store.rel(dest / "lead_facts.parquet"),
            "attribution": store.rel(dest / "attribution.parquet"),
        },
    }
    store.write_manifest(manifest)
    return build_id
