"""Churn features and labels from the canonical tables, at a cutoff: every feature reads only rows
dated before the cutoff, every label only the horizon after it.

Activity is an order or an interaction with a customer. A source record is the golden customer
``identity_links`` names; a ``customer_ref`` without a link gets its own key, ``<source>:<ref>``.
Times are in days since 1970 (the tables' local wall-clock time), so a cutoff is one number.

Every customer key gets a dense integer id once (``cid``, in the keys' sort order): the per-day tables and
every group-by carry it, and the keys come back only on the features' rows. Orders and interactions are
read once, into the per-day tables; each cutoff's features are then one statement over those (all cutoffs
in one statement, joined as a small table or cut into segments at every window edge, measured slower:
docs/benchmarks.md, "Churn features in one pass").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from typing import Protocol
from weakref import WeakKeyDictionary

import duckdb
import polars as pl

from dashboard.derived.churn.days import COUNTS, DayArrays
from dashboard.derived.golden import NOT_REVENUE

# Interaction kinds and outcomes differ by system and language: matched by keyword, lower-cased.
KIND_PATTERNS: dict[str, str] = {
    "complaint": r"complain|投诉|抱怨|差评",
    "unsubscribe": r"unsubscribe|unfollow|opt.?out|取消关注|退订|取关",
    "service": r"service|install|repair|support|inquir|enquir|售后|服务|维修|安装|咨询|报修",
    "visit": r"visit|meeting|demo|拜访|上门|到店|面谈|演示",
}
NEGATIVE_OUTCOME = r"no answer|not interested|no budget|declin|refus|lost|无意向|暂无预算|拒绝|未接通|流失"
CATEGORY = {"order": 0, "complaint": 1, "unsubscribe": 2, "service": 3, "visit": 4, "other": 5}

# Model inputs, in this order. Counts are of active days (an invoice's lines are one purchase).
FEATURES: tuple[str, ...] = (
    "recency_days",
    "tenure_days",
    "order_recency_days",
    "order_days",
    "mean_gap_days",
    "overdue_ratio",
    "orders_recent",
    "orders_previous",
    "order_trend",
    "monetary",
    "avg_order_value",
    "spend_recent",
    "spend_previous",
    "contacts_recent",
    "contacts_previous",
    "contact_recency_days",
    "complaints_recent",
    "service_recent",
    "visits_recent",
    "unsubscribes_recent",
    "negative_recent",
    "channels_recent",
    "channels_year",
    "overdue_amount",
    "overdue_contracts",
    "overdue_days",
    "bgnbd_expected",
    "bgnbd_p_alive",
)


def _category_sql() -> str:
    cases = " ".join(f"WHEN regexp_matches(lower(kind), $p_{name}) THEN {CATEGORY[name]}" for name in KIND_PATTERNS)
    return f"CASE {cases} ELSE {CATEGORY['other']} END"


# Each source record's golden customer and its dense id. A customer_ref with no link is its own customer,
# ``<source>:<ref>``; ids follow the keys' order, so ordering by id orders by key.
_LINKED = """linked AS (
    SELECT DISTINCT ON (source_system, source_record_id) source_system, source_record_id, customer_key
    FROM churn_links WHERE record_kind = 'customer' AND customer_key IS NOT NULL
)"""
_REFS = """SELECT source_system, customer_ref FROM orders
    UNION ALL SELECT source_system, customer_ref FROM interactions
    UNION ALL SELECT source_system, customer_ref FROM contracts"""
_NUMBERED = """SELECT source_system, source_record_id, customer_key,
    CAST(dense_rank() OVER (ORDER BY customer_key) AS INTEGER) AS cid
