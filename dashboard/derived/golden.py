"""Golden customers: one row per customer_key with its surviving attributes, key figures and tags
(``customer_golden``), and every value any source gave for each attribute with where it came from
(``customer_attributes``): conflicts stay visible instead of being overwritten.

Survivorship ranks the records that give a value by the configured rules, in order: ``recent`` (the
record updated last), ``priority`` (the source's ``priority``, lower wins), ``complete`` (the record
with more attributes filled); invalid phones, emails and ID numbers never survive.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dashboard.core.config import Settings, today
from dashboard.core.duck import quote_literal, quote_path
from dashboard.core.parse import pinyin
from dashboard.core.store import crash_point, link_file
from dashboard.derived.identity import read_records, records_sql

# The tables this module writes, and their columns (also when no build exists yet).
TABLES: dict[str, dict[str, str]] = {
    # golden customers and every value each source gave them (this module)
    "customer_golden": {
        "customer_key": "VARCHAR",
        "name": "VARCHAR",
        "phone": "VARCHAR",
        "email": "VARCHAR",
        "id_number": "VARCHAR",
        "company": "VARCHAR",
        "industry": "VARCHAR",
        "region": "VARCHAR",
        "city": "VARCHAR",
        "owner": "VARCHAR",
        "records": "BIGINT",
        "sources": "VARCHAR[]",
        "confidence": "DOUBLE",
        "conflicts": "VARCHAR[]",
        "lifecycle_stage": "VARCHAR",
        "rfm_segment": "VARCHAR",
        "value_tier": "VARCHAR",
        "lifetime_revenue": "DOUBLE",
        "orders": "BIGINT",
        "first_order_at": "TIMESTAMP",
        "last_order_at": "TIMESTAMP",
        "last_contact_at": "TIMESTAMP",
        "open_receivables": "DOUBLE",
        "channels": "VARCHAR[]",
        "name_pinyin": "VARCHAR",
        "marketing_consent": "BOOLEAN",
    },
    "customer_attributes": {
        "customer_key": "VARCHAR",
        "owner": "VARCHAR",
        "attribute": "VARCHAR",
        "value": "VARCHAR",
        "chosen": "BOOLEAN",
        "conflict": "BOOLEAN",
        "source_system": "VARCHAR",
        "snapshot_id": "VARCHAR",
        "source_record_id": "VARCHAR",
        "seen_at": "TIMESTAMP",
        "sources": "VARCHAR[]",
        "records": "BIGINT",
    },
    # customer_attributes' phones and e-mails sorted by value: a search by either prunes row groups
    "customer_lookup": {
        "attribute": "VARCHAR",
        "value": "VARCHAR",
        "customer_key": "VARCHAR",
        "owner": "VARCHAR",
    },
    # customer_golden's search columns (read from its file, READ_FROM), held in memory with the phone and
    # e-mail also masked at load: a search scans memory, and masked roles do not mask every row per query
    "customer_index": {
        "customer_key": "VARCHAR",
        "name": "VARCHAR",
        "name_pinyin": "VARCHAR",
        "phone": "VARCHAR",
        "email": "VARCHAR",
        "company": "VARCHAR",
        "city": "VARCHAR",
        "owner": "VARCHAR",
        "lifecycle_stage": "VARCHAR",
        "lifetime_revenue": "DOUBLE",
        "phone_masked": "VARCHAR",
        "email_masked": "VARCHAR",
    },
}

GOLDEN_TABLES: tuple[str, ...] = ("customer_golden", "customer_attributes", "customer_lookup")
LOOKUP_ATTRIBUTES: tuple[str, ...] = ("phone", "email")  # customer_lookup: what a search matches exactly
ATTRIBUTES: tuple[str, ...] = ("name", "phone", "email", "id_number", "company", "industry", "region", "city", "owner")
_ORDER = {
    "recent": "seen_at DESC NULLS LAST",
    "priority": "priority ASC",
    "complete": "completeness DESC",
}
# Orders that did not happen (cancelled) or were taken back (returns) do not count as revenue.
NOT_REVENUE = r"(?i)cancel|取消|退货|return|refund|作废"
ACTIVE_DAYS = 180  # a customer who ordered within this many days is active, otherwise lapsed

# Survivorship orders records, not values: the records are stored once in survivorship order, so a record's
# rowid is its rank (rk, 0 survives first), and each value keeps the best-ranked record giving it (arg_min by
# rk: a hash aggregate, no sort per group). Measured at large: the ordered first() per value took 3x longer.
_RANKED_SQL = """
CREATE OR REPLACE TEMP TABLE golden_ranked AS
SELECT * FROM (
    SELECT l.customer_key, r.source_system, s.src, r.source_record_id, r.snapshot_id, r.seen_at,
           coalesce(s.priority, 100) AS priority,
           {completeness} AS completeness,
           {columns}
    FROM golden_records AS r
    JOIN golden_links AS l USING (source_system, source_record_id, record_kind)
    LEFT JOIN golden_sources AS s USING (source_system)
)
ORDER BY {order}, source_system, source_record_id
"""
# _RANKED_SQL over records that carry their customer's number (golden_cid: a full build told each record's link by
# identity, derived.identity.Graph.record_links): not joined to the links by their three strings (at large 3.46M
# records: golden_ranked 4.2-4.4 -> 2.9-3.0 CPU-s)
_RANKED_KEYED_SQL = _RANKED_SQL.replace("SELECT l.customer_key,", "SELECT r.golden_cid AS customer_key,").replace(
    "    JOIN golden_links AS l USING (source_system, source_record_id, record_kind)\n", ""
)
if _RANKED_KEYED_SQL.count("golden_links") or not _RANKED_KEYED_SQL.count("golden_cid"):
    raise AssertionError("_RANKED_SQL's join to the links not replaced")

# one row per customer, attribute and distinct value: the best record giving it is its provenance. The sources
# giving a value are a bit mask over golden_sources (a list(DISTINCT ...) per value cost 17 s at large); past
# 128 sources the mask is that list.
_MASK = (
    "bit_or(CAST(1 AS UHUGEINT) << CAST(src AS UHUGEINT))",
    "(m.mask >> CAST(s.src AS UHUGEINT)) & CAST(1 AS UHUGEINT) = 1",
)
_MASK_LIST = ("list_sort(list(DISTINCT src))", "list_contains(m.mask, s.src)")
_ATTRIBUTES_SQL = """
CREATE OR REPLACE TEMP TABLE golden_values AS
WITH candidates AS (
    SELECT customer_key, rk, src, attribute, value,
           CASE WHEN attribute = 'name' THEN lower(regexp_replace(value, '[\\s\u3000·.]', '', 'g'))
                ELSE lower(trim(value)) END AS norm
    FROM (SELECT rowid AS rk, customer_key, src, {attributes} FROM golden_ranked)
        UNPIVOT (value FOR attribute IN ({attributes}))
    WHERE trim(value) <> ''
),
per_value AS (
    SELECT customer_key, attribute, min(rk) AS rk, arg_min(value, rk) AS value,
           {mask} AS mask, count(*) AS records
    FROM candidates
    GROUP BY customer_key, attribute, norm
),
per_attribute AS (
    SELECT customer_key, attribute, min(rk) AS best, count(*) > 1 AS conflict
    FROM per_value GROUP BY customer_key, attribute
),
masks AS (
    SELECT m.mask, list(s.source_system ORDER BY s.source_system) AS sources
    FROM (SELECT DISTINCT mask FROM per_value) AS m
    JOIN golden_sources AS s ON {has_source}
    GROUP BY m.mask
)
SELECT v.customer_key, v.attribute, v.value, r.source_system, r.snapshot_id, r.source_record_id, r.seen_at,
       ms.sources, v.records, v.rk = a.best AS chosen, a.conflict
