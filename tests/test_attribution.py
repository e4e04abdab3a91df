"""Attribution over the customer's journey: every interaction of the resolved customer, in any source,
before the win, plus the lead's own channel — on a tiny company with journeys counted by hand, and on
the small demo."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.derived.analytics import MODELS
from dashboard.pipeline.refresh import refresh
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse

REPO = Path(__file__).resolve().parents[1]

# Wang met us on WeChat (01-01), called the hotline (01-11, the PBX shows a leading 0) and signed at
# a trade show (lead 01-21, won 01-31, ¥10,000); her message of 02-05 comes after the win.
# Li called (02-01) and signed at the show (lead 02-03, won 02-10, ¥4,000). Zhao only came to the
# show (lead 02-05, won 02-20, ¥1,000). Sun follows us on WeChat but never bought. Qian's lead is lost.
FILES = {
    "wechat/fans.csv": """openid,mobile,remark,subscribe_time
oWANG,138-0000-0001,王芳,2026-01-01
oSUN,13700000009,孙七,2025-12-20
""",
    "wechat/events.csv": """msg_id,openid,account,event,create_time
M1,oWANG,公众号,subscribe,2026-01-01
M2,oWANG,公众号,text,2026-02-05
M3,oSUN,公众号,subscribe,2025-12-20
M4,oSUN,公众号,text,2026-01-15
""",
    "call_center/calls.csv": """call_id,number,start_time,call_type
C1,013800000001,2026-01-11,Inquiry
C2,13900000002,2026-02-01,Inquiry
C3,13700000009,2026-01-20,Complaint
""",
    "trade_show/leads.csv": """reg_no,registered_at,source,phone,name
TS-1,2026-01-21,展会,+86 138 0000 0001,王芳
TS-2,2026-02-03,展会,13900000002,李四
TS-3,2026-02-05,展会,13600000003,赵六
TS-4,2026-02-06,展会,13500000004,钱八
""",
    "trade_show/stages.csv": """reg_no,stage,date,amount
TS-1,won,2026-01-31,10000
TS-2,won,2026-02-10,4000
TS-3,won,2026-02-20,1000
TS-4,lost,2026-02-12,
""",
}
CONFIG = """
data_dir = "data"
[channel_aliases]
wechat = ["公众号"]
trade_show = ["展会"]
[analytics]
attribution_half_life_days = 7
[[sources]]
name = "wechat"
kind = "csv"
  [[sources.tables]]
  entity = "customers"
  path = "wechat/fans.csv"
  columns = { source_record_id = "openid", phone = "mobile", name = "remark", created_at = "subscribe_time" }
  [[sources.tables]]
  entity = "interactions"
  path = "wechat/events.csv"
  [sources.tables.columns]
  interaction_id = "msg_id"
  customer_ref = "openid"
  channel = "account"
  kind = "event"
  occurred_at = "create_time"
[[sources]]
name = "call_center"
kind = "csv"
  [[sources.tables]]
  entity = "interactions"
  path = "call_center/calls.csv"
  constants = { channel = "call_center" }
  columns = { interaction_id = "call_id", customer_ref = "number", occurred_at = "start_time", kind = "call_type" }
[[sources]]
name = "trade_show"
kind = "csv"
  [[sources.tables]]
  entity = "leads"
  path = "trade_show/leads.csv"
  columns = { lead_id = "reg_no", created_at = "registered_at", channel = "source", phone = "phone", name = "name" }
  [[sources.tables]]
  entity = "lead_events"
  path = "trade_show/stages.csv"
  columns = { lead_id = "reg_no", stage = "stage", occurred_at = "date", amount = "amount" }