FROM keys"""
_KEYS = f"""WITH {_LINKED},
refs AS (
    {_REFS}
),
loose AS (
    SELECT DISTINCT r.source_system, r.customer_ref FROM refs AS r
    WHERE r.customer_ref IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM linked AS l WHERE l.source_system = r.source_system AND l.source_record_id = r.customer_ref
    )
),
keys AS (
    SELECT source_system, source_record_id, customer_key FROM linked
    UNION ALL
    SELECT source_system, customer_ref, source_system || ':' || customer_ref FROM loose
)"""
KEYS_SQL = f"CREATE OR REPLACE TEMP TABLE churn_keys AS\n{_KEYS}\n{_NUMBERED}"
# The same rows before they are numbered, and their ids from the distinct keys numbered in key order elsewhere
# (churn_key_ids: customer_key, cid; on Spark, where dense_rank() over every key is one partition).
KEY_ROWS_SQL = f"{_KEYS}\nSELECT source_system, source_record_id, customer_key FROM keys"
KEY_IDS_SQL = """SELECT k.source_system, k.source_record_id, k.customer_key, CAST(i.cid AS INTEGER) AS cid
FROM churn_key_rows AS k JOIN churn_key_ids AS i USING (customer_key)"""
# The same keys for the customers a rescore makes again (churn_touched: their keys; churn_touched_refs: the
# source records whose ``<source>:<ref>`` key is among them): their records only, so the per-day tables hold
# only their days. A ref's own key is taken only when no customer record of its source has that id, as above.
# Only the links of those keys and of records with those refs' ids are read past the first filter, and the refs
# are looked up among the events by a join to those few (not every link distinct, and every event's ref probed
# against the few: at large 0.63 -> 0.27 CPU-s for ~24,000 keys).
TOUCHED_KEYS_SQL = f"""
CREATE OR REPLACE TEMP TABLE churn_keys AS
WITH near AS (
    SELECT source_system, source_record_id, customer_key FROM churn_links
    WHERE record_kind = 'customer' AND customer_key IS NOT NULL AND (
        customer_key IN (SELECT customer_key FROM churn_touched)
        OR source_record_id IN (SELECT customer_ref FROM churn_touched_refs)
    )
),
linked AS (
    SELECT DISTINCT ON (source_system, source_record_id) source_system, source_record_id, customer_key FROM near
),
used AS (
    SELECT DISTINCT t.source_system, t.customer_ref
    FROM ({_REFS}) AS r
    JOIN churn_touched_refs AS t ON r.source_system = t.source_system AND r.customer_ref = t.customer_ref
),
loose AS (
    SELECT u.source_system, u.customer_ref FROM used AS u
    WHERE NOT EXISTS (
        SELECT 1 FROM linked AS l WHERE l.source_system = u.source_system AND l.source_record_id = u.customer_ref
    )
),
keys AS (
    SELECT source_system, source_record_id, customer_key FROM linked
    WHERE customer_key IN (SELECT customer_key FROM churn_touched)
    UNION ALL
    SELECT source_system, customer_ref, source_system || ':' || customer_ref FROM loose
)
{_NUMBERED}
"""
# The first and last activity (day numbers) over every customer's rows: churn_days' range, read without them
EVENTS_RANGE_SQL = """
SELECT min(d) AS first_d, max(d) AS last_d FROM (
    SELECT epoch(ordered_at) / 86400.0 AS d FROM orders WHERE customer_ref IS NOT NULL AND ordered_at IS NOT NULL
    UNION ALL
    SELECT epoch(occurred_at) / 86400.0 FROM interactions WHERE customer_ref IS NOT NULL AND occurred_at IS NOT NULL
) WHERE d <= $latest
"""
# id → key, for the features' rows
IDS_SQL = "CREATE OR REPLACE TEMP TABLE churn_ids AS SELECT DISTINCT cid, customer_key FROM churn_keys"
# Interaction kinds and outcomes are a few dozen labels over millions of rows: each label is matched
# against the patterns once, and the rows look their category up.
KINDS_SQL = f"""
CREATE OR REPLACE TEMP TABLE churn_kinds AS
SELECT kind, {_category_sql()} AS cat FROM (SELECT DISTINCT kind FROM interactions WHERE kind IS NOT NULL)
"""
OUTCOMES_SQL = """
CREATE OR REPLACE TEMP TABLE churn_outcomes AS
SELECT outcome, coalesce(regexp_matches(lower(outcome), $p_negative), false) AS negative
FROM (SELECT DISTINCT outcome FROM interactions WHERE outcome IS NOT NULL)
"""
# Interactions' channels numbered (the events' read for DuckDB's arrays carries the number, not the name)
CHANNELS_SQL = """
CREATE OR REPLACE TEMP TABLE churn_channels AS
SELECT channel, CAST(row_number() OVER (ORDER BY channel) - 1 AS INTEGER) AS ch
FROM (SELECT DISTINCT coalesce(channel, 'unknown') AS channel FROM interactions)
"""


def _keyed_rows(numbered: bool) -> str:
    """The events with their customer's id: ``numbered``, each interaction's channel as its churn_channels number
    and no day column (DuckDB's arrays read, days.py: a sort that carries no text, the day taken from ``d``),
    else the channel's name and the day (KEYED_SQL, the per-day tables another engine makes)."""
    channel = "ch.ch" if numbered else "coalesce(i.channel, 'unknown')"
    no_channel = "CAST(NULL AS INTEGER)" if numbered else "CAST(NULL AS VARCHAR)"
    numbers = "\n    LEFT JOIN churn_channels AS ch ON ch.channel = coalesce(i.channel, 'unknown')" if numbered else ""
    return f"""
WITH ev AS (
    SELECT source_system, customer_ref, epoch(ordered_at) / 86400.0 AS d, 0 AS cat,
           {no_channel} AS channel, amount, false AS negative
    FROM orders WHERE customer_ref IS NOT NULL AND ordered_at IS NOT NULL
        AND NOT regexp_matches(coalesce(status, ''), $not_revenue)  -- no purchase, as the golden record's orders
    UNION ALL
    SELECT i.source_system, i.customer_ref, epoch(i.occurred_at) / 86400.0,
           coalesce(k.cat, {CATEGORY["other"]}),
           {channel}, NULL,
           coalesce(o.negative, false)
    FROM interactions AS i
    LEFT JOIN churn_kinds AS k ON k.kind = i.kind
    LEFT JOIN churn_outcomes AS o ON o.outcome = i.outcome{numbers}
    WHERE i.customer_ref IS NOT NULL AND i.occurred_at IS NOT NULL
),
keyed AS (
    SELECT k.cid, {"" if numbered else "floor(d) AS day, "}d, cat, channel, amount, negative
    FROM ev JOIN churn_keys AS k ON k.source_system = ev.source_system AND k.source_record_id = ev.customer_ref
    WHERE d <= $latest
)
SELECT * FROM keyed
"""


# one row per customer and active day: features are plain counts and sums over these
_KEYED_ROWS = _keyed_rows(numbered=False)
# DuckDB's read of the events into days.py's arrays, in customer and time order: at large (13.1M events) the sort
# without the channels' names and the day 4.26 -> 3.75 CPU-s
EVENTS_SQL = f"{_keyed_rows(numbered=True)} ORDER BY cid, d"
KEYED_SQL = f"CREATE OR REPLACE TEMP TABLE churn_keyed AS{_KEYED_ROWS}"
DAYS_SQL = """
CREATE OR REPLACE TEMP TABLE churn_days AS
SELECT cid, day, min(d) AS first_d, max(d) AS last_d,
    CAST(count(*) FILTER (WHERE cat = 0) AS INTEGER) AS orders,
    coalesce(sum(amount) FILTER (WHERE cat = 0), 0) AS amount,
    min(d) FILTER (WHERE cat = 0) AS first_order_d,
    max(d) FILTER (WHERE cat = 0) AS last_order_d,
    max(d) FILTER (WHERE cat > 0) AS last_contact_d,
    CAST(count(*) FILTER (WHERE cat > 0) AS INTEGER) AS contacts,
    CAST(count(*) FILTER (WHERE cat = 1) AS INTEGER) AS complaints,
    CAST(count(*) FILTER (WHERE cat = 2) AS INTEGER) AS unsubscribes,
    CAST(count(*) FILTER (WHERE cat = 3) AS INTEGER) AS service,
    CAST(count(*) FILTER (WHERE cat = 4) AS INTEGER) AS visits,
    CAST(count(*) FILTER (WHERE negative) AS INTEGER) AS negative
FROM churn_keyed
GROUP BY cid, day
"""
# per customer and channel: the days it had an interaction there (channel mix). An order is no channel: its
# source system counted as one had the reasons say "active in 1 channel" beside "no interaction on record", and
# name a channel Customer 360 does not list (its channels: the customer's leads' and interactions')
CHANNEL_DAYS_SQL = """
CREATE OR REPLACE TEMP TABLE churn_channel_days AS
SELECT cid, channel, day FROM churn_keyed WHERE cat > 0 GROUP BY ALL
"""

# The per-day tables' columns: what another engine making them (derived/spark/steps.py) loads them as.
_DAY = {c: "DOUBLE" for c in ("day", "first_d", "last_d")}
_COUNTS = COUNTS
DAY_TABLES: dict[str, dict[str, str]] = {
    "churn_days": {
        "cid": "INTEGER", **_DAY, "orders": "INTEGER", "amount": "DOUBLE", "first_order_d": "DOUBLE",
        "last_order_d": "DOUBLE", "last_contact_d": "DOUBLE", **dict.fromkeys(_COUNTS, "INTEGER"),
    },
    "churn_channel_days": {"cid": "INTEGER", "channel": "VARCHAR", "day": "DOUBLE"},
}  # fmt: skip
RANGE_SQL = "SELECT min(first_d) AS first_d, max(last_d) AS last_d FROM churn_days"


class DayTables(Protocol):
    """Another engine making the keys and per-day tables in place of load_events' own statements (``make``:
    churn_keys and churn_ids on the connection, given the latest day number), and running the statements that
    read the per-day tables (``query``: a cutoff's features and labels, the activity range) where it made them,
    and those that read every link (``first_records``: FIRST_RECORDS_SQL; ``attributes``: ATTRIBUTES_SQL for the
    customers registered as churn_scored). With [engine] kind = "spark" the derived build sets one running them as
    Spark jobs (derived/spark/churn.py), for the churn step only."""

    def make(self, con: duckdb.DuckDBPyConnection, latest: int) -> None: ...

    def query(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, int]) -> pl.DataFrame: ...

    def first_records(self, con: duckdb.DuckDBPyConnection) -> pl.DataFrame: ...

    def attributes(self, con: duckdb.DuckDBPyConnection) -> pl.DataFrame: ...