FROM per_value AS v
JOIN per_attribute AS a USING (customer_key, attribute)
JOIN golden_ranked AS r ON r.rowid = v.rk
JOIN masks AS ms USING (mask)
"""

# The same rows as _ATTRIBUTES_SQL (which Spark runs), one attribute at a time ($attribute; {value}: its
# column): each statement's hash tables hold one attribute's values, not all nine at once. Measured at large
# (3.5M records, 9.1M values): the nine-attribute statement filled DuckDB's 4 GB and spilled. The record's source
# and snapshot are a number (ssn, golden_snapshots) and its sources the mask (golden_masks numbers them): the
# names are put back after customer_attributes' sort (_NAMED_ROWS_SQL), so that 9.1M rows sort without them.
_VALUES_SQL = """
WITH candidates AS (
    SELECT customer_key, rowid AS rk, src, {value} AS value, {norm} AS norm
    FROM golden_ranked
    WHERE trim({value}) <> ''
),
per_value AS (
    SELECT customer_key, min(rk) AS rk, arg_min(value, rk) AS value, {mask} AS mask, count(*) AS records
    FROM candidates
    GROUP BY customer_key, norm
),
per_attribute AS (
    SELECT customer_key, min(rk) AS best, count(*) > 1 AS conflict FROM per_value GROUP BY customer_key
)
SELECT v.customer_key, $attribute AS attribute, v.value, p.ssn, r.source_record_id, r.seen_at, v.mask, v.records,
       v.rk = a.best AS chosen, a.conflict
FROM per_value AS v
JOIN per_attribute AS a USING (customer_key)
JOIN golden_ranked AS r ON r.rowid = v.rk
JOIN golden_snapshots AS p
    ON p.source_system IS NOT DISTINCT FROM r.source_system AND p.snapshot_id IS NOT DISTINCT FROM r.snapshot_id
"""
# every (source, snapshot) of the ranked records, numbered from 1 (ssn)
_SNAPSHOTS_NUMBERED_SQL = """
CREATE OR REPLACE TEMP TABLE golden_snapshots AS
SELECT CAST(row_number() OVER (ORDER BY source_system, snapshot_id) AS INTEGER) AS ssn, source_system, snapshot_id
FROM (SELECT DISTINCT source_system, snapshot_id FROM golden_ranked)
"""
# every distinct mask of golden_values numbered from 1 (mn), with its sources' names in order
_MASKS_SQL = """
CREATE OR REPLACE TEMP TABLE golden_masks AS
SELECT CAST(row_number() OVER (ORDER BY m.mask) AS INTEGER) AS mn, m.mask,
       list(s.source_system ORDER BY s.source_system) AS sources
FROM (SELECT DISTINCT mask FROM golden_values) AS m
JOIN golden_sources AS s ON {has_source}
GROUP BY m.mask
"""
_NORM = {"name": "lower(regexp_replace({v}, '[\\s\u3000·.]', '', 'g'))"}  # else lower(trim(value))

# Per customer (golden_base): everything but what ranks customers against each other (RFM, value tier) and
# what depends on the day (active or lapsed): an incremental build remakes these rows only for the
# customers it touches and keeps the others' (dashboard/pipeline/derive.py), then _RANK_SQL ranks them all.
_BASE_QUERY = """
WITH members AS (  -- distinct sources by grouping first: list(DISTINCT) per customer is slower
    SELECT customer_key, CAST(sum(n) AS BIGINT) AS records, list_sort(list(source_system)) AS sources,
           min(confidence) AS confidence
    FROM (
        SELECT customer_key, source_system, count(*) AS n, min(confidence) AS confidence
        FROM golden_links GROUP BY ALL
    ) GROUP BY customer_key
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
    -- money to the cent: a parallel sum's last bits vary run to run, the tiers and segments must not
    SELECT c.customer_key, count(*) AS orders, round(sum(o.amount), 2) AS lifetime_revenue,
           min(o.ordered_at) AS first_order_at, max(o.ordered_at) AS last_order_at
    FROM orders AS o JOIN cust AS c ON c.source_system = o.source_system AND c.source_record_id = o.customer_ref
    WHERE NOT regexp_matches(coalesce(o.status, ''), $not_revenue)
    GROUP BY ALL
),
k AS (
    SELECT c.customer_key, round(sum(greatest(k.amount - coalesce(k.paid_amount, 0), 0)), 2) AS open_receivables
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
    SELECT customer_key, max(last_at) AS last_contact_at,
           list(channel) FILTER (WHERE channel IS NOT NULL) AS touch_channels
    FROM (
        SELECT c.customer_key, i.channel, max(i.occurred_at) AS last_at
        FROM interactions AS i
        JOIN cust AS c ON c.source_system = i.source_system AND c.source_record_id = i.customer_ref
        GROUP BY ALL
    ) GROUP BY customer_key
),
consent AS (  -- marketing consent over all the person's records: a withdrawal (any no) wins, then any yes
    SELECT l.customer_key, NOT bool_or(NOT r.marketing_consent) AS marketing_consent
    FROM golden_links AS l
    JOIN (
        SELECT 'customer' AS record_kind, source_system, source_record_id, marketing_consent FROM customers
        UNION ALL SELECT 'lead', source_system, lead_id, marketing_consent FROM leads
    ) AS r USING (record_kind, source_system, source_record_id)
    WHERE r.marketing_consent IS NOT NULL
    GROUP BY ALL
)
SELECT m.customer_key, {golden_columns},
       m.records, m.sources, m.confidence, coalesce(ch.conflicts, []) AS conflicts,
       CASE  -- the lifecycle of a customer without orders (with orders: active or lapsed, by the day)
           WHEN lf.won THEN 'won'
           WHEN lf.opportunity THEN 'opportunity'
           WHEN lf.customer_key IS NOT NULL THEN 'lead'
           ELSE 'contact'
       END AS lead_stage,
       coalesce(o.lifetime_revenue, 0) AS lifetime_revenue, coalesce(o.orders, 0) AS orders,
       o.first_order_at, o.last_order_at,
       greatest(t.last_contact_at, lf.last_lead_at, o.last_order_at) AS last_contact_at,
       coalesce(k.open_receivables, 0) AS open_receivables,
       list_sort(list_distinct(coalesce(lf.lead_channels, []) || coalesce(t.touch_channels, []))) AS channels,
       py.name_pinyin, cn.marketing_consent
