"""The personal-data profile samples a file by its rows' content (issue 22, point 1): the same rows give the same
classification and shares whatever the file's row groups and row order, and whatever a build named its snapshots
and customers. A reservoir sample did not: at medium an incremental build's customer_attributes, the same rows as a
full build's in other row groups, read 0.0961 e-mails against 0.09615."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dashboard.core.dictionary import MASK_MACROS
from dashboard.derived import personal

ROWS = 3_000
SAMPLE = 400  # SAMPLE_ROWS for these tests: the files hold several samples' worth of rows


def _rows() -> pl.DataFrame:
    """Customers' attribute rows: a value column of phones (1 in 4), e-mails (1 in 10), an ID number now and then
    and cities (repeated, as customer_attributes' values are), some rows repeated whole; lists of sources."""
    rnd = random.Random(5)
    cities = ["北京", "上海", "广州", "深圳", "杭州"]
    rows = []
    for i in range(ROWS):
        pick = rnd.random()
        if pick < 0.25:
            value = f"139{i:08d}"
        elif pick < 0.35:
            value = f"user{i}@example.com"
        elif pick < 0.37:
            value = f"110105199001{i % 100:02d}{i % 1000:03d}X"
        else:
            value = rnd.choice(cities)
        rows.append(
            {
                "customer_key": f"K{i // 3:05d}",
                "value": value,
                "note": "" if i % 4 else f"called {i}",
                "sources": ["crm", "erp"][: 1 + i % 2],
                "snapshot_id": "20261205T000000000Z-aaaa",
                "amount": float(i % 97),
            }
        )
    frame = pl.DataFrame(rows)
    return pl.concat([frame, frame.head(200)])  # rows repeated whole: a duplicated extract


def _profile(file: Path) -> pl.DataFrame:
    con = duckdb.connect()
    con.execute(MASK_MACROS)
    found = personal.profile(con, {}, {"customer_attributes": file})
    return found.sort("column_name", "kind")


def _kinds(rows: pl.DataFrame) -> dict[str, float]:
    """Each personal kind's share of the non-empty values of the ``value`` column, over every row."""
    con = duckdb.connect()
    con.execute(MASK_MACROS)
    con.register("frame", rows)
    found = con.execute("SELECT main.pii_kind(value), count(*) / sum(count(*)) OVER () FROM frame GROUP BY 1")
    return {kind: share for kind, share in found.fetchall() if kind is not None}


@pytest.fixture(autouse=True)
def _sample_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(personal, "SAMPLE_ROWS", SAMPLE)


def test_the_same_rows_in_other_row_groups_and_order_give_the_same_profile(tmp_path: Path) -> None:
    rows = _rows()
    groups_of_500 = tmp_path / "groups_of_500.parquet"
    rows.write_parquet(groups_of_500, row_group_size=500)
    one_group = tmp_path / "one_group.parquet"
    rows.sample(fraction=1.0, shuffle=True, seed=11).write_parquet(one_group, row_group_size=len(rows))
    by_duckdb = tmp_path / "by_duckdb.parquet"  # another writer, reversed, row groups of 700
    con = duckdb.connect()
    con.register("frame", rows.reverse())
    con.execute(f"COPY frame TO '{by_duckdb}' (FORMAT parquet, ROW_GROUP_SIZE 700)")
    assert pl.read_parquet(one_group).sort(rows.columns).equals(rows.sort(rows.columns))

    found = _profile(groups_of_500)
    for other in (one_group, by_duckdb):
        assert_frame_equal(_profile(other), found)
    # a sample, not the whole file, and one that reads what the rows hold
    shares = {r["kind"]: (r["share"], r["sampled"]) for r in found.iter_rows(named=True)}
    assert set(shares) == {"phone", "email", "id_number"}
    assert {n for _, n in shares.values()} == {SAMPLE}
    true_share = _kinds(rows)
    for kind, (share, _) in shares.items():
        assert abs(share - true_share[kind]) < 0.06, (kind, share, true_share[kind])


def test_snapshot_ids_and_customer_keys_spelled_otherwise_give_the_same_profile(tmp_path: Path) -> None:
    """An incremental build and a build from an empty folder hold the same rows under other snapshot ids and,
    for some customers, other keys: neither may move the sample."""
    rows = _rows()
    ours = tmp_path / "ours.parquet"
    rows.write_parquet(ours, row_group_size=500)
    theirs = tmp_path / "theirs.parquet"
    rows.with_columns(
        pl.lit("20261206T111111111Z-bbbb").alias("snapshot_id"),
        pl.when(pl.int_range(pl.len()) % 7 == 0)
        .then(pl.col("customer_key") + "-handed-on")
        .otherwise(pl.col("customer_key"))
        .alias("customer_key"),
    ).write_parquet(theirs, row_group_size=1_000)
    assert_frame_equal(_profile(theirs), _profile(ours))


def test_a_file_smaller_than_the_sample_is_read_whole(tmp_path: Path) -> None:
    rows = _rows().head(SAMPLE - 50)
    file = tmp_path / "small.parquet"
    rows.write_parquet(file)
    found = _profile(file)
    phones = rows.filter(pl.col("value").str.starts_with("139")).height
    [(share, sampled)] = found.filter(pl.col("kind") == "phone").select("share", "sampled").rows()
    assert sampled == rows.height and share == pytest.approx(phones / rows.height)


def _sample(file: Path) -> list[tuple[object, ...]]:
    """The rows personal._sample takes of ``file`` (its text columns), in one order."""
    con = duckdb.connect()
    columns = list(personal._text_columns(con, file))
    personal._sample(con, file, columns)
    return con.execute(f"SELECT {', '.join(columns)} FROM {personal.SAMPLE} ORDER BY ALL").fetchall()


def _full_order(file: Path) -> list[tuple[object, ...]]:
    """The first SAMPLE rows of ``file`` in the sample's whole order: its two hashes, then every text column."""
    con = duckdb.connect()
    columns = list(personal._text_columns(con, file))
    content = [c for c in columns if c not in personal.BUILD_NAMES]
    first, second = personal._keys(content, [c for c in columns if c in personal.BUILD_NAMES])
    order = ", ".join([first, second, *content, *(c for c in columns if c in personal.BUILD_NAMES)])
    rows = f"SELECT {', '.join(columns)} FROM read_parquet('{file}') ORDER BY {order} LIMIT {SAMPLE}"
    return con.execute(f"SELECT * FROM ({rows}) ORDER BY ALL").fetchall()


def test_rows_tied_on_both_hashes_at_the_limit_are_taken_by_their_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB sorts by the two hashes alone; rows tied on both at the limit are ordered by their text. A coarse
    content hash (13 values) ties thousands of different rows, so the limit falls inside a tie: the sample is
    still the whole order's first rows, the same however the file is laid out."""
    rows = _rows()
    ours = tmp_path / "ours.parquet"
    rows.write_parquet(ours, row_group_size=500)
    theirs = tmp_path / "theirs.parquet"
    rows.sample(fraction=1.0, shuffle=True, seed=3).write_parquet(theirs, row_group_size=1_300)
    keys = personal._keys
    monkeypatch.setattr(personal, "_keys", lambda content, names: (f"{keys(content, names)[0]} % 13", "0::UBIGINT"))

    taken = _sample(ours)
    assert len(taken) == SAMPLE and taken == _full_order(ours)
    assert _sample(theirs) == taken
    assert_frame_equal(_profile(theirs), _profile(ours))


def test_rows_repeated_whole_across_the_limit(tmp_path: Path) -> None:
    """Rows that differ only in their build names, or not at all, tie on the content's hash: the build names' hash
    orders the first, and the second are taken as many times as the sample has room for."""
    rows = _rows()
    twice = pl.concat([rows, rows, rows.with_columns(pl.col("customer_key") + "-b")])
    ours = tmp_path / "ours.parquet"
    twice.write_parquet(ours, row_group_size=700)
    theirs = tmp_path / "theirs.parquet"
    twice.reverse().write_parquet(theirs, row_group_size=2_000)
    taken = _sample(ours)
    assert len(taken) == SAMPLE and taken == _full_order(ours) == _sample(theirs)


def test_a_file_of_few_values_repeated(tmp_path: Path) -> None:
    """Two values 500 times each: the hash filter that spares sorting most rows lets too few through (or all of
    one value), so the file is sorted whole and the limit falls inside a run of identical rows."""
    rows = pl.DataFrame({"city": ["上海", "杭州"] * 500, "source_system": "crm", "snapshot_id": "20261205T000000000Z"})
    file = tmp_path / "few.parquet"
    rows.write_parquet(file, row_group_size=300)
    taken = _sample(file)
    assert len(taken) == SAMPLE and taken == _full_order(file)