_DAY_TABLES: ContextVar[DayTables | None] = ContextVar("churn_day_tables", default=None)


@contextmanager
def day_tables_from(make: DayTables) -> Iterator[None]:
    """Inside: load_events has ``make`` make the keys and per-day tables, and features read them there."""
    token = _DAY_TABLES.set(make)
    try:
        yield
    finally:
        _DAY_TABLES.reset(token)


def kind_params() -> dict[str, str]:
    return {f"p_{k}": v for k, v in KIND_PATTERNS.items()}


def outcome_params() -> dict[str, str]:
    return {"p_negative": NEGATIVE_OUTCOME}


def events_params(latest: int) -> dict[str, int | str]:
    """The events' statement (EVENTS_SQL, KEYED_SQL): the last day read, and the order statuses that are no
    purchase (cancelled, returned: golden.NOT_REVENUE), so a customer's order days and revenue are the orders
    and order revenue Customer 360 shows."""
    return {"latest": latest, "not_revenue": NOT_REVENUE}


_FEATURES_SQL = """
SELECT cid,
    $t - max(last_d) AS recency_days,
    $t - min(first_d) AS tenure_days,
    $t - max(last_order_d) AS order_recency_days,
    count(*) FILTER (WHERE orders > 0) AS order_days,
    max(last_order_d) - min(first_order_d) AS order_span,
    count(*) FILTER (WHERE orders > 0 AND day >= $t - $h) AS orders_recent,
    count(*) FILTER (WHERE orders > 0 AND day >= $t - 2 * $h AND day < $t - $h) AS orders_previous,
    -- money to the cent: a sum's last bits depend on the order rows arrive in, the features must not
    round(sum(amount), 2) AS monetary,
    round(coalesce(sum(amount) FILTER (WHERE day >= $t - $h), 0), 2) AS spend_recent,
    round(coalesce(sum(amount) FILTER (WHERE day >= $t - 2 * $h AND day < $t - $h), 0), 2) AS spend_previous,
    round(coalesce(sum(amount) FILTER (WHERE day >= $t - 730), 0), 2) AS spend_2y,
    round(coalesce(sum(amount) FILTER (WHERE day >= $t - 365), 0), 2) AS spend_year,
    CAST(coalesce(sum(contacts) FILTER (WHERE day >= $t - $h), 0) AS BIGINT) AS contacts_recent,
    CAST(coalesce(sum(contacts) FILTER (WHERE day >= $t - 2 * $h AND day < $t - $h), 0) AS BIGINT) AS contacts_previous,
    $t - max(last_contact_d) AS contact_recency_days,
    CAST(coalesce(sum(complaints) FILTER (WHERE day >= $t - $h), 0) AS BIGINT) AS complaints_recent,
    CAST(coalesce(sum(unsubscribes) FILTER (WHERE day >= $t - $h), 0) AS BIGINT) AS unsubscribes_recent,
    CAST(coalesce(sum(service) FILTER (WHERE day >= $t - $h), 0) AS BIGINT) AS service_recent,
    CAST(coalesce(sum(visits) FILTER (WHERE day >= $t - $h), 0) AS BIGINT) AS visits_recent,
    CAST(coalesce(sum(negative) FILTER (WHERE day >= $t - $h), 0) AS BIGINT) AS negative_recent,
    count(*) AS active_days,
    max(last_d) - min(first_d) AS active_span,
    max(last_d) AS last_d
FROM churn_days
WHERE day < $t
GROUP BY cid
"""

