"""Golden customers: one row per customer_key with its surviving attributes, key figures and tags
(``customer_golden``), and every value any source gave for each attribute with where it came from
(``customer_attributes``): conflicts stay visible instead of being overwritten.

Survivorship ranks the records that give a value by the configured rules, in order: ``recent`` (the
record updated last), ``priority`` (the source's ``priority``, lower wins), ``complete`` (the record
with more attributes filled); invalid phones, emails and ID numbers never survive.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from dashboard.config import Settings
from dashboard.identity import pinyin
from dashboard.warehouse import quote_path

GOLDEN_TABLES: tuple[str, ...] = ("customer_golden", "customer_attributes")
ATTRIBUTES: tuple[str, ...] = ("name", "phone", "email", "id_number", "company", "industry", "region", "city", "owner")
_ORDER = {
    "recent": "seen_at DESC NULLS LAST",
    "priority": "priority ASC",
    "complete": "completeness DESC",
}
# Orders that did not happen (cancelled) or were taken back (returns) do not count as revenue.
NOT_REVENUE = r"(?i)cancel|取消|退货|return|refund|作废"
ACTIVE_DAYS = 180  # a customer who ordered within this many days is active, otherwise lapsed

_CANDIDATES_SQL = """
CREATE OR REPLACE TEMP TABLE golden_candidates AS
WITH r AS (
    SELECT l.customer_key, r.source_system, r.source_record_id, r.snapshot_id, r.seen_at,
           coalesce(p.priority, 100) AS priority,
           {completeness} AS completeness,
           {columns}
    FROM golden_records AS r
    JOIN golden_links AS l USING (source_system, source_record_id, record_kind)
    LEFT JOIN golden_priorities AS p USING (source_system)
)
SELECT *, CASE WHEN attribute = 'name' THEN lower(regexp_replace(value, '[\\s\u3000·.]', '', 'g'))
               ELSE lower(trim(value)) END AS norm
FROM r UNPIVOT (value FOR attribute IN ({attributes}))
WHERE trim(value) <> ''
"""

# one row per customer, attribute and distinct value: the best record giving it is its provenance
_ATTRIBUTES_SQL = """
CREATE OR REPLACE TEMP TABLE golden_values AS
WITH per_value AS (
    SELECT customer_key, attribute, norm,
           first(value ORDER BY {order}, source_system, source_record_id) AS value,
           first(source_system ORDER BY {order}, source_system, source_record_id) AS source_system,
           first(snapshot_id ORDER BY {order}, source_system, source_record_id) AS snapshot_id,
           first(source_record_id ORDER BY {order}, source_system, source_record_id) AS source_record_id,
           first(seen_at ORDER BY {order}, source_system, source_record_id) AS seen_at,
           first(priority ORDER BY {order}, source_system, source_record_id) AS priority,
           first(completeness ORDER BY {order}, source_system, source_record_id) AS completeness,
           list_sort(list(DISTINCT source_system)) AS sources,
           count(*) AS records
    FROM golden_candidates
    GROUP BY customer_key, attribute, norm
)
SELECT customer_key, attribute, value, source_system, snapshot_id, source_record_id, seen_at, sources, records,
       row_number() OVER (PARTITION BY customer_key, attribute ORDER BY {order}, source_system, source_record_id) = 1
           AS chosen,
       count(*) OVER (PARTITION BY customer_key, attribute) > 1 AS conflict
