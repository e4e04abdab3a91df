"""Quality metrics: computed once at publish, equal to values counted by hand on a source with known gaps,
kept for every retained snapshot, flagged against the configured thresholds, samples masked."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.core.dictionary import load_dictionary, mask
from dashboard.core.entities import ENTITIES
from dashboard.core.store import Store
from dashboard.derived.quality.profile import PROFILE_FILE, profile_frame
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse

CONFIG = """
data_dir = "data"
retention = 2
[quality]
fill_rate_threshold = 0.8
validity_threshold = 0.9
[[sources]]
name = "shop"
kind = "csv"
title = "门店"
  [[sources.tables]]
  entity = "customers"
  path = "customers.csv"
  [sources.tables.columns]
  source_record_id = "id"
  name = "name"
  phone = "phone"
  email = "email"
  id_number = "idno"
  created_at = "created"
"""
NO_NAME = {3, 6, 9, 12, 15}  # 15 of 20 named
NO_PHONE = {4, 8}  # 18 phones; row 5's is a landline: 17 of 18 valid
BAD_EMAIL = {2: "not-an-email", 7: "x@y"}  # emails on rows 0-9 only: 8 of 10 valid
ID_NUMBERS = {0: "11010519491231002X", 1: "110105194912310021", 2: "ABC", 3: "123"}  # 1 of 4 valid
DATES = {10: "1990-01-01", 11: "2099-01-01"}  # out of range: 18 of 20 valid


def _row(i: int) -> str:
    ident = "C00" if i == 19 else f"C{i:02d}"  # row 19 repeats C00's key: 19 distinct of 20
    name = "" if i in NO_NAME else f"王{i}"
    phone = "" if i in NO_PHONE else "0571-8888 1234" if i == 5 else f"1380013{8000 + i}"
    email = BAD_EMAIL.get(i, f"u{i}@example.com") if i < 10 else ""
    created = DATES.get(i, f"2026-03-{i + 1:02d}")
    return f"{ident},{name},{phone},{email},{ID_NUMBERS.get(i, '')},{created}"


def write_shop(root: Path, rows: int = 20) -> Settings:
    root.mkdir(parents=True, exist_ok=True)
    lines = ["id,name,phone,email,idno,created", *(_row(i) for i in range(rows))]
    (root / "customers.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "cockpit.toml").write_text(CONFIG, encoding="utf-8")
    return load_settings(root / "cockpit.toml")


@pytest.fixture
def shop(tmp_path: Path) -> Settings:
    settings = write_shop(tmp_path / "shop")
    assert refresh(settings).exit_code == 0
    return settings


def _metrics(settings: Settings) -> dict[str, dict[str, object]]:
    df = Warehouse(settings).run_query(
        "quality_heatmap", {"fill_threshold": 0.8, "validity_threshold": 0.9}, user=SYSTEM
    )
    return {r["column_name"]: r for r in df.iter_rows(named=True)}


def test_metrics_equal_the_hand_counted_values(shop: Settings) -> None:
    m = _metrics(shop)
    assert {c: m[c]["rows"] for c in m} == dict.fromkeys(m, 20)
    key = m["source_record_id"]
    assert (key["filled"], key["distinct_values"], key["uniqueness"]) == (20, 19, 0.95)
    assert key["unique_flag"] and key["duplicate_samples"] == ["C00 ×2"]
    assert (m["name"]["filled"], m["name"]["fill_rate"], m["name"]["fill_flag"]) == (15, 0.75, True)
    assert m["name"]["empty_samples"] == ["C03", "C06", "C09", "C12", "C15"]
    phone = m["phone"]
    assert (phone["filled"], phone["invalid"], phone["fill_flag"]) == (18, 1, False)
    assert phone["valid_rate"] == pytest.approx(17 / 18) and not phone["valid_flag"]
    assert phone["invalid_samples"] == ["057*******1234"]  # masked: personal
    email = m["email"]
    assert (email["filled"], email["invalid"], email["valid_rate"], email["valid_flag"]) == (10, 2, 0.8, True)
    assert sorted(email["invalid_samples"]) == ["n***", "x***@y"]
    ids = m["id_number"]
    assert (ids["filled"], ids["invalid"], ids["valid_rate"], ids["fill_rate"]) == (4, 3, 0.25, 0.2)
    created = m["created_at"]
    assert (created["invalid"], created["valid_rate"], created["valid_flag"]) == (2, 0.9, False)
    assert sorted(created["invalid_samples"]) == ["1990-01-01 00:00:00", "2099-01-01 00:00:00"]
    assert m["city"]["provided"] is False and m["city"]["fill_flag"] is False  # not mapped: not judged
    assert m["name"]["source_column"] == "name" and m["city"]["source_column"] is None


def test_the_profile_is_written_beside_the_snapshot_once(shop: Settings) -> None:
    manifest = Store(shop.data_path).read_manifest()
    sid = manifest["sources"]["shop"]["snapshot_id"]
    profile = pl.read_parquet(shop.data_path / "snapshots" / "shop" / sid / PROFILE_FILE)
    assert profile.height == len(ENTITIES["customers"].columns)
    assert set(profile["snapshot_id"]) == {sid}
    # the page's table is read from those files, not recomputed: same numbers, same computation time
    again = Warehouse(shop).run_query("quality_trend", {"source": "shop", "column": "name"}, user=SYSTEM)
    assert again["fill_rate"].to_list() == [0.75]


def test_the_trend_covers_every_retained_snapshot(shop: Settings) -> None:
    write_shop(shop.base_dir, rows=14)  # a shrinking feed: fewer rows, the same gaps
    assert refresh(shop).exit_code == 0
    write_shop(shop.base_dir, rows=5)
    assert refresh(shop).exit_code == 0
    trend = Warehouse(shop).run_query("quality_trend", {"source": "shop", "column": "name"}, user=SYSTEM)
    assert trend["rows"].to_list() == [14, 5]  # retention = 2: the first snapshot was pruned
    assert trend["state"].to_list() == ["previous", "current"]
    assert trend["fill_rate"].to_list() == [10 / 14, 0.8]  # 10 of 14 named, then 4 of 5
    assert trend["snapshot_at"].is_sorted()


def test_thresholds_come_from_the_config(shop: Settings) -> None:
    strict = Warehouse(shop).run_query(
        "quality_heatmap", {"fill_threshold": 0.99, "validity_threshold": 0.99}, user=SYSTEM
    )
    flagged = set(strict.filter(pl.col("fill_flag"))["column_name"])
    assert flagged == {"name", "phone", "email", "id_number"}


def test_profile_of_an_empty_entity_and_of_nulls_only() -> None:
    frame = pl.DataFrame(
        {"lead_id": pl.Series([], dtype=pl.String), "created_at": pl.Series([], dtype=pl.Datetime("us"))}
    )
    out = profile_frame(frame, "s", "x", "leads", {}, load_dictionary())
    assert out["rows"].to_list() == [0, 0] and out["fill_rate"].to_list() == [None, None]
    nulls = pl.DataFrame({"lead_id": ["a", "b"], "phone": [None, None], "phone_valid": [None, None]})
    out = profile_frame(nulls, "s", "x", "leads", {"phone": "手机"}, load_dictionary())
    phone = out.filter(pl.col("column_name") == "phone").row(0, named=True)
    assert (phone["fill_rate"], phone["valid_rate"], phone["provided"]) == (0.0, None, True)
    assert phone["empty_samples"] == ["a", "b"]


@pytest.mark.parametrize(
    ("value", "field", "shown"),
    [
        ("13800138000", "phone", "138****8000"),
        ("u1@example.com", "email", "u***@example.com"),
        ("11010519491231002X", "id_number", "1101**********002X"),
        ("张三", "name", "张*"),
        ("欧阳娜娜", "name", "欧***"),
        ("回访时客户说下周签约", "note", "回***"),
        ("", "name", ""),
    ],
)
def test_personal_values_are_masked(value: str, field: str, shown: str) -> None:
    assert mask(value, field) == shown


def test_every_canonical_field_is_in_the_dictionary() -> None:
    d = load_dictionary()
    for entity, ent in ENTITIES.items():
        for c in ent.columns:
            info = d.fields.get((entity, c.name))
            assert info is not None, f"{entity}.{c.name} missing from dashboard/core/data_dictionary.toml"
            assert info.zh and info.en and info.classification
    assert d.personal("customers", "phone") and not d.personal("orders", "amount")
    assert d.classification("purchased_leads", "leads", "channel") == "external"
    assert d.classification("crm", "marketing_spend", "cost") == "cost"


def test_a_missing_or_wrong_dictionary_is_a_clear_error(tmp_path: Path) -> None:
    from dashboard.core.dictionary import for_settings
    from dashboard.core.errors import ConfigError

    settings = write_shop(tmp_path / "shop")
    cfg = settings.base_dir / "cockpit.toml"
    cfg.write_text(cfg.read_text().replace("[quality]", '[quality]\ndictionary = "dict.toml"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"data dictionary .*dict\.toml: cannot read it"):
        for_settings(load_settings(cfg))
    (settings.base_dir / "dict.toml").write_text('[entities.leads]\nclassification = "secret"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="leads: classification 'secret' is not one of master"):
        for_settings(load_settings(cfg))