_CHANNELS_SQL = """
SELECT cid,
    count(*) FILTER (WHERE last_day >= $t - $h) AS channels_recent,
    count(*) FILTER (WHERE last_day >= $t - 365) AS channels_year
FROM (SELECT cid, channel, max(day) AS last_day FROM churn_channel_days WHERE day < $t GROUP BY ALL)
GROUP BY cid
"""

# Receivables as they stood at the cutoff: a payment counts only when it was made before it.
_RECEIVABLES_SQL = """
WITH c AS (
    SELECT k.cid,
        epoch(c.due_date) / 86400.0 AS due_d,
        c.amount - CASE WHEN epoch(c.paid_at) / 86400.0 < $t THEN coalesce(c.paid_amount, 0) ELSE 0 END AS open
    FROM contracts AS c
    JOIN churn_keys AS k ON k.source_system = c.source_system AND k.source_record_id = c.customer_ref
    WHERE c.due_date IS NOT NULL AND c.amount IS NOT NULL
      AND epoch(coalesce(c.signed_at, c.due_date)) / 86400.0 < $t AND epoch(c.due_date) / 86400.0 < $t
)
SELECT cid, round(sum(open), 2) AS overdue_amount, count(*) AS overdue_contracts,
    max($t - due_d) AS overdue_days
FROM c WHERE open > 0.005
GROUP BY cid
"""

