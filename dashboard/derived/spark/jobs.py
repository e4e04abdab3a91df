"""The derived steps that run as Spark jobs when [engine] kind = "spark", each from the DuckDB engine's own
SQL (transpiled by .sql), each writing the file the DuckDB engine writes: Spark writes part files under
the build's staging folder, cast to the table's declared columns and in its order, and their row groups are
joined into ``<table>.parquet`` as they are (the derived-build layout and manifest do not change; no row is
read on the driver)."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import reduce
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import sqlglot

from dashboard.core.config import Settings
from dashboard.core.duck import attach_table, empty_select, entity_columns, quote_path
from dashboard.core.entities import ENTITIES
from dashboard.core.store import Manifest, Store
from dashboard.derived import analytics
from dashboard.derived.spark.session import run_within, spark_session
from dashboard.derived.spark.sql import to_spark

_SPARK_TYPES = {
    "VARCHAR": "string",
    "TIMESTAMP": "timestamp_ntz",
    "DOUBLE": "double",
    "FLOAT": "float",
    "BIGINT": "bigint",
    "INTEGER": "int",
    "BOOLEAN": "boolean",
}
_ROW_GROUP_BYTES = 128 * 1024 * 1024  # Parquet's default row group size (join_parts copies the parts' own)
_ROW_GROUP_ROWS = 122_880  # DuckDB's default rows per row group: its scans of a file run a row group per thread
_SPARK_SCHEMA = b"org.apache.spark.sql.parquet.row.metadata"  # Spark's schema, in the key-value metadata it writes
PARTS = "_spark"  # the build's staging subfolder Spark writes its part files into (removed once gathered)


@contextlib.contextmanager
def engine(settings: Settings) -> Iterator[Any]:
    """The build's Spark session with engine spark (started and checked first, so an unreachable cluster
    fails the refresh before any work); None with engine duckdb."""
    if settings.engine.kind != "spark":
        yield None
        return
    with spark_session(settings) as spark:
        yield spark


def shared_uri(settings: Settings, path: Path) -> str:
    """``path`` (under the data folder) as the workers name it: [engine] shared_path + the same relative
    path, or this machine's own absolute path when the workers mount the data folder where it is."""
    root = settings.data_path.resolve()
    rel = path.resolve().relative_to(root).as_posix()
    base = settings.engine.shared_path or root.as_uri()
    if base.startswith("/"):
        base = Path(base).as_uri()
    return f"{base.rstrip('/')}/{rel}"


def spark_type(duck_type: str) -> str:
    return _SPARK_TYPES[duck_type.upper()]


def parquet_schema(path: Path) -> Any | None:
    """The Spark schema of the Parquet file ``path`` (or of the first part file in the folder ``path``), read
    from its footer on this machine; None where it cannot be read here or holds a type other than those the
    snapshots and Spark's own files use (_PLAIN: Spark then reads it as before). A file Spark wrote keeps its
    schema in the footer (_SPARK_SCHEMA), the one Spark's own reader takes from it: that one, whatever its types.
    ``spark.read.parquet`` without a schema runs a Spark job to read the footer, one per call."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import from_arrow_schema
    from pyspark.sql.types import StructType

    file = min(path.glob("*.parquet"), default=None) if path.is_dir() else path
    try:
        arrow = pq.read_schema(file) if file is not None else None
    except (OSError, pa.ArrowException):
        return None
    stored = (arrow.metadata or {}).get(_SPARK_SCHEMA) if arrow is not None else None
    if stored is not None:  # a file Spark wrote: the schema its reader would take from this footer, as it is
        return StructType.fromJson(json.loads(stored))
    if arrow is None or not all(_plain(f.type) for f in arrow):
        return None
    return from_arrow_schema(arrow, prefer_timestamp_ntz=True)


def _plain(kind: Any) -> bool:
    """An Arrow type Spark reads from Parquet as from_arrow_schema names it: text, signed integers, floats,
    booleans, dates, decimals, bytes, and timestamps in milli- or microseconds."""
    import pyarrow as pa

    t = pa.types
    if t.is_timestamp(kind):
        return bool(kind.unit in ("ms", "us"))
    checks = (t.is_string, t.is_large_string, t.is_signed_integer, t.is_float32, t.is_float64, t.is_boolean,
              t.is_date32, t.is_decimal, t.is_binary, t.is_large_binary)  # fmt: skip
    return any(check(kind) for check in checks)


def read_parquet(spark: Any, settings: Settings, path: Path, schema: Any = None) -> Any:
    """The Parquet file or folder ``path`` (under the data folder) as a Spark frame, without a Spark job for its
    schema: ``schema`` (a StructType or DDL: what was written there) or its footer's (parquet_schema)."""
    known = schema if schema is not None else parquet_schema(path)
    reader = spark.read if known is None else spark.read.schema(known)
    return reader.parquet(shared_uri(settings, path))


