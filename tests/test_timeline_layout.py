"""Customer 360 reads one customer's interactions, contracts and stage changes: the refresh writes those
snapshots in record order, so a lookup's Parquet statistics skip every row group but the customer's (issue 22,
point 3), and the timeline shows the same rows whatever order the files are in."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from dashboard.core.config import Settings
from dashboard.core.store import Store
from dashboard.pipeline.standardize import RECORD_ORDER, record_order, sort_staged
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse

CALLS = pl.DataFrame(
    {
        # 300 customers, 20 calls each, arriving in date order (each customer's calls spread over the day),
        # a tenth of them also naming a lead, and 400 calls of leads not yet customers
        "customer_ref": [f"KH{i % 300:05d}" for i in range(6000)] + [None] * 400,
        "lead_id": [f"L{i:05d}" if i % 10 == 0 else None for i in range(6000)] + [f"L{9000 + i}" for i in range(400)],
        "occurred_at": list(range(6400)),
    }
)


def _groups_that_may_hold(path: Path, column: str, value: str) -> int:
    """How many row groups a lookup of ``column = value`` must read: those whose min/max statistics hold it."""
    meta = pq.ParquetFile(path).metadata
    at = pq.ParquetFile(path).schema_arrow.names.index(column)
    n = 0
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(at).statistics
        if stats is not None and stats.null_count == meta.row_group(i).num_rows:
            continue  # every value empty: skipped
        n += stats is None or not stats.has_min_max or stats.min <= value <= stats.max
    return n


def test_in_record_order_a_lookup_reads_a_few_row_groups_in_date_order_all(tmp_path: Path) -> None:
    by_date, by_record = tmp_path / "date.parquet", tmp_path / "record.parquet"
    CALLS.sort("occurred_at").write_parquet(by_date, row_group_size=500)
    CALLS.sort(record_order(CALLS, ("customer_ref", "lead_id"))).write_parquet(by_record, row_group_size=500)
    groups = pq.ParquetFile(by_record).metadata.num_row_groups
    assert groups == 13
    assert _groups_that_may_hold(by_date, "customer_ref", "KH00123") == groups - 1  # all but the leads' last one
    # its own group, and those of the calls naming both a customer and a lead (600 rows, kept apart so they do
    # not widen every other group's lead ids)
    assert _groups_that_may_hold(by_record, "customer_ref", "KH00123") <= 3
    # a lead named only by its lead id: one group, and the calls naming a customer and a lead stay together
    assert _groups_that_may_hold(by_record, "lead_id", "L9123") == 1
    assert _groups_that_may_hold(by_record, "lead_id", "L00120") <= 2
    assert pl.read_parquet(by_record).sort("occurred_at").equals(CALLS)  # every row kept, none changed


def test_keys_sharing_a_long_prefix_are_still_ordered(tmp_path: Path) -> None:
    refs = [f"CUSTOMER-2026-{i % 97:06d}" for i in range(2000)]  # alike in their first 17 characters
    frame = pl.DataFrame({"customer_ref": refs, "n": range(2000)})
    path = tmp_path / "refs.parquet"
    frame.sort(record_order(frame, ("customer_ref",))).write_parquet(path, row_group_size=100)
    assert _groups_that_may_hold(path, "customer_ref", "CUSTOMER-2026-000050") == 1


def test_the_staged_order_keeps_equal_keys_in_the_order_they_came() -> None:
    calls = CALLS.sample(fraction=1.0, shuffle=True, seed=7)  # customers' calls interleaved, ties everywhere
    staged = sort_staged(calls, ("customer_ref", "lead_id"))
    assert staged.equals(calls.sort(record_order(calls, ("customer_ref", "lead_id")), maintain_order=True))
    first = staged.filter(pl.col("customer_ref") == "KH00007")
    assert first["occurred_at"].to_list() == calls.filter(pl.col("customer_ref") == "KH00007")["occurred_at"].to_list()


def test_the_refresh_publishes_each_customers_rows_side_by_side(small_demo: Settings) -> None:
    manifest = Store(small_demo.data_path).read_manifest()
    for source, entry in manifest["sources"].items():
        for entity, info in (entry.get("entities") or {}).items():
            if entity not in RECORD_ORDER:
                continue
            keys = RECORD_ORDER[entity]
            frame = pl.read_parquet(small_demo.data_path / info["file"], columns=list(keys))
            # rows are kept apart by which keys they name; within each part, one stretch per record
            for _, part in frame.group_by(pl.col(keys).is_null(), maintain_order=True):
                rows = part.select(pl.coalesce(keys)).to_series()
                stretches = int((rows != rows.shift(1)).fill_null(True).sum())
                assert stretches == rows.n_unique(), (source, entity)


def test_the_timeline_lists_the_same_rows_from_date_ordered_files(small_demo: Settings) -> None:
    """The timeline of every customer with interactions, as an admin and as a manager, before and after the
    files are put back in date order (the layout before this change): the same rows, in the same order."""
    wh = Warehouse(small_demo)
    keys = wh.sql(  # the customers with the most calls, messages and contracts between them
        "SELECT customer_key FROM identity_links AS l JOIN (SELECT source_system, customer_ref FROM interactions "
        "UNION ALL SELECT source_system, customer_ref FROM contracts) AS r ON r.source_system = l.source_system "
        "AND r.customer_ref = l.source_record_id GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 40",
        user=SYSTEM,
    )["customer_key"]
    users = [Principal("admin", "admin"), Principal("manager", "manager")]
    now = {(k, u.role): wh.run_query("customer_timeline", {"customer_key": k}, user=u) for k in keys for u in users}
    shown = pl.concat(now.values()).get_column("category").value_counts()
    assert set(shown["category"]) >= {"interaction", "contract", "stage"}, shown
    manifest = Store(small_demo.data_path).read_manifest()
    dates = {"interactions": "occurred_at", "contracts": "signed_at", "lead_events": "occurred_at"}
    for entry in manifest["sources"].values():
        for entity, info in (entry.get("entities") or {}).items():
            if entity in dates:
                path = small_demo.data_path / info["file"]
                by_date = pl.read_parquet(path).sort(dates[entity], nulls_last=True)
                path.unlink()  # a new file, as a publish makes: the warehouse sees a new build
                by_date.write_parquet(path)
    wh.close()
    again = Warehouse(small_demo)
    for (key, role), frame in now.items():
        user = next(u for u in users if u.role == role)
        assert again.run_query("customer_timeline", {"customer_key": key}, user=user).equals(frame), (key, role)