# A cutoff's features, channel mix and receivables by customer id, with the customer's key, in key order
FEATURES_SQL = f"""
SELECT i.customer_key, f.* EXCLUDE (cid),
    coalesce(ch.channels_recent, 0) AS channels_recent, coalesce(ch.channels_year, 0) AS channels_year,
    coalesce(r.overdue_amount, 0.0) AS overdue_amount,
    coalesce(r.overdue_contracts, 0) AS overdue_contracts,
    coalesce(r.overdue_days, 0.0) AS overdue_days
FROM ({_FEATURES_SQL}) AS f
JOIN churn_ids AS i ON i.cid = f.cid
LEFT JOIN ({_CHANNELS_SQL}) AS ch ON ch.cid = f.cid
LEFT JOIN ({_RECEIVABLES_SQL}) AS r ON r.cid = f.cid
ORDER BY f.cid
"""

LABELS_SQL = """
SELECT i.customer_key FROM (SELECT DISTINCT cid FROM churn_days WHERE day >= $t AND day < $t + $h) AS a
JOIN churn_ids AS i ON i.cid = a.cid
"""

# Owner and region of a golden customer: from its customer records, the most trusted source first
# (lower priority number), then from its leads; between records equally trusted, the first by source and
# record id (a tie was settled by the order rows arrived in: 4 owners of 1.3M moved between two runs).
ATTRIBUTES_SQL = """
WITH recs AS (
    SELECT coalesce(k.customer_key, c.source_system || ':' || c.source_record_id) AS customer_key,
        c.owner, c.region, (0, coalesce(p.priority, 1000), c.source_system, c.source_record_id) AS trust
    FROM customers AS c
    LEFT JOIN churn_keys AS k ON k.source_system = c.source_system AND k.source_record_id = c.source_record_id
    LEFT JOIN churn_priority AS p ON p.source_system = c.source_system
    UNION ALL
    SELECT l.customer_key, f.owner, f.region, (1, coalesce(p.priority, 1000), l.source_system, l.source_record_id)
    FROM churn_links AS l
    JOIN leads AS f ON f.source_system = l.source_system AND f.lead_id = l.source_record_id
    LEFT JOIN churn_priority AS p ON p.source_system = l.source_system
    WHERE l.record_kind = 'lead'
)
SELECT customer_key,
    arg_min(owner, trust) FILTER (WHERE owner IS NOT NULL AND owner <> '') AS owner,
    arg_min(region, trust) FILTER (WHERE region IS NOT NULL AND region <> '') AS region
FROM recs
WHERE customer_key IN (SELECT customer_key FROM churn_scored)
GROUP BY customer_key
"""
# The same for a few customers (a rescore's touched): the lead links filtered to them before the join to every lead
# (at large 0.62 -> 0.37 CPU-s for ~12,000 customers; for everyone the filter would only add probes)
FEW_ATTRIBUTES_SQL = ATTRIBUTES_SQL.replace(
    "WHERE l.record_kind = 'lead'",
    "WHERE l.record_kind = 'lead' AND l.customer_key IN (SELECT customer_key FROM churn_scored)",
)
assert FEW_ATTRIBUTES_SQL.count("churn_scored") == ATTRIBUTES_SQL.count("churn_scored") + 1  # the filter found


