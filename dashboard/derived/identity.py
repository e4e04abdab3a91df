"""Identity resolution: which source records (every source's customers and leads) are one customer.

Pass 1 is deterministic: a shared valid phone, email or ID number, or a lead pointing at its own
customer, links records. Pass 2 is probabilistic (Splink on DuckDB, Fellegi-Sunter with EM): names
(exact, pinyin, one character off), phones a digit short, broken emails, company and place decide
between the clusters pass 1 left apart. Manual overrides win over both. A customer keeps its
``customer_key`` from the previous build when records join or leave it.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from dashboard.core.config import Settings
from dashboard.core.duck import (
    attach_entities,
    bounded_connection,
    process_rss,
    process_share,
    size_bytes,
    step_share,
    trim_heap,
)
from dashboard.core.errors import ConfigError
from dashboard.core.parse import clean_name, normalize_phone, pinyin, pinyin_readings, remember_readings
from dashboard.core.store import Manifest, Store

# The tables this module writes, and their columns (also when no build exists yet).
TABLES: dict[str, dict[str, str]] = {
    "identity_links": {
        "source_system": "VARCHAR",
        "source_record_id": "VARCHAR",
        "record_kind": "VARCHAR",
        "customer_key": "VARCHAR",
        "match_rule": "VARCHAR",
        "confidence": "DOUBLE",
    },
    # keys that disappeared when their customer merged into another → the key their records have now
    "customer_redirects": {"old_key": "VARCHAR", "customer_key": "VARCHAR", "merged_at": "TIMESTAMP"},
}

# A value shared by more records than this is a placeholder ("13800000000", "test@test.com"),
# not a person: it is not used to link.
MAX_SHARED = 50

_RULE_BITS = {"customer_ref": 8, "email": 2, "id_number": 4, "phone": 1}
RULE_NAMES = {
    mask: "exact:" + "+".join(name for name, bit in sorted(_RULE_BITS.items()) if mask & bit) for mask in range(1, 16)
}
LINK_COLUMNS = ("source_system", "source_record_id", "record_kind", "customer_key", "match_rule", "confidence")
# how identity's files with a row per record (the links, the state) are written: the fastest zstd. At large the links
# (3.46M rows) took 1.03 CPU-s at Polars' default level and 0.84 at 1, and came out smaller (52.3 -> 51.7 MB).
RECORD_FILE_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 1}

# Every customer and lead record with the attributes identity and the golden record use. A customer
# known only by a reference (an order's customer_ref in a source without a customers table) is a
# record with no attributes. Read in three plain scans (read_records): sorting the union of wide
# rows to deduplicate them cost more than everything else at 3M records.
_CUSTOMERS_SQL = """
SELECT source_system, source_record_id, 'customer' AS record_kind, snapshot_id,
       CASE WHEN phone_valid THEN phone END AS phone,
       CASE WHEN email_valid THEN email END AS email,
       CASE WHEN id_number_valid THEN id_number END AS id_number,
       CAST(NULL AS VARCHAR) AS customer_ref,
       CASE WHEN NOT phone_valid THEN phone END AS phone_invalid,
       CASE WHEN NOT email_valid THEN email END AS email_invalid,
       name, company, industry, region, city, owner,
       coalesce(updated_at, created_at) AS seen_at
FROM customers
"""
_LEADS_SQL = """
SELECT source_system, lead_id AS source_record_id, 'lead' AS record_kind, snapshot_id,
       CASE WHEN phone_valid THEN phone END AS phone,
       CASE WHEN email_valid THEN email END AS email,
       CAST(NULL AS VARCHAR) AS id_number, customer_ref,
       CASE WHEN NOT phone_valid THEN phone END AS phone_invalid,
       CASE WHEN NOT email_valid THEN email END AS email_invalid,
       name, company, CAST(NULL AS VARCHAR) AS industry, region, CAST(NULL AS VARCHAR) AS city, owner,
       created_at AS seen_at
