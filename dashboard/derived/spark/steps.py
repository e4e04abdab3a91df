"""Golden records and the identity-consistency quality table as Spark jobs, from the DuckDB engine's own
statements (derived.golden, derived.quality.tables) transpiled by .sql, writing the files the DuckDB engine
writes (churn's: .churn).

Where the DuckDB statement leans on DuckDB itself, the parse tree is changed, not the text copied: golden
records rank each customer's records by survivorship in ``rowid`` (DuckDB's row number of a table stored in
that order); on Spark ``rowid`` is (customer_key, rank within the customer), which orders, groups and joins
the customer's values the same way without sorting every record into one partition. The sources behind a
value are a list (golden's own form past 128 sources), not DuckDB's 128-bit mask."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import sqlglot
from sqlglot import exp

from dashboard.core.config import Settings
from dashboard.core.parse import pinyin
from dashboard.core.store import Manifest, Store
from dashboard.derived import golden
from dashboard.derived.quality import tables as quality
from dashboard.derived.spark.jobs import PARTS, register_entities, run_job, run_to_parquet, shared_uri, spark_query

# customer_attributes and customer_lookup as write_golden makes them from its golden_values (golden's statements;
# run_to_parquet writes the file in the statement's ORDER BY)
ATTRIBUTES_FILE_SQL = golden.ATTRIBUTES_ROWS_SQL + "\nORDER BY v.customer_key"
LOOKUP_SQL = golden.LOOKUP_SQL.format(attributes="customer_attributes")


def select_of(create_sql: str) -> exp.Expression:
    """The query of a ``CREATE ... TABLE name AS <query>`` statement (DuckDB dialect)."""
    tree = sqlglot.parse_one(create_sql, read="duckdb")
    assert isinstance(tree, exp.Create) and tree.expression is not None, create_sql
    return tree.expression


def materialize(
    spark: Any, settings: Settings, sql: str, view: str, stage: Path, args: Mapping[str, Any] | None = None
) -> Path:
    """``sql`` (DuckDB dialect) run once on Spark into part files under the build's staging folder, then the
    Spark view ``view`` over them: the statements after it read the result, not the query again."""
    parts = stage / PARTS / view
    uri = shared_uri(settings, parts)
    query = spark_query(sql, args)
    run_job(spark, settings, view, lambda: spark.sql(*query).write.mode("overwrite").parquet(uri))
    spark.read.parquet(uri).createOrReplaceTempView(view)
    return parts


def parquet_view(spark: Any, settings: Settings, path: Path, name: str) -> None:
    spark.read.parquet(shared_uri(settings, path)).createOrReplaceTempView(name)


# -- golden records --------------------------------------------------------------------------------------
# With engine spark, an incremental build's golden records (derived.golden.Previous: the customers whose records,
# links or facts changed) are made by DuckDB on the driver, the other customers' rows copied, when the touched
# are at most this share of all customers; past it every customer is made again as Spark jobs. Spark's fixed cost
# per build is what a few touched customers would pay (medium: 111 CPU-s on local Spark against DuckDB's whole
# 3.1, docs/benchmarks.md), and DuckDB's part grows with the touched customers only, its copy with the file.
DRIVER_SHARE = 0.05


def on_driver(previous: golden.Previous | None, links: pl.DataFrame) -> bool:
    """Whether golden records are made by DuckDB from ``previous`` (a few customers touched), not on Spark."""
    return previous is not None and previous.touched.height <= DRIVER_SHARE * links["customer_key"].n_unique()


def ranked_sql(settings: Settings, attrs: list[str]) -> str:
    """golden's ranked records with ``rowid`` = (customer_key, survivorship rank within the customer)."""
    order = ", ".join(golden._ORDER[rule] for rule in settings.identity.survivorship)
    select = select_of(
        golden._RANKED_SQL.format(
            order=order,
            completeness=" + ".join(f"CAST(r.{a} IS NOT NULL AS INTEGER)" for a in attrs),
            columns=", ".join(f"CAST(r.{a} AS VARCHAR) AS {a}" for a in attrs),
        )
    )
    assert isinstance(select, exp.Select)
    ordering = select.args["order"]
    select.set("order", None)
    keys = ", ".join(o.sql(dialect="duckdb") for o in ordering.expressions)
    rank = f"row_number() OVER (PARTITION BY customer_key ORDER BY {keys})"
    return select.select(f"struct_pack(k := customer_key, n := {rank}) AS rowid", dialect="duckdb").sql("duckdb")