def day_number(d: date) -> int:
    """A date's midnight as days since 1970 (cutoffs are whole days: ``day < t`` is "before t")."""
    return (d - date(1970, 1, 1)).days


def load_events(
    con: duckdb.DuckDBPyConnection,
    links: pl.DataFrame,
    priorities: dict[str, int],
    latest: int,
    touched: pl.DataFrame | None = None,
) -> None:
    """Creates the temp tables churn_keys, churn_days, churn_channel_days and churn_priority on ``con``.

    ``latest`` (a day number) drops rows dated after it: a typo'd year 2099 is not "recent activity".
    ``touched`` (customer_key): only those customers (TOUCHED_KEYS_SQL; inside ``on_connection``).
    """
    _READ.pop(con, None)  # made again below (or by another engine)
    con.register("churn_links", links)
    if touched is not None:
        _register_touched(con, touched)
    con.execute("CREATE OR REPLACE TEMP TABLE churn_priority (source_system VARCHAR, priority INTEGER)")
    if priorities:
        con.executemany("INSERT INTO churn_priority VALUES (?, ?)", [[s, p] for s, p in priorities.items()])
    make = _DAY_TABLES.get()
    if make is not None:  # another engine makes the keys and per-day tables from the statements below
        make.make(con, latest)
        return
    con.execute(KEYS_SQL if touched is None else TOUCHED_KEYS_SQL)
    con.execute(IDS_SQL)
    con.execute(KINDS_SQL, kind_params())
    con.execute(OUTCOMES_SQL, outcome_params())
    con.execute(CHANNELS_SQL)
    # the events keyed, in customer and time order, read once into arrays (days.py): their per-day rows, and every
    # cutoff's features and labels, are made from them (DuckDB keeps no per-day tables: another engine's)
    _READ[con] = DayArrays.read(con, EVENTS_SQL, events_params(latest))
    for table in ("churn_kinds", "churn_outcomes", "churn_channels"):
        con.execute(f"DROP TABLE {table}")


