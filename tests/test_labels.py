"""The value dictionary and the formatters: every built-in code named in both languages, a company's own
labels from cockpit.toml over them, unknown codes shown as they are, and numbers, months and schedules
written for people."""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from dashboard.components import fmt
from dashboard.core.config import LABEL_DIMENSIONS, Settings, load_settings, parse_settings
from dashboard.core.entities import STAGES
from dashboard.core.errors import ConfigError
from dashboard.demo.pool import _INDUSTRIES
from dashboard.demo.tables import CITIES
from dashboard.i18n import LANGS
from dashboard.i18n.values import BUILT_IN, DIMENSIONS, VALUES, ValueLabels, untranslated
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[1]
CJK = re.compile(r"[\u3400-\u9fff]")


@pytest.mark.parametrize("lang", LANGS)
def test_every_built_in_code_has_a_label_in_each_language(lang: str) -> None:
    assert untranslated(lang) == {d: [] for d in DIMENSIONS}
    assert set(DIMENSIONS) == set(LABEL_DIMENSIONS)


def test_every_channel_the_demo_config_knows_and_every_stage_is_named() -> None:
    settings = parse_settings({}, ROOT)
    demo = tomllib.loads((ROOT / "cockpit.toml").read_text())
    assert set(demo["channel_aliases"]) <= set(VALUES["channel"])
    assert set(STAGES) <= set(VALUES["stage"])
    names = ValueLabels(settings.label_texts())
    assert names.label("channel", "paid_search", "zh") == "搜索推广"
    assert names.label("stage", "won", "en") == "Won"


def test_a_company_names_its_own_codes_in_cockpit_toml() -> None:
    raw = {
        "labels": {"channel": {"live_stream": "直播带货", "wechat": {"zh": "微信生态", "en": "WeChat ecosystem"}}},
        "sources": [
            {"name": "shop", "kind": "csv", "title": "网店订单", "tables": [{"entity": "orders", "path": "o.csv"}]}
        ],
    }
    names = ValueLabels(parse_settings(raw, ROOT).label_texts())
    assert names.label("channel", "live_stream", "zh") == "直播带货"
    assert names.label("channel", "live_stream", "en") == "live_stream"  # no English label: the code
    assert names.label("channel", "wechat", "zh") == "微信生态"  # the company's wins over the built-in
    assert names.label("channel", "wechat", "en") == "WeChat ecosystem"
    assert names.label("source", "shop", "zh") == "网店订单"  # a source is called by its title
    assert names.label("source", "shop", "en") == "shop"


def test_unknown_codes_and_missing_values() -> None:
    assert BUILT_IN.label("channel", "tiktok_live", "zh") == "tiktok_live"
    assert BUILT_IN.label("channel", None, "zh") == "—"
    assert BUILT_IN.label("nonsense", "x", "en") == "x"
    assert BUILT_IN.table("risk_band", "zh")["high"] == "高风险"


def test_an_unknown_label_dimension_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="labels: 'channels' is not a labelled dimension"):
        parse_settings({"labels": {"channels": {"x": "y"}}}, ROOT)


def test_numbers_months_and_missing_values_for_people() -> None:
    assert fmt.money(429313) == "¥429,313"
    assert fmt.money(-1200.4) == "-¥1,200"
    assert fmt.pct(0.1824) == "18.2%"
    assert fmt.month(date(2025, 1, 1), "zh") == "2025年1月"
    assert fmt.month(date(2025, 1, 1), "en") == "Jan 2025"
    assert fmt.day(date(2025, 1, 5), "zh") == "2025年1月5日"
    assert fmt.money(None) == fmt.count(None) == fmt.month(None, "zh") == fmt.text(float("nan")) == "—"


