"""Fill rates over the rows a field applies to (a lead event's amount only on won events): the heatmap, its flag,
the health score, the catalog and `cockpit quality` show that one rate, in words that say which rows; a won event
without its amount is still flagged, naming the column."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from dashboard.components.quality_heatmap import fill_line, heatmap_figure
from dashboard.core.config import Settings, load_settings
from dashboard.core.dictionary import load_dictionary
from dashboard.core.entities import applies_when, parse_condition
from dashboard.core.errors import ConfigError
from dashboard.core.store import Store
from dashboard.derived.quality.profile import PROFILE_FILE, bind
from dashboard.derived.quality.tables import fill_where_applies
from dashboard.ops.catalog import build_inventory
from dashboard.ops.status import source_status
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.test_review import cockpit

CONFIG = """
data_dir = "data"
[[sources]]
name = "deals"
kind = "csv"
  [[sources.tables]]
  entity = "lead_events"
  path = "stages.csv"
  columns = { lead_id = "lead", stage = "stage", occurred_at = "at", amount = "amount" }
  [[sources.tables]]
  entity = "leads"
  path = "leads.csv"
  columns = { lead_id = "lead", created_at = "at", channel = "channel", campaign = "campaign" }
"""


def _heatmap(settings: Settings) -> dict[tuple[str, str, str], dict[str, object]]:
    q = settings.quality
    thresholds = {"fill_threshold": q.fill_rate_threshold, "validity_threshold": q.validity_threshold}
    df = Warehouse(settings).run_query("quality_heatmap", thresholds, user=SYSTEM)
    return {(r["source_system"], r["entity"], r["column_name"]): r for r in df.iter_rows(named=True)}


def _deals(root: Path, extra: str = "") -> Settings:
    """8 leads: each created, 4 won (2 of them without an amount), 2 lost; leads 0-3 by paid search."""
    root.mkdir(parents=True, exist_ok=True)
    stages = ["lead,stage,at,amount"]
    for i in range(8):
        stages.append(f"L{i},lead,2026-03-0{i + 1},")
        if i < 4:
            stages.append(f"L{i},won,2026-04-0{i + 1},{'' if i in (1, 2) else 1000 * (i + 1)}")
        elif i < 6:
            stages.append(f"L{i},lost,2026-04-0{i + 1},")
    (root / "stages.csv").write_text("\n".join(stages) + "\n", encoding="utf-8")
    leads = ["lead,at,channel,campaign"]
    leads += [
        f"L{i},2026-03-0{i + 1},{'paid_search' if i < 4 else 'referral'},{'Q1-SEM' if i < 4 else ''}" for i in range(8)
    ]
    (root / "leads.csv").write_text("\n".join(leads) + "\n", encoding="utf-8")
    (root / "cockpit.toml").write_text(CONFIG + extra, encoding="utf-8")
    return load_settings(root / "cockpit.toml")


def test_small_demo_lead_amounts_are_judged_on_won_events(small_demo: Settings, demo_served: Warehouse) -> None:
    cells = _heatmap(small_demo)
    amount = cells[("crm", "lead_events", "amount")]
    sid = Store(small_demo.data_path).read_manifest()["sources"]["crm"]["snapshot_id"]
    events = small_demo.data_path / "snapshots" / "crm" / sid / "lead_events.parquet"
    stages = pl.read_parquet(events, columns=["stage"]).get_column("stage")
    won, rows = int((stages == "won").sum()), stages.len()
    assert 0 < won < rows / 10  # a few won events among many: 2.5 % of all events carry an amount
    assert (amount["applies_when"], amount["applies_rows"], amount["applies_filled"]) == ("stage = won", won, won)
    assert amount["fill_rate"] == 1.0 and amount["fill_flag"] is False
    assert fill_line(amount, "zh") == f"阶段为赢单的线索阶段事件中 100.0% 已填写（{won} / {won}）"
    assert fill_line(amount, "en") == f"Filled on 100.0% of lead stage events where stage is Won ({won} / {won})"
    # the same rate on the catalog's field list, and in the CRM's health (completeness: the mean of its fields)
    profile = demo_served.run_query("field_profile", {"source": "crm"}, user=SYSTEM)
    assert (
        profile.filter(pl.col("column_name") == "amount", pl.col("entity") == "lead_events")["fill_rate"].item() == 1.0
    )
    inventory = build_inventory(small_demo, profile, source_status(small_demo)).fields
    listed = inventory.filter(pl.col("entity") == "lead_events", pl.col("field") == "amount").row(0, named=True)
    assert (listed["fill_rate"], listed["applies_when"]) == (1.0, "stage = won")
    health = demo_served.run_query("data_health", user=SYSTEM).filter(pl.col("source_system") == "crm")
    provided = [r["fill_rate"] for k, r in cells.items() if k[0] == "crm" and r["provided"] and r["fill_rate"]]
    assert health["completeness"].item() == pytest.approx(sum(provided) / len(provided))
    # an interaction names a customer or a lead: each is judged where the other is empty; a company's industry
    for source, entity, column in [("crm", "interactions", "customer_ref"), ("erp", "customers", "industry")]:
        cell = cells[(source, entity, column)]
        assert cell["applies_when"] is not None and cell["fill_flag"] is False, cell


def test_won_events_without_an_amount_are_flagged_naming_the_column(tmp_path: Path) -> None:
    settings = _deals(tmp_path / "deals")
    assert refresh(settings).exit_code == 0
    amount = _heatmap(settings)[("deals", "lead_events", "amount")]
    assert (amount["rows"], amount["applies_rows"], amount["applies_filled"]) == (14, 4, 2)
    assert amount["fill_rate"] == 0.5 and amount["fill_flag"] is True
    # the records shown are the won events without an amount (rows 4 and 6 of the file), not the other stages
    assert amount["empty_samples"] == ["row 4", "row 6"]
    cfg = str(settings.base_dir / "cockpit.toml")
    out = cockpit("--config", cfg, "quality", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = {(r["entity"], r["column_name"]): r for r in json.loads(out.stdout)}
    shown = rows[("lead_events", "amount")]
    assert (shown["fill_rate"], shown["fill_flag"], shown["applies_when"]) == (0.5, True, "stage = won")


def test_a_company_declares_where_its_own_fields_apply(tmp_path: Path) -> None:
    extra = '[quality.applies_when]\n"deals.leads.campaign" = "channel in (paid_search, 信息流)"\n'
    settings = _deals(tmp_path / "deals", extra)
    assert refresh(settings).exit_code == 0
    campaign = _heatmap(settings)[("deals", "leads", "campaign")]
    assert (campaign["applies_rows"], campaign["fill_rate"], campaign["fill_flag"]) == (4, 1.0, False)
    assert campaign["applies_when"] == "channel in (paid_search, 信息流)"
    assert fill_line(campaign, "en").startswith("Filled on 100.0% of leads where channel is Paid search or 信息流")
    # "always" takes back a declaration of the schema: the amount judged on every event
    settings = _deals(tmp_path / "deals", '[quality.applies_when]\n"deals.lead_events.amount" = "always"\n')
    assert refresh(settings).exit_code == 0
    amount = _heatmap(settings)[("deals", "lead_events", "amount")]
    assert (amount["applies_when"], amount["fill_rate"]) == (None, 2 / 14)


def test_a_changed_condition_measures_the_fill_rate_again_and_keeps_every_snapshot(tmp_path: Path) -> None:
    """[quality.applies_when] shapes the fill rates only: a refresh after a change keeps the staged snapshots and
    every derived step but field_quality, which shows the rate over the rows the new condition names."""
    settings = _deals(tmp_path / "deals")
    assert refresh(settings).exit_code == 0
    before = Store(settings.data_path).read_manifest()["sources"]["deals"]["snapshot_id"]
    settings = _deals(tmp_path / "deals", '[quality.applies_when]\n"deals.lead_events.amount" = "always"\n')
    again = refresh(settings)
    assert again.exit_code == 0
    assert [(s.source, s.unchanged, s.snapshot_id) for s in again.sources] == [("deals", True, before)]
    assert "field_quality" not in again.reused and {"identity", "golden", "churn"} <= set(again.reused)
    amount = _heatmap(settings)[("deals", "lead_events", "amount")]
    assert (amount["applies_when"], amount["applies_rows"], amount["fill_rate"]) == (None, 14, 2 / 14)


@pytest.mark.parametrize(
    ("key", "condition", "says"),
    [
        ("deals.lead_events.amount", "stage is won", "is not a condition"),
        ("deals.lead_events.amount", "phase = won", "'phase' is not a column of lead_events"),
        ("deals.lead_events.amounts", "stage = won", "applies_when 'deals.lead_events.amounts'"),
        ("shop.lead_events.amount", "stage = won", "no source named 'shop'"),
        ("deals.lead_events.amount", "stage = 'won'", "is not a condition"),
    ],
)
def test_a_mistaken_condition_names_its_key(tmp_path: Path, key: str, condition: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        _deals(tmp_path / "deals", f'[quality.applies_when]\n"{key}" = "{condition}"\n')


def test_a_profile_kept_from_before_is_judged_as_a_new_one(tmp_path: Path) -> None:
    """A snapshot profiled before its field's condition (or under another) shows the same rate as one profiled
    now: the field is measured again from the snapshot's file when the quality tables are made."""
    settings = _deals(tmp_path / "deals")
    assert refresh(settings).exit_code == 0
    sid = Store(settings.data_path).read_manifest()["sources"]["deals"]["snapshot_id"]
    folder = settings.data_path / "snapshots" / "deals" / sid
    now = pl.read_parquet(folder / PROFILE_FILE)
    old = now.drop("applies_when", "applies_rows", "applies_filled").with_columns(
        fill_rate=pl.col("filled") / pl.col("rows")
    )
    again = fill_where_applies(old, folder, settings.quality.applies, load_dictionary())
    assert again.equals(now.select(again.columns))
    unconditional = fill_where_applies(now, folder, lambda s, e: {}, load_dictionary())
    amount = unconditional.filter(pl.col("column_name") == "amount").row(0, named=True)
    assert (amount["applies_when"], amount["applies_rows"], amount["fill_rate"]) == (None, 14, 2 / 14)