def _register_touched(con: duckdb.DuckDBPyConnection, touched: pl.DataFrame) -> None:
    """churn_touched (customer_key) and churn_touched_refs: the source records whose own key (``<source>:<ref>``,
    source names hold no colon) is among them."""
    keys = touched.select(pl.col("customer_key").cast(pl.String)).drop_nulls().unique()
    parts = pl.col("customer_key").str.splitn(":", 2).struct
    refs = keys.filter(pl.col("customer_key").str.contains(":", literal=True)).select(
        parts.field("field_0").alias("source_system"), parts.field("field_1").alias("customer_ref")
    )
    con.register("churn_touched", keys)
    con.register("churn_touched_refs", refs)


def own_keys(changes: dict[str, pl.DataFrame]) -> pl.Series:
    """The ``<source>:<ref>`` key of every changed row's customer ref (orders, interactions, contracts) and of
    every changed customer record: a ref with no customer record is its own customer, and a record that came
    or went makes its ref linked or its own (``changes``: pipeline/fingerprint.py's changed rows per entity)."""
    out = [pl.Series("customer_key", [], pl.String)]
    for entity, ref in (("orders", "customer_ref"), ("interactions", "customer_ref"), ("contracts", "customer_ref"),
                        ("customers", "source_record_id")):  # fmt: skip
        rows = changes.get(entity)
        if rows is not None and ref in rows.columns:
            key = pl.concat_str(pl.col("source_system").cast(pl.String), pl.lit(":"), pl.col(ref).cast(pl.String))
            out.append(rows.select(key.alias("customer_key")).to_series())
    return pl.concat(out).drop_nulls()


@contextmanager
def on_connection() -> Iterator[None]:
    """Inside: the keys, per-day tables and features are made and read on the connection given, whatever
    engine day_tables_from set (a rescore of a few customers)."""
    token = _DAY_TABLES.set(None)
    try:
        yield
    finally:
        _DAY_TABLES.reset(token)


def events_range(con: duckdb.DuckDBPyConnection, latest: int) -> tuple[float | None, float | None]:
    """activity_range over every customer's orders and interactions, without the per-day tables."""
    first, last = con.sql(EVENTS_RANGE_SQL, params={"latest": latest}).fetchall()[0]
    return first, last


def drop_days(con: duckdb.DuckDBPyConnection) -> None:
    """Frees the per-day tables (or rows) once every cutoff's features are read (the keys stay: owners need them)."""
    _READ.pop(con, None)
    con.execute("DROP TABLE IF EXISTS churn_days")
    con.execute("DROP TABLE IF EXISTS churn_channel_days")


def _on_days(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, int] | None = None) -> pl.DataFrame:
    """``sql`` over the per-day tables: on ``con``, or where another engine made them (day_tables_from)."""
    days = _DAY_TABLES.get()
    return days.query(con, sql, params or {}) if days is not None else con.sql(sql, params=params).pl()


# The per-day rows load_events made on a connection with DuckDB, as arrays (days.py): until drop_days, or the connection
# is gone
_READ: WeakKeyDictionary[duckdb.DuckDBPyConnection, DayArrays] = WeakKeyDictionary()


def _arrays(con: duckdb.DuckDBPyConnection) -> DayArrays | None:
    """The connection's per-day rows, when DuckDB made them here (not another engine: day_tables_from)."""
    return _READ.get(con) if _DAY_TABLES.get() is None else None


def arrays_here(con: duckdb.DuckDBPyConnection) -> bool:
    """features_at and active_at read arrays in this process (DuckDB made the per-day rows here), not a statement."""
    return _arrays(con) is not None


