"""The personal-data profile's samples as Spark jobs (engine spark): each file's sample is the rows
derived.personal._sample takes, the first SAMPLE_ROWS in the order of (DuckDB's hash of the rows' content, of their
build names, then the content and build names), with both hashes computed by DuckDB itself on the executors, a batch
at a time (personal._keys' expressions: the same function of the same values, so the same numbers), the bound and
the first rows taken by Spark. The driver gets the sample (SAMPLE_ROWS + 1 rows, and as many of the rows tied at the
limit as the order takes), never the file, and classifies it as the DuckDB engine does (personal._classify). A file
of at most SAMPLE_ROWS rows is its own sample (read on the driver by personal._sample), and so is a table stored as a
base and a part (personal.Union: an incremental build's golden part, made on the driver); a file smaller than
SPARK_SAMPLE_BYTES is sampled on the driver (personal._sample): there it costs less than Spark's jobs would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from dashboard.core.config import Settings
from dashboard.derived import personal
from dashboard.derived.spark.jobs import read_parquet

# A file of fewer bytes than this is sampled on the driver (personal._sample), where DuckDB's hash and top-N of it take
# under ~0.5 CPU-s: about what Spark's jobs for one file cost at the least (0.3-0.5 CPU-s on local[2]). Measured per
# file at medium and large (docs/benchmarks.md, session 21): the driver took 3-13 ns of CPU per file byte (large's
# customer_attributes, 121 MB: 1.2 CPU-s), Spark 10-50 times that on local[2]; on a cluster the files above it, which
# grow with the customers, are read and hashed by the executors, not the driver.
SPARK_SAMPLE_BYTES = 64 << 20
OFFSET = 1 << 63  # DuckDB's UBIGINT hashes as Spark's signed longs, in the same order: hash − 2^63
_K1, _K2 = "_k1", "_k2"  # the two hashes on Spark, so offset
Keep = tuple[str, int | tuple[int, int] | None]  # ("below", k1 bound) | ("at", (k1, k2)) | ("all", None): unsigned


def _hashed(content: list[str], names: list[str], keep: Keep) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """On an executor: each Arrow batch with personal._keys' two hashes beside it (offset into signed longs), only
    the rows ``keep`` names."""
    first, second = personal._keys(content, names)

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        import pyarrow.compute as pc

        con = duckdb.connect()
        for batch in batches:
            con.register("personal_batch", pa.Table.from_batches([batch]))
            keys = con.sql(
                f"SELECT ({first})::HUGEINT - {OFFSET} AS k1, ({second})::HUGEINT - {OFFSET} AS k2 FROM personal_batch"
            ).to_arrow_table()
            k1, k2 = keys["k1"].cast(pa.int64()).combine_chunks(), keys["k2"].cast(pa.int64()).combine_chunks()
            kind, at = keep
            if kind == "below":
                assert isinstance(at, int)
                mask = pc.less(k1, at - OFFSET)
            elif kind == "at":
                assert isinstance(at, tuple)
                mask = pc.and_(pc.equal(k1, at[0] - OFFSET), pc.equal(k2, at[1] - OFFSET))
            else:
                mask = None
            out = pa.RecordBatch.from_arrays([*batch.columns, k1, k2], names=[*batch.schema.names, _K1, _K2])
            yield out if mask is None else out.filter(mask)
        con.close()

    return run


def _first(frame: Any, content: list[str], names: list[str], keep: Keep, limit: int, by_text: bool) -> pl.DataFrame:
    """The first ``limit`` rows of ``frame`` that ``keep`` names, by the two hashes (and, ``by_text``, then by the
    content and build names, ascending with nulls last as DuckDB orders), on the driver with the hashes unsigned."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StructField, StructType

    schema = StructType([*frame.schema.fields, StructField(_K1, LongType()), StructField(_K2, LongType())])
    hashed = frame.mapInArrow(_hashed(content, names, keep), schema)
    order = [F.col(_K1), F.col(_K2)]
    if by_text:
        order += [F.col(f"`{c.strip(chr(34))}`").asc_nulls_last() for c in [*content, *names]]
    got = pl.from_arrow(hashed.orderBy(*order).limit(limit).toArrow())
    assert isinstance(got, pl.DataFrame)
    unsigned = [(pl.col(k).cast(pl.Int128) + OFFSET).cast(pl.UInt64) for k in (_K1, _K2)]
    return got.with_columns(unsigned[0].alias(personal.K1), unsigned[1].alias(personal.K2)).drop(_K1, _K2)


def small(file: Path) -> bool:
    """A file sampled on the driver for its size (SPARK_SAMPLE_BYTES)."""
    return file.stat().st_size < SPARK_SAMPLE_BYTES


def sampler(spark: Any, settings: Settings) -> personal.Sampler:
    """personal._sample with the file read and hashed on Spark: the same rows in the table personal.SAMPLE."""
    on_driver = personal._sample  # a small file's, and a Union's

    def sample(con: duckdb.DuckDBPyConnection, file: personal.Stored, columns: list[str]) -> None:
        n = personal.SAMPLE_ROWS
        if not isinstance(file, Path) or pq.ParquetFile(file).metadata.num_rows <= n or small(file):
            on_driver(con, file, columns)  # the whole file is the sample; a Union and a small file are the driver's
            return
        count = pq.ParquetFile(file).metadata.num_rows
        quoted = [f'"{c}"' for c in columns]  # names from the file's own schema, quoted (as personal._sample)
        content = [q for c, q in zip(columns, quoted, strict=True) if c not in personal.BUILD_NAMES] or quoted
        names = [q for q in quoted if q not in content]
        frame = read_parquet(spark, settings, file).select(*[f"`{c}`" for c in columns])
        share = personal.SAMPLE_MARGIN * (n + 1) / count
        taken = _first(frame, content, names, ("below", int(share * 2**64)), n + 1, False) if share < 1 else None
        if taken is None or taken.height <= n:  # fewer below the bound (many equal rows): the whole file's order
            taken = _first(frame, content, names, ("all", None), n + 1, False)
        # the greatest hashes taken are the next row's: the rows before them are in the sample whatever their text,
        # the rows with them as far as the whole order takes them
        last = taken.row(-1, named=True)
        at = (int(last[personal.K1]), int(last[personal.K2]))
        kept = taken.filter((pl.col(personal.K1) != at[0]) | (pl.col(personal.K2) != at[1]))
        if kept.height < n:
            kept = pl.concat([kept, _first(frame, content, names, ("at", at), n - kept.height, True)])
        con.register("personal_spark_sample", kept)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {personal.SAMPLE} AS SELECT * FROM personal_spark_sample")
        finally:
            con.unregister("personal_spark_sample")

    return sample