FROM members AS m
LEFT JOIN chosen AS ch USING (customer_key)
LEFT JOIN o USING (customer_key)
LEFT JOIN k USING (customer_key)
LEFT JOIN lf USING (customer_key)
LEFT JOIN touch AS t USING (customer_key)
LEFT JOIN golden_pinyin AS py ON py.name = ch.name
LEFT JOIN consent AS cn USING (customer_key)
"""

# A customer kept from the current build back in golden_base's shape (its lifecycle without orders is its
# lifecycle then: with no orders it does not depend on the day).
_KEPT_BASE_SQL = """
INSERT INTO golden_base BY NAME
SELECT * EXCLUDE (lifecycle_stage, rfm_segment, value_tier),
       CASE WHEN orders = 0 THEN lifecycle_stage END AS lead_stage
FROM read_parquet({previous})
WHERE customer_key NOT IN (SELECT customer_key FROM golden_touched)
"""

# every customer: RFM and value tier rank them against each other (customers with revenue orders only). Each
# rank is arithmetic on the customer's row number in one order over all of them (golden_numbered: RFM_ORDERS,
# the last key unique, ascending, nulls last): ntile(5) as DuckDB deals it (the first n % 5 fifths one row
# larger; fewer than 5 rows, a fifth each), percent_rank by lifetime revenue descending from the rows with at
# most the customer's revenue. A window over every row is one partition on Spark: there the numbers come from a
# sorted, range-partitioned frame (derived/spark/steps.py) instead of the golden_numbered CTE.
RFM_ORDERS: dict[str, tuple[str, ...]] = {
    "r_n": ("last_order_at", "customer_key"),
    "f_n": ("orders", "customer_key"),
    "m_n": ("lifetime_revenue", "customer_key"),
}
RFM_SOURCE = "SELECT customer_key, last_order_at, orders, lifetime_revenue FROM golden_base WHERE orders > 0"


def _ntile(number: str, buckets: int = 5) -> str:
    """DuckDB's ntile(``buckets``) of the row numbered ``number`` (1, 2, ...) of ``n`` rows."""
    b = f"least({buckets}, n)"
    size, large = f"(n // {b})", f"(n - {b} * (n // {b}))"  # rows per bucket; buckets one row larger
    return (
        f"CASE WHEN {number} - 1 < {large} * ({size} + 1) THEN 1 + ({number} - 1) // ({size} + 1) "
        f"ELSE 1 + {large} + ({number} - 1 - {large} * ({size} + 1)) // {size} END"
    )


_NUMBERED_CTE = (
    "golden_numbered AS (\n    SELECT customer_key, lifetime_revenue, "
    + ", ".join(f"row_number() OVER (ORDER BY {', '.join(keys)}) AS {c}" for c, keys in RFM_ORDERS.items())
    + f"\n    FROM ({RFM_SOURCE})\n)"
)
# customer_golden's row of each golden_base customer, its RFM segment and value tier {rfm_segment} and {value_tier}
# (expressions over the statement's ranks); a customer's lifecycle with orders is the only column that depends on
# the day ({active_days}, $now: a row's own, not ranked against other customers).
_GOLDEN_ROW_SQL = (
    """
SELECT b.customer_key, """
    + ", ".join(f"b.{a}" for a in ATTRIBUTES)
    + """,
       b.records, b.sources, b.confidence, b.conflicts,
       CASE
           WHEN b.orders > 0 AND b.last_order_at >= $now - INTERVAL {active_days} DAY THEN 'active'
           WHEN b.orders > 0 THEN 'lapsed'
           ELSE b.lead_stage
       END AS lifecycle_stage,
       {rfm_segment} AS rfm_segment,
       {value_tier} AS value_tier,
       b.lifetime_revenue, b.orders, b.first_order_at, b.last_order_at, b.last_contact_at, b.open_receivables,
       b.channels, b.name_pinyin, b.marketing_consent
FROM golden_base AS b"""
)
_RANK_SQL = (
    f"""
WITH {_NUMBERED_CTE},
rfm AS (
    SELECT customer_key, {_ntile("r_n")} AS r, {_ntile("f_n")} AS f,
           CASE WHEN n > 1 THEN (n - max(m_n) OVER (PARTITION BY lifetime_revenue)) / (n - 1) ELSE 0 END
               AS revenue_rank
    FROM golden_numbered CROSS JOIN (SELECT count(*) AS n FROM golden_numbered) AS total
)"""
    + _GOLDEN_ROW_SQL.replace(
        "{rfm_segment}",
        """CASE
           WHEN rfm.customer_key IS NULL THEN NULL
           WHEN rfm.r >= 4 AND rfm.f >= 4 THEN 'champion'
           WHEN rfm.r >= 3 AND rfm.f >= 3 THEN 'loyal'
           WHEN rfm.r <= 2 AND rfm.f >= 3 THEN 'at_risk'
           WHEN rfm.r >= 4 THEN 'new'
           WHEN rfm.r <= 2 THEN 'hibernating'
           ELSE 'needs_attention'
       END""",
    ).replace(
        "{value_tier}",
        """CASE
           WHEN rfm.revenue_rank <= 0.05 THEN 'high'
           WHEN rfm.revenue_rank <= 0.3 THEN 'medium'
           WHEN rfm.customer_key IS NOT NULL THEN 'low'
       END""",
    )
    + """
LEFT JOIN rfm USING (customer_key)
ORDER BY b.customer_key
"""
)
# An incremental build whose touched customers leave the ranks' input as it was (_SAME_RANKS_SQL): the touched
# customers' rows with their RFM segment and value tier as the current build ({previous}) has them (a customer
# without orders has none), sorted by key to be merged with the kept customers' rows (_merged_golden).
_TOUCHED_GOLDEN_SQL = (
    _GOLDEN_ROW_SQL.replace("{rfm_segment}", "p.rfm_segment").replace("{value_tier}", "p.value_tier")
    + """
LEFT JOIN (
    SELECT customer_key, rfm_segment, value_tier FROM read_parquet({previous})
    WHERE customer_key IN (SELECT customer_key FROM golden_touched)
) AS p USING (customer_key)
ORDER BY b.customer_key"""
)
# The ranks (RFM segment, value tier) read only RFM_SOURCE's rows: every customer with orders, its key,
# last_order_at, orders and lifetime revenue. The kept customers' are the current build's; when the touched
# customers' (golden_base holds only theirs) are those the current build ({previous}) has for those keys, every
# customer ranks as it did. True: the ranks are copied, not made again.
_SAME_RANKS_SQL = f"""
WITH was AS (
    SELECT customer_key, last_order_at, orders, lifetime_revenue FROM read_parquet({{previous}})
    WHERE orders > 0 AND customer_key IN (SELECT customer_key FROM golden_touched)
),
now AS ({RFM_SOURCE})
SELECT NOT EXISTS (FROM was EXCEPT FROM now) AND NOT EXISTS (FROM now EXCEPT FROM was)
"""
# _BASE_QUERY (Spark's) as DuckDB runs it (_BASE_SQL). The chosen values: each attribute's chosen rows (one per
# customer and attribute) joined to the customers on their keys, and the conflicting attributes from the few chosen
# rows in conflict, in the statement's own FROM: a chosen CTE over members made DuckDB keep members as a CTE and join
# it to itself (2.1M rows with their lists, both sides). A customer's sources: a bit mask over golden_sources
# (as the values' sources), each distinct mask's list made once, not a list per customer sorted. At large (9.1M
# values, 2.1M customers, DuckDB at 1 GiB) the pivot took 9.3 CPU-s alone, the joins 2.3.
_CHOSEN_PIVOT = """chosen AS (
    SELECT customer_key, {pivot},
           list_sort(list(DISTINCT attribute) FILTER (WHERE conflict)) AS conflicts
    FROM golden_values GROUP BY customer_key
),"""
_MEMBERS_LISTS = _BASE_QUERY[_BASE_QUERY.index("WITH members AS (") : _BASE_QUERY.index("chosen AS (")]
_MEMBERS_MASKS = """WITH member_masks AS (
    SELECT l.customer_key, count(*) AS records, {mask} AS mask, min(l.confidence) AS confidence
    FROM golden_links AS l JOIN golden_sources AS s USING (source_system)
    GROUP BY l.customer_key
),
members AS (
    SELECT m.customer_key, m.records, ms.sources, m.confidence
    FROM member_masks AS m
    JOIN (
        SELECT m.mask, list(s.source_system ORDER BY s.source_system) AS sources
        FROM (SELECT DISTINCT mask FROM member_masks) AS m JOIN golden_sources AS s ON {has_source}
        GROUP BY m.mask
    ) AS ms USING (mask)
),
"""
_CHOSEN_FROM = "LEFT JOIN chosen AS ch USING (customer_key)\n"
_CHOSEN_JOINS = (
    "".join(
        f"LEFT JOIN (SELECT customer_key, value FROM golden_values WHERE attribute = '{a}' AND chosen) AS c{i}\n"
        "    USING (customer_key)\n"
        for i, a in enumerate(ATTRIBUTES)
    )
    + """LEFT JOIN (
    SELECT customer_key, list_sort(list(attribute)) AS conflicts FROM golden_values WHERE chosen AND conflict
    GROUP BY customer_key
) AS cf USING (customer_key)
"""
)
_BASE_EDITS = (
    (_MEMBERS_LISTS, _MEMBERS_MASKS),
    (_CHOSEN_PIVOT + "\n", ""),
    (_CHOSEN_FROM, _CHOSEN_JOINS),
    ("coalesce(ch.conflicts, [])", "coalesce(cf.conflicts, [])"),
    ("py.name = ch.name", f"py.name = c{ATTRIBUTES.index('name')}.value"),
)
_BASE_SQL = "CREATE OR REPLACE TEMP TABLE golden_base AS " + _BASE_QUERY
for _was, _now in _BASE_EDITS:  # checked at import: each edit replaces exactly one piece of _BASE_QUERY
    if _BASE_SQL.count(_was) != 1:
        raise AssertionError(f"_BASE_QUERY does not hold {_was[:40]!r} once")
    _BASE_SQL = _BASE_SQL.replace(_was, _now)
