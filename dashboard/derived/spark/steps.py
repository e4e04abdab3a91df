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
from collections.abc import Callable, Iterator, Mapping
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
from dashboard.derived.spark.jobs import (
    PARTS,
    gathered,
    read_parquet,
    register_entities,
    run_job,
    run_to_parquet,
    shared_uri,
    spark_query,
)

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
    read_parquet(spark, settings, parts).createOrReplaceTempView(view)  # the schema Spark wrote: no job for it
    return parts


def parquet_view(spark: Any, settings: Settings, path: Path, name: str) -> None:
    spark.read.parquet(shared_uri(settings, path)).createOrReplaceTempView(name)


def without_cte(sql: str, name: str) -> str:
    """``sql`` (DuckDB dialect) without its common table expression ``name``: a view of that name, made
    otherwise, stands in for it."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = tree.args["with_"].expressions
    kept = [c for c in ctes if c.alias != name]
    assert len(kept) == len(ctes) - 1, f"no {name} in the statement"
    tree.args["with_"].set("expressions", kept)
    return tree.sql(dialect="duckdb")


_AT = "_at"  # a row's partition (upper 31 bits) and place in it (lower 33): Spark's monotonically_increasing_id
_PART = "_part"


def numbered(
    spark: Any, settings: Settings, source: Any, orders: Mapping[str, tuple[str, ...]], view: str, stage: Path
) -> Path:
    """The Spark view ``view``: ``source``'s rows with, for each ``orders`` column, the row's number (1, 2, ...)
    in that order (its keys ascending, nulls last, as DuckDB orders by default; the last key unique, so the
    numbers are DuckDB's ``row_number() OVER (ORDER BY ...)``). A window over every row runs in one partition on
    Spark; here each order is a range-partitioned sort (partitions in key order, each sorted), each row numbered
    within its partition, plus the rows of the partitions before it. Written out once per order: the range
    bounds are sampled, and a plan read twice could sample others."""
    from pyspark.sql import functions as F

    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    frame = source
    for n, (column, keys) in enumerate(orders.items()):
        order = [F.col(k).asc_nulls_last() for k in keys]
        ranged = frame.repartitionByRange(partitions, *order).sortWithinPartitions(*order)
        ranged = ranged.withColumn(_AT, F.monotonically_increasing_id())
        placed: list[Any] = []
        sizes: list[tuple[int, int]] = []  # rows per partition, in key order

        def place(
            r: Any = ranged, at: Path = stage / PARTS / f"{view}_{n}", out: list[Any] = placed,
            rows: list[tuple[int, int]] = sizes,
        ) -> None:  # fmt: skip
            r.write.mode("overwrite").parquet(shared_uri(settings, at))
            out.append(read_parquet(spark, settings, at).withColumn(_PART, F.shiftright(F.col(_AT), 33)))
            counted = part_rows(at)
            if counted is None:  # the footers cannot say: counted by Spark
                counted = {row[_PART]: row["count"] for row in out[0].groupBy(_PART).count().collect()}
            rows.extend(sorted(counted.items()))

        run_job(spark, settings, f"{view}.{column}", place)
        before = [sum(size for _, size in sizes[:i]) for i in range(len(sizes))]
        offsets = spark.createDataFrame(
            [(part, b) for (part, _), b in zip(sizes, before, strict=True)], f"{_PART} bigint, _before bigint"
        )
        within = F.col(_AT).bitwiseAND(F.lit((1 << 33) - 1))
        frame = (
            placed[0]
            .join(F.broadcast(offsets), _PART)
            .withColumn(column, F.col("_before") + within + 1)
            .drop(_AT, _PART, "_before")
        )
    parts = write_view(spark, settings, frame, view, stage)
    for n in range(len(orders)):
        shutil.rmtree(stage / PARTS / f"{view}_{n}", ignore_errors=True)
    return parts


def write_view(spark: Any, settings: Settings, frame: Any, view: str, stage: Path) -> Path:
    """``frame`` (a Spark DataFrame) written once into part files under the build's staging folder, and the
    Spark view ``view`` over them."""
    parts = stage / PARTS / view
    run_job(spark, settings, view, lambda: frame.write.mode("overwrite").parquet(shared_uri(settings, parts)))
    read_parquet(spark, settings, parts).createOrReplaceTempView(view)  # the schema Spark wrote: no job for it
    return parts


def part_rows(parts: Path) -> dict[int, int] | None:
    """numbered's rows per partition of the write in the folder ``parts``, from its files' footers (no Spark job):
    a file holds one partition's rows, its partition the upper bits of their _AT (the row groups' statistics).
    None where a file's footer does not say (no statistics, or two partitions)."""
    import pyarrow.parquet as pq

    rows: dict[int, int] = {}
    files = list(parts.glob("*.parquet"))
    if not files:  # not on this machine's disk (or no file written): Spark counts them
        return None
    for file in files:
        meta = pq.ParquetFile(file).metadata
        if meta.num_rows == 0:
            continue
        at = meta.schema.names.index(_AT)
        stats = [meta.row_group(g).column(at).statistics for g in range(meta.num_row_groups)]
        if not all(st is not None and st.has_min_max for st in stats):
            return None
        part = {int(st.min) >> 33 for st in stats} | {int(st.max) >> 33 for st in stats}
        if len(part) != 1:
            return None
        (k,) = part
        rows[k] = rows.get(k, 0) + meta.num_rows
    return rows


