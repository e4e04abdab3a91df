"""数据资产目录: the inventory from config + profiles + dictionary, its lineage, and the Excel workbook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import Settings
from dashboard.core.entities import ENTITIES
from dashboard.core.errors import CockpitError
from dashboard.ops.catalog import LEVELS, load_inventory, query_pages, query_tables, write_excel


def test_systems_level_has_every_source_with_owner_schedule_and_snapshots(company: Settings) -> None:
    inv = load_inventory(company)
    systems = {r["source_system"]: r for r in inv.systems.iter_rows(named=True)}
    assert list(systems) == company.source_names
    ts = systems["trade_show"]
    assert (ts["title"], ts["kind"], ts["owner"], ts["schedule"]) == ("展会登记", "csv", "市场部", "0 2 * * *")
    assert ts["snapshots"] == 1 and ts["rows"] == 20 and ts["last_refresh"].startswith("20")
    assert systems["crm"]["entities"] == "leads, lead_events"


def test_fields_level_maps_each_canonical_field_to_its_source_column(company: Settings) -> None:
    fields = load_inventory(company).fields
    row = {(r["source_system"], r["entity"], r["field"]): r for r in fields.iter_rows(named=True)}
    phone = row[("trade_show", "leads", "phone")]
    assert (phone["source_column"], phone["personal"], phone["classification"]) == ("手机", True, "master")
    assert phone["fill_rate"] == 1.0 and phone["examples"].startswith("138****80")  # masked
    assert row[("trade_show", "leads", "region")]["source_column"] == "= 华东"  # a constant
    assert row[("erp", "orders", "amount")]["examples"] == "1200.0"  # not personal: shown as is
    assert row[("erp", "customers", "id_number")]["fill_rate"] == pytest.approx(1 / 12)
    assert row[("marketing", "marketing_spend", "cost")]["classification"] == "cost"
    assert row[("crm", "leads", "email")]["description_zh"] == "电子邮箱"
    assert row[("crm", "leads", "campaign")]["source_column"] is None  # not provided: a visible gap


def test_lineage_runs_from_source_to_page(company: Settings) -> None:
    lineage = load_inventory(company).lineage
    spend = lineage.filter((pl.col("view") == "marketing_spend") & pl.col("derived_table").is_null())
    assert "channel_summary" in spend["query"].to_list()  # read straight from the view
    leads = lineage.filter((pl.col("source_system") == "crm") & (pl.col("view") == "leads"))
    assert "lead_facts" in leads["derived_table"].to_list()  # and through a derived table
    assert set(lineage["source_system"]) == set(company.source_names)
    quality = lineage.filter((pl.col("derived_table") == "field_quality") & (pl.col("query") == "quality_heatmap"))
    assert quality.height and set(quality["pages"]) == {"data_quality"}
    assert query_tables("SELECT * FROM filtered_leads($a) JOIN marketing_spend AS s ON true") == {
        "lead_facts",
        "marketing_spend",
    }
    assert "catalog" in query_pages()["field_profile"]


def test_the_excel_workbook_holds_every_field_of_every_source(company: Settings, tmp_path: Path) -> None:
    path = write_excel(load_inventory(company), tmp_path / "inventory.xlsx")
    sheets = {level: pl.read_excel(path, sheet_name=level) for level in LEVELS}
    assert sheets["systems"]["source_system"].to_list() == company.source_names
    fields = sheets["fields"]
    for src in company.sources:
        for entity in {t.entity for t in src.tables}:
            listed = fields.filter((pl.col("source_system") == src.name) & (pl.col("entity") == entity))
            assert sorted(listed["field"]) == sorted(ENTITIES[entity].column_names), (src.name, entity)
    assert {"description_zh", "description_en", "classification", "personal", "fill_rate"} <= set(fields.columns)
    assert sheets["lineage"].height > 0 and sheets["tables"].height == 7
    about = dict(pl.read_excel(path, sheet_name="about").iter_rows())
    assert about["fields_rows"] == str(fields.height)


def test_a_workbook_that_cannot_be_written_is_a_clear_error(company: Settings, tmp_path: Path) -> None:
    inv = load_inventory(company)
    with pytest.raises(CockpitError, match=r"must be an \.xlsx file"):
        write_excel(inv, tmp_path / "inventory.csv")
    with pytest.raises(CockpitError, match="cannot write the workbook"):
        write_excel(inv, tmp_path / "no" / "such" / "dir" / "x.xlsx")


def test_the_inventory_before_any_refresh(fresh_company: Settings) -> None:
    inv = load_inventory(fresh_company)
    assert inv.systems["state"].to_list() == ["never_published"] * 5
    assert inv.fields["fill_rate"].null_count() == inv.fields.height


def cockpit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dashboard.cli", *args], capture_output=True, text=True, timeout=300)


def test_the_catalog_command(company: Settings, tmp_path: Path) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    out = cockpit("--config", cfg, "catalog", "--excel", str(tmp_path / "a.xlsx"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"wrote {tmp_path / 'a.xlsx'} (5 systems, 7 tables, 64 fields, ")
    assert out.stdout.strip().endswith(" lineage)")
    assert pl.read_excel(tmp_path / "a.xlsx", sheet_name="fields").height == 64
    table = cockpit("--config", cfg, "catalog")
    assert table.returncode == 0 and "展会登记" in table.stdout
    bad = cockpit("--config", cfg, "catalog", "--excel", str(tmp_path / "a.txt"))
    assert bad.returncode == 1 and "must be an .xlsx file" in bad.stderr and "Traceback" not in bad.stderr
