"""Channel analytics on a company small enough to compute every number by hand."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import polars.selectors as cs
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.derived.analytics import MODELS
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse

FILES = {
    "leads.csv": """lead_id,created_at,channel,customer_ref,owner,region,campaign,phone
L1,2026-01-01,paid_search,C1,amy,east,spring,13800138000
L2,2026-01-05,trade_show,C2,bob,west,expo,13900139000
L3,2026-01-10,website,,amy,east,,
L4,2026-01-12,website,,bob,east,,
""",
    "events.csv": """lead_id,stage,occurred_at,amount
L1,lead,2026-01-01,
L1,mql,2026-01-03,
L1,sql,2026-01-05,
L1,opportunity,2026-01-10,
L1,won,2026-01-20,1000
L2,lead,2026-01-05,
L2,mql,2026-01-06,
L2,won,2026-01-15,3000
L3,lead,2026-01-10,
L3,lost,2026-01-11,
L4,won,2026-01-13,600
""",
    "interactions.csv": """interaction_id,customer_ref,lead_id,channel,kind,occurred_at
I1,C1,,wechat,message,2026-01-02
I2,,L1,call_center,call,2026-01-15
I3,C1,,wechat,message,2026-01-25
I4,C2,,wechat,visit,2026-01-10
""",
    "spend.csv": """channel,spend_date,cost,campaign
paid_search,2026-01-01,500,spring
trade_show,2026-01-02,1000,expo
""",
    "contracts.csv": """contract_id,customer_ref,signed_at,amount,due_date,paid_amount
