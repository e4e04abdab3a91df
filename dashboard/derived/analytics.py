"""Channel analytics built once per derived build, so pages read small tables instead of scanning
raw leads and events on every view:

- ``lead_facts``: one row per lead with its channel, campaign, region, owner, the time it first
  reached each funnel stage, the days it spent in each, and its won amount.
- ``attribution``: every won lead's revenue split over its touches under five models.

A lead's touches are its own channel at creation plus the interactions linked to it (same lead id)
or to its customer (same source, same customer_ref) before the won date.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from dashboard.core.duck import drop_relation, quote_path

# The tables this module writes, and their columns (also when no build exists yet).
TABLES: dict[str, dict[str, str]] = {
    "lead_facts": {
        "source_system": "VARCHAR",
        "lead_id": "VARCHAR",
        "created_at": "TIMESTAMP",
        "channel": "VARCHAR",
        "campaign": "VARCHAR",
        "region": "VARCHAR",
        "owner": "VARCHAR",
        "customer_ref": "VARCHAR",
        "name": "VARCHAR",
        "phone": "VARCHAR",
        "phone_valid": "BOOLEAN",
        "mql_at": "TIMESTAMP",
        "sql_at": "TIMESTAMP",
        "opportunity_at": "TIMESTAMP",
        "won_at": "TIMESTAMP",
        "won_amount": "DOUBLE",
        "lost_at": "TIMESTAMP",
        "days_in_lead": "FLOAT",
        "days_in_mql": "FLOAT",
        "days_in_sql": "FLOAT",
        "days_in_opportunity": "FLOAT",
    },
    "filter_values": {"kind": "VARCHAR", "value": "VARCHAR", "channel": "VARCHAR"},
    "attribution": {
        "source_system": "VARCHAR",
        "lead_id": "VARCHAR",
        "won_at": "TIMESTAMP",
        "channel": "VARCHAR",
        "first_touch": "DOUBLE",
        "last_touch": "DOUBLE",
        "linear": "DOUBLE",
        "u_shaped": "DOUBLE",
        "time_decay": "DOUBLE",
    },
}

FUNNEL: tuple[str, ...] = ("lead", "mql", "sql", "opportunity", "won")
MODELS: tuple[str, ...] = ("first_touch", "last_touch", "linear", "u_shaped", "time_decay")
ANALYTICS_TABLES: tuple[str, ...] = ("lead_facts", "attribution", "filter_values")

# A stage counts as reached when it, or any later stage, was recorded: CRMs skip steps.
LEAD_FACTS_SQL = """
WITH ev AS (
    SELECT lead_id,
        min(occurred_at) FILTER (WHERE stage = 'mql') AS mql_at,
        min(occurred_at) FILTER (WHERE stage = 'sql') AS sql_at,
        min(occurred_at) FILTER (WHERE stage = 'opportunity') AS opportunity_at,
        min(occurred_at) FILTER (WHERE stage = 'won') AS won_at,
        max(amount) FILTER (WHERE stage = 'won') AS won_amount,
        min(occurred_at) FILTER (WHERE stage = 'lost') AS lost_at
    FROM lead_events
    GROUP BY lead_id
),
reached AS (
    SELECT
        l.source_system, l.lead_id, l.created_at,
        l.channel, coalesce(l.campaign, '') AS campaign, l.region, l.owner, l.customer_ref,
        l.name, l.phone, l.phone_valid,
        coalesce(ev.mql_at, ev.sql_at, ev.opportunity_at, ev.won_at) AS mql_at,
        coalesce(ev.sql_at, ev.opportunity_at, ev.won_at) AS sql_at,
        coalesce(ev.opportunity_at, ev.won_at) AS opportunity_at,
        ev.won_at, ev.won_amount, ev.lost_at
    FROM leads AS l
    LEFT JOIN ev ON ev.lead_id = l.lead_id
)
-- days spent in each stage before the next, as 4-byte floats (~10 s precision at a year): the funnel's
-- medians sort these instead of computing intervals per row (measured at large: 172 ms -> 106 ms)
SELECT *,
    CAST(epoch(mql_at - created_at) / 86400 AS FLOAT) AS days_in_lead,
    CAST(epoch(sql_at - mql_at) / 86400 AS FLOAT) AS days_in_mql,
    CAST(epoch(opportunity_at - sql_at) / 86400 AS FLOAT) AS days_in_sql,
    CAST(epoch(won_at - opportunity_at) / 86400 AS FLOAT) AS days_in_opportunity
