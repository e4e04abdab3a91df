"""Identity resolution, first pass: source records that share a valid phone, email or ID number
(or a lead pointing at its customer) are the same golden customer (``customer_key``).

Records are nodes, shared values are edges; connected components (scipy) are the customers.
"""

from __future__ import annotations

import duckdb
import numpy as np
import polars as pl
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from dashboard.pipeline.parse import normalize_phone

# A value shared by more records than this is a placeholder ("13800000000", "test@test.com"),
# not a person: it is not used to link.
MAX_SHARED = 50

_RULE_BITS = {"customer_ref": 8, "email": 2, "id_number": 4, "phone": 1}
RULE_NAMES = {
    mask: "exact:" + "+".join(name for name, bit in sorted(_RULE_BITS.items()) if mask & bit) for mask in range(1, 16)
}

RECORDS_SQL = """
WITH refs AS (
    SELECT source_system, customer_ref FROM leads WHERE customer_ref IS NOT NULL
    UNION SELECT source_system, customer_ref FROM orders WHERE customer_ref IS NOT NULL
    UNION SELECT source_system, customer_ref FROM interactions WHERE customer_ref IS NOT NULL
    UNION SELECT source_system, customer_ref FROM contracts WHERE customer_ref IS NOT NULL
)
SELECT DISTINCT ON (source_system, source_record_id) source_system, source_record_id,
       'customer' AS record_kind,
       CASE WHEN phone_valid THEN phone END AS phone,
       CASE WHEN email_valid THEN email END AS email,
       CASE WHEN id_number_valid THEN id_number END AS id_number,
       NULL AS customer_ref
FROM customers
UNION ALL
SELECT r.source_system, r.customer_ref, 'customer', NULL, NULL, NULL, NULL
FROM refs AS r
ANTI JOIN customers AS c ON c.source_system = r.source_system AND c.source_record_id = r.customer_ref
UNION ALL
SELECT DISTINCT ON (source_system, lead_id) source_system, lead_id, 'lead',
       CASE WHEN phone_valid THEN phone END,
       CASE WHEN email_valid THEN email END,
       NULL, customer_ref
FROM leads
"""


def _keys(anchors: pl.DataFrame) -> pl.DataFrame:
    """component → customer_key: 'C' + 12 hex digits of md5 of the component's smallest record id,
    so a customer keeps its key while its anchor record stays in the data."""
    with duckdb.connect() as con:
        con.register("anchors", anchors)
        return con.sql("SELECT component, 'C' || left(md5(anchor), 12) AS customer_key FROM anchors").pl()


def link_exact(records: pl.DataFrame) -> pl.DataFrame:
    """records (source_system, source_record_id, record_kind, phone, email, id_number, customer_ref)
    → (source_system, source_record_id, record_kind, customer_key, match_rule)."""
    n = records.height
    if n == 0:
        return records.select(
            "source_system",
            "source_record_id",
            "record_kind",
            pl.lit(None, pl.String).alias("customer_key"),
            pl.lit(None, pl.String).alias("match_rule"),
        )
    # A customer known only by a reference that is itself a mobile number (call centers key callers
    # by the number they called from) links by that phone.
    phone = records.get_column("phone")
    bare = (phone.is_null() & (records.get_column("record_kind") == "customer")).arg_true()
    ref_phone, ref_valid = normalize_phone(records.get_column("source_record_id").gather(bare))
    phone = phone.scatter(bare, pl.select(pl.when(ref_valid).then(ref_phone)).to_series())
    recs = records.with_row_index("node").with_columns(
        (pl.col("record_kind") + ":" + pl.col("source_system") + ":" + pl.col("source_record_id")).alias("uid"),
        phone.alias("phone"),
    )
    # Edge values: "p:<phone>", "e:<email>", "i:<id>", and "r:<source>:<customer id>" for a lead's own
    # customer and for the customer record itself.
    values = pl.concat(
        [
            recs.select("node", ("p:" + pl.col("phone")).alias("value"), pl.lit(1, pl.UInt8).alias("rule")),
            recs.select("node", ("e:" + pl.col("email")).alias("value"), pl.lit(2, pl.UInt8).alias("rule")),
            recs.select("node", ("i:" + pl.col("id_number")).alias("value"), pl.lit(4, pl.UInt8).alias("rule")),
            recs.select(
                "node",
                ("r:" + pl.col("source_system") + ":" + pl.col("customer_ref")).alias("value"),
                pl.lit(8, pl.UInt8).alias("rule"),
            ),
            recs.filter(pl.col("record_kind") == "customer").select(
                "node",
                ("r:" + pl.col("source_system") + ":" + pl.col("source_record_id")).alias("value"),
                pl.lit(8, pl.UInt8).alias("rule"),
            ),
        ]
    ).drop_nulls("value")
    counts = values.group_by("value").agg(pl.len().alias("n"))
    shared = counts.filter((pl.col("n") > 1) & (pl.col("n") <= MAX_SHARED)).with_row_index("vid")
    edges = values.join(shared.select("value", "vid"), on="value")
    rows = edges.get_column("node").to_numpy().astype(np.int64)
    cols = edges.get_column("vid").to_numpy().astype(np.int64) + n
    size = n + shared.height
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    recs = recs.with_columns(pl.Series("component", labels[:n]))
    # rules as bit flags: one OR per record instead of a sorted list of names
    linked_by = edges.group_by("node").agg(pl.col("rule").bitwise_or())
    first = recs.group_by("component").agg(pl.col("uid").min().alias("anchor"), pl.len().alias("members"))
    keys = _keys(first.select("component", "anchor")).join(first.select("component", "members"), on="component")
    out = (
        recs.join(keys.select("component", "customer_key", "members"), on="component")
        .join(linked_by, on="node", how="left")
        .with_columns(
            pl.when(pl.col("members") > 1)
            .then(pl.col("rule").replace_strict(RULE_NAMES, default="exact", return_dtype=pl.String))
            .otherwise(pl.lit("single"))
            .alias("match_rule")
        )
    )
    return out.select("source_system", "source_record_id", "record_kind", "customer_key", "match_rule")