BASE_COLUMNS = ", ".join(f"c{i}.value AS {a}" for i, a in enumerate(ATTRIBUTES))  # _BASE_SQL's {golden_columns}
# _BASE_SQL with a customer's three lists as bit masks (a full build, while sources and channels are at most 128
# each): sources over golden_sources (src), conflicts over the attributes in name order (CONFLICT_BITS), channels over
# golden_channels (bit, in name order). customer_golden's rows sort with the masks' numbers and are named after the
# sort (_NAMED_GOLDEN_SQL). At large the lists cost golden_base its channels' list_sort(list_distinct(...)) over 2.1M
# customers and the writing of three lists a row, and customer_golden's sort their width (both
# statements 14.6-15.1 -> 13.0-13.2 CPU-s).
CONFLICT_BITS = {a: i for i, a in enumerate(sorted(ATTRIBUTES))}
_CHANNEL_MASK = "bit_or(CAST(1 AS UHUGEINT) << CAST(ch.bit AS UHUGEINT))"
_BASE_MASKS_EDITS = (
    (
        _MEMBERS_MASKS,
        """WITH members AS (
    SELECT l.customer_key, count(*) AS records, {mask} AS sources, min(l.confidence) AS confidence
    FROM golden_links AS l JOIN golden_sources AS s USING (source_system)
    GROUP BY l.customer_key
),
""",
    ),
    (
        "list_sort(list(attribute)) AS conflicts",
        "bit_or(CASE attribute "
        + " ".join(f"WHEN '{a}' THEN {1 << i}" for a, i in CONFLICT_BITS.items())
        + " END) AS conflicts",
    ),
    ("coalesce(cf.conflicts, [])", "coalesce(cf.conflicts, 0)"),
    ("list(DISTINCT f.channel) AS lead_channels", f"{_CHANNEL_MASK} AS lead_channels"),
    ("    FROM lead_facts AS f\n", "    FROM lead_facts AS f LEFT JOIN golden_channels AS ch USING (channel)\n"),
    ("list(channel) FILTER (WHERE channel IS NOT NULL) AS touch_channels", f"{_CHANNEL_MASK} AS touch_channels"),
    (
        "    ) GROUP BY customer_key\n),\nconsent",
        "    ) AS i LEFT JOIN golden_channels AS ch USING (channel) GROUP BY customer_key\n),\nconsent",
    ),
    (
        "list_sort(list_distinct(coalesce(lf.lead_channels, []) || coalesce(t.touch_channels, []))) AS channels",
        "coalesce(lf.lead_channels, CAST(0 AS UHUGEINT)) | coalesce(t.touch_channels, CAST(0 AS UHUGEINT)) AS channels",
    ),
)
_BASE_MASKS_SQL = _BASE_SQL
for _was, _now in _BASE_MASKS_EDITS:  # checked at import, as _BASE_EDITS
    if _BASE_MASKS_SQL.count(_was) != 1:
        raise AssertionError(f"_BASE_SQL does not hold {_was[:40]!r} once")
    _BASE_MASKS_SQL = _BASE_MASKS_SQL.replace(_was, _now)
