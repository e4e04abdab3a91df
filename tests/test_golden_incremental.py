"""Golden records made again for a few touched customers only (issue 22): the same tables as a full build, row
for row; the touched customers' rows are made from their own records (the others' are not read) and every
other customer's rows are copied from the current build, not made again."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dashboard.core.config import Settings
from dashboard.core.duck import work_connection
from dashboard.core.store import Store
from dashboard.derived import golden
from dashboard.derived.golden import GOLDEN_TABLES, Parts, Previous, touched_customers, write_golden
from dashboard.derived.identity import Graph, read_records, record_table, resolve
from dashboard.derived.tables import attach_views

STALE = "stale value"  # what the current build says of a touched customer: made again, it must not survive


@pytest.fixture(scope="module")
def con(small_demo: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    store = Store(small_demo.data_path)
    with work_connection(small_demo) as con:
        attach_views(con, store, store.read_manifest())
        yield con


@pytest.fixture(scope="module")
def links(small_demo: Settings) -> pl.DataFrame:
    store = Store(small_demo.data_path)
    return pl.read_parquet(store.abs(store.read_manifest()["derived"]["tables"]["identity_links"]))


@pytest.fixture(scope="module")
def full(
    con: duckdb.DuckDBPyConnection, small_demo: Settings, links: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("full")
    assert write_golden(con, small_demo, read_records(con), links, folder) == links.height
    return folder


def _touched(links: pl.DataFrame) -> pl.DataFrame:
    """Five customers with the most records (conflicting values, several sources) and five with one."""
    sizes = links.group_by("customer_key").len().sort(["len", "customer_key"], descending=[True, False])
    return pl.concat([sizes.head(5), sizes.filter(pl.col("len") == 1).head(5)]).select("customer_key")


def _current(full: Path, folder: Path, touched: pl.DataFrame, kept_key: str, lookup: bool = False) -> Previous:
    """The current build: the full build's files, the touched customers' rows stale, one kept customer's city
    marked (a copied row keeps it, a row made again would not); with ``lookup`` its customer_lookup too (the
    touched customers' owners stale, the kept customer's marked), whose kept rows are then copied."""
    folder.mkdir()
    hit = pl.col("customer_key").is_in(touched["customer_key"].implode())
    golden = pl.read_parquet(full / "customer_golden.parquet").with_columns(
        pl.when(hit).then(pl.lit(STALE)).otherwise(pl.col("name")).alias("name"),
        pl.when(pl.col("customer_key") == kept_key).then(pl.lit("copied")).otherwise(pl.col("city")).alias("city"),
    )
    golden.write_parquet(folder / "customer_golden.parquet")
    attributes = pl.read_parquet(full / "customer_attributes.parquet")
    attributes.with_columns(pl.when(hit).then(pl.lit(STALE)).otherwise(pl.col("value")).alias("value")).write_parquet(
        folder / "customer_attributes.parquet"
    )
    if lookup:
        owner = pl.col("owner")
        pl.read_parquet(full / "customer_lookup.parquet").with_columns(
            pl.when(hit).then(pl.lit(STALE)).when(pl.col("customer_key") == kept_key).then(pl.lit("copied"))
            .otherwise(owner).alias("owner")
        ).write_parquet(folder / "customer_lookup.parquet")  # fmt: skip
    found = folder / "customer_lookup.parquet" if lookup else None
    return Previous(folder / "customer_golden.parquet", folder / "customer_attributes.parquet", touched, found)


def _table(folder: Path, table: str) -> pl.DataFrame:
    """``table`` as its readers see it: customer_attributes with a part is its base and part read together."""
    parts = Parts.of(folder) if table == "customer_attributes" else None
    if parts is None:
        return pl.read_parquet(folder / f"{table}.parquet")
    return duckdb.connect().sql(parts.sql()).pl()


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort([c for c, t in frame.schema.items() if not isinstance(t, pl.List)])


@pytest.mark.parametrize(("records_given", "lookup"), [(True, False), (False, False), (False, True)])
def test_a_few_touched_customers_give_the_full_build_row_for_row(
    con: duckdb.DuckDBPyConnection,
    small_demo: Settings,
    links: pl.DataFrame,
    full: Path,
    tmp_path: Path,
    records_given: bool,
    lookup: bool,
) -> None:
    touched = _touched(links)
    found = pl.read_parquet(full / "customer_lookup.parquet")  # a kept customer with a phone or an e-mail
    kept_key = str(found.filter(~pl.col("customer_key").is_in(touched["customer_key"].implode()))["customer_key"][0])
    assert found.filter(pl.col("customer_key").is_in(touched["customer_key"].implode())).height > 0
    previous = _current(full, tmp_path / "current", touched, kept_key, lookup)
    made = tmp_path / "made"
    made.mkdir()
    records = read_records(con) if records_given else None  # None: read here, the touched customers' only
    used = write_golden(con, small_demo, records, links, made, previous)

    # made from the touched customers' records alone: 5 with the most records and 5 with one
    assert used == links.join(touched, on="customer_key", how="semi").height
    assert used < links.height // 10
    assert Parts.of(made) is not None  # 10 customers: a part, the base linked on
    for table in GOLDEN_TABLES:
        ours = _table(made, table)
        theirs = pl.read_parquet(full / f"{table}.parquet")
        marked = {"customer_golden": "city", "customer_lookup": "owner" if lookup else None}.get(table)
        if marked:  # the kept customer's rows were copied, not made again
            assert set(ours.filter(pl.col("customer_key") == kept_key)[marked].to_list()) == {"copied"}, table
            ours = ours.filter(pl.col("customer_key") != kept_key)
            theirs = theirs.filter(pl.col("customer_key") != kept_key)
        assert not ours.select(pl.any_horizontal(pl.col(pl.String) == STALE).any()).item(), table
        assert_frame_equal(_sorted(ours), _sorted(theirs))
        # the file's layout: one customer's rows together (attributes), values in order (lookup)
        order = ["attribute", "value"] if table == "customer_lookup" else ["customer_key"]
        ours = pl.read_parquet(made / (golden.PART_FILE if table == "customer_attributes" else f"{table}.parquet"))
        assert ours.select(order).equals(ours.select(order).sort(order)), table


def test_a_full_build_from_arrow_records_gives_the_same_tables(
    con: duckdb.DuckDBPyConnection, small_demo: Settings, links: pl.DataFrame, full: Path, tmp_path: Path
) -> None:
    """identity's records as Arrow (as the build hands them) make the same tables as from Polars, row for row,
    customer_attributes' rows of a customer together and in key order."""
    assert write_golden(con, small_demo, read_records(con).to_arrow(), links, tmp_path) == links.height
    for table in GOLDEN_TABLES:
        made, theirs = pl.read_parquet(tmp_path / f"{table}.parquet"), pl.read_parquet(full / f"{table}.parquet")
        assert_frame_equal(_sorted(made), _sorted(theirs))
    keys = pl.read_parquet(tmp_path / "customer_attributes.parquet", columns=["customer_key"])["customer_key"]
    assert keys.is_sorted()