def frame(spark: Any, uris: list[str], columns: Mapping[str, str], schemas: list[Any] | None = None) -> Any:
    """The union of Parquet files as one frame with exactly ``columns`` (DuckDB types): a column a file lacks
    is NULL, as in the DuckDB engine's views (core.duck.view_sql). ``schemas``: each file's own, when known
    (parquet_schema; None: Spark reads it, a job per file); when all are known and agree (merged), one scan
    reads every file, a smaller plan for Spark to make than a union of one scan per file."""
    frames = []
    one = merged(schemas) if uris and schemas else None
    if one is not None:  # one scan of every file (a column a file lacks is read as NULL), not a union of scans
        frames.append(spark.read.schema(one).parquet(*uris))
    else:
        frames = [
            (spark.read if schema is None else spark.read.schema(schema)).parquet(uri)
            for uri, schema in zip(uris, schemas or [None] * len(uris), strict=True)
        ]
    frames = [_shaped(df, columns) for df in frames]
    if not frames:
        return spark.createDataFrame([], ", ".join(f"{c} {spark_type(t)}" for c, t in columns.items()))
    return reduce(lambda a, b: a.unionByName(b), frames)


def _shaped(df: Any, columns: Mapping[str, str]) -> Any:
    """``df`` with exactly ``columns`` (DuckDB types), NULL where it lacks one."""
    from pyspark.sql import functions as F

    have = set(df.columns)
    return df.select(
        [(F.col(c) if c in have else F.lit(None)).cast(spark_type(t)).alias(c) for c, t in columns.items()]
    )


def merged(schemas: list[Any]) -> Any | None:
    """The files' schemas as one (each column once, in the order first seen), when every file's is known and no
    column has two types; None otherwise (each file is then read on its own)."""
    from pyspark.sql.types import StructType

    fields: dict[str, Any] = {}
    for schema in schemas:
        if schema is None:
            return None
        for field in schema.fields:
            if fields.setdefault(field.name, field).dataType != field.dataType:
                return None
    return StructType(list(fields.values()))


def register_entities(spark: Any, settings: Settings, store: Store, manifest: Manifest) -> None:
    """A temporary view per canonical entity: every source's current snapshot file of it (each file's schema
    read here from its footer: no Spark job per file)."""
    for entity in ENTITIES:
        paths = [
            store.abs(info["entities"][entity]["file"])
            for info in manifest["sources"].values()
            if entity in info.get("entities", {})
        ]
        uris, schemas = [shared_uri(settings, p) for p in paths], [parquet_schema(p) for p in paths]
        frame(spark, uris, entity_columns(entity), schemas).createOrReplaceTempView(entity)


def run_job(spark: Any, settings: Settings, name: str, work: Callable[[], None]) -> None:
    """``work`` (the Spark jobs making ``name``) within [engine] job_timeout_seconds: a Spark failure (Py4J,
    analysis, a lost executor past its retries) or no executor left is an EngineError naming ``name``."""
    limit = settings.engine.job_timeout_seconds
    run_within(
        spark,
        work,
        limit,
        f"the Spark job for {name} ran past {limit:g} s ([engine] job_timeout_seconds) and was cancelled",
        f"the Spark job for {name} failed",
    )


