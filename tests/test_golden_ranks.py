"""Golden's RFM fifths and value tiers are arithmetic on row numbers (one definition for DuckDB and Spark, where a
window over every customer is one partition): the same fifths and percent ranks as DuckDB's own ntile(5) and
percent_rank(), for every count of customers up to 30 and a few larger, with ties and missing dates."""

from __future__ import annotations

import random

import duckdb
import pytest
import sqlglot

from dashboard.derived import golden

# the definition golden had before: DuckDB's own window functions
WINDOWS = """SELECT customer_key,
    ntile(5) OVER (ORDER BY last_order_at, customer_key) AS r,
    ntile(5) OVER (ORDER BY orders, customer_key) AS f,
    percent_rank() OVER (ORDER BY lifetime_revenue DESC) AS revenue_rank
FROM golden_base WHERE orders > 0 ORDER BY customer_key"""


def _ranks() -> str:
    """golden's rfm ranks as one statement."""
    tree = sqlglot.parse_one(golden._RANK_SQL.format(active_days=golden.ACTIVE_DAYS), read="duckdb")
    select = sqlglot.select("customer_key", "r", "f", "revenue_rank").from_("rfm").order_by("customer_key")
    select.set("with_", tree.args["with_"])
    return select.sql("duckdb")


@pytest.mark.parametrize("n", [*range(31), 97, 1000, 12345])
def test_the_fifths_and_percent_ranks_are_duckdbs_own(n: int) -> None:
    rng = random.Random(n)
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE golden_base (customer_key VARCHAR, last_order_at DATE, orders INT, lifetime_revenue DOUBLE)"
    )
    rows = [
        (f"k{i:06d}", rng.choice([None, "2026-01-01", "2026-02-01", "2026-03-01"]), rng.randint(0, 4),
         round(rng.choice([0.0, 1.5, 2.25, 10.0, rng.random() * 100]), 2))
        for i in range(n)
    ]  # fmt: skip
    if rows:
        con.executemany("INSERT INTO golden_base VALUES (?, ?, ?, ?)", rows)
    want = con.sql(WINDOWS).fetchall()
    assert con.sql(_ranks()).fetchall() == want
    ranked = len(want)  # the customers with orders
    assert {r for _, r, _, _ in want} == set(range(1, min(ranked, 5) + 1))  # every fifth dealt