@pytest.mark.parametrize("compact", [False, True])
def test_a_build_on_a_part_replaces_its_customers_and_compacts_past_the_share(
    con: duckdb.DuckDBPyConnection,
    small_demo: Settings,
    links: pl.DataFrame,
    full: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    compact: bool,
) -> None:
    """A second incremental build on the first's base and part: customers of the part made again and customers of
    the base, the same rows as a full build; past PARTS_SHARE of the customers in the part, one file again."""
    first = _touched(links)
    found = pl.read_parquet(full / "customer_lookup.parquet")
    kept_key = str(found.filter(~pl.col("customer_key").is_in(first["customer_key"].implode()))["customer_key"][0])
    one = tmp_path / "one"
    one.mkdir()
    write_golden(con, small_demo, None, links, one, _current(full, tmp_path / "current", first, kept_key, True))
    parts = Parts.of(one)
    assert parts is not None
    # the second build's touched: three of the part's customers and three of the base's, stale in both files
    others = links.select("customer_key").unique().sort("customer_key")
    others = others.join(first, on="customer_key", how="anti").head(3)
    second = pl.concat([first.head(3), others])
    hit = pl.col("customer_key").is_in(second["customer_key"].implode())
    for file in (parts.base, parts.rows):
        rows = pl.read_parquet(file).with_columns(pl.when(hit).then(pl.lit(STALE)).otherwise("value").alias("value"))
        file.unlink()  # the base is linked from the first build's: written anew, not in place
        rows.write_parquet(file)
    if compact:
        monkeypatch.setattr(golden, "PARTS_SHARE", 0.0)
    two = tmp_path / "two"
    two.mkdir()
    previous = Previous(one / "customer_golden.parquet", parts.base, second, one / "customer_lookup.parquet", parts)
    write_golden(con, small_demo, None, links, two, previous)

    assert (Parts.of(two) is None) == compact
    if not compact:  # the part holds both builds' customers, the base is the first's
        assert set(pl.read_parquet(two / golden.KEYS_FILE)["customer_key"]) == set(first["customer_key"]) | set(
            second["customer_key"]
        )
        assert os.path.samefile(two / "customer_attributes.parquet", parts.base)
    for table in GOLDEN_TABLES:
        ours, theirs = _table(two, table), pl.read_parquet(full / f"{table}.parquet")
        assert not ours.select(pl.any_horizontal(pl.col(pl.String) == STALE).any()).item(), table
        if table != "customer_attributes":  # the kept customer's marks: not this test's
            continue
        assert_frame_equal(_sorted(ours), _sorted(theirs))