def gathered(
    spark: Any, settings: Settings, folder: Path, name: str, sql: str, views: Mapping[str, Path | pl.DataFrame]
) -> pl.DataFrame:
    """``sql``'s (few) rows on the driver: run on Spark (the Spark job for ``name``) over ``views``, each a Parquet
    file or a driver's frame written as one into ``folder`` (removed after)."""
    out: list[pl.DataFrame] = []
    folder.mkdir(parents=True, exist_ok=True)

    def work() -> None:
        for view, source in views.items():
            path = source if isinstance(source, Path) else folder / f"{view}.parquet"
            if isinstance(source, pl.DataFrame):
                source.write_parquet(path)
            read_parquet(spark, settings, path).createOrReplaceTempView(view)
        got = pl.from_arrow(spark.sql(sql).toArrow())
        assert isinstance(got, pl.DataFrame)
        out.append(got)

    try:
        run_job(spark, settings, name, work)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return out[0]


def run_to_parquet(
    spark: Any,
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    sql: str,
    table: str,
    columns: Mapping[str, str],
    stage: Path,
    args: Mapping[str, Any] | None = None,
    row_group_size: int | None = None,
    compression: str = "zstd",
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Run ``sql`` (DuckDB dialect; ``$name`` parameters bound from ``args``) on Spark, write
    ``stage/<table>.parquet`` with ``columns`` (cast to them on Spark), in the statement's own ORDER BY, zstd (or
    ``compression``), at most ``row_group_size`` rows per row group (as the DuckDB engine writes the table; DuckDB's
    default without it), with ``metadata`` in the file's key-value metadata: Spark's sort writes each of its
    ranges as a part file, and their row groups are joined in the ranges' order (join_parts), so no row comes to
    the driver. The result is also the Spark view ``table`` for the
    statements after it."""
    parts = stage / PARTS / table
    text, bound = spark_query(declared(sql, columns), args)

    def work() -> None:
        rows = str(int(row_group_size or _ROW_GROUP_ROWS))  # Parquet's writer ends a row group at this many rows
        writer = spark.sql(text, bound).write.mode("overwrite").option("compression", compression)
        writer.option("parquet.block.row.count.limit", rows).parquet(shared_uri(settings, parts))

    run_job(spark, settings, table, work)
    target = stage / f"{table}.parquet"
    if not join_parts(spark, settings, table, parts, target, metadata):
        kv = ", KV_METADATA {" + ", ".join(f"{k!r}: {v!r}" for k, v in metadata.items()) + "}" if metadata else ""
        options = f"FORMAT parquet, COMPRESSION {compression}{kv}"
        con.execute(f"COPY ({empty_select(dict(columns))}) TO {quote_path(target)} ({options})")
    read_parquet(spark, settings, target).createOrReplaceTempView(table)
    shutil.rmtree(parts, ignore_errors=True)
    return target


_KEY = "_order"  # an ORDER BY key that is not one of the written columns travels in one of these


def declared(sql: str, columns: Mapping[str, str]) -> str:
    """``sql`` (DuckDB dialect) with exactly ``columns`` (DuckDB types) cast, in its own ORDER BY: the order
    applied over the casts (a key that is not a written column by name is selected beside them, not written)."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    order = tree.args.get("order")
    tree.set("order", None)
    keys: list[sqlglot.exp.Expression] = []
    for i, o in enumerate(order.expressions if order is not None else []):
        key = o.copy()
        if isinstance(o.this, sqlglot.exp.Column) and o.this.name in columns:
            key.set("this", sqlglot.exp.column(o.this.name))
        else:
            assert isinstance(tree, sqlglot.exp.Select), f"ORDER BY {o.sql(dialect='duckdb')}: not a written column"
            tree = tree.select(sqlglot.exp.alias_(o.this.copy(), f"{_KEY}{i}"), copy=False)
            key.set("this", sqlglot.exp.column(f"{_KEY}{i}"))
        keys.append(key)
    cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in columns.items())  # our own declared columns
    ordered = " " + sqlglot.exp.Order(expressions=keys).sql(dialect="duckdb") if keys else ""
    return f"SELECT {cols} FROM ({tree.sql(dialect='duckdb')}) AS _rows{ordered}"


def in_order(folder: Path) -> list[Path]:
    """The part files a Spark write left in ``folder``, in its partitions' order (part-<partition>-...): a sorted
    write's rows in its order."""
    return sorted(folder.glob("part-*.parquet"), key=lambda p: int(p.name.split("-")[1]))


def join_parts(
    spark: Any, settings: Settings, name: str, folder: Path, target: Path, metadata: Mapping[str, str] | None = None
) -> bool:
    """The part files of one Spark write in ``folder`` made the one file ``target`` (join_files), in the write's
    partitions' order. False when the write left no part file."""
    files = in_order(folder)
    if files:
        join_files(spark, settings, name, files, target, metadata)
    return bool(files)