def written_rows(parts: Path) -> int:
    """How many rows Spark wrote into the folder ``parts`` (write_view's), from its files' footers: no Spark job."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in parts.glob("*.parquet"))


def spelled(batches: Iterator[Any]) -> Iterator[Any]:
    """Arrow batches of names → the names with their pinyin without spaces (golden's name_pinyin), on an
    executor: the names never gather on the driver."""
    import pyarrow as pa

    for batch in batches:
        names = pl.Series("name", batch.column(0))
        spelling = pinyin(names).str.replace_all(" ", "")
        yield pa.RecordBatch.from_arrays(
            [batch.column(0).cast(pa.string()), spelling.to_arrow().cast(pa.string())], names=["name", "name_pinyin"]
        )


# -- golden records --------------------------------------------------------------------------------------
# With engine spark, an incremental build's golden records (derived.golden.Previous: the customers whose records,
# links or facts changed) are made by DuckDB on the driver, the other customers' rows copied, when the touched
# are at most this share of all customers; past it every customer is made again as Spark jobs. Spark's fixed cost
# per build is what a few touched customers would pay (medium: 111 CPU-s on local Spark against DuckDB's whole
# 3.1, docs/benchmarks.md), and DuckDB's part grows with the touched customers only, its copy with the file.
DRIVER_SHARE = 0.05


def on_driver(previous: golden.Previous | None, keys: Callable[[], int]) -> bool:
    """Whether golden records are made by DuckDB from ``previous`` (a few of the customers touched; ``keys``: how
    many customers, asked only when there is a ``previous``), not on Spark."""
    return previous is not None and previous.touched.height <= DRIVER_SHARE * keys()


# derived.golden.touched_customers as one Spark statement: the records that joined, left or changed key or confidence
# between the current build's links (touched_old; without it, no moved part) and the new build's (touched_links),
# the customer of each changed row's record or reference (touched_refs: record_kind, source_system, source_record_id)
# and every lead record of a lead whose stage events changed (touched_event_leads, any source). Pinned to
# derived.golden.touched_customers by tests/test_spark_driver.py.
_MOVED_SQL = """
    SELECT o.customer_key AS was_key, n.customer_key AS new_key FROM touched_old AS o
    FULL JOIN touched_links AS n ON n.source_system = o.source_system AND n.source_record_id = o.source_record_id
        AND n.record_kind = o.record_kind
    WHERE NOT (o.customer_key <=> n.customer_key) OR NOT (o.confidence <=> n.confidence)
"""
TOUCHED_SQL = """
WITH moved AS ({moved}), keys AS (
    SELECT was_key AS customer_key FROM moved
    UNION ALL SELECT new_key FROM moved
    UNION ALL SELECT l.customer_key FROM touched_links AS l JOIN touched_refs AS r ON r.record_kind = l.record_kind
        AND r.source_system = l.source_system AND r.source_record_id = l.source_record_id
    UNION ALL SELECT l.customer_key FROM touched_links AS l JOIN touched_event_leads AS e
        ON e.lead_id = l.source_record_id WHERE l.record_kind = 'lead'
)
SELECT DISTINCT customer_key FROM keys WHERE customer_key IS NOT NULL
"""
_NO_MOVE = "SELECT CAST(NULL AS STRING) AS was_key, CAST(NULL AS STRING) AS new_key WHERE false"


class LinksOnSpark:
    """The build's identity links (``path``, the file Spark wrote or the current build's linked in) asked about on
    Spark (engine spark): their distinct keys counted, an incremental build's touched customers found (TOUCHED_SQL,
    against the current build's links file) and the few touched customers' links gathered, so that the driver reads
    no links file, only those small results. Spark's files under ``stage``'s Spark folder, removed after each."""

    def __init__(self, spark: Any, settings: Settings, path: Path, stage: Path) -> None:
        self.spark, self.settings, self.path, self.stage = spark, settings, path, stage
        self.folder = stage / f"{PARTS}_touched"

    def _gathered(self, name: str, sql: str, views: Mapping[str, Path | pl.DataFrame]) -> pl.DataFrame:
        """``sql``'s (few) rows on the driver: run on Spark over ``views`` (a Parquet file, or a driver's frame
        written as one) and the view touched_links of the links."""
        return gathered(self.spark, self.settings, self.folder, name, sql, {"touched_links": self.path, **views})

    def keys(self) -> int:
        """The customers (distinct keys) of the links."""
        sql = "SELECT count(DISTINCT customer_key) AS n FROM touched_links"
        return int(self._gathered("identity_links", sql, {})["n"][0])

    def touched(self, old: Path | None, changes: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
        """derived.golden.touched_customers on Spark (customer_key, sorted): ``old`` the current build's links
        file (None: the same links as these, identity kept: no record moved)."""
        refs, leads = golden.changed_references(changes)
        views: dict[str, Path | pl.DataFrame] = {"touched_refs": refs, "touched_event_leads": leads}
        if old is not None:
            views["touched_old"] = old
        sql = TOUCHED_SQL.format(moved=_MOVED_SQL if old is not None else _NO_MOVE)
        got = self._gathered("customer_golden", sql, views)
        return got.select(pl.col("customer_key").cast(pl.String)).sort("customer_key")

    def of(self, touched: pl.DataFrame) -> pl.DataFrame:
        """The links of the customers ``touched`` names (customer_key), in the links' columns and key order."""
        keys = touched.select(pl.col("customer_key").cast(pl.String)).drop_nulls().unique()
        sql = (
            "SELECT l.* FROM touched_links AS l LEFT SEMI JOIN touched_keys AS t ON t.customer_key = l.customer_key "
            "ORDER BY l.customer_key, l.source_system, l.source_record_id"
        )
        got = self._gathered("identity_links", sql, {"touched_keys": keys})
        schema = pl.Schema(pl.read_parquet_schema(self.path))
        return got.select(list(schema)).cast(schema) if got.height else pl.DataFrame(schema=schema)


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
    records: pl.DataFrame | Path,
    stage: Path,
) -> None:
    """customer_golden, customer_attributes and customer_lookup (derived.golden) as Spark jobs, into
    ``stage``; reads the build's ``identity_links.parquet`` and ``lead_facts.parquet`` from it. ``records``:
    identity's records (RECORDS_SQL's rows), or their Parquet as Spark made them (derived.spark.identity.SparkInput)."""
    register_entities(spark, settings, store, manifest)
    (stage / PARTS).mkdir(parents=True, exist_ok=True)
    path = records if isinstance(records, Path) else stage / PARTS / "golden_records.parquet"
    if isinstance(records, pl.DataFrame):  # identity's records, held by the driver
        records.write_parquet(path)
    parquet_view(spark, settings, path, "golden_records")
    attrs = [a for a in golden.ATTRIBUTES if a in spark.table("golden_records").columns]
    parquet_view(spark, settings, stage / "identity_links.parquet", "golden_links")
    parquet_view(spark, settings, stage / "lead_facts.parquet", "lead_facts")
    systems = {row[0] for row in spark.sql("SELECT DISTINCT source_system FROM golden_records").collect()}
    names = sorted({src.name for src in settings.sources} | systems)
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
    spellings = chosen.mapInArrow(spelled, "name string, name_pinyin string")  # on the executors, batch by batch
    write_view(spark, settings, spellings, "golden_pinyin", stage)
    pivot = ", ".join(f"first(value) FILTER (WHERE chosen AND attribute = '{a}') AS {a}" for a in golden.ATTRIBUTES)
    base = golden._BASE_QUERY.format(pivot=pivot, golden_columns=", ".join(f"ch.{a}" for a in golden.ATTRIBUTES))
    materialize(spark, settings, base, "golden_base", stage, {"not_revenue": golden.NOT_REVENUE})
    # the ranks' row numbers made distributed, in place of the statement's window over every customer
    numbered(spark, settings, spark.sql(golden.RFM_SOURCE), golden.RFM_ORDERS, "golden_numbered", stage)
    sql = without_cte(golden._RANK_SQL.format(active_days=golden.ACTIVE_DAYS), "golden_numbered")
    run_to_parquet(
        spark, con, settings, sql, "customer_golden", tables["customer_golden"], stage,
        args={"now": golden.start_of_today(settings)}, row_group_size=100_000,
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
