"""A database pull that brings nothing new keeps the source's current snapshot, as unchanged files do (issue 22).

A pull from a watermark takes the rows at the last watermark again every time (``>=``), so "nothing new" is
told by the rows, not by their number: only a pull whose every row the current extract holds as it is, with
no deletion, leaves the snapshot as it is. Against real PostgreSQL and MariaDB servers as in
tests/test_source_database.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import Settings, TableConfig, load_settings
from dashboard.core.store import Store
from dashboard.ops.status import source_status
from dashboard.pipeline.refresh import refresh
from dashboard.sources import extract
from tests import test_source_database as dbt
from tests.test_source_database import EXTRACT_ONLY, T0, Db, published, write_config

server, db = dbt.server, dbt.db  # the real servers of the database tests
pytestmark = pytest.mark.xdist_group("databases")  # beside them: the servers start once (tests/conftest.py)

TABLE = TableConfig.model_validate(
    {"entity": "customers", "table": "c", "key": "id", "watermark": "ts", "delete_column": "deleted"}
)
SCHEMA = {"id": pl.Int64, "name": pl.String, "ts": pl.Int64, "deleted": pl.Boolean}


def _extract(folder: Path) -> extract.Extract:
    folder.mkdir(parents=True)
    rows = [(i, f"c{i}", i, False) for i in range(1, 101)]
    pl.DataFrame(rows, schema=SCHEMA, orient="row").write_parquet(folder / "0.parquet")
    return extract.Extract(TABLE, folder / "0.parquet", (), 100, (), "erp.c")


def _delta(folder: Path, rows: list[tuple[int, str, int, bool]]) -> Path:
    path = folder / extract.delta_name(0, 1)
    pl.DataFrame(rows, schema=SCHEMA, orient="row").write_parquet(path)
    return path


@pytest.mark.parametrize(
    ("rows", "same"),
    [
        ([(100, "c100", 100, False), (99, "c99", 99, False)], True),  # the rows at the watermark, pulled again
        ([(100, "c100", 100, False), (100, "c100", 100, False)], True),  # one of them twice
        ([(100, "c100-v2", 100, False)], False),  # a value changed, watermark alike
        ([(100, "c100", 100, True)], False),  # deleted
        ([(101, "c101", 101, False)], False),  # a new key
    ],
)
def test_a_delta_of_rows_the_extract_holds_is_nothing_new(
    tmp_path: Path, rows: list[tuple[int, str, int, bool]], same: bool
) -> None:
    ext = _extract(tmp_path / "extract")
    assert extract.same_rows(ext, _delta(tmp_path, rows)) is same


# -- a refresh against real servers ------------------------------------------------------------------------------
@pytest.fixture
def erp(db: Db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The database tests' ERP with its customers table alone (every table pulled from a watermark); the snapshots
    and the steps kept are checked, not what the derived build makes (EXTRACT_ONLY)."""
    monkeypatch.setenv("ERP_DB_URL", db.server.url())
    cfg = write_config(tmp_path, db.server.kind, settings=EXTRACT_ONLY)
    text = cfg.read_text(encoding="utf-8")
    start = text.index('  [[sources.tables]]\n  entity = "orders"')
    cfg.write_text(text[:start] + text[text.index("[[sources]]", start) :], encoding="utf-8")
    return load_settings(cfg)


def _snapshot(settings: Settings) -> str:
    return str(Store(settings.data_path).read_manifest()["sources"]["erp"]["snapshot_id"])


def test_a_pull_that_brings_nothing_new_keeps_the_snapshot(db: Db, erp: Settings) -> None:
    assert refresh(erp).exit_code == 0
    store = Store(erp.data_path)
    sid, rows = _snapshot(erp), published(erp, "customers")
    attempts = sorted(p.name for p in (store.runs / "attempts" / "erp").iterdir())

    again = refresh(erp, ["erp"])  # the rows at the last watermark come again, nothing else

    [res] = again.sources
    assert again.exit_code == 0 and res.unchanged and res.snapshot_id == sid
    assert res.rows["customers"] == rows.height
    assert _snapshot(erp) == sid and [p.name for p in (store.snapshots / "erp").iterdir()] == [sid]
    assert sorted(p.name for p in (store.runs / "attempts" / "erp").iterdir()) == attempts  # no attempt to show
    assert {"identity", "golden"} <= set(again.reused)
    [shown] = [s for s in source_status(erp) if s.name == "erp"]
    assert shown.snapshot_id == sid and not shown.stale

    db.run(  # one customer renamed: the next pull brings it
        "UPDATE crm_customers SET full_name = %s, updated_at = %s WHERE id = %s",
        params=("客户7-v2", T0 + timedelta(days=40), 7),
    )
    changed = refresh(erp, ["erp"])
    [res] = changed.sources
    assert changed.exit_code == 0 and not res.unchanged and _snapshot(erp) != sid
    names = dict(zip(*published(erp, "customers").select("source_record_id", "name"), strict=True))
    assert names["7"] == "客户7-v2" and len(names) == rows.height


def test_full_pulls_again_whatever_the_watermark(db: Db, erp: Settings) -> None:
    assert refresh(erp).exit_code == 0
    sid = _snapshot(erp)
    result = refresh(erp, ["erp"], full=True)
    assert result.exit_code == 0 and not result.sources[0].unchanged and _snapshot(erp) != sid