"""


def decay(*days_before_win: float) -> list[float]:
    """Time-decay shares of touches this many days before the win (half-life 7 days)."""
    weights = [0.5 ** (d / 7) for d in days_before_win]
    return [w / sum(weights) for w in weights]


WANG = decay(30, 20, 10)  # wechat, call_center, trade_show
LI = decay(9, 7)  # call_center, trade_show
# credits per channel per model, counted by hand from the journeys above
EXPECTED = {
    "wechat": {
        "first_touch": 10000,
        "last_touch": 0,
        "linear": 10000 / 3,
        "u_shaped": 4000,
        "time_decay": 10000 * WANG[0],
    },
    "call_center": {
        "first_touch": 4000,
        "last_touch": 0,
        "linear": 10000 / 3 + 2000,
        "u_shaped": 2000 + 2000,
        "time_decay": 10000 * WANG[1] + 4000 * LI[0],
    },
    "trade_show": {
        "first_touch": 1000,
        "last_touch": 10000 + 4000 + 1000,
        "linear": 10000 / 3 + 2000 + 1000,
        "u_shaped": 4000 + 2000 + 1000,
        "time_decay": 10000 * WANG[2] + 4000 * LI[1] + 1000,
    },
}


def attribution(settings: Settings, **period: str) -> dict[str, dict[str, float]]:
    rows = Warehouse(settings).run_query("attribution", period, user=SYSTEM).to_dicts()
    return {str(r["channel"]): {m: float(r[m]) for m in MODELS} for r in rows}


@pytest.fixture(scope="module")
def journeys(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("journeys")
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "cockpit.toml").write_text(CONFIG, encoding="utf-8")
    settings = load_settings(root / "cockpit.toml")
    result = refresh(settings)
    assert result.exit_code == 0, [(r.source, r.reasons) for r in result.sources]
    return settings


def test_touches_follow_the_customer_across_sources(journeys: Settings) -> None:
    got = attribution(journeys)
    assert set(got) == set(EXPECTED)
    # the credits would differ if Sun's touches (no deal) or Wang's message after her win counted
    for channel, credits in EXPECTED.items():
        assert got[channel] == pytest.approx(credits), channel


def test_the_five_models_differ_on_a_journey_of_several_touches(journeys: Settings) -> None:
    wechat = attribution(journeys)["wechat"]  # Wang's first of three touches
    assert len({round(wechat[m]) for m in MODELS}) == 5, wechat


@pytest.mark.parametrize("model", MODELS)
def test_each_model_sums_to_the_won_revenue(journeys: Settings, model: str) -> None:
    assert sum(c[model] for c in attribution(journeys).values()) == pytest.approx(15000)
    february = attribution(journeys, start="2026-02-01", end="2026-02-28")  # Li and Zhao
    assert sum(c[model] for c in february.values()) == pytest.approx(5000)
    assert february["trade_show"]["first_touch"] == pytest.approx(1000)  # Li's call was first


def test_on_the_demo_first_and_last_touch_differ_for_most_channels(small_demo: Settings) -> None:
    got = attribution(small_demo)
    total = sum(c["linear"] for c in got.values())
    differ = [ch for ch, c in got.items() if abs(c["first_touch"] - c["last_touch"]) > 0.01 * total]
    assert len(differ) > len(got) / 2, got
    assert len(got) >= 6  # the lead channels, and the WeCom chats and calls before a deal


def test_on_the_demo_each_model_sums_to_the_won_revenue(small_demo: Settings) -> None:
    won = Warehouse(small_demo).run_query("sales_leaderboard", {}, user=SYSTEM)["won_amount_by_win_date"].sum()
    got = attribution(small_demo)
    assert won > 0
    for model in MODELS:
        assert sum(c[model] for c in got.values()) == pytest.approx(won), model


@pytest.mark.parametrize("by", ["owner", "region"])
def test_on_the_demo_a_region_or_owner_hands_out_its_own_won_deals_over_every_channel(
    small_demo: Settings, by: str
) -> None:
    """The channels page filtered to one owner or region: attribution hands out that owner's or region's won deals
    (each model totals their amount by win date), their touches on channels beyond the leads' own."""
    wh = Warehouse(small_demo)
    won = (
        wh.sql(
            "SELECT owner, region, channel, won_amount AS amount FROM lead_facts WHERE won_at IS NOT NULL",
            {},
            user=SYSTEM,
        )
        .rename({by: "who"})
        .filter(pl.col("who").is_not_null())
    )
    top = won.group_by("who").agg(pl.col("amount").sum()).sort("amount", descending=True)["who"][0]
    theirs = won.filter(pl.col("who") == top)
    got = attribution(small_demo, **{by: top})
    everyone = attribution(small_demo)
    for model in MODELS:
        assert sum(c[model] for c in got.values()) == pytest.approx(theirs["amount"].sum()), model
        assert sum(c[model] for c in got.values()) < sum(c[model] for c in everyone.values()) - 1, model
    assert set(got) - set(theirs["channel"].to_list()), got  # credit on channels that touched, not only the leads'