def golden_tables(
    spark: Any,
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    store: Store,
    manifest: Manifest,
    records: pl.DataFrame,
    stage: Path,
) -> None:
    """customer_golden, customer_attributes and customer_lookup (derived.golden) as Spark jobs, into
    ``stage``; reads the build's ``identity_links.parquet`` and ``lead_facts.parquet`` from it."""
    register_entities(spark, settings, store, manifest)
    attrs = [a for a in golden.ATTRIBUTES if a in records.columns]
    (stage / PARTS).mkdir(parents=True, exist_ok=True)
    records.write_parquet(stage / PARTS / "golden_records.parquet")  # identity's records, held by the driver
    parquet_view(spark, settings, stage / PARTS / "golden_records.parquet", "golden_records")
    parquet_view(spark, settings, stage / "identity_links.parquet", "golden_links")
    parquet_view(spark, settings, stage / "lead_facts.parquet", "lead_facts")
    names = sorted({src.name for src in settings.sources} | set(records["source_system"].unique().to_list()))
    priority = {src.name: src.priority for src in settings.sources}
    spark.createDataFrame(
        [(n, i, priority.get(n, 100)) for i, n in enumerate(names)], "source_system string, src int, priority bigint"
    ).createOrReplaceTempView("golden_sources")
    materialize(spark, settings, ranked_sql(settings, attrs), "golden_ranked", stage)
    mask, has_source = golden._MASK_LIST  # golden's own form past 128 sources: Spark has no 128-bit integer
    values = select_of(golden._ATTRIBUTES_SQL.format(attributes=", ".join(attrs), mask=mask, has_source=has_source))
    materialize(spark, settings, values.sql("duckdb"), "golden_values", stage)
    tables = golden.TABLES
    run_to_parquet(
        spark, con, settings, ATTRIBUTES_FILE_SQL, "customer_attributes", tables["customer_attributes"], stage,
        row_group_size=100_000,
    )  # fmt: skip
    run_to_parquet(
        spark, con, settings, LOOKUP_SQL, "customer_lookup", tables["customer_lookup"], stage,
        args={"attributes": list(golden.LOOKUP_ATTRIBUTES)}, row_group_size=50_000,
    )  # fmt: skip
    chosen = spark.sql("SELECT DISTINCT value AS name FROM golden_values WHERE attribute = 'name' AND chosen")
    names_ = pl.from_arrow(chosen.toArrow())
    assert isinstance(names_, pl.DataFrame)
    spellings = names_.with_columns(pinyin(names_["name"]).str.replace_all(" ", "").alias("name_pinyin"))
    spark.createDataFrame(spellings.rows(), "name string, name_pinyin string").createOrReplaceTempView("golden_pinyin")
    pivot = ", ".join(f"first(value) FILTER (WHERE chosen AND attribute = '{a}') AS {a}" for a in golden.ATTRIBUTES)
    sql = golden._GOLDEN_SQL.format(
        pivot=pivot, golden_columns=", ".join(f"ch.{a}" for a in golden.ATTRIBUTES), active_days=golden.ACTIVE_DAYS
    )
    run_to_parquet(
        spark, con, settings, sql, "customer_golden", tables["customer_golden"], stage,
        args={"not_revenue": golden.NOT_REVENUE, "now": golden.start_of_today(settings)}, row_group_size=100_000,
    )  # fmt: skip
    shutil.rmtree(stage / PARTS, ignore_errors=True)


# -- quality ---------------------------------------------------------------------------------------------
def identity_consistency(
    spark: Any, con: duckdb.DuckDBPyConnection, settings: Settings, store: Store, manifest: Manifest, stage: Path
) -> None:
    """identity_consistency.parquet (derived.quality.tables.CONFLICTS_SQL) as a Spark job, into ``stage``."""
    register_entities(spark, settings, store, manifest)
    parquet_view(spark, settings, stage / "identity_links.parquet", "links")
    table = "identity_consistency"
    run_to_parquet(spark, con, settings, quality.CONFLICTS_SQL, table, quality.TABLES[table], stage)
    shutil.rmtree(stage / PARTS, ignore_errors=True)