FROM leads
"""
# customers known only by reference: the anti join before grouping keeps the hash table small
_REFS_SQL = """
SELECT r.source_system, r.customer_ref AS source_record_id, 'customer' AS record_kind, max(r.snapshot_id) AS snapshot_id
FROM (
    SELECT source_system, customer_ref, snapshot_id FROM leads WHERE customer_ref IS NOT NULL
    UNION ALL SELECT source_system, customer_ref, snapshot_id FROM orders WHERE customer_ref IS NOT NULL
    UNION ALL SELECT source_system, customer_ref, snapshot_id FROM interactions WHERE customer_ref IS NOT NULL
    UNION ALL SELECT source_system, customer_ref, snapshot_id FROM contracts WHERE customer_ref IS NOT NULL
) AS r
ANTI JOIN customers AS c ON c.source_system = r.source_system AND c.source_record_id = r.customer_ref
GROUP BY ALL
"""


def records_sql(restrict: str = "") -> str:
    """RECORDS_SQL, with ``restrict`` (a join clause over a scan's rows, e.g. a SEMI JOIN to some records) after
    each of its three scans: before the latest row per record is taken, so the other records are not sorted."""
    return f"""
SELECT * FROM (SELECT DISTINCT ON (source_system, source_record_id) * FROM ({_CUSTOMERS_SQL}) {restrict}
               ORDER BY source_system, source_record_id, seen_at DESC NULLS LAST)
UNION ALL BY NAME (SELECT * FROM ({_REFS_SQL}) {restrict})
UNION ALL BY NAME
SELECT * FROM (SELECT DISTINCT ON (source_system, source_record_id) * FROM ({_LEADS_SQL}) {restrict}
               ORDER BY source_system, source_record_id, seen_at DESC NULLS LAST)
"""


# The same records in one statement, for scripts that want SQL (one row per record, latest first).
RECORDS_SQL = records_sql()


def _latest(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per record: a record a snapshot holds twice keeps its latest row."""
    keys = ["source_system", "source_record_id"]
    if not frame.select(pl.struct(keys).is_duplicated().any()).item():
        return frame
    return frame.sort("seen_at", descending=True, nulls_last=True).unique(keys, keep="first", maintain_order=True)


def read_records(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """RECORDS_SQL's rows (``con`` has the entity views): customers, customers known by reference, leads."""
    customers = _latest(con.sql(_CUSTOMERS_SQL).pl())
    refs = con.sql(_REFS_SQL).pl()
    leads = _latest(con.sql(_LEADS_SQL).pl())
    return pl.concat([customers, refs, leads], how="diagonal_relaxed").select(customers.columns)


def record_table(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """read_records' rows as an Arrow table, for a build that holds them from identity to golden records: Arrow's
    strings take 4 bytes a value besides their text, Polars' 16 (its string views), and a frame made from DuckDB's
    Arrow keeps that Arrow's text too. At large the records held 1.47 GiB as a frame, 0.6 GiB as Arrow."""
    keys = ["source_system", "source_record_id"]
    parts = []
    for sql in (_CUSTOMERS_SQL, _REFS_SQL, _LEADS_SQL):
        part = con.sql(sql).to_arrow_table()
        twice = pl.DataFrame(pl.from_arrow(part.select(keys))).select(pl.struct(keys).is_duplicated().any()).item()
        if sql is not _REFS_SQL and twice:  # a record a snapshot holds twice: its latest row (_latest)
            part = _latest(pl.DataFrame(pl.from_arrow(part))).to_arrow(compat_level=pl.CompatLevel.oldest())
        parts.append(part)
    return pa.concat_tables(parts, promote_options="permissive").select(parts[0].column_names)


@dataclass(frozen=True)
class Override:
    """One line of the override file: ``merge`` forces two records together, ``split`` apart."""

    action: str  # merge | split
    left: str  # "<source_system>:<source_record_id>"
    right: str


@dataclass
class Model:
    """How pass 2 decides: a pair at or above ``threshold`` match probability links."""

    threshold: float = 0.95
    max_pairs: float = 1e6  # pairs sampled to estimate u (chance agreement); more is slower, steadier
    train_records: int = 150_000  # the model is trained on about this many records
    seed: int = 42
    memory_limit: str | None = None  # Splink's DuckDB: held to this, spilling under spill_root past it
    # the build's process as a whole ([build_memory]): the scoring's DuckDB gets what it leaves of what the process
    # holds and of SCORING_HEADROOM (at most memory_limit); None: what memory_limit leaves of what the process holds
    memory_budget: str | None = None
    spill_root: Path | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    # Splink's parameters (its model JSON): set, pairs are scored with them and nothing is trained;
    # after a build that trained, what it trained. tf_total: the named records term frequencies divide by.
    trained: dict[str, Any] | None = None
    tf_total: int = 0
    kept: Kept | None = None  # the previous build's resolution: only what changed is scored again
    state: pl.DataFrame | None = None  # out: this build's records (identity_state)
    pairs: pl.DataFrame | None = None  # out: the pairs pass 2 accepted (node_l, node_r, match_probability)


# -------------------------------------------------------------------------------- pass 1: exact
def _with_ref_phones(records: pl.DataFrame) -> pl.Series:
    """A customer known only by a reference that is itself a mobile number (call centers key callers
    by the number they called from) has that number as its phone."""
    phone = records.get_column("phone")
    bare = (phone.is_null() & (records.get_column("record_kind") == "customer")).arg_true()
    ref_phone, ref_valid = normalize_phone(records.get_column("source_record_id").gather(bare))
    return phone.scatter(bare, pl.select(pl.when(ref_valid).then(ref_phone)).to_series())


# Pass 1's values, one definition for both engines (derived.spark.identity runs it transpiled): every record's
# valid phone, email, ID number, its own customer ("r:<source>:<customer id>", a lead's customer_ref and the
# customer record itself), kept where 2 to MAX_SHARED records share it; ``hub``, the first record holding the
# value, makes a star per value: the records it links, as a graph of records alone.
VALUES_SQL = f"""
WITH v AS (  -- a record's missing values left out at once: the join below then probes 330k values, not 805k
    SELECT node, 'p:' || phone AS value, 1 AS rule FROM identity_nodes WHERE phone IS NOT NULL
    UNION ALL SELECT node, 'e:' || email, 2 FROM identity_nodes WHERE email IS NOT NULL
    UNION ALL SELECT node, 'i:' || id_number, 4 FROM identity_nodes WHERE id_number IS NOT NULL
    UNION ALL SELECT node, 'r:' || source_system || ':' || customer_ref, 8 FROM identity_nodes
        WHERE customer_ref IS NOT NULL
    UNION ALL SELECT node, 'r:' || source_system || ':' || source_record_id, 8 FROM identity_nodes
        WHERE record_kind = 'customer'
),
shared AS (  -- grouped, then joined: a third less CPU than windows over every value (DuckDB, medium)
    SELECT value, min(node) AS hub FROM v WHERE value IS NOT NULL
    GROUP BY value HAVING count(*) BETWEEN 2 AND {MAX_SHARED}
)
SELECT v.node, v.value, v.rule, s.hub FROM v JOIN shared AS s ON s.value = v.value
"""
# what each record shares (the bits of _RULE_BITS): its match rule when pass 1 linked it
RULES_SQL = "SELECT node, bit_or(rule) AS rule FROM identity_values GROUP BY node"
# the stars again without the detached records (an override takes them out of every value they share)
DETACHED_HUBS_SQL = """
SELECT node, min(node) OVER (PARTITION BY value) AS hub
FROM identity_values WHERE NOT list_contains($detach, node)
"""
NODE_COLUMNS = (
    "node",
    "source_system",
    "source_record_id",
    "record_kind",
    "phone",
    "email",
    "id_number",
    "customer_ref",
)


class Graph:
    """Where pass 1's values are grouped and the clusters found: here, by DuckDB and scipy (this class), or on
    Spark (derived.spark.identity.SparkGraph). A cluster is named by any number; only who is in it matters."""

    values: pl.DataFrame  # VALUES_SQL's rows
    exact_labels: np.ndarray
    rule: np.ndarray  # the rule bits each record shares (pass 1)
    # after links: the keys (previous and new) of the records that joined, left or changed key or confidence since
    # ``previous`` (derived.golden.touched_customers' moved records); None: not known (no previous with confidence)
    moved: pl.Series | None = None
    merged: Merged | None = None  # after links: the keys that went and where (redirects); None: not told
    # after links: each link's node (the links' order, by key), when told by integers (_link_order; None: sorted)
    order: np.ndarray | None = None
    # after resolve: each record's row in the links, by its row in the records resolved (derived.golden joins the
    # records to their keys by it instead of by their three strings); None: not told
    record_links: np.ndarray | None = None

    def exact(self, nodes: pl.DataFrame | None) -> np.ndarray:
        """nodes (NODE_COLUMNS, node = 0..n-1) → each record's pass-1 cluster (the rule bits it shares kept for the
        links); None: the records' nodes are already where the graph works (SparkGraph with SparkRecords)."""
        if nodes is None:
            raise ValueError("records made on Spark need the Spark graph (derived.spark.identity.SparkGraph)")
        n = nodes.height
        with duckdb.connect() as con:
            con.register("identity_nodes", nodes.select(NODE_COLUMNS).to_arrow())
            self.values = con.sql(VALUES_SQL).pl()
            con.register("identity_values", self.values)
            shared = con.sql(RULES_SQL).pl()
        self.rule = np.zeros(n, dtype=np.uint8)
        self.rule[shared["node"].to_numpy()] = shared["rule"].to_numpy()
        self.exact_labels = _components(n, [(self.values["node"].to_numpy(), self.values["hub"].to_numpy())])
        return self.exact_labels

    def links(
        self,
        recs: pl.DataFrame,
        exact: np.ndarray,
        pairs: pl.DataFrame,
        overrides: Overrides,
        previous: pl.DataFrame | None,
    ) -> pl.DataFrame:
        """The links (LINK_COLUMNS): each record's cluster (clusters, then the clusters a split override cuts made
        again), its key (assign_keys: ``previous``'s where its records had one), match rule and confidence."""
        merge, apart, detach = overrides
        labels = self.clusters(pairs, merge, detach)
        labels = _split_apart(labels, self, pairs, merge, detach, apart)
        # only the columns the links need: joins over the records' wide rows dominated this step at scale
        members = recs.select(
            "uid",
            "ref",
            "source_system",
            "source_record_id",
            "record_kind",
            pl.Series("component", labels),
            pl.Series("ex", exact),
        )
        links, self.moved, self.merged, self.order = _finish(members, self.rule, pairs, merge, labels, previous)
        return links

    def clusters(self, pairs: pl.DataFrame, merge: list[tuple[int, int]], detach: list[int]) -> np.ndarray:
        """Each record's cluster: pass 1's values, ``pairs`` (node_l, node_r) and the ``merge`` overrides join
        records; a detached record keeps only its merges."""
        n = len(self.exact_labels)
        hubs = self.values.select("node", "hub")
        if detach:
            with duckdb.connect() as con:
                con.register("identity_values", self.values)
                hubs = con.sql(DETACHED_HUBS_SQL, params={"detach": detach}).pl()
        edges = [(hubs["node"].to_numpy(), hubs["hub"].to_numpy())]
        kept = undetached(pairs, detach)
        edges.append((kept["node_l"].to_numpy(), kept["node_r"].to_numpy()))
        if merge:
            m = np.array(merge, dtype=np.int64)
            edges.append((m[:, 0], m[:, 1]))
        return _components(n, edges)

    def values_of(self, nodes: np.ndarray) -> pl.DataFrame:
        """The (node, value, rule) rows of these records' shared values."""
        return self.values.filter(pl.col("node").is_in(pl.Series(nodes, dtype=pl.Int64).implode())).select(
            "node", "value", "rule"
        )

    def close(self) -> None:
        """Nothing to remove here (the Spark graph removes its files)."""


# the overrides as node ids (_override_nodes): merged pairs, pairs kept apart, detached records
Overrides = tuple[list[tuple[int, int]], list[tuple[int, int]], list[int]]


def undetached(pairs: pl.DataFrame, detach: list[int]) -> pl.DataFrame:
    """``pairs`` (node_l, node_r) without those of a detached record."""
    if not detach:
        return pairs
    gone = pl.Series(detach, dtype=pl.Int64).implode()
    return pairs.filter(~(pl.col("node_l").is_in(gone) | pl.col("node_r").is_in(gone)))


def _components(n: int, pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    # imported here: SciPy's sparse graphs cost ~0.3 CPU-s to import, which a build that keeps the links does not use
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rows = np.concatenate([a for a, _ in pairs] or [np.zeros(0, np.int64)])
    cols = np.concatenate([b for _, b in pairs] or [np.zeros(0, np.int64)])
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    return connected_components(graph, directed=False)[1]


# what pass 2 compares of a record, besides pass 1's values
_FEATURE_INPUTS = ("name", "company", "city", "region", "phone_invalid", "email_invalid")
# what identity reads of a record (pass 1's values, pass 2's features, the links' names); not the golden record's
# attributes alone (industry, owner, when it was seen, its snapshot)
RECORD_INPUTS = (*NODE_COLUMNS[1:], *_FEATURE_INPUTS)
# what the links, the overrides and the state read of a record once pass 1 and the features are made
LINKED_COLUMNS = ("node", "source_system", "source_record_id", "record_kind", "uid", "ref")


class Records:
    """Where the records and their features are made: here, from a frame or an Arrow table of records (this class;
    only RECORD_INPUTS are kept, numbered in uid order), or on Spark from the snapshots
    (derived.spark.identity.SparkRecords, which keeps them there and hands the driver only what the keys are made
    from)."""

    def __init__(self, records: pl.DataFrame | pa.Table) -> None:
        names = records.columns if isinstance(records, pl.DataFrame) else records.column_names
        wanted = [c for c in RECORD_INPUTS if c in names]
        if isinstance(records, pa.Table):
            records = pl.DataFrame(pl.from_arrow(records.select(wanted)))
        else:
            records = records.select(wanted)
        self.recs = _prepare(records.with_row_index("row")) if records.height else records.with_row_index("row")
        self.rows = self.recs["row"].to_numpy()  # each node's row in ``records``
        self.recs = self.recs.drop("row")

    @property
    def height(self) -> int:
        return self.recs.height

    def nodes(self) -> pl.DataFrame | None:
        """Pass 1's input (NODE_COLUMNS), or None where the graph's engine already has it."""
        return self.recs.select(NODE_COLUMNS)

    def features(self, exact: np.ndarray) -> pl.DataFrame | None:
        """Pass 2's features (FEATURE_COLUMNS), or None for records without the attributes pass 2 compares. The
        records keep only what the links and the state are made from (LINKED_COLUMNS) from then on: Splink's
        connection is charged for what the process holds."""
        if not set(_FEATURE_INPUTS) <= set(self.recs.columns):
            return None
        made = features(self.recs, exact)
        self.recs = self.recs.select(LINKED_COLUMNS)
        return made

    sample: Sampler | None = None  # the training sample when the features are not here (SparkRecords)

    def close(self) -> None:
        """Nothing to remove here (the Spark records remove their files)."""


# a record's id (unique over the records): each engine numbers the records (node 0..n-1) in its order, so both
# number them alike; Splink samples training pairs by node, so the same numbers train the same model
UID = pl.col("record_kind") + ":" + pl.col("source_system") + ":" + pl.col("source_record_id")


def prepare_part(records: pl.DataFrame) -> pl.DataFrame:
    """Numbered records (``node``) with their uid, ref and a bare reference's phone: record by record, so any part
    of the records at a time (derived.spark.identity runs it on the executors)."""
    ref = pl.col("source_system") + ":" + pl.col("source_record_id")
    recs = records.with_columns(UID.alias("uid"), ref.alias("ref"))
    return recs.with_columns(_with_ref_phones(recs).alias("phone"), pl.col("node").cast(pl.Int64))


def _prepare(records: pl.DataFrame) -> pl.DataFrame:
    """Every record numbered in uid order, prepared (prepare_part)."""
    return prepare_part(_in_uid_order(records).with_row_index("node"))


MAX_RUNS = 1_000  # records in more runs of one kind and source than this are sorted by uid (_in_uid_order)


def _in_uid_order(records: pl.DataFrame) -> pl.DataFrame:
    """``records`` in uid order. record_table's scans give the records in runs of one kind and source (a source's
    customers in its snapshot's order, by id): the runs are put in the order of their uids' prefix
    (kind:source:) and only a run not in id order is sorted, not every record gathered into the order of a sort by
    uid (at large 3.46M records in 9 runs, one of them not in order: 1.1 -> 0.6 CPU-s). Records that do not come so
    (a run's kind and source again later, many runs, a null in the uid's parts) are sorted by uid."""
    kind, system, ids = records["record_kind"], records["source_system"], records["source_record_id"]
    if records.height == 0 or kind.null_count() or system.null_count() or ids.null_count():
        return records[records.select(UID.arg_sort()).to_series()]
    edge = (kind != kind.shift(1)).fill_null(True) | (system != system.shift(1)).fill_null(True)
    if edge.sum() > MAX_RUNS:
        return records[records.select(UID.arg_sort()).to_series()]
    starts = edge.arg_true().to_list()
    runs = sorted(
        (f"{kind[start]}:{system[start]}:", start, end - start)
        for start, end in zip(starts, [*starts[1:], records.height], strict=True)
    )  # a uid is its run's prefix and its id: the runs' order by prefix is their uids' (no colon in kinds, sources)
    if len({prefix for prefix, _, _ in runs}) < len(runs):
        return records[records.select(UID.arg_sort()).to_series()]
    parts = [records.slice(start, length) for _, start, length in runs]
    parts = [part if part["source_record_id"].is_sorted() else part.sort("source_record_id") for part in parts]
    return pl.concat(parts).rechunk()  # one chunk: gathers from a frame of many chunks cost several times more


def link_exact(records: pl.DataFrame) -> pl.DataFrame:
    """records (source_system, source_record_id, record_kind, phone, email, id_number, customer_ref)
    → (source_system, source_record_id, record_kind, customer_key, match_rule, confidence)."""
    return resolve(records, probabilistic=None)


# -------------------------------------------------------------------------------- pass 2: Splink


def row_features(recs: pl.DataFrame) -> pl.DataFrame:
    """The columns pass 2 compares that each record makes alone (prepared records: prepare_part), any part at a
    time; ``name_bucket`` picks the training sample (the same records on both engines)."""
    digits = pl.col("phone_invalid").str.replace_all(r"\D", "").str.replace(r"^(86|0086)", "")
    email_any = (
        pl.coalesce("email", "email_invalid").str.to_lowercase().str.replace_all(r"[#＠]", "@").str.replace(r"@+", "@")
    )
    company = pl.col("company").str.replace_all(r"[\s\u3000()（）]", "")
    out = recs.select(
        pl.col("node").alias("unique_id"),
        clean_name(pl.col("name")).alias("name"),
        "phone",
        pl.coalesce(
            pl.col("phone").str.slice(0, 10), pl.when(digits.str.contains(r"^1[3-9]\d{8}$")).then(digits)
        ).alias("phone10"),
        "email",
        email_any.str.extract(r"^([^@]+@[^@.]+)").alias("email_key"),  # null where it does not match
        pl.when(company.str.len_chars() >= 4).then(company).alias("company"),
        pl.col("city").str.strip_chars(),
        pl.col("region").str.strip_chars(),
    )
    name_py = pinyin(out["name"]).alias("name_py")
    return out.with_columns(
        name_py,
        pl.col("phone10").str.slice(0, 7).alias("phone7"),
        (name_py.hash(seed=0) % 1_000_000_007).cast(pl.Int64).alias("name_bucket"),
    )


# the columns pass 2 reads, in this order on both engines (name_n: how many records have the name, ex: pass 1's cluster)
FEATURE_COLUMNS = (
    "unique_id", "ex", "name", "phone", "phone10", "email", "email_key", "company", "city", "region", "name_py",
    "name_n", "phone7", "name_bucket",
)  # fmt: skip


def features(recs: pl.DataFrame, exact: np.ndarray) -> pl.DataFrame:
    """The columns pass 2 compares; ``exact`` is each record's pass-1 cluster."""
    out = row_features(recs).with_columns(
        pl.Series("ex", exact, dtype=pl.Int64), pl.len().over("name").cast(pl.Int32).alias("name_n")
    )
    return out.select(FEATURE_COLUMNS)


def _level(sql: str, label: str, **options: Any) -> Any:
    import splink.comparison_level_library as cll

    level = cll.CustomLevel(sql, label_for_charts=label)
    return level.configure(**options) if options else level


# Two strangers almost never share ten phone digits or a mailbox: random sampling rarely sees these
# levels, and an unseen level falls back to Splink's weak default weight, which left a homophone
# with a short phone and a mistyped email at p = 0.6. Homophone names (伟/玮) are commoner: their u
# is only a starting value that sampling replaces when it sees them.
_RARE_U = {"u_probability": 1e-5, "fix_u_probability": True}


def _comparisons() -> list[Any]:
    import splink.comparison_library as cl

    null = {"is_null_level": True}
    return [
        cl.CustomComparison(
            [
                _level("phone10_l IS NULL OR phone10_r IS NULL", "no phone", **null),
                _level("phone_l = phone_r", "same phone", m_probability=0.85),
                _level(
                    # two valid numbers one apart (13800138000, 13800138001) are two phones
                    "phone10_l = phone10_r AND (phone_l IS NULL OR phone_r IS NULL)",
                    "same phone, a digit short",
                    m_probability=0.02,
                    fix_m_probability=True,
                    **_RARE_U,
                ),
                _level("ELSE", "different phone", m_probability=0.13),
            ],
            output_column_name="phone",
        ),
        cl.CustomComparison(
            [
                _level("email_key_l IS NULL OR email_key_r IS NULL", "no email", **null),
                _level("email_l = email_r", "same email", m_probability=0.8),
                _level(
                    "email_key_l = email_key_r",
                    "same mailbox, mistyped",
                    m_probability=0.05,
                    fix_m_probability=True,
                    **_RARE_U,
                ),
                _level("ELSE", "different email", m_probability=0.15),
            ],
            output_column_name="email",
        ),
        cl.CustomComparison(
            [
                _level("name_l IS NULL OR name_r IS NULL", "no name", **null),
                _level(
                    "name_l = name_r",
                    "same name",
                    tf_adjustment_column="name",
                    tf_adjustment_weight=1.0,
                    m_probability=0.88,
                ),
                _level(
                    "name_py_l = name_py_r",
                    "same pinyin",
                    m_probability=0.03,
                    fix_m_probability=True,
                    u_probability=1e-3,
                ),
                _level(
                    "length(name_l) = length(name_r) AND levenshtein(name_l, name_r) <= 3",
                    "one character off",
                    m_probability=0.03,
                    fix_m_probability=True,
                ),
                _level("jaro_winkler_similarity(name_py_l, name_py_r) >= 0.9", "similar pinyin", m_probability=0.02),
                _level("ELSE", "different name", m_probability=0.04),
            ],
            output_column_name="name",
        ),
        cl.CustomComparison(
            [
                _level("company_l IS NULL OR company_r IS NULL", "no company", **null),
                _level("company_l = company_r", "same company", m_probability=0.8),
                _level(
                    "ends_with(company_l, company_r) OR ends_with(company_r, company_l)",
                    "company written short",
                    m_probability=0.1,
                ),
                _level("ELSE", "different company", m_probability=0.1),
            ],
            output_column_name="company",
        ),
        cl.CustomComparison(
            [
                _level(
                    "(city_l IS NULL OR city_r IS NULL) AND (region_l IS NULL OR region_r IS NULL)", "no place", **null
                ),
                _level("city_l = city_r", "same city", m_probability=0.9),
                _level("city_l IS NOT NULL AND city_r IS NOT NULL", "different city", m_probability=0.03),
                _level("region_l = region_r", "same region", m_probability=0.05),
                _level("ELSE", "different region", m_probability=0.02),
            ],
            output_column_name="place",
        ),
    ]


# Candidate pairs: records pass 1 left in different clusters that share one of these. Each rule
# holds a second agreeing field besides the name, because a name and a place alone cannot reach the
# threshold unless the name is rare: with term-frequency adjustment a name shared by c records
# weighs ~1/c whatever the data's size, so the name-and-place rules only take names with at most
# RARE_NAME records. (Blocking common names on place alone made 44M pairs of namesakes at large.)
RARE_NAME = 20
_BLOCKING = (
    "l.phone10 = r.phone10",
    "l.email_key = r.email_key",
    "l.name = r.name AND l.company = r.company",
    "l.name_py = r.name_py AND l.company = r.company",
    "l.name = r.name AND l.phone7 = r.phone7",
    "l.name_py = r.name_py AND l.phone7 = r.phone7",
    f"l.name = r.name AND l.city = r.city AND l.name_n <= {RARE_NAME}",
    f"l.name = r.name AND l.region = r.region AND l.name_n <= {RARE_NAME}",
)
# EM trains the m probabilities of the comparisons a rule does not block on.
_TRAINING = ("l.name = r.name AND l.city = r.city", "l.phone10 = r.phone10")


def block(rule: str) -> Any:
    """A candidate-pair rule for records pass 1 left in different clusters."""
    from splink.blocking_rule_library import CustomRule

    return CustomRule(f"{rule} AND l.ex <> r.ex")


# a record with no name, phone or mailbox meets no blocking rule: it cannot be a candidate
CANDIDATES = "name IS NOT NULL OR phone10 IS NOT NULL OR email_key IS NOT NULL"
# (features, Splink's settings JSON: the parameters and blocking rules, model) → the candidate pairs predict
# returns, scored on another engine (Splink's Spark linker: derived.spark.identity)
Scorer = Callable[[pl.DataFrame, dict[str, Any], Model], pl.DataFrame]
# k → the training sample: the named candidates (FEATURE_COLUMNS) whose name_bucket % k is 0, by unique_id; for
# features kept where they were made (SparkRecords), of which the driver has only unique_id, ex and named
Sampler = Callable[[int], pl.DataFrame]


def predict(
    feats: pl.DataFrame, model: Model, score: Scorer | None = None, sample: Sampler | None = None
) -> pl.DataFrame:
    """Scored candidate pairs (node_l, node_r, match_probability) at or above the model's threshold.

    The model is trained on a sample (whole name groups, so same-name pairs stay together) of at most
    ``model.train_records`` records, then scores every candidate pair of the full data. ``sample``: the features
    are elsewhere (``feats`` has unique_id, ex and named), the sample comes from there and ``score`` scores."""
    from splink import DuckDBAPI, Linker, SettingsCreator
    from splink.internals.exceptions import SplinkException

    if model.trained is not None:  # kept or pinned parameters: scored, not trained
        return _predict_with(feats, model, score)
    logging.getLogger("splink").setLevel(logging.ERROR)
    # every named record is a candidate: the named records are the sample's population and the frequencies' total
    named = int(feats["named"].sum()) if sample is not None else int(feats["name"].is_not_null().sum())
    k = max(1, named // model.train_records)
    prior = _prior(feats)
    with _scoring_connection(model) as con:
        if sample is None:
            _candidates_into(con, feats, handed=score is None)  # scored here: the frame is not read again
            con.execute(
                "CREATE TABLE identity_sample AS SELECT * FROM identity_records "
                "WHERE name IS NOT NULL AND name_bucket % $k = 0",
                {"k": k},
            )
        else:
            con.register("identity_sampled", sample(k).to_arrow())
            con.execute("CREATE TABLE identity_sample AS SELECT * FROM identity_sampled")
            con.unregister("identity_sampled")
        db = DuckDBAPI(con)
        settings = SettingsCreator(
            link_type="dedupe_only",
            comparisons=_comparisons(),
            blocking_rules_to_generate_predictions=[block(rule) for rule in _BLOCKING],
            probability_two_random_records_match=prior,
            retain_matching_columns=False,
            retain_intermediate_calculation_columns=False,
        )
        trainer = Linker(db.register("identity_sample"), settings, log_level=None)
        lap = _Laps(model.stats)
        with contextlib.suppress(SplinkException, ZeroDivisionError):  # too few records to sample: keep the prior u
            trainer.training.estimate_u_using_random_sampling(max_pairs=model.max_pairs, seed=model.seed)
        lap("u")
        trained = []
        for rule in _TRAINING:
            before = trainer.misc.save_model_to_json()
            try:
                trainer.training.estimate_parameters_using_expectation_maximisation(
                    rule, fix_probability_two_random_records_match=True
                )
                trained.append(rule)
            except (ValueError, SplinkException):  # too few pairs, or an m driven to 0: keep the prior m
                # a failed session leaves the model without the comparisons it blocked on and with its
                # own match rate (0.997 on a small company): go back to the model before it
                trainer = Linker(db.register("identity_sample"), before, log_level=None)
        model.stats["em_sessions"] = trained
        lap("em")
        model.trained = trainer.misc.save_model_to_json()  # kept: later builds score with it
        model.tf_total = named
        if score is not None:  # the full data scored elsewhere, with the model trained here
            pairs = score(feats, trainer.misc.save_model_to_json(), model)
        else:  # a fresh copy of the parameters: Splink keeps and may change what it is given
            linker = Linker(db.register("identity_records"), trainer.misc.save_model_to_json(), log_level=None)
            _name_frequencies(con, db, linker, named)  # the data's, not the sample's (as the Spark scorer does)
            pairs = _scored_pairs(con, linker, model)
        lap("predict")
        model.stats["pairs_linked"] = pairs.height
        return pairs


# What Splink's DuckDB gets at least (within the model's memory_limit), however much the process holds: at large a
# full build's process held 4.2 GiB when scoring every candidate pair, which left a shared connection its 512 MiB
# floor, and predict spilled (22 CPU-s, 14 s wall against 8 CPU-s with 1 GiB; the same pairs). Much of what the
# process held then is what DuckDB's allocator kept of the records' reads, which this connection takes again.
SCORING_MEMORY = 2**30
# What the scoring's share of the build's budget ([build_memory]) leaves for the process beside its DuckDB (Splink's
# SQL, the pairs on their way to Python). At large the full build's scoring spilled 236 MB at 1.3 GiB (memory_limit
# less what the process held) and nothing at 2.0 or 2.6 GiB (5.6 -> 5.2-5.3 CPU-s); 6GB less the 2.4 GiB the process
# holds then and this leaves it ~2.1 GiB.
SCORING_HEADROOM = 1024 * 2**20


def _scoring_connection(model: Model) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """The connection Splink trains and scores on: what the process leaves of ``model.memory_limit``, at least
    SCORING_MEMORY (or the limit, when smaller); spilling under ``model.spill_root`` past it."""
    return bounded_connection(model.memory_limit, model.spill_root, shared=True, floor=SCORING_MEMORY)


class _Laps:
    """Seconds per step, into a stats dict (the benchmark prints them)."""

    def __init__(self, stats: dict[str, Any]) -> None:
        self.stats, self.t = stats, time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.stats[f"seconds_{name}"] = round(now - self.t, 2)
        self.t = now


def _prior(feats: pl.DataFrame) -> float:
    """Chance that two random records are one customer: pass 1's pairs, allowing that it finds ~90 %."""
    n = feats.height
    sizes = feats.group_by("ex").len()["len"].to_numpy().astype(np.float64)
    pairs = float((sizes * (sizes - 1) / 2).sum()) / 0.9
    total = n * (n - 1) / 2
    return min(max(pairs / total, 0.1 / n), 0.5) if total else 1e-4


# -------------------------------------------------------------------------------- clustering
class _UnionFind:
    """Greedy constrained clustering: unions in the order given, refusing one that would put two
    records an override keeps apart into one customer."""

    def __init__(self, apart: dict[int, set[int]]) -> None:
        self.parent: dict[int, int] = {}
        self.apart = {k: set(v) for k, v in apart.items()}  # root → nodes that must stay out

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while x != root:
            self.parent[x], x = root, self.parent.get(x, x)
        return root

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        bad_a, bad_b = self.apart.get(ra, set()), self.apart.get(rb, set())
        if any(self.find(x) == rb for x in bad_a) or any(self.find(x) == ra for x in bad_b):
            return False
        self.parent[rb] = ra
        if bad_b:
            self.apart[ra] = bad_a | bad_b
        return True


def _split_apart(
    labels: np.ndarray,
    graph: Graph,
    pairs: pl.DataFrame,
    merge: list[tuple[int, int]],
    detach: list[int],
    apart: list[tuple[int, int]],
) -> np.ndarray:
    """Re-cluster, edge by edge (strongest first), only the clusters an override splits (recluster)."""
    hit = {int(labels[a]) for a, b in apart if labels[a] == labels[b]}
    if not hit:
        return labels
    labels = labels.copy()
    members = np.flatnonzero(np.isin(labels, list(hit)))
    labels[members] = int(labels.max()) + 1 + recluster(members, graph, pairs, merge, detach, apart, len(labels))
    return labels


def recluster(
    members: np.ndarray,
    graph: Graph,
    pairs: pl.DataFrame,
    merge: list[tuple[int, int]],
    detach: list[int],
    apart: list[tuple[int, int]],
    n: int,
) -> np.ndarray:
    """The clusters an override splits (``members``: their records, of ``n``) made again, edge by edge (strongest
    first): their records, the values they share (a node each from ``n`` on, in the values' order), their pairs
    and merges. Each member's new cluster, named by a node (a record's or a value's), in ``members``' order."""
    keep = pl.Series(members, dtype=pl.Int64).implode()
    values = graph.values_of(members)
    m = np.array(merge, dtype=np.int64).reshape(-1, 2)
    edges = pl.concat(
        [  # edges carry a strength: overrides 3, exact 2, probabilistic their probability (< 1)
            values.select(
                pl.col("node").alias("a"), (n + pl.col("value").rank("dense") - 1).cast(pl.Int64).alias("b"),
                pl.lit(2.0).alias("strength"),
            ),
            pairs.filter(pl.col("node_l").is_in(keep) | pl.col("node_r").is_in(keep)).select(
                pl.col("node_l").alias("a"), pl.col("node_r").alias("b"), pl.col("match_probability").alias("strength")
            ),
            pl.DataFrame({"a": m[:, 0], "b": m[:, 1], "strength": np.full(len(m), 3.0)}).filter(
                pl.col("a").is_in(keep)
            ),
        ]
    )  # fmt: skip
    if detach:
        gone = pl.Series(detach, dtype=pl.Int64).implode()
        edges = edges.filter(~(pl.col("a").is_in(gone) | pl.col("b").is_in(gone)) | (pl.col("strength") > 2.5))
    # the edges of a record kept apart from many go last, so the records it is kept from stay together
    bound: dict[int, int] = {}
    for pair in apart:
        for x in pair:
            bound[x] = bound.get(x, 0) + 1
    late = pl.DataFrame({"node": list(bound), "n": list(bound.values())}, schema={"node": pl.Int64, "n": pl.Int64})
    sub = (
        edges.join(late.rename({"node": "a", "n": "na"}), on="a", how="left")
        .join(late.rename({"node": "b", "n": "nb"}), on="b", how="left")
        .with_columns(pl.max_horizontal(pl.col("na").fill_null(0), pl.col("nb").fill_null(0)).alias("late"))
        .sort(["strength", "late", "a", "b"], descending=[True, False, False, False])
    )
    must: dict[int, set[int]] = {}
    for a, b in apart:
        must.setdefault(a, set()).add(b)
        must.setdefault(b, set()).add(a)
    uf = _UnionFind(must)
    for a, b in sub.select("a", "b").iter_rows():
        uf.union(a, b)
    return np.array([uf.find(int(node)) for node in members], dtype=np.int64)


def resolve(
    records: pl.DataFrame | pa.Table | Records,
    probabilistic: Model | None = None,
    overrides: list[Override] | None = None,
    previous: pl.DataFrame | None = None,
    score: Scorer | None = None,
    graph: Graph | None = None,
) -> pl.DataFrame:
    """records (RECORDS_SQL's columns, a frame or an Arrow table; at least source_system, source_record_id,
    record_kind, phone, email, id_number, customer_ref; or Records made elsewhere) → one row per record with
    customer_key, match_rule, confidence. ``graph``: where pass 1 and the clusters are made (None: here, Graph)."""
    source = records if isinstance(records, Records) else Records(records)
    if source.height == 0:
        source.close()
        return pl.DataFrame(schema={c: pl.String for c in LINK_COLUMNS[:-1]} | {"confidence": pl.Float64})
    graph = graph or Graph()
    lap = _Laps(probabilistic.stats if probabilistic else {})
    try:
        exact = graph.exact(source.nodes())
        pairs = pl.DataFrame(schema=_PAIR_SCHEMA)
        lap("exact")
        feats = source.features(exact) if probabilistic is not None else None
        recs = source.recs  # the links' columns only, once the features are made
        if probabilistic is not None and feats is not None:
            lap("features")
            feats, kept_pairs = _against_kept(recs, feats, probabilistic)  # all: nothing kept
            pairs = predict(feats, probabilistic, score, source.sample)
            pairs = probabilistic.pairs = pl.concat([kept_pairs, pairs.cast(kept_pairs.schema)])
            lap = _Laps(probabilistic.stats)
        del feats
        out = graph.links(recs, exact, pairs, _override_nodes(recs, overrides or []), previous)
        rows = getattr(source, "rows", None)  # Records': each node's row in the records (not SparkRecords')
        if graph.order is not None and rows is not None and len(rows) == out.height:
            graph.record_links = _record_links(rows, graph.order)
    finally:
        graph.close()
        source.close()
    lap("cluster")
    return out


def _finish(
    recs: pl.DataFrame,
    rule: np.ndarray,
    pairs: pl.DataFrame,
    merge: list[tuple[int, int]],
    labels: np.ndarray,
    previous: pl.DataFrame | None,
) -> tuple[pl.DataFrame, pl.Series | None, Merged | None, np.ndarray | None]:
    """The links (LINK_COLUMNS, by key), the keys of the records that moved since ``previous`` (_moved), the
    keys that went (_merged) and each link's record (its row of ``recs``; None where the links were sorted)."""
    # Per-record figures are gathered by integer id into arrays: joins would copy the records' string
    # columns once per join (measured at large: three joins held 0.6 GB more at the build's peak).
    n = recs.height
    comp = labels.astype(np.int64)
    ex = recs["ex"].to_numpy().astype(np.int64)
    # pairs that survived clustering: how sure we are that each pass-1 cluster belongs where it is
    node_l, node_r = pairs["node_l"].to_numpy(), pairs["node_r"].to_numpy()
    kept = labels[node_l] == labels[node_r]
    prob = pairs["match_probability"].to_numpy()[kept]
    width = int(ex.max()) + 1
    best = np.full(width, np.nan)
    np.fmax.at(best, ex[node_l[kept]], prob)
    np.fmax.at(best, ex[node_r[kept]], prob)
    forced = np.zeros(n, dtype=bool)
    forced[[int(i) for pair in merge for i in pair]] = True
    figures = pl.DataFrame(
        {
            "members": np.bincount(comp)[comp],
            "exact_clusters": _clusters_per_component(comp, ex, width)[comp],
            "forced": forced,
            "rule": pl.Series(rule).replace(0, None),
            "p": pl.Series(best[ex], nan_to_null=True),
        }
    )
    out = figures.select(
        pl.when(pl.col("members") == 1)
        .then(pl.lit("single"))
        .when(pl.col("forced"))
        .then(pl.lit("override"))
        .when(pl.col("rule").is_not_null())
        .then(pl.col("rule").replace_strict(RULE_NAMES, default="exact", return_dtype=pl.String))
        .when(pl.col("p").is_not_null())
        .then(pl.lit("probabilistic"))
        .otherwise(pl.lit("override"))
        .alias("match_rule"),
        pl.when((pl.col("exact_clusters") == 1) | pl.col("forced"))
        .then(1.0)
        .otherwise(pl.col("p").fill_null(1.0))
        .mul(10_000)
        .floor()
        .truediv(10_000)  # down, so that only a certain link shows 1.0
        .alias("confidence"),
    )
    keys, held, known = _assigned_keys(recs.select("component", "uid", "ref"), previous)
    # each record's row of ``keys`` by an array over the components, not a join
    component = recs["component"].to_numpy().astype(np.int64)
    row = np.zeros(int(component.max(initial=0)) + 1, dtype=np.int64)
    row[keys["component"].to_numpy().astype(np.int64)] = np.arange(keys.height)
    row = row[component]
    links = recs.select("source_system", "source_record_id", "record_kind").with_columns(
        keys["customer_key"].gather(row), out["match_rule"], out["confidence"]
    )
    moved = _moved(links, held) if held is not None else None
    order = _link_order(recs["ref"], recs["source_system"], keys, row, known)
    if order is None:
        out = links.select(*LINK_COLUMNS).sort("customer_key", "source_system", "source_record_id")
    else:
        out = links.select(*LINK_COLUMNS).rechunk()[order]
    merged = _merged(links["customer_key"], held, out["customer_key"]) if held is not None else None
    return out, moved, merged, None if order is None else order.to_numpy()


def _link_order(
    ref: pl.Series, systems: pl.Series, keys: pl.DataFrame, row: np.ndarray, known: pl.Series
) -> pl.Series | None:
    """The links' order (by customer_key, source_system, source_record_id) told by integers: the records' rows of
    ``keys`` (``row``; ``keys``: component, customer_key, and ``code``, a kept key's rank among the previous keys
    ``known``, in order) and their ``ref`` (source_system:source_record_id). A kept key's place comes from the
    previous links' order; only the others (a full build's few, every key of a first build) are placed among them by
    their strings. Sorting the links by the three strings cost ~1.2 CPU-s at large, the random keys' comparisons
    most of it. None where a source's name begins another's (crm, crm2: source:id would not sort as the two)."""
    names = systems.unique().drop_nulls().to_list()
    if any(a != b and b.startswith(a) for a in names for b in names) or ref.null_count():
        return None
    code = keys["code"]
    other = code.is_null()
    placed = keys["customer_key"].filter(other)
    at = known.search_sorted(placed, side="left").cast(pl.Int64).to_numpy() if known.len() else np.zeros(placed.len())
    among = np.empty(placed.len(), dtype=np.int64)  # the others' order among themselves
    among[placed.arg_sort().to_numpy()] = np.arange(placed.len())
    # (place among the previous keys, before a kept key at that place, order among the others), as one integer
    width = placed.len() + 1
    place = code.fill_null(0).to_numpy().astype(np.int64) * 2 * width + width
    place[other.to_numpy()] = at.astype(np.int64) * 2 * width + among
    rank = np.empty(keys.height, dtype=np.int64)  # each key's rank in the links' order
    rank[pl.Series(place).arg_sort().to_numpy()] = np.arange(keys.height)
    n = len(row)
    by_ref = np.empty(n, dtype=np.int64)  # a record's rank by source and id
    by_ref[ref.arg_sort().to_numpy()] = np.arange(n)
    return pl.Series(rank[row] * n + by_ref).arg_sort()


def _moved(links: pl.DataFrame, held: Held) -> pl.Series:
    """The keys, previous and new, of the records that joined, left or changed key or confidence: what
    derived.golden.touched_customers finds by joining the two builds' links, found from assign_keys' join of each
    record to its previous link (``held``; ``links`` in the records' order). A ref is source_system:source_record_id
    (source names hold no colon): the same ref and record kind are the same record."""
    i, j, before = held.record, held.previous, held.links
    same = (links["record_kind"].gather(i) == before["record_kind"].gather(j)).to_numpy()
    i, j = i[same], j[same]
    old_key, new_key = before["customer_key"], links["customer_key"]
    changed = (
        new_key.gather(i).ne_missing(old_key.gather(j))
        | links["confidence"].gather(i).ne_missing(before["confidence"].gather(j))
    ).to_numpy()
    joined = np.ones(links.height, dtype=bool)
    joined[i] = False
    left = np.ones(before.height, dtype=bool)
    left[j] = False
    parts = [old_key.gather(j[changed]), new_key.gather(i[changed]), new_key.filter(joined), old_key.filter(left)]
    return pl.concat([p.cast(pl.String) for p in parts]).drop_nulls().unique().alias("customer_key")


def _clusters_per_component(comp: np.ndarray, ex: np.ndarray, width: int) -> np.ndarray:
    """How many pass-1 clusters (``ex``, below ``width``) each component holds. A pass-1 cluster lies in one
    component unless an override cut it: then the (component, cluster) pairs are counted (np.unique's sort, 20x
    the CPU of the arrays at medium)."""
    owner = np.zeros(width, dtype=np.int64)
    owner[ex] = comp
    components = int(comp.max(initial=0)) + 1
    if (owner[ex] == comp).all():
        return np.bincount(owner[np.bincount(ex, minlength=width) > 0], minlength=components)
    return np.bincount(np.unique(comp * width + ex) // width, minlength=components)


# -------------------------------------------------------------------------------- stable keys
def _fresh_key(uid: str) -> str:
    import hashlib

    return "C" + hashlib.md5(uid.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Held:
    """assign_keys' join of the records to their previous links: the records' rows (``record``) and the rows of
    ``links`` (the previous links, record_kind, customer_key and confidence) of the same ref (``previous``)."""

    record: np.ndarray
    previous: np.ndarray
    links: pl.DataFrame


def _record_links(rows: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Each record's row in the links, by its row in the records: ``rows`` each node's row in the records,
    ``order`` each link's node."""
    link_of_node = np.empty(len(order), dtype=np.int64)
    link_of_node[order] = np.arange(len(order))
    out = np.empty(len(rows), dtype=np.int64)
    out[rows] = link_of_node
    return out


def assign_keys(members: pl.DataFrame, previous: pl.DataFrame | None) -> pl.DataFrame:
    """component → customer_key. A component keeps the previous key most of its records had (a key
    two components claim stays with the one holding more of its records); otherwise it gets
    'C' + 12 hex digits of md5 of its smallest record id.

    A component whose records had one previous key between them, held by no other component's records, keeps
    it without a vote (the vote could give it nothing else): an incremental build's components are mostly
    those, so only the components records joined or left are voted on (_voted_keys)."""
    return _assigned_keys(members, previous)[0].drop("code")


def _assigned_keys(members: pl.DataFrame, previous: pl.DataFrame | None) -> tuple[pl.DataFrame, Held | None, pl.Series]:
    """assign_keys (with ``code``: a kept key's rank among the previous keys, null for the others), its join of the
    records to ``previous`` when ``previous`` has the links' record_kind and confidence (Held: the records that moved
    are told from it; else None) and the previous keys in order."""
    none = pl.Series("customer_key", [], dtype=pl.String)
    if previous is None or not previous.height:
        return _voted_keys(members, None, none).with_columns(pl.lit(None, pl.Int64).alias("code")), None, none
    told = [c for c in ("record_kind", "confidence") if c in previous.columns]  # what tells the records that moved
    prev = previous.select(
        (pl.col("source_system") + ":" + pl.col("source_record_id")).alias("ref"), "customer_key", *told
    )
    if not prev["customer_key"].is_sorted():  # a build's links are written sorted by key
        prev = prev.sort("customer_key")
    # the keys numbered (in key order), and the components and keys compared by arrays indexed by them, not grouped
    # by their strings (at medium 0.06 -> 0.04 CPU-s); a component is numbered below the records' count
    code = prev["customer_key"].rle_id().cast(pl.Int64)
    keys = prev["customer_key"].filter(code.diff().fill_null(1) != 0)  # sorted: each key's first row
    held = (
        members.select("component", "ref")
        .with_row_index("i")
        .join(prev.select("ref", code.alias("code")).with_row_index("j"), on="ref")
    )
    component, key = held["component"].to_numpy().astype(np.int64), held["code"].to_numpy()
    key_of = np.full(int(component.max(initial=0)) + 1, -1, dtype=np.int64)  # a component's key (one of them)
    key_of[component] = key
    component_of = np.full(len(keys), -1, dtype=np.int64)  # a key's component (one of them)
    component_of[key] = component
    keys_many = np.zeros(len(key_of), dtype=bool)  # a component whose records had two keys or more
    keys_many[component[key != key_of[component]]] = True
    components_many = np.zeros(len(keys), dtype=bool)  # a key whose records are in two components or more
    components_many[key[component != component_of[key]]] = True
    sole = np.flatnonzero((key_of >= 0) & ~keys_many)
    sole = sole[~components_many[key_of[sole]]]
    kept = pl.DataFrame(
        {
            "component": pl.Series(sole).cast(members["component"].dtype),
            "customer_key": keys.gather(key_of[sole]),
            "code": key_of[sole],
        }
    )
    rest = members.join(kept, on="component", how="anti")
    voted = _voted_keys(rest, prev.select("ref", "customer_key"), kept["customer_key"])
    keyed = pl.concat([kept, voted.with_columns(pl.lit(None, pl.Int64).alias("code"))])
    if len(told) < 2:
        return keyed, None, keys
    return (
        keyed,
        Held(held["i"].to_numpy(), held["j"].to_numpy(), prev.select("record_kind", "customer_key", "confidence")),
        keys,
    )


FEW_FRESH = 5_000  # up to this many fresh keys are made in Python (_fresh_key), more by DuckDB's md5 (the same keys)


def _voted_keys(members: pl.DataFrame, prev: pl.DataFrame | None, kept: pl.Series) -> pl.DataFrame:
    """assign_keys for ``members`` by votes: ``prev`` (ref, customer_key) the previous keys, ``kept`` the keys other
    components keep (a fresh key must not be one of them)."""
    claimed = pl.DataFrame(schema={"component": members["component"].dtype, "customer_key": pl.String})
    if not members.height:  # every component kept its key: no join of nothing to every previous link, no set of keys
        return claimed
    anchors = members.group_by("component").agg(pl.col("uid").min().alias("anchor"))
    if prev is not None and prev.height:
        # ties go to the component with the smallest record id: the same in any order the records come in
        votes = (
            members.join(prev, on="ref")
            .group_by("component", "customer_key")
            .len()
            .join(anchors, on="component")
            .sort(["len", "customer_key", "anchor"], descending=[True, False, False])
        )
        # each key to the component holding most of its records, then each component its best key
        by_key = votes.unique("customer_key", keep="first", maintain_order=True)
        claimed = by_key.unique("component", keep="first", maintain_order=True).select("component", "customer_key")
    fresh = anchors.join(claimed, on="component", how="anti")
    if fresh.height <= FEW_FRESH:  # an incremental build's few: no DuckDB connection for them
        made = [_fresh_key(anchor) for anchor in fresh["anchor"]]
        fresh = fresh.with_columns(pl.Series("customer_key", made, dtype=pl.String))
    else:
        with duckdb.connect() as con:
            con.register("fresh", fresh)
            fresh = con.sql("SELECT component, anchor, 'C' || left(md5(anchor), 12) AS customer_key FROM fresh").pl()
    taken = pl.concat([claimed["customer_key"], kept]).implode()
    clash = fresh["customer_key"].is_in(taken) | fresh["customer_key"].is_duplicated()
    keys = []
    if clash.any():  # rare: the set of every key taken is made only then
        keys = settle_clashes(fresh.filter(clash).iter_rows(), set(taken.explode().to_list()))
    fresh_keys = pl.concat(
        [
            fresh.filter(~clash).select("component", "customer_key"),
            pl.DataFrame(keys, schema=claimed.schema, orient="row"),
        ]
    )
    return pl.concat([claimed, fresh_keys])


SALTS = 16  # a clashing fresh key is salted at most this many times (derived.spark.identity asks about these)


def salted_keys(anchor: str) -> list[str]:
    """The keys a component anchored at ``anchor`` may get: its fresh key, then salted ones (settle_clashes)."""
    return [_fresh_key(anchor)] + [_fresh_key(f"{anchor}#{salt}") for salt in range(1, SALTS + 1)]


def settle_clashes(clashes: Iterable[tuple[Any, str, str]], taken: set[str]) -> list[tuple[Any, str]]:
    """(component, anchor, fresh key) of the components whose fresh key another has (a kept key in ``taken``, or
    one fresh key twice) → (component, key): the first free of its salted keys, in the order given."""
    keys = []
    for component, anchor, key in clashes:
        salt = 0
        while key in taken:  # a split-off part whose anchor once named the whole customer
            salt += 1
            if salt > SALTS:
                raise RuntimeError(f"no free customer key for the records of {anchor} after {SALTS} salts")
            key = _fresh_key(f"{anchor}#{salt}")
        taken.add(key)
        keys.append((component, key))
    return keys


# -------------------------------------------------------------------------------- overrides
OVERRIDE_COLUMNS = ("action", "source_system", "source_record_id", "other_source_system", "other_source_record_id")


def read_overrides(path: Path) -> list[Override]:
    """The override file (CSV): action (merge | split | detach), source_system, source_record_id,
    other_source_system, other_source_record_id (empty for detach), and any note columns."""
    if not path.is_file():
        raise ConfigError(f"{path}: identity override file not found")
    out: list[Override] = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in OVERRIDE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(
                f"{path}: missing column(s) {', '.join(missing)} (expected {', '.join(OVERRIDE_COLUMNS)})"
            )
        for row_no, row in enumerate(reader, start=2):
            action = (row["action"] or "").strip().lower()
            left = f"{(row['source_system'] or '').strip()}:{(row['source_record_id'] or '').strip()}"
            right = f"{(row['other_source_system'] or '').strip()}:{(row['other_source_record_id'] or '').strip()}"
            if action not in ("merge", "split", "detach"):
                raise ConfigError(f"{path}: row {row_no}, column action: '{action}' is not merge, split or detach")
            for column, ref in (("source_record_id", left), ("other_source_record_id", right)):
                if (column == "source_record_id" or action != "detach") and (ref.startswith(":") or ref.endswith(":")):
                    raise ConfigError(f"{path}: row {row_no}, column {column}: a source and a record id are needed")
            out.append(Override(action, left, right if action != "detach" else ""))
    return out


def _override_nodes(
    recs: pl.DataFrame, overrides: list[Override]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[int]]:
    """Overrides as node ids; a record the data no longer has is ignored (it may come back)."""
    if not overrides:
        return [], [], []
    wanted = {o.left for o in overrides} | {o.right for o in overrides if o.right}
    ref = pl.col("source_system") + ":" + pl.col("source_record_id")
    found = recs.filter(ref.is_in(list(wanted))).group_by(ref.alias("ref")).agg(pl.col("node").min())
    node = dict(found.iter_rows())
    merge = [
        (node[o.left], node[o.right]) for o in overrides if o.action == "merge" and {o.left, o.right} <= node.keys()
    ]
    apart = [
        (node[o.left], node[o.right]) for o in overrides if o.action == "split" and {o.left, o.right} <= node.keys()
    ]
    detach = [node[o.left] for o in overrides if o.action == "detach" and o.left in node]
    return merge, apart, detach


# -------------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class Score:
    records: int
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def precision(self) -> float:
        return self.correct_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.correct_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def evaluate(links: pl.DataFrame, truth: pl.DataFrame) -> Score:
    """Pairwise scores of links against truth (source_system, source_record_id, person_id), over the
    records both know."""
    j = links.select("source_system", "source_record_id", "customer_key").join(
        truth.select("source_system", pl.col("source_record_id").cast(pl.String), "person_id"),
        on=["source_system", "source_record_id"],
    )

    def pairs(*by: str) -> int:
        sizes = j.group_by(*by).len()["len"].cast(pl.Int64)
        return int((sizes * (sizes - 1) // 2).sum())

    return Score(j.height, pairs("person_id"), pairs("customer_key"), pairs("customer_key", "person_id"))


# -------------------------------------------------------------------------------- the derived build
def build_links(
    settings: Settings,
    con: duckdb.DuckDBPyConnection,
    previous: pl.DataFrame | None,
    records: pl.DataFrame | pa.Table | None = None,
    score: Scorer | None = None,
    *,
    kept: Kept | None = None,
    graph: Graph | None = None,
    made: Records | None = None,
) -> tuple[pl.DataFrame | pa.Table | None, pl.DataFrame, Model | None]:
    """(records, links, model) of a derived build: ``con`` has the entity views; ``previous`` (the current
    build's source_system, source_record_id, customer_key, if any) hands its keys on; ``records``: the
    records when already read (read_records, or record_table's Arrow); ``kept`` (kept_resolution): the parameters
    to score with and the previous build's resolution to resolve only what changed against (None: train, resolve
    all); ``graph``:
    where pass 1 and the clusters are made (None: here); ``made``: the records and features made there too
    (SparkRecords), resolved instead of ``records``."""
    cfg = settings.identity
    overrides = read_overrides(settings.base_dir / cfg.overrides) if cfg.overrides else []
    records = read_records(con) if records is None and made is None else records
    model = (
        Model(
            threshold=cfg.match_threshold,
            memory_limit=settings.memory_limit,
            memory_budget=settings.build_memory,
            spill_root=settings.spill_path,
        )
        if cfg.probabilistic
        else None
    )
    if model is not None and kept is not None:
        model.trained, model.tf_total = kept.trained, kept.tf_total
        model.kept = kept if kept.state is not None else None
        model.stats["resolution"] = "full: " + kept.reason if kept.reason else "incremental"
    resolved = records if made is None else made
    assert resolved is not None
    return records, resolve(resolved, model, overrides, previous, score, graph), model


def previous_table(store: Store, manifest: Manifest, table: str, columns: list[str]) -> pl.DataFrame | None:
    """A table of the current derived build (the one this build replaces), or None when it has none."""
    rel = ((manifest.get("derived") or {}).get("tables") or {}).get(table)
    if not rel or not store.abs(rel).is_file():
        return None
    return pl.read_parquet(store.abs(rel), columns=columns)


REDIRECT_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "old_key": pl.String,
    "customer_key": pl.String,
    "merged_at": pl.Datetime("us"),
}


def redirects(
    previous: pl.DataFrame | None,
    links: pl.DataFrame,
    earlier: pl.DataFrame | None,
    now: datetime,
    merged: Merged | None = None,
) -> pl.DataFrame:
    """Where the keys that disappeared went: a key of the previous build that no customer has now points
    to the key most of its records have now (ties: the smaller key), so a bookmark or a churn list of
    last week still opens the customer. Earlier redirects are kept, re-pointed when their target went
    too, and dropped when their key is a customer again (a split gave it back) or its records are gone.
    ``merged``: the keys that went and where, as assign_keys' join told them (Graph.merged; the same rows)."""
    stamp = pl.lit(now, dtype=pl.Datetime("us")).alias("merged_at")
    if merged is not None:
        moved = merged.moved.select("old_key", "customer_key", stamp)

        def held(key: pl.Series) -> pl.Series:
            return _among(key, merged.keys)
    else:
        current = links.select("source_system", "source_record_id", "customer_key")
        keys = current["customer_key"].unique().implode()

        def held(key: pl.Series) -> pl.Series:
            return key.is_in(keys)

        moved = pl.DataFrame(schema=REDIRECT_SCHEMA)
        if previous is not None and previous.height:
            gone = previous.filter(~held(previous["customer_key"]))
            moved = _by_most(gone.rename({"customer_key": "old_key"}).join(current, on=_REF)).select(
                "old_key", "customer_key", stamp
            )
    kept = pl.DataFrame(schema=REDIRECT_SCHEMA)
    if earlier is not None and earlier.height:
        hop = moved.select(pl.col("old_key").alias("customer_key"), pl.col("customer_key").alias("next_key"))
        kept = earlier.join(hop, on="customer_key", how="left").with_columns(
            pl.coalesce("next_key", "customer_key").alias("customer_key")
        )
        kept = kept.filter(held(kept["customer_key"])).select(list(REDIRECT_SCHEMA))
    out = pl.concat([moved, kept.join(moved, on="old_key", how="anti")])
    return out.filter(~held(out["old_key"])).sort("old_key")


_REF = ["source_system", "source_record_id"]


def _by_most(pairs: pl.DataFrame) -> pl.DataFrame:
    """(old_key, customer_key) of each record that had old_key → each old_key with the key most of them have now
    (ties: the smaller key)."""
    return (
        pairs.group_by("old_key", "customer_key")
        .len()
        .sort(["old_key", "len", "customer_key"], descending=[False, True, False])
        .unique("old_key", keep="first", maintain_order=True)
        .select("old_key", "customer_key")
    )


@dataclass(frozen=True)
class Merged:
    """The previous build's keys that no customer has now, each with the key most of its records have now
    (redirects' new rows), told from assign_keys' join of the records to their previous links; and this build's
    keys in order (``keys``: whether a key is a customer's, by binary search)."""

    moved: pl.DataFrame  # old_key, customer_key
    keys: pl.Series


def _merged(key: pl.Series, held: Held, keys: pl.Series) -> Merged:
    """Merged from ``key`` (each record's key now, in the records' order), ``held`` and ``keys`` (sorted). A previous
    key is still a customer's when a record that had it has it now; the others (few: merged or gone) are looked up
    in ``keys`` (a fresh key can be an old one made again). Arrays over the previous keys' codes, not a hash of
    every key (redirects by joins: 1.5 CPU-s at large, nearly all in the set of keys and its lookup)."""
    i, j = held.record, held.previous
    before = held.links["customer_key"]  # sorted (assign_keys)
    code = before.rle_id().cast(pl.Int64).to_numpy()
    width = int(code.max(initial=-1)) + 1
    now, was = key.gather(i), before.gather(j)
    still = np.zeros(width, dtype=bool)
    still[code[j][(now == was).fill_null(False).to_numpy()]] = True
    first = np.flatnonzero(np.r_[True, code[1:] != code[:-1]]) if len(code) else np.zeros(0, dtype=np.int64)
    lost = np.flatnonzero(~still)
    still[lost] = _among(before.gather(first[lost]), keys).to_numpy()
    gone = pl.Series(~still[code[j]])
    pairs = pl.DataFrame({"old_key": was.filter(gone), "customer_key": now.filter(gone)})
    return Merged(_by_most(pairs), keys)


def _among(values: pl.Series, ordered: pl.Series) -> pl.Series:
    """Whether each of ``values`` is one of ``ordered`` (sorted ascending), by binary search."""
    if ordered.is_empty():
        return pl.Series(np.zeros(len(values), dtype=bool))
    at = ordered.search_sorted(values).clip(0, len(ordered) - 1)
    return (ordered.gather(at) == values).fill_null(False)


def evaluate_current(settings: Settings) -> list[tuple[str, Score]]:
    """The current links and exact rules alone, each scored against ``<data_dir>/demo_truth/identity.csv``."""
    store = Store(settings.data_path)
    truth_path = settings.data_path / "demo_truth" / "identity.csv"
    if not truth_path.is_file():
        raise ConfigError(f"no ground truth to score against: {truth_path} does not exist (the demo writes it)")
    truth = pl.read_csv(truth_path, schema_overrides={"source_record_id": pl.String})
    missing = {"source_system", "source_record_id", "person_id"} - set(truth.columns)
    if missing:
        raise ConfigError(f"{truth_path}: missing column(s) {', '.join(sorted(missing))}")
    manifest = store.read_manifest()
    rel = ((manifest.get("derived") or {}).get("tables") or {}).get("identity_links")
    if not rel:
        raise ConfigError("no identity links yet: run `cockpit refresh` first")
    current = pl.read_parquet(store.abs(rel))
    with duckdb.connect() as con:
        attach_entities(con, store, manifest)
        exact = resolve(read_records(con))
    return [("exact rules only", evaluate(exact, truth)), ("current links", evaluate(current, truth))]


# -------------------------------------------------------------------------------- incremental resolution
# What a build keeps so that the next one resolves only what changed (issue 22): per record a digest of
# what pass 2 compares, its name (hashed) and its pass-1 cluster; the pairs Splink accepted; the parameters.
# Pass 1, the clusters, overrides and keys are made again over all records (they are cheap next to Splink).
STATE_TABLES: dict[str, dict[str, str]] = {
    "identity_state": {
        "source_system": "VARCHAR",
        "source_record_id": "VARCHAR",
        "record_kind": "VARCHAR",
        "rid": "BIGINT",
        "digest": "UBIGINT",
        "name_hash": "UBIGINT",
        "ex": "BIGINT",
    },
    "identity_pairs": {"rid_l": "BIGINT", "rid_r": "BIGINT", "match_probability": "DOUBLE"},
    # the names' characters' pinyin looked up so far (core.parse.pinyin's cache) and by which pypinyin: the next
    # build takes them from here and loads pypinyin only for a character it has not seen (known_readings)
    "identity_pinyin": {"char": "VARCHAR", "reading": "VARCHAR", "pypinyin": "VARCHAR"},
    "identity_model": {
        "model_json": "VARCHAR",
        "tf_total": "BIGINT",
        "trained_at": "TIMESTAMP",
        "threshold": "DOUBLE",
        "version": "VARCHAR",
        "resolution": "VARCHAR",
        "records": "BIGINT",
        "changed": "BIGINT",
        "scored": "BIGINT",
    },
}
_COMPARED = ("name", "name_py", "phone", "phone10", "email", "email_key", "company", "city", "region")
_RECORD_KEY = ["source_system", "source_record_id", "record_kind"]
_PAIR_SCHEMA = {"node_l": pl.Int64, "node_r": pl.Int64, "match_probability": pl.Float64}


@dataclass(frozen=True)
class Kept:
    """What a build resolves with (kept_resolution): the parameters, and the previous build's records and
    pairs when only what changed is resolved again (``state`` None: all records, ``reason`` says why)."""

    trained: dict[str, Any] | None  # Splink's parameters; None: train them in this build
    tf_total: int
    trained_at: datetime | None  # None: pinned ([identity] model) or trained in this build
    state: pl.DataFrame | None = None
    pairs: pl.DataFrame | None = None
    max_share: float = 1.0  # more records new, changed or gone than this share: all resolved again
    reason: str | None = None


def _restrict(rule: str) -> str:
    """A blocking rule cut to the pairs that can differ from the kept ones: one end changed or touched
    (its pass-1 cluster or a rare name's count changed), or both ends of a name whose frequency changed. One
    rule, the three cases OR'ed after its equalities (Splink joins on those): as three rules each pair was
    joined three times and every later rule tested against all earlier ones (predict's CPU 0.15 -> 0.06 s at
    medium's web_forms change, the same pairs)."""
    return f"{rule} AND l.ex <> r.ex AND (l.dirty OR r.dirty OR (l.name_dirty AND l.name = r.name))"


def _near(cands: pl.DataFrame) -> pl.DataFrame:
    """The candidates (CANDIDATES) a restricted scoring reads: the touched ones (dirty, name_dirty) and those sharing
    a phone, a mailbox, a name or its pinyin with a dirty one (every rule joins on one of those), in their order."""
    dirty = cands.filter("dirty")
    shares = [
        pl.col(c).is_in(dirty.get_column(c).drop_nulls().implode()).fill_null(False)
        for c in ("phone10", "email_key", "name", "name_py")
    ]
    return cands.filter(pl.any_horizontal("dirty", "name_dirty", *shares))


def _predict_with(feats: pl.DataFrame, model: Model, score: Scorer | None = None) -> pl.DataFrame:
    """predict with given parameters (``model.trained``): every candidate pair, or with ``dirty`` and
    ``name_dirty`` columns in ``feats`` only those _restrict keeps. A name's term frequency is its count
    over the model's ``tf_total``, so a pair of unchanged records scores what it scored before."""
    from splink import DuckDBAPI, Linker

    logging.getLogger("splink").setLevel(logging.ERROR)
    lap = _Laps(model.stats)
    restricted = "dirty" in feats.columns
    if restricted and not (feats["dirty"].any() or feats["name_dirty"].any()):
        model.stats["pairs_linked"] = 0
        return pl.DataFrame(schema=_PAIR_SCHEMA)
    rules = [_restrict(rule) if restricted else f"{rule} AND l.ex <> r.ex" for rule in _BLOCKING]
    settings = json.loads(json.dumps(model.trained))  # Splink keeps and may change what it is given
    settings["blocking_rules_to_generate_predictions"] = [{"blocking_rule": r, "sql_dialect": "duckdb"} for r in rules]
    if score is not None:  # on another engine (Splink's Spark linker), with these rules and term frequencies
        pairs = score(feats, settings, model)
        lap("predict")
        model.stats["pairs_linked"] = pairs.height
        return pairs
    counts = None
    if restricted:  # only the records that can pair with a touched one go to DuckDB; term frequencies: all
        cands = feats.filter(
            pl.col("name").is_not_null() | pl.col("phone10").is_not_null() | pl.col("email_key").is_not_null()
        )
        feats = _near(cands)
        counts = (
            cands.filter(pl.col("name").is_in(feats.get_column("name").drop_nulls().implode()))
            .group_by("name")
            .len("n")
        )
    with _scoring_connection(model) as con:
        _candidates_into(con, feats, handed=True)
        db = DuckDBAPI(con)
        # the parameters are this module's own, checked when trained: Splink's check of them only logs
        linker = Linker(db.register("identity_records"), settings, log_level=None, validate_settings=False)
        _name_frequencies(con, db, linker, model.tf_total, counts)
        pairs = _scored_pairs(con, linker, model)
    lap("predict")
    model.stats["pairs_linked"] = pairs.height
    return pairs


def _name_frequencies(
    con: duckdb.DuckDBPyConnection, db: Any, linker: Any, total: int, counts: pl.DataFrame | None = None
) -> None:
    """The names' term frequencies ``linker`` scores with: each name's count in identity_records over ``total``
    (every named record). Registered, not left to Splink: Splink keeps the lookups it makes per connection (its
    DuckDBAPI's cache), so a linker scoring all records on the connection a model was trained on would reuse the
    training sample's: it holds whole name groups, so a sampled name's frequency there is the data's times the
    named records over the sampled ones (at large 2,877,017 / 168,731 = 17.05: 12,067 pairs fewer accepted)."""
    if counts is not None:  # (name, n): the names' counts made elsewhere
        con.register("identity_name_counts", counts.to_arrow())
        sql = "SELECT name, CAST(n AS DOUBLE) / $total AS tf_name FROM identity_name_counts"
    else:
        sql = (
            "SELECT name, CAST(count(*) AS DOUBLE) / $total AS tf_name FROM identity_records "
            "WHERE name IS NOT NULL GROUP BY name"
        )
    con.execute(f"CREATE OR REPLACE TABLE identity_tf_name AS {sql}", {"total": max(total, 1)})
    linker.table_management.register_term_frequency_lookup(db.register("identity_tf_name"), "name")


def _candidates_into(con: duckdb.DuckDBPyConnection, feats: pl.DataFrame, handed: bool) -> None:
    """identity_records in ``con``: the candidates (CANDIDATES) of ``feats``, copied. ``handed``: nothing reads the
    frame after (the caller's is emptied too: its columns dropped in place), so the process does not hold the
    features twice while Splink scores them (at large ~0.9 GiB, and the scoring connection's share was short of it)."""
    con.register("identity_features", feats.to_arrow())
    con.execute(f"CREATE TABLE identity_records AS SELECT * FROM identity_features WHERE {CANDIDATES}")
    con.unregister("identity_features")
    if handed:
        for column in feats.columns:
            feats.drop_in_place(column)


def _scored_pairs(con: duckdb.DuckDBPyConnection, linker: Any, model: Model) -> pl.DataFrame:
    """The pairs Splink's ``linker`` scores at or above the model's threshold: node_l, node_r, match_probability.
    The connection's share is taken again first (what the process holds now: the features were copied into DuckDB
    and dropped, the training's frames freed), never below what it had: with a budget (``model.memory_budget``) what
    it leaves of the process and SCORING_HEADROOM, as the derived build's later steps get theirs (step_share)."""
    if model.memory_limit:
        trim_heap()
        if model.memory_budget:
            budget, limit = size_bytes(model.memory_budget), size_bytes(model.memory_limit)
            share = f"{step_share(budget, process_rss(), limit, SCORING_HEADROOM) // 2**20}MiB"
        else:
            share = process_share(model.memory_limit, SCORING_MEMORY)
        held = con.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]
        if size_bytes(share) > size_bytes(str(held)):
            con.execute("SET memory_limit = $limit", {"limit": share})
    scored = linker.inference.predict(threshold_match_probability=model.threshold, warning_mode="never")
    return con.sql(
        f"SELECT unique_id_l AS node_l, unique_id_r AS node_r, match_probability FROM {scored.physical_name}"
    ).pl()  # Splink's own table name


def state_hashes(feats: pl.DataFrame) -> pl.DataFrame:
    """A record's digest of what pass 2 compares and its name's hash (identity_state), record by record."""
    return feats.select(
        pl.struct(list(_COMPARED)).hash().alias("digest"),
        pl.when(pl.col("name").is_not_null()).then(pl.col("name").hash()).alias("name_hash"),
    )


def _record_state(recs: pl.DataFrame, feats: pl.DataFrame) -> pl.DataFrame:
    """identity_state's rows: a record's rid is its node in this build (the pairs name nodes). Features made
    elsewhere (on Spark) bring their hashes along."""
    hashes = feats.select("digest", "name_hash") if "digest" in feats.columns else state_hashes(feats)
    return pl.concat(
        [recs.select(*_RECORD_KEY, pl.col("node").alias("rid")), hashes, feats.select(pl.col("ex").cast(pl.Int64))],
        how="horizontal",
    )


def _against_kept(recs: pl.DataFrame, feats: pl.DataFrame, model: Model) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(features, kept pairs): with a kept resolution, the features flag the records whose pairs are scored
    again and the kept pairs are those of the others (by node of this build); otherwise all is scored."""
    state = model.state = _record_state(recs, feats)
    kept, none = model.kept, pl.DataFrame(schema=_PAIR_SCHEMA)
    if kept is None or kept.state is None or kept.pairs is None or model.trained is None:
        return feats, none
    old = kept.state.rename({"rid": "old_rid", "digest": "old_digest", "name_hash": "old_name", "ex": "old_ex"})
    j = state.join(old, on=_RECORD_KEY, how="left", maintain_order="left")
    changed = j["old_rid"].is_null() | (j["digest"] != j["old_digest"]).fill_null(True)
    n_changed = int(changed.sum()) + old.height - int(j["old_rid"].is_not_null().sum())  # new, changed, gone
    model.stats["records_changed"] = n_changed
    if n_changed > kept.max_share * max(state.height, old.height):
        model.stats["resolution"] = f"full: {n_changed:,} of {state.height:,} records new, changed or gone"
        if kept.trained_at is not None:  # not pinned: trained again
            model.trained = None
        return feats, none
    moved = _moved_clusters(j, old["old_ex"])
    # names whose count changed: their term frequency (every same-name pair), and a rare name's blocking
    counts = (
        old.drop_nulls("old_name")
        .group_by(pl.col("old_name").alias("name_hash"))
        .len("n_old")
        .join(
            state.drop_nulls("name_hash").group_by("name_hash").len("n_new"), on="name_hash", how="full", coalesce=True
        )
        .with_columns(pl.col("n_old", "n_new").fill_null(0))
        .filter(pl.col("n_old") != pl.col("n_new"))
    )
    rare = counts.filter((pl.col("n_old") <= RARE_NAME) != (pl.col("n_new") <= RARE_NAME))["name_hash"]
    flags = j.select(
        (pl.lit(changed) | pl.lit(moved) | pl.col("name_hash").is_in(rare.implode()).fill_null(False)).alias("dirty"),
        pl.col("name_hash").is_in(counts["name_hash"].implode()).fill_null(False).alias("name_dirty"),
    )
    clean = j.select("old_rid", pl.col("rid").alias("node"), "name_hash", flags["name_dirty"]).filter(~flags["dirty"])
    side = {s: clean.rename({c: f"{c}_{s}" for c in clean.columns}) for s in ("l", "r")}
    kept_pairs = (
        kept.pairs.join(side["l"], left_on="rid_l", right_on="old_rid_l")
        .join(side["r"], left_on="rid_r", right_on="old_rid_r")
        .filter(~((pl.col("name_hash_l") == pl.col("name_hash_r")).fill_null(False) & pl.col("name_dirty_l")))
        .select(  # Splink's orientation (smaller node left): the override split takes edges in node order
            pl.min_horizontal("node_l", "node_r").alias("node_l"),
            pl.max_horizontal("node_l", "node_r").alias("node_r"),
            "match_probability",
        )
    )
    model.stats["records_scored"] = int(flags["dirty"].sum())
    model.stats["pairs_kept"] = kept_pairs.height
    return feats.with_columns(flags), kept_pairs


def _moved_clusters(j: pl.DataFrame, old_ex: pl.Series) -> pl.Series:
    """Per record of this build (``j``: its state joined to the kept state's old_rid and old_ex), whether its pass-1
    cluster is not the same records as its cluster before (a new record's is not): their candidate pairs change.
    By arrays indexed by cluster, not a group-by (a tenth of its CPU at medium): both engines name a cluster by a
    number below the records' count (this module's components, or a record's node on Spark)."""
    ex, before = j["ex"].to_numpy().astype(np.int64), old_ex.to_numpy().astype(np.int64)
    matched = j["old_rid"].is_not_null().to_numpy()
    was, now = j["old_ex"].to_numpy()[matched].astype(np.int64), ex[matched]
    width = int(max(before.max(initial=0), was.max(initial=0))) + 1
    rep = np.zeros(width, dtype=np.int64)
    rep[was] = now  # one of each old cluster's new clusters: the cluster stays only if all its records agree
    split = np.zeros(width, dtype=bool)
    split[was[now != rep[was]]] = True
    kept = np.bincount(was, minlength=width)  # its records still here
    same = ~split & (kept > 0) & (kept == np.bincount(before, minlength=width))
    same &= kept == np.bincount(ex, minlength=int(rep.max(initial=0)) + 1)[rep]  # and no one joined
    moved = np.ones(len(ex), dtype=bool)
    moved[matched] = ~same[was]
    return pl.Series("moved", moved)


@functools.cache
def _version() -> str:
    """The code a kept resolution was made by (this module and the name/phone parsing it reads)."""
    h = hashlib.sha256()
    for path in (Path(__file__), Path(__file__).parents[1] / "core" / "parse.py"):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def read_model(path: Path) -> tuple[dict[str, Any], int]:
    """A model file (export_model): Splink's parameters and the named-record count of its term frequencies."""
    if not path.is_file():
        raise ConfigError(f"{path}: identity model file not found ([identity] model)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        trained, total = data["splink"], int(data["tf_total"])
        if not isinstance(trained, dict) or "comparisons" not in trained or total < 1:
            raise ValueError("no comparisons or no term-frequency total")
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path}: not an identity model file (keys splink, tf_total): {e}") from None
    return trained, total


def export_model(store: Store, path: Path) -> int:
    """Write the current build's Splink parameters as a model file; returns the named records it counts."""
    row = previous_table(store, store.read_manifest(), "identity_model", ["model_json", "tf_total"])
    if row is None or not row.height or row["model_json"][0] is None:
        raise ConfigError("no trained identity model yet: run `cockpit refresh` with [identity] probabilistic = true")
    data = {"splink": json.loads(row["model_json"][0]), "tf_total": int(row["tf_total"][0])}
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return data["tf_total"]


def kept_resolution(settings: Settings, store: Store, manifest: Manifest, *, full: bool, now: datetime) -> Kept:
    """What the next resolution builds on: a pinned model ([identity] model) is always scored with; else the
    current build's parameters unless ``full`` (``cockpit refresh --full``), they are ``retrain_days`` old,
    the identity code or threshold changed or there are none. With kept parameters and the current build's
    records and pairs, only what changed is resolved again."""
    cfg = settings.identity
    pinned = read_model(settings.base_dir / cfg.model) if cfg.model else None
    row = previous_table(store, manifest, "identity_model", list(STATE_TABLES["identity_model"]))
    now = now.replace(tzinfo=None)
    reason = None
    if full:
        reason = "asked for (--full)"
    elif row is None or not row.height or row["model_json"][0] is None:
        reason = "no earlier resolution to build on"
    elif row["version"][0] != _version() or row["threshold"][0] != cfg.match_threshold:
        reason = "the identity code or the match threshold changed"
    elif pinned is not None and (json.loads(row["model_json"][0]), int(row["tf_total"][0])) != pinned:
        reason = "the pinned model changed"
    elif pinned is None and (row["trained_at"][0] is None or (now - row["trained_at"][0]).days >= cfg.retrain_days):
        reason = f"parameters older than retrain_days = {cfg.retrain_days}"
    if pinned is not None:
        trained, total, trained_at = pinned[0], pinned[1], None
    elif reason is None and row is not None:
        trained, total, trained_at = json.loads(row["model_json"][0]), int(row["tf_total"][0]), row["trained_at"][0]
    else:
        return Kept(None, 0, None, reason=reason)
    state = previous_table(store, manifest, "identity_state", list(STATE_TABLES["identity_state"]))
    pairs = previous_table(store, manifest, "identity_pairs", list(STATE_TABLES["identity_pairs"]))
    if reason is None and (state is None or pairs is None):
        reason = "no earlier resolution to build on"
    if reason is not None:
        return Kept(trained, total, trained_at, reason=reason)
    return Kept(trained, total, trained_at, state, pairs, cfg.retrain_changed_share)


def _pypinyin_version() -> str:
    from importlib.metadata import version

    return version("pypinyin")


def known_readings(store: Store, manifest: Manifest) -> int:
    """The current build's pinyin readings (identity_pinyin) put in core.parse.pinyin's cache when the same pypinyin
    looked them up, so that names of characters seen before are read without loading pypinyin; how many."""
    kept = previous_table(store, manifest, "identity_pinyin", list(STATE_TABLES["identity_pinyin"]))
    if kept is None or not kept.height or kept["pypinyin"][0] != _pypinyin_version():
        return 0
    remember_readings(dict(zip(kept["char"], kept["reading"], strict=True)))
    return kept.height


def write_state(model: Model | None, kept: Kept | None, stage: Path, now: datetime) -> None:
    """This build's identity_state, identity_pairs, identity_pinyin and identity_model files (empty without
    pass 2; identity_pinyin: every reading this process looked up)."""
    empty = {t: pl.DataFrame(schema={c: _POLARS[v] for c, v in cols.items()}) for t, cols in STATE_TABLES.items()}
    state = model.state if model is not None and model.state is not None else empty["identity_state"]
    pairs = empty["identity_pairs"]
    if model is not None and model.pairs is not None:
        pairs = model.pairs.rename({"node_l": "rid_l", "node_r": "rid_r"})
    trained = model.trained if model is not None else None
    trained_here = trained is not None and (kept is None or trained is not kept.trained)
    trained_at = now.replace(tzinfo=None) if trained_here else (kept.trained_at if kept is not None else None)
    stats = model.stats if model is not None else {}
    row = {
        "model_json": json.dumps(model.trained) if model is not None and model.trained is not None else None,
        "tf_total": model.tf_total if model is not None else 0,
        "trained_at": trained_at,
        "threshold": model.threshold if model is not None else None,
        "version": _version(),
        "resolution": stats.get("resolution", "full") if model is not None else "exact rules only",
        "records": state.height,
        "changed": stats.get("records_changed"),
        "scored": stats.get("records_scored", state.height),
    }
    schemas = {t: pl.Schema({c: _POLARS[v] for c, v in cols.items()}) for t, cols in STATE_TABLES.items()}
    readings = pinyin_readings()
    pl.DataFrame(
        {"char": list(readings), "reading": list(readings.values()), "pypinyin": _pypinyin_version()},
        schema=schemas["identity_pinyin"],
    ).write_parquet(stage / "identity_pinyin.parquet")
    state.cast(schemas["identity_state"]).write_parquet(stage / "identity_state.parquet", **RECORD_FILE_OPTIONS)
    pairs.cast(schemas["identity_pairs"]).write_parquet(stage / "identity_pairs.parquet")
    pl.DataFrame([row], schema=schemas["identity_model"]).write_parquet(stage / "identity_model.parquet")


_POLARS: dict[str, pl.DataType] = {
    "VARCHAR": pl.String(),
    "BIGINT": pl.Int64(),
    "UBIGINT": pl.UInt64(),
    "DOUBLE": pl.Float64(),
    "TIMESTAMP": pl.Datetime("us"),
}