@pytest.mark.parametrize(
    ("cron", "zh", "en"),
    [
        ("0 2 * * *", "每天 02:00", "daily at 02:00"),
        ("30 2 * * *", "每天 02:30", "daily at 02:30"),
        ("0 6 * * 1", "每周一 06:00", "weekly on Mon at 06:00"),
        ("0 3 1 * *", "每月1日 03:00", "monthly on day 1 at 03:00"),
        ("*/30 * * * *", "每 30 分钟", "every 30 minutes"),
        ("15 * * * *", "每小时第 15 分", "hourly at :15"),
        ("0 * * * *", "每小时整点", "hourly on the hour"),
        ("0 */4 * * *", "每 4 小时", "every 4 hours"),
        ("0 9-18 * * 1-5", "0 9-18 * * 1-5", "0 9-18 * * 1-5"),  # anything else: as written
    ],
)
def test_schedules_in_words(cron: str, zh: str, en: str) -> None:
    assert (fmt.cron(cron, "zh"), fmt.cron(cron, "en")) == (zh, en)


def test_every_event_kind_and_outcome_of_the_demo_timeline_is_named_in_english(small_demo: Settings) -> None:
    """The Customer 360 timeline's kinds (its filter's options) and interactions' outcomes are the sources' own
    codes: in the demo, the CRM writes Chinese follow-up kinds and outcomes and the ERP an order status. With the
    demo company's cockpit.toml each is named in English, so none reaches the English page as it was written."""
    events = Warehouse(small_demo).run_query("customer_timeline", user=SYSTEM)
    names = ValueLabels(small_demo.label_texts())
    kinds = events.filter(pl.col("category") != "stage")["kind"].drop_nulls().unique().to_list()
    outcomes = events.filter(pl.col("category") == "interaction")["detail"].drop_nulls().unique().to_list()
    assert len(kinds) >= 10 and len(outcomes) >= 5
    shown = {("kind", k): names.label("kind", k, "en") for k in kinds}
    shown |= {("outcome", o): names.label("outcome", o, "en") for o in outcomes}
    assert {code: text for code, text in shown.items() if CJK.search(text)} == {}
    assert names.label("kind", "上门拜访", "zh") == "上门拜访"


def test_every_region_of_the_demo_is_named_in_english() -> None:
    """The demo's systems write their sales regions in Chinese (华东): the English pages (the churn list, Explore,
    the filters) name them in English, the Chinese ones as written."""
    names = ValueLabels(load_settings(ROOT / "cockpit.toml").label_texts())
    regions = {city[2] for city in CITIES}
    assert len(regions) == 7
    assert {r: names.label("region", r, "en") for r in regions if CJK.search(names.label("region", r, "en"))} == {}
    assert names.label("region", "华东", "en") == "East China" and names.label("region", "华东", "zh") == "华东"


def test_every_industry_of_the_demo_is_named_in_english() -> None:
    """The demo's CRM, ERP and purchased lists write a customer's industry in Chinese (制造业): the English pages
    (Customer 360's golden record, Explore, its filters) name it in English, the Chinese ones as written."""
    names = ValueLabels(load_settings(ROOT / "cockpit.toml").label_texts())
    industries = {industry for industry, *_ in _INDUSTRIES}
    assert len(industries) == 10
    shown = {i: names.label("industry", i, "en") for i in industries}
    assert {i: text for i, text in shown.items() if CJK.search(text)} == {}
    assert names.label("industry", "制造业", "en") == "Manufacturing"
    assert names.label("industry", "制造业", "zh") == "制造业"


def test_every_team_owning_a_demo_source_is_named_in_english() -> None:
    """The demo's sources name their owners in Chinese (市场部): the English catalog names them in English."""
    settings = load_settings(ROOT / "cockpit.toml")
    names = ValueLabels(settings.label_texts())
    shown = {s.owner: names.label("source_owner", s.owner, "en") for s in settings.sources if s.owner}
    assert len(shown) == 6 and {o: text for o, text in shown.items() if CJK.search(text)} == {}
    assert names.label("source_owner", "市场部", "zh") == "市场部"
