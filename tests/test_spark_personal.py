"""The personal-data profile's samples with engine spark (local[2]) are the DuckDB engine's: the same rows (by
DuckDB's own hashes, computed on the executors), with rows tied at the limit taken in the same text order, for
files larger than the sample; the driver gets the sample, never the file. And the small demo's whole profile is the
same on both engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from dashboard.core.config import Settings
from dashboard.core.dictionary import MASK_MACROS
from dashboard.core.store import Store
from dashboard.derived import personal
from dashboard.derived.spark import personal as spark_personal
from dashboard.pipeline.derive import DERIVED_TABLES, READ_FROM
from tests.test_personal_sample import _rows

pytestmark = pytest.mark.xdist_group("spark")

SAMPLE = 400  # SAMPLE_ROWS here: the files hold several samples' worth of rows


def _sampled(con: duckdb.DuckDBPyConnection, sample: Any, file: Path) -> pl.DataFrame:
    """The table personal.SAMPLE as ``sample`` fills it from ``file``'s text columns, in a fixed order."""
    columns = list(personal._text_columns(con, file))
    sample(con, file, columns)
    got = con.sql(f"SELECT * FROM {personal.SAMPLE}").pl()
    return got.sort(personal.K1, personal.K2, *columns, nulls_last=True)


def test_a_files_sample_on_spark_is_duckdbs(on_spark: Settings, spark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of many kinds (lists, nulls, repeated whole), a file of few distinct rows (fewer than the sample below
    the bound: the whole file's order) and one of one row repeated (every row tied at the limit)."""
    monkeypatch.setattr(personal, "SAMPLE_ROWS", SAMPLE)
    monkeypatch.setattr(spark_personal, "SPARK_SAMPLE_BYTES", 0)  # every file on Spark, however small
    rows = _rows().with_columns(
        pl.when(pl.int_range(pl.len()) % 11 == 0).then(None).otherwise(pl.col("value")).alias("value")
    )
    folder = on_spark.data_path / "personal_samples"  # under the data folder: where Spark reads a build's files
    folder.mkdir()
    files = {
        "varied": rows,
        "few_distinct": pl.concat([rows.head(30)] * 60),
        "one_row": pl.concat([rows.head(1)] * 2_000),
    }
    con = duckdb.connect()
    con.execute(MASK_MACROS)
    on_executors = spark_personal.sampler(spark, on_spark)
    for name, frame in files.items():
        file = folder / f"{name}.parquet"
        frame.write_parquet(file, row_group_size=700)
        want = _sampled(con, personal._sample, file)
        got = _sampled(con, on_executors, file)
        assert want.height == SAMPLE, name
        assert_frame_equal(got, want)  # the same rows, text and lists of text as the DuckDB engine reads them


def test_the_small_demos_profile_on_spark_is_duckdbs(
    on_spark: Settings, spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every snapshot and derived file of the small demo, profiled with its samples made on Spark: the same
    personal_columns (SAMPLE_ROWS lowered so that the files are sampled, not read whole; every file on Spark)."""
    monkeypatch.setattr(personal, "SAMPLE_ROWS", 300)
    monkeypatch.setattr(spark_personal, "SPARK_SAMPLE_BYTES", 0)
    store = Store(on_spark.data_path)
    manifest = store.read_manifest()
    entity_files: dict[tuple[str, str], Path] = {}
    for source, entry in manifest["sources"].items():  # each source's snapshot files, as the build profiles them
        entity_files.update({(e, source): store.abs(i["file"]) for e, i in entry["entities"].items()})
    tables = manifest["derived"]["tables"]
    derived: dict[str, personal.Stored] = {
        t: store.abs(rel) for t, rel in tables.items() if t in DERIVED_TABLES and t not in READ_FROM
    }
    sampled: list[Path] = []
    on_executors = spark_personal.sampler(spark, on_spark)

    def counted(con: duckdb.DuckDBPyConnection, file: personal.Stored, columns: list[str]) -> None:
        if isinstance(file, Path):
            sampled.append(file)
        on_executors(con, file, columns)

    found = {}
    for engine, sample in (("duckdb", None), ("spark", counted)):
        con = duckdb.connect()
        con.execute(MASK_MACROS)
        found[engine] = personal.profile(con, entity_files, derived, sample=sample)
    assert_frame_equal(found["spark"], found["duckdb"])
    assert found["duckdb"].height > 0 and found["duckdb"]["kind"].n_unique() > 1
    large = [f for f in sampled if pq.ParquetFile(f).metadata.num_rows > 300]
    assert len(large) >= 5  # sampled on Spark, not read whole


def test_a_file_below_the_size_threshold_is_sampled_on_the_driver(
    on_spark: Settings, spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file of more than SAMPLE_ROWS rows but fewer bytes than SPARK_SAMPLE_BYTES: personal._sample's rows, made on
    the driver (Spark reads no file); one at the threshold goes to Spark, with the same rows."""
    monkeypatch.setattr(personal, "SAMPLE_ROWS", SAMPLE)
    folder = on_spark.data_path / "personal_threshold"
    folder.mkdir()
    file = folder / "varied.parquet"
    _rows().write_parquet(file)
    con = duckdb.connect()
    con.execute(MASK_MACROS)
    want = _sampled(con, personal._sample, file)
    read: list[Path] = []
    spark_read = spark_personal.read_parquet

    def reading(session: Any, settings: Settings, path: Path, *args: Any) -> Any:
        read.append(path)
        return spark_read(session, settings, path, *args)

    monkeypatch.setattr(spark_personal, "read_parquet", reading)
    on_executors = spark_personal.sampler(spark, on_spark)
    monkeypatch.setattr(spark_personal, "SPARK_SAMPLE_BYTES", file.stat().st_size + 1)
    assert_frame_equal(_sampled(con, on_executors, file), want)
    assert read == []  # the driver's
    monkeypatch.setattr(spark_personal, "SPARK_SAMPLE_BYTES", file.stat().st_size)
    assert_frame_equal(_sampled(con, on_executors, file), want)
    assert read == [file]  # Spark's