def test_nothing_touched_copies_every_row(
    con: duckdb.DuckDBPyConnection, small_demo: Settings, links: pl.DataFrame, full: Path, tmp_path: Path
) -> None:
    shutil.copytree(full, tmp_path / "current")
    nobody = pl.DataFrame({"customer_key": []}, schema={"customer_key": pl.String})
    current = tmp_path / "current"
    previous = Previous(current / "customer_golden.parquet", current / "customer_attributes.parquet", nobody)
    made = tmp_path / "made"
    made.mkdir()
    assert write_golden(con, small_demo, None, links, made, previous) == 0  # no record read
    for table in GOLDEN_TABLES:
        ours, theirs = _table(made, table), pl.read_parquet(full / f"{table}.parquet")
        assert_frame_equal(_sorted(ours), _sorted(theirs))


def test_links_kept_touch_the_changed_rows_customers_as_the_same_links_compared_do(links: pl.DataFrame) -> None:
    """touched_customers without the current build's links (identity kept, its files linked) touches what
    comparing two copies of the same links touches: the customers of the changed rows, no record moved."""
    customers = links.filter((pl.col("record_kind") == "customer") & (pl.col("source_system") == "erp"))
    changes = {
        "orders": customers.head(7).select("source_system", pl.col("source_record_id").alias("customer_ref")),
        "customers": customers.tail(3).select("source_system", "source_record_id"),
    }
    kept = touched_customers(None, links, changes)
    compared = touched_customers(links.clone(), links, changes)
    assert 0 < kept.height <= 10
    assert sorted(kept["customer_key"].to_list()) == sorted(compared["customer_key"].to_list())
    assert set(kept["customer_key"]) == set(customers.head(7)["customer_key"]) | set(customers.tail(3)["customer_key"])


def _made_in_full(
    con: duckdb.DuckDBPyConnection, settings: Settings, links: pl.DataFrame, tmp_path: Path
) -> tuple[Path, pl.DataFrame]:
    """A full build's golden files (with the file options as patched), and the customers _touched names."""
    full = tmp_path / "full"
    full.mkdir()
    write_golden(con, settings, read_records(con), links, full)
    return full, _touched(links)