# every channel of the lead facts and interactions, numbered in name order from 0 (bit)
_CHANNELS_SQL = """
CREATE OR REPLACE TEMP TABLE golden_channels AS
SELECT channel, CAST(row_number() OVER (ORDER BY channel) - 1 AS INTEGER) AS bit
FROM (SELECT channel FROM lead_facts UNION SELECT channel FROM interactions)
WHERE channel IS NOT NULL
"""
# golden_base's distinct source and channel masks ({column}), numbered from 1 ({table}: mask, n)
_BASE_MASKS_NUMBERED_SQL = """
CREATE OR REPLACE TEMP TABLE {table} AS
SELECT CAST(row_number() OVER (ORDER BY mask) AS INTEGER) AS n, mask
FROM (SELECT DISTINCT {column} AS mask FROM golden_base)
"""
# customer_golden's rows ({rows}: _RANK_SQL's over _BASE_MASKS_SQL's golden_base, unordered) with the customer's key,
# sorted by its number with the masks' numbers, then named ($sources, $channels: lists by number; $conflicts: by
# mask + 1)
_NAMED_LISTS = {
    "sources": "CAST($sources[sn] AS VARCHAR[])",
    "conflicts": "CAST($conflicts[conflicts + 1] AS VARCHAR[])",
    "channels": "CAST($channels[cn] AS VARCHAR[])",
}
_NAMED_GOLDEN_SQL = (
    "\nSELECT "
    + ", ".join(f"{_NAMED_LISTS[c]} AS {c}" if c in _NAMED_LISTS else c for c in TABLES["customer_golden"])
    + """
FROM (
    SELECT k.customer_key, n.* EXCLUDE (customer_key, sources, channels), sm.n AS sn, cm.n AS cn
    FROM ({rows}) AS n
    JOIN golden_keys AS k ON k.cid = n.customer_key
    JOIN golden_source_masks AS sm ON sm.mask = n.sources
    JOIN golden_channel_masks AS cm ON cm.mask = n.channels
    ORDER BY n.customer_key
)"""
)
# customer_attributes' rows made from golden_values (each value with its customer's chosen owner), and
# customer_lookup's from that table ({attributes}: where it is read), by value: a lookup reads one or two row
# groups. One definition for both engines (derived.spark.steps runs them too).
ATTRIBUTES_ROWS_SQL = """
SELECT v.customer_key, o.value AS owner, v.attribute, v.value, v.chosen, v.conflict, v.source_system,
       v.snapshot_id, v.source_record_id, v.seen_at, v.sources, v.records
FROM golden_values AS v
LEFT JOIN golden_values AS o ON o.customer_key = v.customer_key AND o.attribute = 'owner' AND o.chosen"""
# ATTRIBUTES_ROWS_SQL as DuckDB makes them from its golden_values (_VALUES_SQL): the (source, snapshot) and the
# sources as numbers ({rows}: these rows, ordered), named in the projection after the order ($snapshot_sources,
# $snapshot_ids, $sources: lists by number). At large the sort of 9.1M rows with the names took 12.7 CPU-s, with
# the numbers 8.6 (the same rows).
_NUMBERED_ROWS_SQL = """
SELECT v.customer_key, o.value AS owner, v.attribute, v.value, v.chosen, v.conflict, v.ssn, v.source_record_id,
       v.seen_at, m.mn, v.records
FROM golden_values AS v
JOIN golden_masks AS m USING (mask)
LEFT JOIN golden_values AS o ON o.customer_key = v.customer_key AND o.attribute = 'owner' AND o.chosen"""
_NAMED_ROWS_SQL = """
SELECT customer_key, owner, attribute, value, chosen, conflict,
       CAST($snapshot_sources[ssn] AS VARCHAR) AS source_system, CAST($snapshot_ids[ssn] AS VARCHAR) AS snapshot_id,
       source_record_id, seen_at, CAST($sources[mn] AS VARCHAR[]) AS sources, records
FROM ({rows})"""
LOOKUP_SQL = """
SELECT attribute, value, customer_key, owner FROM {attributes}
WHERE list_contains($attributes, attribute)
ORDER BY attribute, value"""


def start_of_today(settings: Settings) -> dt.datetime:
    """The lifecycle's "now": today's start (naive local, as the dates are), so that every build of one
    day agrees and a build reused later that day (pipeline/fingerprint.py) is the one it would make; the day
    COCKPIT_AS_OF names when it is set (core/config.py today)."""
    return dt.datetime.combine(today(settings.timezone), dt.time())


@dataclass(frozen=True)
class Previous:
    """The current build's golden files and the customers whose inputs changed since it was made: only those
    customers' rows are made again, the others' are copied (their snapshot ids renamed to the current ones)."""

    golden: Path
    attributes: Path
    touched: pl.DataFrame  # customer_key: the customers made again
    lookup: Path | None = None  # its customer_lookup, whose other customers' rows are copied (None: made again)
    parts: Parts | None = None  # its customer_attributes' part (``attributes`` then its base), None: one file


# customer_attributes of an incremental build: its base (a full or compacting build's file, linked on from build to
# build) and one part, rewritten by each incremental build, with the rows of every customer made again since the
# base (its keys file lists them, also those that now have no row): writing the whole table cost 6.5 CPU-s at large
# for the ~1 % of customers an ERP change touches. Readers take ATTRIBUTES the relation (Parts.sql), never a file.
PART_FILE = "customer_attributes.part.parquet"
KEYS_FILE = "customer_attributes.keys.parquet"
PARTS_FILE = "customer_attributes.parts.json"  # the base rows' snapshot ids' renames, for the manifest
PARTS_SHARE = 0.1  # past this share of the customers in the part, the build writes one file again (compaction)


@dataclass(frozen=True)
class Parts:
    """customer_attributes as its ``base`` file, less the rows of the customers in ``keys``, with their snapshot
    ids renamed per source (``snapshots``: source → this build's snapshot id), and the ``rows`` of those customers."""

    base: Path
    rows: Path
    keys: Path
    snapshots: dict[str, str]

    @property
    def files(self) -> tuple[Path, ...]:
        return self.base, self.rows, self.keys

    def sql(self) -> str:
        """The table's rows, as one statement (our own paths, source names and snapshot ids, quoted)."""
        pairs = sorted(self.snapshots.items())
        renames = " ".join(f"WHEN {quote_literal(s)} THEN {quote_literal(i)}" for s, i in pairs)
        snapshot = f"coalesce(CASE source_system {renames} END, snapshot_id)" if renames else "snapshot_id"
        return (
            f"SELECT b.* REPLACE ({snapshot} AS snapshot_id) FROM read_parquet({quote_path(self.base)}) AS b "
            f"ANTI JOIN read_parquet({quote_path(self.keys)}) AS k ON b.customer_key = k.customer_key "
            f"UNION ALL BY NAME SELECT * FROM read_parquet({quote_path(self.rows)})"
        )

    @staticmethod
    def mark(folder: Path, snapshots: dict[str, str]) -> None:
        """Say that ``folder``'s customer_attributes is its base and part (their files written or linked there)."""
        (folder / PARTS_FILE).write_text(json.dumps({"snapshots": snapshots}, sort_keys=True), encoding="utf-8")

    @classmethod
    def of(cls, folder: Path) -> Parts | None:
        """The parts a build wrote into ``folder`` (None: customer_attributes is one file there)."""
        if not (folder / PARTS_FILE).is_file():
            return None
        snapshots = json.loads((folder / PARTS_FILE).read_text(encoding="utf-8"))["snapshots"]
        return cls(folder / "customer_attributes.parquet", folder / PART_FILE, folder / KEYS_FILE, snapshots)


def _renamed(frame: pl.LazyFrame, renamed: dict[str, str]) -> pl.LazyFrame:
    """``frame``'s rows with each source's snapshot id renamed to ``renamed``'s (sources not in it keep theirs)."""
    return frame.with_columns(
        pl.coalesce(
            pl.col("source_system").replace_strict(renamed, default=None, return_dtype=pl.String),
            pl.col("snapshot_id"),
        ).alias("snapshot_id")
    )


# the changed rows' references to a record (touched_customers): entity, column, record kind
_REFERENCES = (
    ("customers", "source_record_id", "customer"),
    ("leads", "lead_id", "lead"),
    ("orders", "customer_ref", "customer"),
    ("contracts", "customer_ref", "customer"),
    ("interactions", "customer_ref", "customer"),
)


