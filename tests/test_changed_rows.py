"""fingerprint.changed_rows: the keys of the rows one snapshot file holds and the other does not (duplicates
counted, snapshot_id aside), found by a hash of each row; checked against the rows compared whole."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from dashboard.pipeline.fingerprint import ROW_KEYS, changed_rows

KEYS = list(ROW_KEYS["orders"])  # source_system, customer_ref


def _orders(n: int = 400) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "order_id": [f"O{i:05d}" for i in range(n)],
            "customer_ref": [f"K{i % 97:03d}" if i % 23 else None for i in range(n)],
            "ordered_at": [None if i % 31 == 0 else f"2026-0{1 + i % 9}-1{i % 10}" for i in range(n)],
            "amount": [None if i % 29 == 0 else float(i % 50) * 1.5 for i in range(n)],
            "status": ["C" if i % 3 else None for i in range(n)],
            "source_system": ["erp" if i % 5 else "pos" for i in range(n)],
            "snapshot_id": ["old"] * n,
        }
    )


def _expected(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """The keys of every row (all columns but snapshot_id) counted a different number of times in the two."""
    cols = [c for c in old.columns if c != "snapshot_id"]
    counts = [f.drop("snapshot_id").group_by(cols).agg(pl.len().alias(name)) for f, name in ((old, "a"), (new, "b"))]
    both = counts[0].join(counts[1], on=cols, how="full", coalesce=True, nulls_equal=True)
    differ = both.filter(pl.col("a").fill_null(0) != pl.col("b").fill_null(0))
    return differ.select(KEYS).unique()


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(KEYS).sort(KEYS, nulls_last=True)


def test_the_changed_rows_keys_are_those_of_the_rows_compared_whole(tmp_path: Path) -> None:
    old = _orders()
    changed = old.with_columns(  # one amount doubled, one status taken away, one null amount given a value
        pl.when(pl.col("order_id") == "O00007").then(pl.col("amount") * 2).otherwise(pl.col("amount")).alias("amount"),
        pl.when(pl.col("order_id") == "O00011").then(None).otherwise(pl.col("status")).alias("status"),
    ).with_columns(
        pl.when(pl.col("order_id") == "O00029").then(9.0).otherwise(pl.col("amount")).alias("amount"),
    )
    new = pl.concat(
        [
            changed.filter(pl.col("order_id") != "O00013"),  # a row gone
            changed.filter(pl.col("order_id") == "O00017"),  # a row twice where it was once
            changed.filter(pl.col("order_id") == "O00046").with_columns(pl.lit("K999").alias("customer_ref")),  # new
        ]
    ).with_columns(pl.lit("new").alias("snapshot_id"))  # a new snapshot's id on every row: not a change
    old.write_parquet(tmp_path / "old.parquet")
    new.write_parquet(tmp_path / "new.parquet")
    con = duckdb.connect()

    got = changed_rows(con, tmp_path / "old.parquet", tmp_path / "new.parquet", KEYS)
    assert got is not None
    want = _expected(old, new)
    assert 4 <= want.height <= 6  # the six changes name these customers (two may share one)
    assert _sorted(got).equals(_sorted(want))
    keys = set(got.iter_rows())
    assert ("pos", "K999") in keys or ("erp", "K999") in keys  # the new row's own customer
    assert changed_rows(con, tmp_path / "old.parquet", tmp_path / "old.parquet", KEYS).height == 0  # type: ignore[union-attr]


def test_the_same_rows_in_another_order_and_snapshot_are_no_change(tmp_path: Path) -> None:
    old = _orders()
    old.write_parquet(tmp_path / "old.parquet")
    old.reverse().with_columns(pl.lit("new").alias("snapshot_id")).write_parquet(tmp_path / "new.parquet")
    got = changed_rows(duckdb.connect(), tmp_path / "old.parquet", tmp_path / "new.parquet", KEYS)
    assert got is not None and got.height == 0


@pytest.mark.parametrize("side", ["old", "new"])
def test_a_file_on_one_side_only_changes_every_row(tmp_path: Path, side: str) -> None:
    rows = _orders()
    rows.write_parquet(tmp_path / "one.parquet")
    one = tmp_path / "one.parquet"
    got = changed_rows(duckdb.connect(), one if side == "old" else None, one if side == "new" else None, KEYS)
    assert got is not None
    assert _sorted(got).equals(_sorted(rows.select(KEYS).unique()))