def _ranked_in_current(
    con: duckdb.DuckDBPyConnection, settings: Settings, links: pl.DataFrame, tmp_path: Path
) -> tuple[Path, Previous, str, pl.DataFrame]:
    """A full build, and a current build made of it: the touched customers' rows stale, one kept customer's RFM
    segment and value tier marked (a copied rank keeps them, a rank made again would not), every lifecycle with
    orders stale (the day decides it: made again either way). Its kept customer, and the customers with orders."""
    full, touched = _made_in_full(con, settings, links, tmp_path)
    golden = pl.read_parquet(full / "customer_golden.parquet")
    ordered = pl.col("orders") > 0  # without orders the lifecycle is the lead's stage: kept as it was
    kept_key = str(golden.join(touched, on="customer_key", how="anti").filter(ordered)["customer_key"][0])
    previous = _current(full, tmp_path / "current", touched, kept_key)
    marked = pl.col("customer_key") == kept_key
    pl.read_parquet(previous.golden).with_columns(
        pl.when(marked).then(pl.lit("copied")).otherwise(pl.col("rfm_segment")).alias("rfm_segment"),
        pl.when(marked).then(pl.lit("copied")).otherwise(pl.col("value_tier")).alias("value_tier"),
        pl.when(ordered).then(pl.lit(STALE)).otherwise(pl.col("lifecycle_stage")).alias("lifecycle_stage"),
    ).write_parquet(previous.golden)
    return full, previous, kept_key, golden.filter(ordered)


def test_ranks_are_copied_when_no_touched_customer_moves_them(
    con: duckdb.DuckDBPyConnection, small_demo: Settings, links: pl.DataFrame, tmp_path: Path
) -> None:
    """The touched customers' orders, last order and revenue are the current build's, and no customer gained or
    lost its orders: every customer ranks as it did, so the kept customers' RFM segments and value tiers are
    copied (the marked one stays marked), their lifecycle with orders made for the day; the rest is the full
    build's, row for row."""
    full, previous, kept_key, ordered = _ranked_in_current(con, small_demo, links, tmp_path)
    assert ordered.join(previous.touched, on="customer_key").height > 0  # touched customers with orders
    made = tmp_path / "made"
    made.mkdir()
    write_golden(con, small_demo, None, links, made, previous)

    ours, theirs = (pl.read_parquet(f / "customer_golden.parquet") for f in (made, full))
    copied = ours.filter(pl.col("customer_key") == kept_key)
    assert copied.select("city", "rfm_segment", "value_tier").row(0) == ("copied", "copied", "copied")
    assert STALE not in ours["lifecycle_stage"].to_list()
    same = pl.col("customer_key") != kept_key
    assert_frame_equal(ours.filter(same), theirs.filter(same))  # row for row, in the same order
    assert_frame_equal(copied.drop("city", "rfm_segment", "value_tier"), theirs.filter(~same).drop(
        "city", "rfm_segment", "value_tier"))  # fmt: skip