def changed_references(changes: Mapping[str, pl.DataFrame]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The records the changed rows (pipeline/fingerprint.py's ROW_KEYS per entity) name: (record_kind,
    source_system, source_record_id), and the lead ids whose stage events changed (lead_id)."""
    refs = [
        rows.select(
            pl.lit(kind).alias("record_kind"),
            pl.col("source_system").cast(pl.String),
            pl.col(ref).cast(pl.String).alias("source_record_id"),
        )
        for entity, ref, kind in _REFERENCES
        if (rows := changes.get(entity)) is not None and ref in rows.columns
    ]
    schema = {"record_kind": pl.String, "source_system": pl.String, "source_record_id": pl.String}
    named = pl.concat(refs).drop_nulls().unique() if refs else pl.DataFrame(schema=schema)
    events = changes.get("lead_events")
    leads = pl.DataFrame(schema={"lead_id": pl.String})
    if events is not None:
        leads = events.select(pl.col("lead_id").cast(pl.String)).drop_nulls().unique()
    return named, leads


def touched_customers(
    old_links: pl.DataFrame | None,
    links: pl.DataFrame,
    changes: dict[str, pl.DataFrame],
    moved: pl.Series | None = None,
) -> pl.DataFrame:
    """The customers (customer_key, of either build) whose golden rows may differ from the current build's: a
    record that joined, left or changed confidence, and the customer of every changed row of ``changes``
    (pipeline/fingerprint.py's ROW_KEYS per entity): its customer record, lead record (lead_events: every
    lead of that id, as lead_facts joins them), or the customer its customer_ref names in its source.
    ``old_links`` None: the current build's links are ``links`` (identity kept: no record moved, and the two
    3.5M-row tables are not joined, ~3.8 CPU-s at large), or identity told the keys of the records that moved
    (``moved``: derived.identity.Graph.moved, found from its own join of the records to their previous keys)."""
    on = ["source_system", "source_record_id", "record_kind"]
    cols = [*on, "customer_key", "confidence"]
    moved_records = pl.DataFrame(schema={"customer_key": pl.String, "customer_key_new": pl.String})
    if old_links is not None:
        moved_records = old_links.select(cols).join(links.select(cols), on=on, how="full", coalesce=True, suffix="_new")
        moved_records = moved_records.filter(
            pl.col("customer_key").ne_missing(pl.col("customer_key_new"))
            | pl.col("confidence").ne_missing(pl.col("confidence_new"))
        )
    refs, event_leads = changed_references(changes)
    parts = [
        moved_records["customer_key"],
        moved_records["customer_key_new"].alias("customer_key"),
        *([] if moved is None else [moved]),
        refs.join(links.select(*on, "customer_key"), on=on)["customer_key"],
        links.filter((pl.col("record_kind") == "lead") & pl.col("source_record_id").is_in(event_leads["lead_id"]))[
            "customer_key"
        ],
    ]
    keys = pl.concat([p.cast(pl.String).alias("customer_key") for p in parts])
    return keys.drop_nulls().unique().to_frame()


def _numbered(links: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``links`` with each customer_key replaced by its rank among the keys (golden_keys: cid → customer_key).
    The statements then group, join and sort 4-byte integers where the 13-character keys are past DuckDB's
    12-byte inlined strings; ranked in the keys' order, so ordering by the number orders by the key. Links in key
    order (identity writes them so) are ranked by their runs of one key, not joined to the sorted keys (at large
    3.46M links: 1.55 -> 0.05 CPU-s)."""
    key = links["customer_key"]
    if not key.null_count() and key.is_sorted():
        cid = key.rle_id().alias("cid")
        keys = pl.DataFrame([cid, key]).filter(cid.diff().fill_null(1) != 0)
        return links.with_columns(cid.alias("customer_key")), keys
    keys = links.select(pl.col("customer_key").unique().sort()).with_row_index("cid")
    numbered = (
        links.join(keys, on="customer_key", maintain_order="left").drop("customer_key").rename({"cid": "customer_key"})
    )
    return numbered, keys


def _keyed(sql: str) -> str:
    """``sql``'s rows (customer_key: a golden_keys cid) with the customer's key, in the same columns, in key
    order (sorted by the number: the same order, an integer to compare instead of a string)."""
    return f"""SELECT k.customer_key, n.* EXCLUDE (customer_key)
    FROM ({sql}) AS n JOIN golden_keys AS k ON k.cid = n.customer_key
    ORDER BY n.customer_key"""


def _merged(
    previous: Previous, made: pl.DataFrame, touched: pl.DataFrame, snapshots: pl.DataFrame, folder: Path
) -> None:
    """customer_attributes of an incremental build: the touched customers' rows (``made``, sorted by customer_key)
    and the current build's rows of the others (their records' snapshot ids renamed to the current ones). While
    the customers made again since the base are at most PARTS_SHARE of them: the base linked on, a new part (the
    current part's other customers and ``made``) and its keys; else one file, merged in customer_key order and
    streamed: the kept rows are neither held in memory nor sorted again."""
    renamed = dict(zip(snapshots["source_system"], snapshots["snapshot_id"], strict=True))
    parts = previous.parts
    keys = touched["customer_key"]
    if parts is not None:
        keys = pl.concat([pl.read_parquet(parts.keys)["customer_key"], keys]).unique()
    compact = keys.len() > PARTS_SHARE * pq.read_metadata(previous.golden).num_rows
    base = pl.scan_parquet(previous.attributes)
    schema = base.collect_schema()
    rows = made.lazy().select(schema.names()).cast(schema)
    if parts is not None:  # the current part's customers not made again
        kept = pl.scan_parquet(parts.rows).filter(~pl.col("customer_key").is_in(touched["customer_key"].implode()))
        rows = _renamed(kept, renamed).merge_sorted(rows, key="customer_key")
    target = folder / "customer_attributes.parquet"
    if compact:
        base = _renamed(base.filter(~pl.col("customer_key").is_in(keys.implode())), renamed)
        base.merge_sorted(rows, key="customer_key").sink_parquet(target, compression="zstd", row_group_size=100_000)
        return
    link_file(previous.attributes, target)
    rows.sink_parquet(folder / PART_FILE, compression="zstd", row_group_size=100_000)
    keys.sort().to_frame().write_parquet(folder / KEYS_FILE)
    crash_point("golden_part")  # the part written, not yet named: the build's folder is not named either
    Parts.mark(folder, renamed)