FROM per_value
"""

_GOLDEN_SQL = """
WITH members AS (
    SELECT customer_key, count(*) AS records, list_sort(list(DISTINCT source_system)) AS sources,
           min(confidence) AS confidence,
           list(source_system || ':' || source_record_id) FILTER (WHERE record_kind = 'lead') AS lead_refs
    FROM golden_links GROUP BY customer_key
),
chosen AS (
    SELECT customer_key, {pivot},
           list_sort(list(DISTINCT attribute) FILTER (WHERE conflict)) AS conflicts
    FROM golden_values GROUP BY customer_key
),
cust AS (  -- the customer records, to find their orders, contracts and interactions
    SELECT customer_key, source_system, source_record_id FROM golden_links WHERE record_kind = 'customer'
),
o AS (
    SELECT c.customer_key, count(*) AS orders, sum(o.amount) AS lifetime_revenue,
           min(o.ordered_at) AS first_order_at, max(o.ordered_at) AS last_order_at
    FROM orders AS o JOIN cust AS c ON c.source_system = o.source_system AND c.source_record_id = o.customer_ref
    WHERE NOT regexp_matches(coalesce(o.status, ''), $not_revenue)
    GROUP BY ALL
),
k AS (
    SELECT c.customer_key, sum(greatest(k.amount - coalesce(k.paid_amount, 0), 0)) AS open_receivables
    FROM contracts AS k JOIN cust AS c ON c.source_system = k.source_system AND c.source_record_id = k.customer_ref
    GROUP BY ALL
),
lf AS (
    SELECT l.customer_key, max(f.created_at) AS last_lead_at,
           bool_or(f.won_at IS NOT NULL) AS won, bool_or(f.opportunity_at IS NOT NULL) AS opportunity,
           list(DISTINCT f.channel) AS lead_channels
    FROM lead_facts AS f
    JOIN golden_links AS l ON l.record_kind = 'lead' AND l.source_system = f.source_system
        AND l.source_record_id = f.lead_id
    GROUP BY ALL
),
touch AS (
    SELECT c.customer_key, max(i.occurred_at) AS last_contact_at, list(DISTINCT i.channel) AS touch_channels
    FROM interactions AS i JOIN cust AS c ON c.source_system = i.source_system AND c.source_record_id = i.customer_ref
    GROUP BY ALL
),
rfm AS (
    SELECT customer_key,
           ntile(5) OVER (ORDER BY last_order_at) AS r, ntile(5) OVER (ORDER BY orders) AS f,
           ntile(5) OVER (ORDER BY lifetime_revenue) AS m,
           percent_rank() OVER (ORDER BY lifetime_revenue DESC) AS revenue_rank
    FROM o
)
SELECT m.customer_key, {golden_columns},
       m.records, m.sources, m.confidence, coalesce(ch.conflicts, []) AS conflicts,
       CASE
           WHEN o.orders > 0 AND o.last_order_at >= $now - INTERVAL {active_days} DAY THEN 'active'
           WHEN o.orders > 0 THEN 'lapsed'
           WHEN lf.won THEN 'won'
           WHEN lf.opportunity THEN 'opportunity'
           WHEN lf.customer_key IS NOT NULL THEN 'lead'
           ELSE 'contact'
       END AS lifecycle_stage,
       CASE
           WHEN rfm.customer_key IS NULL THEN NULL
           WHEN rfm.r >= 4 AND rfm.f >= 4 THEN 'champion'
           WHEN rfm.r >= 3 AND rfm.f >= 3 THEN 'loyal'
           WHEN rfm.r <= 2 AND rfm.f >= 3 THEN 'at_risk'
           WHEN rfm.r >= 4 THEN 'new'
           WHEN rfm.r <= 2 THEN 'hibernating'
           ELSE 'needs_attention'
       END AS rfm_segment,
       CASE
           WHEN rfm.revenue_rank <= 0.05 THEN 'high'
           WHEN rfm.revenue_rank <= 0.3 THEN 'medium'
           WHEN rfm.customer_key IS NOT NULL THEN 'low'
       END AS value_tier,
       coalesce(o.lifetime_revenue, 0) AS lifetime_revenue, coalesce(o.orders, 0) AS orders,
       o.first_order_at, o.last_order_at,
       greatest(t.last_contact_at, lf.last_lead_at, o.last_order_at) AS last_contact_at,
       coalesce(k.open_receivables, 0) AS open_receivables,
       list_sort(list_distinct(coalesce(lf.lead_channels, []) || coalesce(t.touch_channels, []))) AS channels
FROM members AS m
LEFT JOIN chosen AS ch USING (customer_key)
LEFT JOIN o USING (customer_key)
LEFT JOIN k USING (customer_key)
LEFT JOIN lf USING (customer_key)
LEFT JOIN touch AS t USING (customer_key)
LEFT JOIN rfm USING (customer_key)
ORDER BY m.customer_key
"""


def write_golden(
    con: duckdb.DuckDBPyConnection, settings: Settings, records: pl.DataFrame, links: pl.DataFrame, folder: Path
) -> None:
    """Writes customer_golden.parquet and customer_attributes.parquet into a derived build's folder.
    ``con`` has the entity views and lead_facts; records are identity.RECORDS_SQL's."""
    import datetime as dt

    attrs = [a for a in ATTRIBUTES if a in records.columns]
    con.register("golden_records", records)
    con.register("golden_links", links)
    con.register(
        "golden_priorities",
        pl.DataFrame(
            {"source_system": [s.name for s in settings.sources], "priority": [s.priority for s in settings.sources]},
            schema={"source_system": pl.String, "priority": pl.Int64},
        ),
    )
    order = ", ".join(_ORDER[rule] for rule in settings.identity.survivorship)
    try:
        con.execute(
            _CANDIDATES_SQL.format(
                completeness=" + ".join(f"CAST(r.{a} IS NOT NULL AS INTEGER)" for a in attrs),
                columns=", ".join(f"CAST(r.{a} AS VARCHAR) AS {a}" for a in attrs),
                attributes=", ".join(attrs),
            )
        )
        con.execute(_ATTRIBUTES_SQL.format(order=order))
        pivot = ", ".join(f"first(value) FILTER (WHERE chosen AND attribute = '{a}') AS {a}" for a in ATTRIBUTES)
        golden = con.sql(
            _GOLDEN_SQL.format(
                pivot=pivot,
                golden_columns=", ".join(f"ch.{a}" for a in ATTRIBUTES),
                active_days=ACTIVE_DAYS,
            ),
            params={"not_revenue": NOT_REVENUE, "now": dt.datetime.now()},
        ).pl()
        golden = golden.with_columns(pinyin(golden["name"]).str.replace_all(" ", "").alias("name_pinyin"))
        golden.write_parquet(folder / "customer_golden.parquet", compression="zstd", row_group_size=100_000)
        con.register("golden_owner", golden.select("customer_key", "owner"))
        target = quote_path(folder / "customer_attributes.parquet")  # our staging path, quoted
        con.execute(
            f"""COPY (
                SELECT v.customer_key, g.owner, v.attribute, v.value, v.chosen, v.conflict, v.source_system,
                       v.snapshot_id, v.source_record_id, v.seen_at, v.sources, v.records
                FROM golden_values AS v JOIN golden_owner AS g USING (customer_key)
                ORDER BY v.customer_key, v.attribute, v.chosen DESC, v.seen_at DESC NULLS LAST
            ) TO {target} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)"""
        )
    finally:
        for name in ("golden_records", "golden_links", "golden_priorities", "golden_owner"):
            con.unregister(name)
        con.execute("DROP TABLE IF EXISTS golden_candidates; DROP TABLE IF EXISTS golden_values")