def test_conditions_are_written_one_way() -> None:
    assert applies_when("lead_events")["amount"].text == "stage = won"
    assert parse_condition("leads", " channel  in (a,b ) ").text == "channel in (a, b)"
    assert parse_condition("customers", "company is filled").sql() == ('"company" IS NOT NULL', {})
    # values are bound as parameters, never written into the SQL text
    sql, args = parse_condition("leads", "channel in (微信, a OR 1)").sql(param="p")
    assert (sql, args) == ('coalesce("channel" IN ($p_0, $p_1), false)', {"p_0": "微信", "p_1": "a OR 1"})
    frame = pl.DataFrame({"channel": ["微信", "a OR 1", "a", None]})
    picked = frame.filter(pl.sql_expr(bind(sql, args)))
    assert picked["channel"].to_list() == ["微信", "a OR 1"]


def test_the_small_demo_judges_its_sources_where_their_fields_apply(small_demo: Settings) -> None:
    """A private customer has no company, so no industry and no sales rep in the ERP; a company has no resident ID;
    the CRM's leads from calls and trade shows carry no campaign (cockpit.toml [quality.applies_when])."""
    cells = _heatmap(small_demo)
    sid = Store(small_demo.data_path).read_manifest()["sources"]["erp"]["snapshot_id"]
    erp = pl.read_parquet(small_demo.data_path / "snapshots" / "erp" / sid / "customers.parquet")
    people = erp.filter(pl.col("company").is_null())
    ids = cells[("erp", "customers", "id_number")]
    assert (ids["applies_when"], ids["applies_rows"]) == ("company is empty", people.height)
    assert ids["applies_filled"] == people["id_number"].count() == erp["id_number"].count()  # none on a company
    assert ids["fill_rate"] > 0.3 and ids["fill_flag"]  # still flagged: most private customers lack their ID
    owner = cells[("erp", "customers", "owner")]
    assert (owner["applies_when"], owner["fill_rate"], owner["fill_flag"]) == ("company is filled", 1.0, False)
    campaign = cells[("crm", "leads", "campaign")]
    assert campaign["applies_when"].startswith("channel in (paid_search") and campaign["fill_flag"] is False