def _merged_golden(previous: Path, made: pl.DataFrame, touched: pl.DataFrame, now: dt.datetime, target: Path) -> None:
    """customer_golden.parquet of an incremental build whose ranks did not move (_SAME_RANKS_SQL): the current
    build's rows of the customers not touched (in its file's customer_key order), their lifecycle with orders
    made for ``now`` (active or lapsed: the row's own last order against the day, as _GOLDEN_ROW_SQL decides it;
    the current build may be of another day), merged with ``made``, the touched customers' rows (sorted by
    customer_key too), streamed to ``target``: the kept rows are neither ranked nor sorted again."""
    ordered = pl.col("orders") > 0
    active = pl.col("last_order_at") >= now - dt.timedelta(days=ACTIVE_DAYS)
    kept = (
        pl.scan_parquet(previous)
        .filter(~pl.col("customer_key").is_in(touched["customer_key"].implode()))
        .with_columns(
            pl.when(ordered & active)
            .then(pl.lit("active"))
            .when(ordered)
            .then(pl.lit("lapsed"))
            .otherwise(pl.col("lifecycle_stage"))
            .alias("lifecycle_stage")
        )
    )
    schema = kept.collect_schema()
    new = made.lazy().select(schema.names()).cast(schema)
    kept.merge_sorted(new, key="customer_key").sink_parquet(target, compression="zstd", row_group_size=100_000)


def _merged_lookup(previous: Path, made: pl.DataFrame, touched: pl.DataFrame, target: Path) -> None:
    """customer_lookup.parquet of an incremental build: the current build's rows of the customers not touched
    merged with the touched customers' (``made``: customer_attributes' rows of theirs), attribute by attribute in
    value order, as LOOKUP_SQL orders them, streamed to ``target``: the kept rows are neither read from
    customer_attributes nor sorted again (at large 2.7M rows: 5.6 -> 1.6 CPU-s), nor held in memory."""
    kept = pl.scan_parquet(previous).filter(~pl.col("customer_key").is_in(touched["customer_key"].implode()))
    schema = kept.collect_schema()
    new = made.lazy().select(schema.names()).cast(schema)
    parts = [
        kept.filter(pl.col("attribute") == a).merge_sorted(
            new.filter(pl.col("attribute") == a).sort("value"), key="value"
        )
        for a in sorted(LOOKUP_ATTRIBUTES)
    ]
    pl.concat(parts).sink_parquet(target, compression="zstd", row_group_size=LOOKUP_ROW_GROUP)


LOOKUP_ROW_GROUP = 50_000  # customer_lookup.parquet's rows per row group (a search reads one or two)
LOOKUP_COPY = f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {LOOKUP_ROW_GROUP}"


# The records of the customers made again (golden_links: theirs), read from the entities: identity's
# RECORDS_SQL with each of its three scans joined to the touched links before the latest row per record is
# taken (the join is on those keys) and before the references are grouped, so the other customers' records are
# neither sorted nor grouped (at large, 43k of 3.5M records: 6.9 -> 1.5 CPU-s with the semi join after the
# union). And each source's snapshot ids (every record's, as identity reads them), which the copied rows are
# renamed to.
_TOUCHED_RECORDS_SQL = records_sql("SEMI JOIN golden_links AS l USING (source_system, source_record_id, record_kind)")
_SNAPSHOTS_SQL = " UNION ".join(
    f"SELECT DISTINCT source_system, snapshot_id FROM {e}"
    for e in ("customers", "leads", "orders", "interactions", "contracts")
)


def _pinyin_of(names: pl.DataFrame, previous: Previous | None) -> pl.DataFrame:
    """name → name_pinyin (no spaces) of the chosen names. An incremental build takes the names the current
    build's golden records hold from them: loading pypinyin's dictionaries cost more CPU than making the few
    touched customers' golden rows (~0.13 s, a tenth of golden's at medium)."""
    known = pl.DataFrame(schema={"name": pl.String, "name_pinyin": pl.String})
    if previous is not None:
        known = (
            pl.scan_parquet(previous.golden)
            .select("name", "name_pinyin")
            .filter(pl.col("name").is_in(names["name"].implode()) & pl.col("name_pinyin").is_not_null())
            .unique("name")
            .collect()
        )
    new = names.select("name").join(known, on="name", how="anti")
    made = pinyin(new["name"]).str.replace_all(" ", "") if new.height else pl.Series([], dtype=pl.String)
    return pl.concat([known, new.with_columns(made.alias("name_pinyin"))])


def _names(con: duckdb.DuckDBPyConnection) -> dict[str, list[object]]:
    """_NAMED_ROWS_SQL's parameters: golden_snapshots' sources and snapshot ids and golden_masks' lists, by number."""
    snapshots = con.execute("SELECT source_system, snapshot_id FROM golden_snapshots ORDER BY ssn").fetchall()
    masks = con.execute("SELECT sources FROM golden_masks ORDER BY mn").fetchall()
    return {
        "snapshot_sources": [s for s, _ in snapshots],
        "snapshot_ids": [i for _, i in snapshots],
        "sources": [m for (m,) in masks],
    }


def _golden_lists(con: duckdb.DuckDBPyConnection, sources: list[str]) -> dict[str, list[list[str]]]:
    """_NAMED_GOLDEN_SQL's lists: golden_source_masks' and golden_channel_masks' masks as names (``sources`` by src,
    golden_channels by bit), by number; every conflicts mask's attributes (CONFLICT_BITS), by mask + 1."""
    channels = [c for (c,) in con.execute("SELECT channel FROM golden_channels ORDER BY bit").fetchall()]

    def named(table: str, names: list[str]) -> list[list[str]]:
        masks = con.execute(f"SELECT mask FROM {table} ORDER BY n").fetchall()  # our own table's name
        return [[x for i, x in enumerate(names) if int(m) >> i & 1] for (m,) in masks]

    conflicts = [[a for a, i in CONFLICT_BITS.items() if m >> i & 1] for m in range(1 << len(CONFLICT_BITS))]
    return {
        "sources": named("golden_source_masks", sources),
        "channels": named("golden_channel_masks", channels),
        "conflicts": conflicts,
    }