def activity_range(con: duckdb.DuckDBPyConnection) -> tuple[float | None, float | None]:
    arrays = _arrays(con)
    if arrays is not None:
        return arrays.activity_range()
    first, last = _on_days(con, RANGE_SQL).row(0)
    return first, last


def features_at(con: duckdb.DuckDBPyConnection, t: int, horizon: int) -> pl.DataFrame:
    """One row per customer with activity before day ``t``, in key order: the raw features (BG/NBD's are
    added later)."""
    arrays = _arrays(con)
    out = arrays.features(t, horizon) if arrays is not None else _on_days(con, FEATURES_SQL, {"t": t, "h": horizon})
    gap = pl.when(pl.col("order_days") > 1).then(pl.col("order_span") / (pl.col("order_days") - 1))
    return out.with_columns(
        gap.alias("mean_gap_days"),
        (pl.col("orders_recent") - pl.col("orders_previous")).alias("order_trend"),
        pl.when(pl.col("order_days") > 0).then(pl.col("monetary") / pl.col("order_days")).alias("avg_order_value"),
    ).with_columns(
        (pl.col("order_recency_days") / pl.col("mean_gap_days").clip(lower_bound=1.0)).alias("overdue_ratio")
    )


def customers_at(con: duckdb.DuckDBPyConnection, t: int) -> pl.DataFrame:
    """features_at's customers (customer_key), without their features; from DuckDB's arrays only (arrays_here)."""
    arrays = _arrays(con)
    assert arrays is not None  # the per-day rows in this process
    return arrays.customers(t)


def active_at(con: duckdb.DuckDBPyConnection, t: int, horizon: int) -> pl.DataFrame:
    """Customers (customer_key) with an order or an interaction in [t, t + horizon)."""
    arrays = _arrays(con)
    return arrays.active(t, horizon) if arrays is not None else _on_days(con, LABELS_SQL, {"t": t, "h": horizon})


# Each linked customer's first customer record (source:id, the least), which names the same customer whatever key
# a build gave it: ties in the served order are broken by it, so an incremental build (which hands keys on) ranks
# tied customers as a build from an empty folder does. A ref with no customer record is its own key already.
FIRST_RECORDS_SQL = """
SELECT customer_key, min(source_system || ':' || source_record_id) AS first_record
FROM churn_links WHERE record_kind = 'customer' AND customer_key IS NOT NULL
GROUP BY customer_key
"""


# The same for a rescore's touched customers (churn_touched: their keys), on the connection: their links are there
FEW_FIRST_RECORDS_SQL = FIRST_RECORDS_SQL.replace(
    "WHERE record_kind", "WHERE customer_key IN (SELECT customer_key FROM churn_touched) AND record_kind"
)
assert FEW_FIRST_RECORDS_SQL != FIRST_RECORDS_SQL  # the filter found


def first_records(con: duckdb.DuckDBPyConnection, few: bool = False) -> pl.DataFrame:
    """customer_key → first_record (FIRST_RECORDS_SQL), for every linked customer of the build (where another
    engine made the keys: made there, day_tables_from); ``few``: a rescore's touched customers' (on ``con``)."""
    if few:
        return con.sql(FEW_FIRST_RECORDS_SQL).pl()
    days = _DAY_TABLES.get()
    return days.first_records(con) if days is not None else con.sql(FIRST_RECORDS_SQL).pl()


def attributes(con: duckdb.DuckDBPyConnection, keys: pl.DataFrame, few: bool = False) -> pl.DataFrame:
    """customer_key → owner, region (null when no record says); where another engine made the keys, made there
    (day_tables_from). ``few``: ``keys`` are a few of the customers (FEW_ATTRIBUTES_SQL)."""
    con.register("churn_scored", keys.select("customer_key"))
    days = _DAY_TABLES.get()
    try:
        if days is not None:
            return days.attributes(con)
        return con.sql(FEW_ATTRIBUTES_SQL if few else ATTRIBUTES_SQL).pl()
    finally:
        con.unregister("churn_scored")
