"""Churn's customer keys, per-day tables and every cutoff's features and labels as Spark jobs (engine spark),
from derived.churn.features' own DuckDB statements transpiled by .sql: only Spark reads all orders,
interactions and contracts. The per-day tables stay on Spark as Parquet under the build's staging folder;
each cutoff's features (one row per customer) are written there too and read back by DuckDB on the driver,
which fits and scores on them (the model is fitted on a bounded sample: derived.churn.build.MAX_TRAIN). The keys
(a row per source record) stay there: the driver gets what the statements over them make, not the keys.

A result is cast to the types the DuckDB statement itself gives: DuckDB binds the statement (nothing runs)
against the keys and empty per-day tables of the same columns, so both engines hand the fit the same frame."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import sqlglot
from sqlglot import exp

from dashboard.core.config import Settings
from dashboard.core.duck import empty_select, quote_path
from dashboard.core.store import Manifest, Store
from dashboard.derived.churn import features as churn_features
from dashboard.derived.spark.jobs import PARTS, read_parquet, register_entities, run_job, shared_uri, spark_query
from dashboard.derived.spark.steps import materialize, numbered, select_of

_ORDER = "_order"  # the columns a statement's ORDER BY keys travel in (they need not be selected)


def _columns(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None) -> dict[str, str]:
    """The columns and DuckDB types of a SELECT, as DuckDB binds it (the statement is not run)."""
    rel = con.sql(sql, params=params or None)
    return {c: str(t) for c, t in zip(rel.columns, rel.types, strict=True)}


def _gathered(parts: Path, columns: dict[str, str], order: str = "") -> str:
    """A SELECT over Spark's part files with ``columns`` (our own declared names and DuckDB types)."""
    if not any(parts.glob("*.parquet")):
        return empty_select(columns)
    cols = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in columns.items())
    return f"SELECT {cols} FROM read_parquet({quote_path(parts / '*.parquet')}) {order}"


def _unordered(sql: str) -> tuple[str, str]:
    """``sql`` (DuckDB dialect) with its ORDER BY keys selected as columns instead (Spark's row order is not
    kept through part files), and the ORDER BY that puts DuckDB's reading of them in that order."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    order = tree.args.get("order")
    if not isinstance(tree, exp.Select) or order is None:
        return sql, ""
    tree.set("order", None)
    keys = []
    for i, o in enumerate(order.expressions):
        tree = tree.select(exp.alias_(o.this.copy(), f"{_ORDER}{i}"), copy=False)
        keys.append(o.copy())
        keys[-1].set("this", exp.column(f"{_ORDER}{i}"))
    return tree.sql(dialect="duckdb"), exp.Order(expressions=keys).sql(dialect="duckdb")


class SparkDays:
    """churn.features.DayTables on Spark: the build's keys and per-day tables made there, every statement that
    reads them run there, each result gathered by DuckDB."""

    def __init__(self, spark: Any, settings: Settings, store: Store, manifest: Manifest, stage: Path) -> None:
        self.spark, self.settings, self.store, self.manifest, self.stage = spark, settings, store, manifest, stage
        self.queries = 0
        self.made = False  # the keys made here (make): a rescore of a few customers makes them on the driver
        self.linked = False  # the views of the entities and of the build's links registered on Spark

    def _views(self) -> None:
        if not self.linked:
            register_entities(self.spark, self.settings, self.store, self.manifest)
            links = read_parquet(self.spark, self.settings, self.stage / "identity_links.parquet")
            links.createOrReplaceTempView("churn_links")  # its schema from the footer here: no Spark job for it
            self.linked = True

    def make(self, con: duckdb.DuckDBPyConnection, latest: int) -> None:
        spark, settings, stage, f = self.spark, self.settings, self.stage, churn_features
        self._views()
        self.made = True
        rows = materialize(spark, settings, f.KEY_ROWS_SQL, "churn_key_rows", stage)
        distinct = spark.table("churn_key_rows").select("customer_key").distinct()
        ids = numbered(spark, settings, distinct, {"cid": ("customer_key",)}, "churn_key_ids", stage)  # dense_rank's
        materialize(spark, settings, f.KEY_IDS_SQL, "churn_keys", stage)
        for done in (rows, ids):
            shutil.rmtree(done, ignore_errors=True)
        materialize(spark, settings, select_of(f.IDS_SQL).sql("duckdb"), "churn_ids", stage)
        # the keys stay on Spark (a row per source record: 3.5M at large), as every statement reading them runs there
        # (features, labels, owners and regions); on the driver they are empty, to bind those statements (their types)
        columns = _columns(con, select_of(f.KEYS_SQL).sql("duckdb"))
        con.execute(f"CREATE OR REPLACE TEMP TABLE churn_keys AS {empty_select(columns)}")
        con.execute(f.IDS_SQL)
        for view, sql, args in (
            ("churn_kinds", f.KINDS_SQL, f.kind_params()),
            ("churn_outcomes", f.OUTCOMES_SQL, f.outcome_params()),
            ("churn_keyed", f.KEYED_SQL, f.events_params(latest)),
        ):
            spark.sql(*spark_query(select_of(sql).sql("duckdb"), args)).createOrReplaceTempView(view)
        for table, sql in (("churn_days", f.DAYS_SQL), ("churn_channel_days", f.CHANNEL_DAYS_SQL)):
            materialize(spark, settings, select_of(sql).sql("duckdb"), table, stage)
            # empty on the driver: the statements reading them are bound there (their types), run on Spark
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {empty_select(f.DAY_TABLES[table])}")

    def first_records(self, con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
        """FIRST_RECORDS_SQL over every link, on Spark (a rescore's driver holds only its customers' links)."""
        self._views()
        return self.query(con, churn_features.FIRST_RECORDS_SQL, {})

    def attributes(self, con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
        """ATTRIBUTES_SQL for the customers registered on ``con`` as churn_scored: on Spark over every link and the
        keys made there, with the driver's churn_scored and churn_priority; a rescore's few customers' on ``con``,
        whose keys and links are theirs."""
        if not self.made:
            return con.sql(churn_features.ATTRIBUTES_SQL).pl()
        self._views()
        (self.stage / PARTS).mkdir(parents=True, exist_ok=True)
        for view in ("churn_scored", "churn_priority"):
            path = self.stage / PARTS / f"{view}.parquet"
            con.sql(f"SELECT * FROM {view}").pl().write_parquet(path)
            read_parquet(self.spark, self.settings, path).createOrReplaceTempView(view)
        return self.query(con, churn_features.ATTRIBUTES_SQL, {})

    def query(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, int]) -> pl.DataFrame:
        columns = _columns(con, sql, params)
        unordered, order = _unordered(sql)
        self.queries += 1
        name = f"churn_query_{self.queries}"
        parts = self.stage / PARTS / name
        text, bound = spark_query(unordered, params)
        uri = shared_uri(self.settings, parts)
        spark = self.spark
        run_job(spark, self.settings, name, lambda: spark.sql(text, bound).write.mode("overwrite").parquet(uri))
        try:
            return con.sql(_gathered(parts, columns, order)).pl()
        finally:
            shutil.rmtree(parts, ignore_errors=True)