def write_golden(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    records: pl.DataFrame | pa.Table | None,
    links: pl.DataFrame,
    folder: Path,
    previous: Previous | None = None,
    record_links: np.ndarray | None = None,
) -> int:
    """Writes customer_golden.parquet, customer_attributes.parquet and customer_lookup.parquet into a derived
    build's folder. ``con`` has the entity views and lead_facts; records are identity.RECORDS_SQL's. With
    ``previous``, only its touched customers are made again (from their records only; ``records`` may hold
    just those); the same tables as a full build. ``records`` None: read here, only the touched customers'
    with ``previous``. ``records`` may be an Arrow table (the full build's: registered as it is, DuckDB reads it
    without a copy). ``record_links``: each record's row in ``links`` (identity's Graph.record_links, a full build's;
    None: the records are joined to their links by source, id and kind). Returns how many records the golden
    records were made from."""
    if records is None and previous is None:
        records = read_records(con)
    if isinstance(records, pa.Table) and previous is not None:  # an incremental build joins them in Polars
        records = pl.DataFrame(records)
    if records is None:
        assert previous is not None
        touched = previous.touched.select(pl.col("customer_key").cast(pl.String)).unique()
        con.register("golden_links", links.join(touched, on="customer_key", how="semi"))
        try:
            records = con.sql(_TOUCHED_RECORDS_SQL).pl()
            snapshots = con.sql(_SNAPSHOTS_SQL).pl()
        finally:
            con.unregister("golden_links")
    else:
        snapshots = pl.DataFrame(records.select(["source_system", "snapshot_id"])).unique()

    columns = records.column_names if isinstance(records, pa.Table) else records.columns
    attrs = [a for a in ATTRIBUTES if a in columns]
    names = sorted(  # every source a record or link names (golden_base's sources are a mask over these)
        {src.name for src in settings.sources}
        | set(snapshots["source_system"].to_list())
        | set(links["source_system"].unique().to_list())
    )
    if previous is not None and snapshots["source_system"].is_duplicated().any():
        previous = None  # a source's records of two snapshots: copied rows could not be renamed to one
        records = read_records(con)  # all of them
    if previous is not None:
        assert isinstance(records, pl.DataFrame)  # made one above
        touched = previous.touched.select(pl.col("customer_key").cast(pl.String)).unique()
        links = links.join(touched, on="customer_key", how="semi")
        records = records.join(
            links.select("source_system", "source_record_id", "record_kind"),
            on=["source_system", "source_record_id", "record_kind"],
            how="semi",
        )
        con.register("golden_touched", touched)
    numbered = previous is None  # an incremental build's few customers keep their keys (and the kept rows')
    ranked = _RANKED_SQL
    if numbered:
        links, keys = _numbered(links)
        con.register("golden_keys", keys)
        if record_links is not None and records is not None and len(record_links) == len(records):
            cid = links["customer_key"].to_numpy()[record_links]  # each record's customer, by its link
            if isinstance(records, pa.Table):
                records = records.append_column("golden_cid", pa.array(cid))
            else:
                records = records.with_columns(pl.Series("golden_cid", cid))
            ranked = _RANKED_KEYED_SQL
    con.register("golden_records", records)
    con.register("golden_links", links)
    priority = {src.name: src.priority for src in settings.sources}
    con.register(
        "golden_sources",
        pl.DataFrame(
            {"source_system": names, "src": range(len(names)), "priority": [priority.get(n, 100) for n in names]},
            schema={"source_system": pl.String, "src": pl.Int32, "priority": pl.Int64},
        ),
    )
    order = ", ".join(_ORDER[rule] for rule in settings.identity.survivorship)
    # Everything stays in DuckDB, under the connection's memory limit (it spills past it): the records in
    # survivorship order, then every value, then the two files; only the distinct names visit Python.
    try:
        con.execute(
            ranked.format(
                order=order,
                completeness=" + ".join(f"CAST(r.{a} IS NOT NULL AS INTEGER)" for a in attrs),
                columns=", ".join(f"CAST(r.{a} AS VARCHAR) AS {a}" for a in attrs),
            )
        )
        con.execute(_SNAPSHOTS_NUMBERED_SQL)
        mask, has_source = _MASK if len(names) <= 128 else _MASK_LIST
        for i, a in enumerate(attrs):
            norm = _NORM.get(a, "lower(trim({v}))").format(v=a)
            into = "INSERT INTO golden_values " if i else "CREATE OR REPLACE TEMP TABLE golden_values AS "
            sql = _VALUES_SQL.format(value=a, norm=norm, mask=mask, has_source=has_source)
            con.execute(into + sql, {"attribute": a})
        con.execute("DROP TABLE golden_ranked")
        con.execute(_MASKS_SQL.format(has_source=has_source))
        named = _names(con)
        # in customer_key order: one customer's rows together (customer_attributes.sql orders them)
        target = quote_path(folder / "customer_attributes.parquet")  # our staging path, quoted
        if previous is None:
            rows = _NAMED_ROWS_SQL.format(rows=_keyed(_NUMBERED_ROWS_SQL))
            con.execute(f"COPY ({rows}) TO {target} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)", named)
        else:  # the kept customers' rows copied
            rows = _NAMED_ROWS_SQL.format(rows=f"{_NUMBERED_ROWS_SQL}\nORDER BY v.customer_key")
            made = con.sql(rows, params=named).pl()
            _merged(previous, made, touched, snapshots, folder)
        if previous is not None and previous.lookup is not None:  # the kept customers' rows copied
            _merged_lookup(previous.lookup, made, touched, folder / "customer_lookup.parquet")
        else:
            lookup = quote_path(folder / "customer_lookup.parquet")  # our staging path, quoted
            parts = Parts.of(folder)  # the attributes as a base and part: read together
            attributes = f"({parts.sql()})" if parts is not None else f"read_parquet({target})"
            con.execute(
                f"""COPY ({LOOKUP_SQL.format(attributes=attributes)}
                ) TO {lookup} ({LOOKUP_COPY})""",
                {"attributes": list(LOOKUP_ATTRIBUTES)},
            )
        names_ = con.sql("SELECT DISTINCT value AS name FROM golden_values WHERE attribute = 'name' AND chosen").pl()
        con.register("golden_pinyin", _pinyin_of(names_, previous))
        masked = numbered and len(names) <= 128  # golden_base's lists as masks (_BASE_MASKS_SQL): a full build
        if masked:
            con.execute(_CHANNELS_SQL)
            masked = con.execute("SELECT count(*) <= 128 FROM golden_channels").fetchall() == [(True,)]
        con.execute(
            (_BASE_MASKS_SQL if masked else _BASE_SQL).format(
                golden_columns=BASE_COLUMNS, mask=mask, has_source=has_source
            ),
            {"not_revenue": NOT_REVENUE},
        )
        now = start_of_today(settings)
        was = quote_path(previous.golden) if previous is not None else ""  # the current build's, quoted
        if previous is not None and con.execute(_SAME_RANKS_SQL.format(previous=was)).fetchall() == [(True,)]:
            # every customer ranks as in the current build: the kept rows copied, their ranks not made again
            rows = con.sql(_TOUCHED_GOLDEN_SQL.format(active_days=ACTIVE_DAYS, previous=was), params={"now": now}).pl()
            _merged_golden(previous.golden, rows, touched, now, folder / "customer_golden.parquet")
        else:
            if previous is not None:
                con.execute(_KEPT_BASE_SQL.format(previous=was))
            sql = _RANK_SQL.format(active_days=ACTIVE_DAYS)
            params: dict[str, object] = {"now": now}
            # the cids in key order (the per-customer rows' own ORDER BY, for Spark's statement, sorted strings)
            if masked:  # the lists named after the sort
                for table, column in (("golden_source_masks", "sources"), ("golden_channel_masks", "channels")):
                    con.execute(_BASE_MASKS_NUMBERED_SQL.format(table=table, column=column))
                params |= _golden_lists(con, names)
                sql = _NAMED_GOLDEN_SQL.format(rows=sql.strip().removesuffix("ORDER BY b.customer_key"))
            elif numbered:
                sql = _keyed(sql.strip().removesuffix("ORDER BY b.customer_key"))
            target = quote_path(folder / "customer_golden.parquet")  # our staging path, quoted
            con.execute(f"COPY ({sql}) TO {target} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)", params)
    finally:
        for name in (
            "golden_records",
            "golden_links",
            "golden_sources",
            "golden_pinyin",
            "golden_touched",
            "golden_keys",
        ):
            con.unregister(name)
        for table in (
            "golden_ranked",
            "golden_values",
            "golden_snapshots",
            "golden_masks",
            "golden_channels",
            "golden_source_masks",
            "golden_channel_masks",
        ):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute("DROP TABLE IF EXISTS golden_base")
    return len(records)