FROM reached
ORDER BY created_at
"""


# The filter bar's choices, read on every page view: a few hundred rows instead of four scans.
FILTER_VALUES_SQL = """
SELECT DISTINCT 'channel' AS kind, channel AS value, NULL AS channel FROM lead_facts
UNION ALL SELECT DISTINCT 'region', region, NULL FROM lead_facts
UNION ALL SELECT DISTINCT 'owner', owner, NULL FROM lead_facts
UNION ALL SELECT DISTINCT 'campaign', campaign, channel FROM lead_facts
"""


def attribution_sql(half_life_days: float) -> str:
    """Won revenue per (lead, touch channel) under each model; credits of a lead sum to its amount.

    Reads the table ``attribution_links`` (the build's identity links); interactions on channels
    listed in the table ``excluded_channels`` are not touches.
    """
    half_life = float(half_life_days)  # a number from the typed config, not user text
    return f"""
WITH won AS (
    SELECT source_system, lead_id, customer_ref, channel, created_at, won_at, coalesce(won_amount, 0) AS amount
    FROM lead_facts WHERE won_at IS NOT NULL
),
won_key AS (
    SELECT w.source_system, w.lead_id, k.customer_key
    FROM won AS w
    JOIN attribution_links AS k
      ON k.record_kind = 'lead' AND k.source_system = w.source_system AND k.source_record_id = w.lead_id
),
-- every record of the won lead's resolved customer, in any source: its customers (interactions name
-- them by customer_ref in their own source) and its leads (interactions name them by lead id)
journey AS (
    SELECT w.source_system, w.lead_id, k.record_kind, k.source_system AS r_source, k.source_record_id AS r_id
    FROM won_key AS w JOIN attribution_links AS k ON k.customer_key = w.customer_key
    UNION  -- the lead's own references, also when identity left it out
    SELECT source_system, lead_id, 'customer', source_system, customer_ref FROM won WHERE customer_ref IS NOT NULL
    UNION
    SELECT source_system, lead_id, 'lead', source_system, lead_id FROM won
),
linked AS (
    -- two equi-joins (an OR in one join condition is a nested loop over every interaction);
    -- UNION, not UNION ALL: an interaction reached both ways counts once
    SELECT j.source_system, j.lead_id, i.source_system AS i_source, i.interaction_id, i.channel, i.occurred_at
    FROM journey AS j
    JOIN interactions AS i ON i.source_system = j.r_source AND i.customer_ref = j.r_id
    WHERE j.record_kind = 'customer'
    UNION
    SELECT j.source_system, j.lead_id, i.source_system, i.interaction_id, i.channel, i.occurred_at
    FROM journey AS j
    JOIN interactions AS i ON i.lead_id = j.r_id  -- a lead id is named without its source
    WHERE j.record_kind = 'lead'
),
touches AS (
    SELECT source_system, lead_id, won_at, amount, channel, created_at AS touched_at, 0 AS tiebreak
    FROM won
    UNION ALL
    SELECT w.source_system, w.lead_id, w.won_at, w.amount, k.channel, k.occurred_at, 1
    FROM linked AS k
    JOIN won AS w ON w.source_system = k.source_system AND w.lead_id = k.lead_id
    WHERE k.occurred_at < w.won_at
      AND k.channel NOT IN (SELECT channel FROM excluded_channels)
),
ordered AS (
    SELECT *,
        row_number() OVER (PARTITION BY source_system, lead_id ORDER BY touched_at, tiebreak, channel) AS i,
        count(*) OVER (PARTITION BY source_system, lead_id) AS n,
        pow(0.5, greatest(date_diff('second', touched_at, won_at), 0) / 86400.0 / {half_life}) AS decay
    FROM touches
),
credits AS (
    SELECT source_system, lead_id, won_at, channel, amount,
        CASE WHEN i = 1 THEN 1.0 ELSE 0.0 END AS first_touch,
        CASE WHEN i = n THEN 1.0 ELSE 0.0 END AS last_touch,
        1.0 / n AS linear,
        CASE WHEN n = 1 THEN 1.0
             WHEN n = 2 THEN 0.5
             WHEN i = 1 OR i = n THEN 0.4
             ELSE 0.2 / (n - 2) END AS u_shaped,
        decay / sum(decay) OVER (PARTITION BY source_system, lead_id) AS time_decay
    FROM ordered
)
SELECT source_system, lead_id, won_at, channel,
    sum(amount * first_touch) AS first_touch,
    sum(amount * last_touch) AS last_touch,
    sum(amount * linear) AS linear,
    sum(amount * u_shaped) AS u_shaped,
    sum(amount * time_decay) AS time_decay
