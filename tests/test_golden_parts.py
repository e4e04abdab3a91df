"""customer_attributes after an incremental build: the base file linked on and a part with the touched customers'
rows (derived.golden.Parts). Served as one relation, masked for the masked roles as a whole file is, erased from
every file a person's rows are in, and named by the manifest only once written (issue 22)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import CRASH_ENV, Settings, load_settings
from dashboard.core.store import Store
from dashboard.derived.golden import Parts
from dashboard.derived.tables import stored_parts
from dashboard.ops import privacy
from dashboard.pipeline.refresh import refresh
from dashboard.pipeline.review import Who
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.test_incremental import _orders
from tests.test_personal_data import _scan
from tests.test_privacy import rows_naming


def _changed(small_demo: Settings, tmp_path: Path) -> Settings:
    """A copy of the small demo with 1 % of the ERP's orders changed and 1 % new (not refreshed yet)."""
    shutil.copytree(small_demo.base_dir, tmp_path / "demo", symlinks=True)
    settings = load_settings(tmp_path / "demo" / "cockpit.toml")
    _orders(settings.data_path / "raw" / "demo")
    return settings


@pytest.fixture
def parted(small_demo: Settings, tmp_path: Path) -> Settings:
    settings = _changed(small_demo, tmp_path)
    assert refresh(settings, ["erp"]).exit_code == 0
    return settings


def _parts(settings: Settings) -> Parts | None:
    store = Store(settings.data_path)
    return stored_parts(store, store.read_manifest(), "customer_attributes")


def test_an_erp_change_writes_a_part_served_as_one_relation_and_masked(parted: Settings) -> None:
    parts = _parts(parted)
    assert parts is not None and all(f.is_file() for f in parts.files)
    keys = pl.read_parquet(parts.keys)["customer_key"]
    base = pl.read_parquet(parts.base)
    assert 0 < keys.len() < base["customer_key"].n_unique() // 10
    wh = Warehouse(parted)
    served = wh.sql("SELECT customer_key, snapshot_id, source_system FROM customer_attributes", user=SYSTEM)
    # the touched customers' rows from the part, the others' from the base, with the sources' current snapshots
    assert served.height == base.filter(~pl.col("customer_key").is_in(keys.implode())).height + (
        pl.read_parquet(parts.rows).height
    )
    sources = Store(parted.data_path).read_manifest()["sources"]
    erp = served.filter(pl.col("source_system") == "erp")["snapshot_id"].unique().to_list()
    assert erp == [sources["erp"]["snapshot_id"]]
    key = keys[0]
    one = wh.run_query("customer_attributes", {"customer_key": key}, user=SYSTEM)
    assert one.height == pl.read_parquet(parts.rows).filter(pl.col("customer_key") == key).height
    assert _scan(wh) == {}  # no personal value reaches a masked role, the part's rows included


def test_forgetting_a_person_reaches_the_base_and_the_part(parted: Settings) -> None:
    parts = _parts(parted)
    assert parts is not None
    rows = pl.read_parquet(parts.rows).filter(pl.col("attribute") == "phone")
    base = pl.read_parquet(parts.base).filter(pl.col("attribute") == "phone")
    # a touched customer's phone: in the part, and (stale, hidden by the keys) in the base too
    both = rows.join(base, on=["customer_key", "value"], how="semi")
    phone = str(both.filter(pl.col("value").str.contains(r"^1\d{10}$"))["value"][0])
    assert rows_naming(parted, phone)
    privacy.forget(parted, privacy.parse_identifier("phone", phone), "PIPL request", Who("t"))
    assert rows_naming(parted, phone) == {}
    served = Warehouse(parted).sql("SELECT value FROM customer_attributes", user=SYSTEM)
    assert phone not in served["value"].to_list()


def test_killed_with_the_part_written_the_old_build_serves_and_the_next_refresh_completes(
    small_demo: Settings, tmp_path: Path
) -> None:
    settings = _changed(small_demo, tmp_path)
    before = Store(settings.data_path).read_manifest()
    proc = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--config", str(settings.base_dir / "cockpit.toml"), "refresh", "erp"],
        env={**os.environ, CRASH_ENV: "golden_part"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    after = json.loads((settings.data_path / "manifest.json").read_text(encoding="utf-8"))
    assert after["derived"]["build_id"] == before["derived"]["build_id"]  # the old build, no part named
    assert "parts" not in after["derived"]

    assert refresh(settings).exit_code == 0
    parts = _parts(settings)
    assert parts is not None and all(f.is_file() for f in parts.files)
    assert not (settings.data_path / "staging").exists()
    assert refresh(settings, full=True).exit_code == 0  # --full: one file again
    assert _parts(settings) is None
