"""A database table without a watermark is pulled whole every time; when its rows are those of the current
extract (in any order) and the source's other tables brought nothing new either, the source keeps its
snapshot, as unchanged files do (issue 22). Against real PostgreSQL and MariaDB servers as in
tests/test_source_database.py."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.pipeline.refresh import refresh
from dashboard.sources import extract
from tests import test_source_database as dbt
from tests.test_source_database import EXTRACT_ONLY, Db, published, write_config

server, db = dbt.server, dbt.db  # the real servers of the database tests
pytestmark = pytest.mark.xdist_group("databases")  # beside them: the servers start once (tests/conftest.py)


@pytest.fixture
def erp(db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The database tests' ERP: customers from a watermark, orders from a query without one; the snapshots are
    checked, not what the derived build makes (EXTRACT_ONLY)."""
    monkeypatch.setenv("ERP_DB_URL", db.server.url())
    return load_settings(write_config(tmp_path, db.server.kind, settings=EXTRACT_ONLY))


def _snapshot(settings: Settings) -> str:
    return str(Store(settings.data_path).read_manifest()["sources"]["erp"]["snapshot_id"])


def test_a_whole_table_pulled_again_unchanged_keeps_the_snapshot(db: Db, erp: Settings) -> None:
    assert refresh(erp).exit_code == 0
    sid = _snapshot(erp)

    again = refresh(erp, ["erp"])
    [res] = again.sources
    assert again.exit_code == 0 and res.unchanged and _snapshot(erp) == sid
    assert res.rows["orders"] == 100

    db.run("UPDATE orders SET amount = 1 WHERE order_no = 'SO00002'")  # one value in the table without watermark
    changed = refresh(erp, ["erp"])
    assert changed.exit_code == 0 and not changed.sources[0].unchanged and _snapshot(erp) != sid
    orders = published(erp, "orders")
    assert orders.height == 100 and orders.filter(pl.col("order_id") == "SO00002")["amount"].item() == 1.0

    sid = _snapshot(erp)
    assert refresh(erp, ["erp"], full=True).sources[0].unchanged is False  # --full publishes the pull
    assert _snapshot(erp) != sid


def test_same_rows_in_another_order_are_the_same_table(tmp_path: Path) -> None:
    rows = pl.DataFrame({"id": [1, 2, 2, None], "amount": [1.5, None, 2.0, 3.0]})
    a, b, c, d = (tmp_path / f"{n}.parquet" for n in "abcd")
    rows.write_parquet(a)
    rows.reverse().write_parquet(b)
    rows.with_columns(pl.col("amount").fill_null(0.0)).write_parquet(c)  # a value changed
    rows.head(3).write_parquet(d)  # a row gone (one of two rows alike in id)
    assert extract.rows_digest(a) == extract.rows_digest(b) and extract.same_table(a, b)
    assert extract.rows_digest(a) != extract.rows_digest(c) and not extract.same_table(a, c)
    assert extract.rows_digest(a) != extract.rows_digest(d) and not extract.same_table(a, d)
