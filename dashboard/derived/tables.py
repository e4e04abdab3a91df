"""Every table a derived build writes, gathered from the modules that write them, and the views a
connection gets over a manifest: the canonical entities, then each derived table."""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from dashboard.core.dictionary import MASK_MACROS
from dashboard.core.duck import attach_entities, attach_table
from dashboard.core.store import Manifest, Store
from dashboard.derived import analytics, churn, golden, identity, personal
from dashboard.derived.quality import tables as quality_tables

DERIVED_TABLES: dict[str, dict[str, str]] = {
    **identity.TABLES,
    **golden.TABLES,
    **analytics.TABLES,
    **quality_tables.TABLES,
    **churn.TABLES,
    **personal.TABLES,
}
# Derived tables that are columns of another's file, read from it when a connection attaches them.
READ_FROM = {"customer_index": "customer_golden"}

# The filter bar's filters, shared by the channel queries: FROM filtered_leads($start, ...) and
# FROM filtered_spend($start, $end, $channel, $campaign) (spend has no region or owner). A macro finds
# tables through the caller's search path, so each schema ({s}) gets its own pair over its own tables.
FILTERED_LEADS_MACRO = """
CREATE OR REPLACE MACRO {s}.filtered_leads(p_start, p_end, p_channel, p_region, p_owner, p_campaign) AS TABLE
SELECT * FROM {s}.lead_facts
WHERE (p_start IS NULL OR created_at >= CAST(p_start AS TIMESTAMP))
  AND (p_end IS NULL OR created_at < CAST(p_end AS TIMESTAMP) + INTERVAL 1 DAY)
  AND (p_channel IS NULL OR channel = p_channel)
  AND (p_region IS NULL OR region = p_region)
  AND (p_owner IS NULL OR owner = p_owner)
  AND (p_campaign IS NULL OR campaign = p_campaign);

CREATE OR REPLACE MACRO {s}.filtered_spend(p_start, p_end, p_channel, p_campaign) AS TABLE
SELECT channel, coalesce(campaign, '') AS campaign, cost FROM {s}.marketing_spend
WHERE (p_start IS NULL OR spend_date >= CAST(p_start AS TIMESTAMP))
  AND (p_end IS NULL OR spend_date < CAST(p_end AS TIMESTAMP) + INTERVAL 1 DAY)
  AND (p_channel IS NULL OR channel = p_channel)
  AND (p_campaign IS NULL OR coalesce(campaign, '') = p_campaign);
"""


def attach_views(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    manifest: Manifest,
    in_memory: frozenset[str] = frozenset(),
    enums: Mapping[str, tuple[str, ...]] | None = None,
    schema: str = "main",
) -> None:
    """Views over the manifest's files in ``schema``: the entities, then every derived table; the
    ``in_memory`` ones are loaded (their ``enums`` columns as ENUMs)."""
    attach_entities(con, store, manifest, schema)
    derived = (manifest.get("derived") or {}).get("tables") or {}
    con.execute(MASK_MACROS)  # COMPUTED_IF_ABSENT masks with them
    for table, columns in DERIVED_TABLES.items():
        rel = derived.get(READ_FROM.get(table, table))
        files = [store.abs(rel)] if rel else []
        parts = stored_parts(store, manifest, table)
        rows = parts.sql() if parts is not None else ""
        # The page summaries are read on every view: held in memory, not re-decompressed.
        attach_table(con, table, files, columns, schema, table in in_memory, (enums or {}).get(table, ()), rows)
    con.execute(FILTERED_LEADS_MACRO.format(s=schema))


def stored_parts(store: Store, manifest: Manifest, table: str) -> golden.Parts | None:
    """``table``'s base file and part when the manifest's build stored it so (golden.Parts), else None."""
    derived = manifest.get("derived") or {}
    entry = (derived.get("parts") or {}).get(table)
    if not entry:
        return None
    base = store.abs(derived["tables"][table])
    return golden.Parts(base, store.abs(entry["rows"]), store.abs(entry["keys"]), dict(entry["snapshots"]))