K1,C1,2025-12-01,1000,2026-01-01,400
K2,C2,2025-12-01,500,2026-03-01,
K3,C1,2025-12-01,200,2025-12-15,200
""",
}
CONFIG = """
[analytics]
attribution_half_life_days = 7
[[sources]]
name = "s"
kind = "csv"
{tables}
"""
ENTITY_FILES = {
    "leads": "leads.csv",
    "lead_events": "events.csv",
    "interactions": "interactions.csv",
    "marketing_spend": "spend.csv",
    "contracts": "contracts.csv",
}


@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("mini")
    for name, text in FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    tables = "".join(f'[[sources.tables]]\nentity = "{e}"\npath = "{f}"\n' for e, f in ENTITY_FILES.items())
    (root / "cockpit.toml").write_text(CONFIG.format(tables=tables), encoding="utf-8")
    settings = load_settings(root / "cockpit.toml")
    result = refresh(settings)
    assert result.exit_code == 0, [r.reasons for r in result.sources]
    return settings


def q(settings: Settings, name: str, **params: object) -> list[dict[str, object]]:
    return Warehouse(settings).run_query(name, params, user=SYSTEM).to_dicts()


def by(rows: list[dict[str, object]], key: str) -> dict[object, dict[str, object]]:
    return {r[key]: r for r in rows}


def test_attribution_models_by_hand(mini: Settings) -> None:
    rows = by(q(mini, "attribution"), "channel")
    # L1 (1000): paid_search 01-01, wechat 01-02, call_center 01-15 (the 01-25 message is after the win)
    # L2 (3000): trade_show 01-05, wechat 01-10.  L4 (600): website only, no other touch.
    assert rows["paid_search"]["first_touch"] == 1000 and rows["call_center"]["last_touch"] == 1000
    assert rows["trade_show"]["first_touch"] == 3000 and rows["wechat"]["last_touch"] == 3000
    assert rows["website"]["first_touch"] == rows["website"]["time_decay"] == 600
    assert rows["wechat"]["linear"] == pytest.approx(1000 / 3 + 1500)
    assert rows["paid_search"]["u_shaped"] == pytest.approx(400)
    assert rows["wechat"]["u_shaped"] == pytest.approx(200 + 1500)
    w = [0.5 ** (19 / 7), 0.5 ** (18 / 7), 0.5 ** (5 / 7)]  # days before the L1 win, half-life 7
    l2 = [0.5 ** (10 / 7), 0.5 ** (5 / 7)]
    assert rows["call_center"]["time_decay"] == pytest.approx(1000 * w[2] / sum(w))
    assert rows["wechat"]["time_decay"] == pytest.approx(1000 * w[1] / sum(w) + 3000 * l2[1] / sum(l2))


@pytest.mark.parametrize("model", MODELS)
def test_every_model_sums_to_won_revenue(mini: Settings, model: str) -> None:
    total = sum(float(r[model]) for r in q(mini, "attribution"))  # type: ignore[arg-type]
    assert total == pytest.approx(4600)
    january = sum(float(r[model]) for r in q(mini, "attribution", start="2026-01-14", end="2026-01-31"))  # type: ignore[arg-type]
    assert january == pytest.approx(4000)  # L1 and L2; L4 was won on the 13th


def test_funnel_counts_skipped_stages_as_reached(mini: Settings) -> None:
    rows = [r for r in q(mini, "funnel") if r["channel"] == "(all)"]
    assert [r["leads_reached"] for r in rows] == [4, 3, 3, 3, 3]
    assert rows[1]["step_conversion"] == pytest.approx(0.75)
    assert rows[4]["overall_conversion"] == pytest.approx(0.75)
    assert rows[0]["median_days_in_stage"] == pytest.approx(1.0)  # L1 2 days, L2 1, L4 1
    assert rows[4]["median_days_in_stage"] is None
    paid = [r for r in q(mini, "funnel") if r["channel"] == "paid_search"]
    assert [r["median_days_in_stage"] for r in paid[:4]] == pytest.approx([2.0, 2.0, 5.0, 10.0])


def test_a_build_from_before_the_stage_durations_still_gives_the_medians(mini: Settings) -> None:
    from dashboard.core.store import Store

    store = Store(mini.data_path)
    path = store.abs(store.read_manifest()["derived"]["tables"]["lead_facts"])
    facts = pl.read_parquet(path)
    facts.drop(cs.starts_with("days_in_")).write_parquet(path)  # as an older version wrote it
    try:
        paid = [r for r in q(mini, "funnel") if r["channel"] == "paid_search"]
        assert [r["median_days_in_stage"] for r in paid[:4]] == pytest.approx([2.0, 2.0, 5.0, 10.0])
    finally:
        facts.write_parquet(path)  # the other tests share this build


def test_channel_economics_and_no_spend(mini: Settings) -> None:
    rows = by(q(mini, "channel_economics"), "channel")
    paid = rows["paid_search"]
    assert (paid["spend"], paid["leads"], paid["won"], paid["revenue"]) == (500, 1, 1, 1000)
    assert (paid["cost_per_lead"], paid["cac"], paid["roi"]) == (500, 500, 1.0)
    web = rows["website"]
    assert web["revenue"] == 600 and web["spend"] is None and web["roi"] is None and web["cac"] is None
    only_east = by(q(mini, "channel_economics", region="east"), "channel")
    assert set(only_east) == {"paid_search", "website", "trade_show"}  # trade_show: spend only
    assert only_east["trade_show"]["leads"] == 0 and only_east["website"]["leads"] == 2


def test_campaigns_and_masked_leads(mini: Settings) -> None:
    camps = by(q(mini, "campaign_summary", channel="paid_search"), "campaign")
    assert camps["spring"]["cost"] == 500 and camps["spring"]["roi"] == 1.0
    leads = by(q(mini, "channel_leads", channel="website"), "lead_id")
    assert leads["L3"]["furthest_stage"] == "lost"
    assert leads["L4"]["phone"] is None and leads["L4"]["furthest_stage"] == "won"
    assert q(mini, "channel_leads", channel="paid_search")[0]["phone"] == "13800138000"  # the system: unmasked
    manager = Principal("m", "manager")
    masked = Warehouse(mini).run_query("channel_leads", {"channel": "paid_search"}, user=manager)
    assert masked["phone"][0] == "138****8000"  # masked by the manager's views, not by the query


def test_leaderboard_new_leads_receivables(mini: Settings) -> None:
    board = q(mini, "sales_leaderboard")
    won = [(r["owner"], r["won_deals_by_win_date"], r["won_amount_by_win_date"]) for r in board]
    assert won == [("bob", 2, 3600), ("amy", 1, 1000)]
    assert q(mini, "sales_leaderboard", start="2026-01-16")[0]["owner"] == "amy"
    new = by(q(mini, "new_leads", as_of="2026-01-12"), "period")  # a Monday
    assert (new["today"]["leads"], new["today"]["previous_leads"], new["today"]["change_rate"]) == (1, 0, None)
    assert (new["week"]["leads"], new["week"]["previous_leads"], new["week"]["change_rate"]) == (1, 1, 0.0)
    assert (new["month"]["leads"], new["month"]["previous_leads"]) == (4, 0)
    assert q(mini, "receivables_overdue", as_of="2026-01-15") == [
        {"contracts": 1, "customers": 1, "overdue_amount": 600}
    ]
    assert q(mini, "receivables_overdue", as_of="2026-03-02")[0]["overdue_amount"] == 1100


def test_lead_volume_periods(mini: Settings) -> None:
    month = q(mini, "lead_volume")
    assert {(str(r["period"]), r["channel"], r["leads"]) for r in month} == {
        ("2026-01-01", "paid_search", 1),
        ("2026-01-01", "trade_show", 1),
        ("2026-01-01", "website", 2),
    }
    day = by([r for r in q(mini, "lead_volume", grain="day") if r["channel"] == "website"], "leads")
    assert str(day[1]["period"]) in ("2026-01-10", "2026-01-12")
    assert all(r["previous_leads"] == 0 and r["change_rate"] is None for r in day.values())


def test_filters_are_bound(mini: Settings) -> None:
    assert q(mini, "channel_economics", channel="x' OR '1'='1") == []
    assert Path(mini.base_dir / "leads.csv").is_file()  # inputs untouched by refresh


def test_excluded_channels_are_not_touches(mini: Settings, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "excl"
    shutil.copytree(mini.base_dir, root, ignore=shutil.ignore_patterns("data"))
    cfg = root / "cockpit.toml"
    cfg.write_text(
        cfg.read_text(encoding="utf-8").replace(
            "[analytics]\n", '[analytics]\nattribution_exclude_channels = ["call_center"]\n'
        ),
        encoding="utf-8",
    )
    settings = load_settings(cfg)
    assert refresh(settings).exit_code == 0
    rows = by(q(settings, "attribution"), "channel")
    assert "call_center" not in rows  # L1's last touch is now wechat (01-02)
    assert rows["wechat"]["last_touch"] == 1000 + 3000
    assert sum(float(r["linear"]) for r in rows.values()) == pytest.approx(4600)  # type: ignore[arg-type]