FROM credits
GROUP BY source_system, lead_id, won_at, channel
"""


@dataclass(frozen=True)
class Previous:
    """The current build's lead_facts and attribution, and what changed since: only the leads touched get
    their facts made again, only the won leads whose facts or journey changed their attribution."""

    lead_facts: Path
    attribution: Path
    leads: pl.DataFrame  # source_system, lead_id: lead rows that changed (or went)
    event_leads: pl.DataFrame  # lead_id: leads whose stage events changed (in any source: facts join by id)
    interactions: pl.DataFrame  # source_system, customer_ref, lead_id: interactions that changed (or went)
    customers: pl.DataFrame  # customer_key: customers whose records (their journeys) changed


# The leads whose facts are made again: a changed lead row, or a lead whose stage events changed.
_FACTS_TOUCHED_SQL = """
CREATE OR REPLACE TEMP TABLE facts_touched AS
SELECT source_system, lead_id FROM analytics_changed_leads
UNION
SELECT source_system, lead_id FROM main.leads WHERE lead_id IN (SELECT lead_id FROM analytics_changed_events)
"""
# The won leads whose attribution is made again: their facts, or their journey (their customer's records,
# the interactions of those records or of the lead itself) changed.
_ATTRIBUTION_TOUCHED_SQL = """
CREATE OR REPLACE TEMP TABLE attribution_touched AS
SELECT source_system, lead_id FROM facts_touched
UNION
SELECT f.source_system, f.lead_id
FROM main.lead_facts AS f
JOIN attribution_links AS k ON k.record_kind = 'lead' AND k.source_system = f.source_system
    AND k.source_record_id = f.lead_id
WHERE f.won_at IS NOT NULL AND k.customer_key IN (
    SELECT customer_key FROM analytics_changed_customers
    UNION SELECT customer_key FROM attribution_links
    WHERE record_kind = 'lead' AND source_record_id IN (SELECT lead_id FROM analytics_changed_interactions)
    UNION SELECT k2.customer_key FROM attribution_links AS k2 JOIN analytics_changed_interactions AS i
        ON k2.record_kind = 'customer' AND k2.source_system = i.source_system AND k2.source_record_id = i.customer_ref
)
UNION
SELECT f.source_system, f.lead_id
FROM main.lead_facts AS f JOIN analytics_changed_interactions AS i ON i.lead_id = f.lead_id
WHERE f.won_at IS NOT NULL
UNION
SELECT f.source_system, f.lead_id
FROM main.lead_facts AS f JOIN analytics_changed_interactions AS i
    ON i.source_system = f.source_system AND i.customer_ref = f.customer_ref
WHERE f.won_at IS NOT NULL
"""


def build(
    con: duckdb.DuckDBPyConnection,
    links: pl.DataFrame,
    half_life_days: float,
    exclude_channels: list[str],
    previous: Previous | None = None,
) -> None:
    """Create lead_facts, attribution and filter_values as tables on con (replacing placeholder views).
    ``links`` is the build's identity_links: a won lead's journey is every record of its customer. With
    ``previous``, the rows of the leads it does not touch are copied from it: the same tables as in full."""
    con.execute("CREATE OR REPLACE TEMP TABLE excluded_channels (channel VARCHAR)")
    if exclude_channels:
        con.executemany("INSERT INTO excluded_channels VALUES (?)", [[c.strip().lower()] for c in exclude_channels])
    con.register("attribution_links", links.select("source_system", "source_record_id", "record_kind", "customer_key"))
    facts, attribution = LEAD_FACTS_SQL, attribution_sql(half_life_days)
    if previous is not None:
        for name, frame in (
            ("analytics_changed_leads", previous.leads),
            ("analytics_changed_events", previous.event_leads),
            ("analytics_changed_interactions", previous.interactions),
            ("analytics_changed_customers", previous.customers),
        ):
            con.register(name, frame)
        con.execute(_FACTS_TOUCHED_SQL)
        # the same statements over the touched leads only (a CTE named as the table it narrows), with the
        # other leads' rows of the current build
        facts = f"""
            SELECT * FROM (
                SELECT * FROM read_parquet({quote_path(previous.lead_facts)})
                    ANTI JOIN facts_touched USING (source_system, lead_id)
                UNION ALL BY NAME
                SELECT * FROM (
                    WITH leads AS (SELECT * FROM main.leads SEMI JOIN facts_touched USING (source_system, lead_id)),
                    lead_events AS (SELECT * FROM main.lead_events WHERE lead_id IN (SELECT lead_id FROM leads))
                    SELECT * FROM ({LEAD_FACTS_SQL})
                )
            ) ORDER BY created_at"""
        attribution = f"""
            SELECT * FROM read_parquet({quote_path(previous.attribution)})
                ANTI JOIN attribution_touched USING (source_system, lead_id)
            UNION ALL BY NAME
            SELECT * FROM (
                WITH lead_facts AS (
                    SELECT * FROM main.lead_facts SEMI JOIN attribution_touched USING (source_system, lead_id)
                )
                SELECT * FROM ({attribution})
            )"""
    try:
        for table, sql in (("lead_facts", facts), ("attribution", attribution), ("filter_values", FILTER_VALUES_SQL)):
            if table == "attribution" and previous is not None:
                con.execute(_ATTRIBUTION_TOUCHED_SQL)
            drop_relation(con, table)
            con.execute(f"CREATE TABLE {table} AS {sql}")
    finally:
        for name in (
            "attribution_links",
            "analytics_changed_leads",
            "analytics_changed_events",
            "analytics_changed_interactions",
            "analytics_changed_customers",
        ):
            con.unregister(name)
        con.execute("DROP TABLE IF EXISTS facts_touched; DROP TABLE IF EXISTS attribution_touched")