@pytest.mark.parametrize("moved", ["revenue", "orders"])
def test_ranks_are_made_again_when_a_touched_customer_moves_them(
    con: duckdb.DuckDBPyConnection, small_demo: Settings, links: pl.DataFrame, tmp_path: Path, moved: str
) -> None:
    """A touched customer's revenue differs from the current build's ("revenue"), or it had no orders then
    ("orders": one more customer ranked now): every customer is ranked again, the marked kept customer too, and
    every row is the full build's."""
    full, previous, kept_key, ordered = _ranked_in_current(con, small_demo, links, tmp_path)
    key = ordered.join(previous.touched, on="customer_key")["customer_key"][0]
    change = (pl.col("lifetime_revenue") + 1.0) if moved == "revenue" else pl.lit(0, dtype=pl.Int64)
    column = "lifetime_revenue" if moved == "revenue" else "orders"
    was = pl.read_parquet(previous.golden)
    was.with_columns(pl.when(pl.col("customer_key") == key).then(change).otherwise(pl.col(column)).alias(column)).cast(
        was.schema
    ).write_parquet(previous.golden)
    made = tmp_path / "made"
    made.mkdir()
    write_golden(con, small_demo, None, links, made, previous)

    ours, theirs = (pl.read_parquet(f / "customer_golden.parquet") for f in (made, full))
    assert ours.filter(pl.col("customer_key") == kept_key)["city"].to_list() == ["copied"]  # the row was copied
    same = pl.col("customer_key") != kept_key
    assert_frame_equal(ours.filter(same), theirs.filter(same))  # row for row, in the same order
    assert_frame_equal(ours.filter(~same).drop("city"), theirs.filter(~same).drop("city"))  # ranked again


# A full build made from numbers: the records joined to their customers by the row of their link identity tells
# (Graph.record_links), not by source, id and kind, and a customer's sources, conflicts and channels carried as bit
# masks until customer_golden's rows are sorted. The same files as the records joined by their strings.
ON = ["source_system", "source_record_id", "record_kind"]


def test_identity_tells_each_records_link(con: duckdb.DuckDBPyConnection) -> None:
    records = record_table(con)
    graph = Graph()
    made = resolve(records, graph=graph)
    assert graph.record_links is not None and len(graph.record_links) == records.num_rows
    told = made[graph.record_links].select(ON)
    assert_frame_equal(told, pl.DataFrame(pl.from_arrow(records.select(ON))))
    assert made["customer_key"].is_sorted()  # the links by key, as written


def _same_files(made: Path, full: Path) -> None:
    """customer_golden row for row, the other two as sets (rows of one key or value come in no set order)."""
    for table in GOLDEN_TABLES:
        mine, theirs = pl.read_parquet(made / f"{table}.parquet"), pl.read_parquet(full / f"{table}.parquet")
        if table != "customer_golden":
            mine, theirs = _sorted(mine), _sorted(theirs)
        assert_frame_equal(mine, theirs)


@pytest.mark.parametrize("in_key_order", [True, False])
def test_records_told_their_links_make_the_same_files(
    con: duckdb.DuckDBPyConnection,
    small_demo: Settings,
    links: pl.DataFrame,
    full: Path,
    tmp_path: Path,
    in_key_order: bool,
) -> None:
    records = read_records(con)
    given = links if in_key_order else links.sample(fraction=1.0, shuffle=True, seed=7)
    assert given["customer_key"].is_sorted() == in_key_order
    pairs = records.select(ON).with_row_index("i").join(given.select(ON).with_row_index("j"), on=ON)
    told = pairs.sort("i")["j"].to_numpy().astype(np.int64)  # each record's row in the links
    assert write_golden(con, small_demo, records, given, tmp_path, record_links=told) == links.height
    _same_files(tmp_path, full)


def test_lists_made_in_golden_base_past_128_channels_are_the_masks_named(
    con: duckdb.DuckDBPyConnection,
    small_demo: Settings,
    links: pl.DataFrame,
    full: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past 128 channels golden_base makes the lists (as an incremental build does): the same files as the masks
    named after customer_golden's sort."""
    many = "CREATE OR REPLACE TEMP TABLE golden_channels AS SELECT 'c' || i AS channel, i AS bit FROM range(129) t(i)"
    monkeypatch.setattr(golden, "_CHANNELS_SQL", many)
    write_golden(con, small_demo, read_records(con), links, tmp_path)
    _same_files(tmp_path, full)
    made = pl.read_parquet(tmp_path / "customer_golden.parquet")
    assert made.filter(pl.col("channels").list.len() > 1).height  # customers with several channels
    assert made.filter(pl.col("conflicts").list.len() > 0).height  # and with conflicts