def join_files(
    spark: Any,
    settings: Settings,
    name: str,
    files: list[Path],
    target: Path,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """``files`` (Parquet, one schema) made one file ``target``, their row groups in the files' order, copied as
    they are, with the first file's key-value metadata and ``metadata``: Parquet's own writer on the driver's JVM
    appends a file's row groups without reading its rows (no Spark job; nothing decoded, nothing held by the
    driver's Python)."""

    def work() -> None:
        jvm, conf = spark._jvm, spark._jsc.hadoopConfiguration()
        hadoop = jvm.org.apache.parquet.hadoop

        def uri(path: Path) -> Any:
            return hadoop.util.HadoopInputFile.fromPath(jvm.org.apache.hadoop.fs.Path(shared_uri(settings, path)), conf)

        reader = hadoop.ParquetFileReader.open(uri(files[0]))
        try:
            meta = reader.getFooter().getFileMetaData()
        finally:
            reader.close()
        into = hadoop.util.HadoopOutputFile.fromPath(jvm.org.apache.hadoop.fs.Path(shared_uri(settings, target)), conf)
        mode = getattr(hadoop, "ParquetFileWriter$Mode").OVERWRITE
        writer = hadoop.ParquetFileWriter(into, meta.getSchema(), mode, _ROW_GROUP_BYTES, 0)
        writer.start()
        for f in files:
            writer.appendFile(uri(f))
        pairs = jvm.java.util.HashMap(meta.getKeyValueMetaData())
        for key, value in (metadata or {}).items():
            pairs.put(key, value)
        writer.end(pairs)

    run_job(spark, settings, name, work)
    (target.parent / f".{target.name}.crc").unlink(missing_ok=True)  # Hadoop's checksum beside a local file


def spark_query(sql: str, args: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any] | None]:
    """``sql`` (DuckDB dialect, ``$name`` parameters) as Spark SQL, and ``args`` as Spark binds them: a datetime
    as its text cast to TIMESTAMP_NTZ, the tables' naive wall-clock time (PySpark would read a naive datetime
    in this process's own time zone)."""
    text = to_spark(sql)
    if not args:
        return text, None
    stamps = {k for k, v in args.items() if isinstance(v, datetime)}
    if stamps:
        ntz = sqlglot.exp.DataType.build("TIMESTAMP_NTZ", dialect="spark")

        def cast(node: sqlglot.exp.Expression) -> sqlglot.exp.Expression:
            if isinstance(node, sqlglot.exp.Placeholder) and node.name in stamps:
                return sqlglot.exp.Cast(this=node.copy(), to=ntz.copy())
            return node

        text = sqlglot.parse_one(text, read="spark").transform(cast).sql(dialect="spark")
    return text, {k: v.isoformat(sep=" ") if k in stamps else v for k, v in args.items()}


def analytics_tables(
    spark: Any,
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    store: Store,
    manifest: Manifest,
    stage: Path,
) -> None:
    """lead_facts, attribution and filter_values (derived.analytics) as Spark jobs, into ``stage``; each
    is then a view on ``con`` for the steps after it (golden records read lead_facts). Reads the build's
    identity links from ``stage/identity_links.parquet``."""
    register_entities(spark, settings, store, manifest)
    links = read_parquet(spark, settings, stage / "identity_links.parquet")
    links.select("source_system", "source_record_id", "record_kind", "customer_key").createOrReplaceTempView(
        "attribution_links"
    )
    excluded = [(c.strip().lower(),) for c in settings.analytics.attribution_exclude_channels]
    spark.createDataFrame(excluded, "channel string").createOrReplaceTempView("excluded_channels")
    for table, sql in (
        ("lead_facts", analytics.LEAD_FACTS_SQL),
        ("attribution", analytics.attribution_sql(settings.analytics.attribution_half_life_days)),
        ("filter_values", analytics.FILTER_VALUES_SQL),
    ):
        target = run_to_parquet(spark, con, settings, sql, table, analytics.TABLES[table], stage)
        attach_table(con, table, [target], analytics.TABLES[table])
    shutil.rmtree(stage / PARTS, ignore_errors=True)
