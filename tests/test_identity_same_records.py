"""Identity's records told unchanged without reading them (issue 22, derive._same_records): a refresh whose only
changed rows are orders of known customers keeps identity without reading its records, with the key reading
them gives; an order naming an unknown customer (a customer known by reference) makes them read and resolved."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.core.duck import work_connection
from dashboard.core.store import Store
from dashboard.derived.tables import attach_views
from dashboard.pipeline import derive
from dashboard.pipeline.refresh import refresh


def _copy(settings: Settings, dest: Path) -> Settings:
    shutil.copytree(settings.base_dir, dest, symlinks=True)
    made = load_settings(dest / "cockpit.toml")
    return made.model_copy(update={"engine": made.engine.model_copy(update={"derive_in_child": False})})


def _orders(settings: Settings, new_ref: str | None = None) -> None:
    """ERP: 2 % of the orders' amounts doubled and one order more (of an existing customer, or of ``new_ref``)."""
    path = settings.base_dir / "data" / "raw" / "demo" / "erp" / "vbak_orders.parquet"
    orders = pl.read_parquet(path)
    n = max(orders.height // 50, 1)
    amount = pl.when(pl.int_range(pl.len()) < n).then(pl.col("NETWR") * 2).otherwise(pl.col("NETWR"))
    extra = orders.tail(1).with_columns(("9" + pl.col("VBELN").str.slice(1)).alias("VBELN"))
    if new_ref is not None:
        extra = extra.with_columns(pl.lit(new_ref).alias("KUNNR"))
    pl.concat([orders.with_columns(amount.alias("NETWR")), extra]).write_parquet(path)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = derive.record_table

    def counted(con: Any) -> pa.Table:
        calls.append(1)
        return real(con)

    monkeypatch.setattr(derive, "record_table", counted)
    return calls


def _key_by_reading(settings: Settings, tmp_path: Path) -> str:
    """The identity key of the current snapshots as a build that reads the records makes it."""
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    steps = derive._Steps(settings, store, manifest, tmp_path, full=True)  # nothing kept: the records are read
    with work_connection(settings) as con:
        attach_views(con, store, manifest, in_memory=frozenset())
        records, _ = derive._identity_key(con, steps, [None, *derive._pinned_model(settings)])
    assert records is not None and records.num_rows > 0
    return steps.keys["identity"]


def test_orders_of_known_customers_keep_identity_without_reading_its_records(
    small_demo: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _copy(small_demo, tmp_path / "demo")
    before = Store(settings.data_path).read_manifest()["derived"]["steps"]["identity"]
    _orders(settings)
    calls = _counting(monkeypatch)
    result = refresh(settings, ["erp"])
    assert result.exit_code == 0 and "identity" in result.reused
    assert calls == []  # not read
    manifest = Store(settings.data_path).read_manifest()
    assert manifest["derived"]["steps"]["identity"] == before
    monkeypatch.undo()
    assert _key_by_reading(settings, tmp_path / "stage") == before  # what reading them gives


def test_an_order_of_an_unknown_customer_reads_and_resolves_the_records(
    small_demo: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _copy(small_demo, tmp_path / "demo")
    before = Store(settings.data_path).read_manifest()["derived"]["steps"]["identity"]
    _orders(settings, new_ref="NEW-REF-1")
    calls = _counting(monkeypatch)
    result = refresh(settings, ["erp"])
    assert result.exit_code == 0 and "identity" not in result.reused
    assert calls != []
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    assert manifest["derived"]["steps"]["identity"] != before
    links = pl.read_parquet(store.abs(manifest["derived"]["tables"]["identity_links"]))
    assert links.filter((pl.col("source_system") == "erp") & (pl.col("source_record_id") == "NEW-REF-1")).height == 1
    monkeypatch.undo()
    assert _key_by_reading(settings, tmp_path / "stage") == manifest["derived"]["steps"]["identity"]