def test_an_optional_field_is_shown_grey_and_not_judged(small_demo: Settings, demo_served: Warehouse) -> None:
    """A lead's customer reference (only where the lead is an existing customer's) and, in the demo's mixed
    business, a company: shown with their share, never flagged, out of the health score."""
    cells = _heatmap(small_demo)
    ref = cells[("crm", "leads", "customer_ref")]
    assert (ref["applies_when"], ref["applies_rows"], ref["fill_rate"], ref["fill_flag"]) == ("never", 0, None, False)
    assert 0 < ref["filled"] < ref["rows"] / 5
    assert (
        fill_line(ref, "en") == f"Optional, its fill rate not judged: filled on {ref['filled']} of {ref['rows']} rows"
    )
    assert fill_line(ref, "zh") == f"可选字段，不评判填充率：{ref['rows']} 行中 {ref['filled']} 行已填写"
    assert cells[("web_forms", "leads", "company")]["fill_flag"] is False  # "*.leads.company" = "never"
    frame = demo_served.run_query("quality_heatmap", user=SYSTEM)
    heat, grey, _ = heatmap_figure(frame, "fill", "en").data
    row, col = list(heat.y).index("crm"), list(heat.x).index("leads.customer_ref")
    assert heat.z[row][col] is None and grey.z[row][col] == 1 and "Optional" in grey.text[row][col]


def test_a_field_that_applies_to_no_row_is_grey_and_says_why(small_demo: Settings, demo_served: Warehouse) -> None:
    """The call centre's interactions all name a customer, so their lead_id (applies where customer_ref is empty)
    applies to no row: a grey cell whose hover says there are none, not a blank square with nothing to read."""
    cells = _heatmap(small_demo)
    lead = cells[("call_center", "interactions", "lead_id")]
    assert (lead["applies_when"], lead["applies_rows"], lead["fill_rate"]) == ("customer_ref is empty", 0, None)
    frame = demo_served.run_query("quality_heatmap", user=SYSTEM)
    heat, grey, _ = heatmap_figure(frame, "fill", "en").data
    row, col = list(heat.y).index("call_center"), list(heat.x).index("interactions.lead_id")
    assert heat.z[row][col] is None and grey.z[row][col] == 1
    assert "there are none" in grey.text[row][col]
    zh = heatmap_figure(frame, "fill", "zh").data[1]
    assert "没有这样的行" in zh.text[row][col]
