"""The channels page and the cockpit's tiles, driven with AppTest on the small company's snapshots:
the numbers on screen are the ones counted by hand from tests/fixture_data.py, the filters
round-trip through the URL, and big-screen mode shows what a wall screen needs.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from streamlit import dataframe_util
from streamlit.testing.v1 import AppTest

from dashboard.components import charts, data, economics, filterbar, fmt
from dashboard.components.attribution import model_label
from dashboard.components.export_buttons import exported
from dashboard.core.config import CONFIG_ENV, Settings
from dashboard.i18n import LANGS, t
from dashboard.i18n.values import ValueLabels
from dashboard.query.metrics import Request, ask, label
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse, list_queries

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
KPIS = ("Leads", "Conversion", "Won-deal amount", "ROI")


pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture
def on_day(monkeypatch: pytest.MonkeyPatch) -> Callable[[dt.date], None]:
    """Make "today" a chosen day (the fixture's leads are in March 2026)."""

    def set_day(day: dt.date) -> None:
        monkeypatch.setattr("dashboard.components.tiles.today", lambda tz: day)

    return set_day


def open_page(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, page: str, lang: str = "en", **query: str
) -> AppTest:
    monkeypatch.setenv(CONFIG_ENV, str(settings.base_dir / "cockpit.toml"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query)
    at.run()
    if at.sidebar.radio[0].value != lang:
        at.sidebar.radio[0].set_value(lang).run()
    if page != "cockpit":
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def deltas(at: AppTest) -> dict[str, str]:
    return {m.label: m.proto.delta for m in at.metric}


def shown(at: AppTest, heading: str) -> list[dict[str, str]]:
    """The rows of the table that has this column heading, as displayed (formatted text)."""
    for element in at.dataframe:
        frame = dataframe_util.convert_arrow_bytes_to_pandas_df(element.proto.arrow_data.styler.display_values)
        if heading in frame.columns:
            return pl.from_pandas(frame).to_dicts()
    raise AssertionError(f"no table with a {heading!r} column")


def by(rows: list[dict[str, str]], column: str) -> dict[str, dict[str, str]]:
    return {row[column]: row for row in rows}


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "info", "warning") for e in at.get(kind))


# -- the channels page ------------------------------------------------------------------------
@pytest.mark.parametrize("lang", LANGS)
def test_channels_page_renders_every_section(company: Settings, monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    at = open_page(company, monkeypatch, "channels", lang)
    assert [x.value for x in at.title] == [t("page.channels", lang)]
    sections = ("volume.title", "funnel.title", "economics.title", "attribution.title", "drill.title")
    assert [s.value for s in at.subheader] == [t(k, lang) for k in sections]
    assert len(at.get("plotly_chart")) == 4  # volume, funnel, economics, attribution
    eco = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert f"**{fmt.md_escape(t('economics.chart', lang))}**" in [m.value for m in at.markdown]
    assert [bar["name"] for bar in eco["data"]] == [t("metric.spend", lang), t("metric.won_amount", lang)]
    assert len(at.download_button) == 8  # CSV and Excel behind each chart
    assert t("drill.hint", lang) in texts(at)


def test_channel_economics_numbers(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(company, monkeypatch, "channels")
    assert {k: metrics(at)[k] for k in KPIS} == {
        "Leads": "60",
        "Conversion": "13.3%",
        "Won-deal amount": "¥22,000",
        "ROI": "450%",
    }
    rows = shown(at, "Acquisition cost (CAC)")
    assert [r["Channel"] for r in rows] == ["Paid search", "Trade show", "Unknown", "website"]  # by revenue
    economics = by(rows, "Channel")
    assert economics["Paid search"] == {
        "Channel": "Paid search",
        "Marketing spend": "¥3,000",
        "Leads": "30",
        "Cost per lead": "¥100",
        "Won deals": "6",
        "Acquisition cost (CAC)": "¥500",
        "Won-deal amount": "¥21,000",
        "ROI": "600%",
    }
    assert economics["Trade show"]["Cost per lead"] == "¥53"  # 1,000 / 19
    assert economics["Trade show"]["ROI"] == "0%"
    web = economics["website"]  # no spend: revenue shown, no ratio (not zero)
    assert (web["Marketing spend"], web["Cost per lead"], web["Acquisition cost (CAC)"], web["ROI"]) == ("—",) * 4
    assert (web["Leads"], web["Won deals"], web["Won-deal amount"]) == ("10", "0", "¥0")
    assert all(d.proto.placeholder == "—" for d in at.dataframe)  # an empty cell is drawn as —, never "None"


@pytest.mark.parametrize("lang", LANGS)
def test_one_reps_channels_read_the_companys_spend_figures_labelled_so(
    company: Settings, monkeypatch: pytest.MonkeyPatch, lang: str
) -> None:
    """Filtered to one rep, the page sets no rep's revenue against every rep's spend (the medium demo's 刘亮
    read ROI -95 %): spend, cost per lead, CAC and ROI are the company's, headed so, as the rep's cockpit."""
    at = open_page(company, monkeypatch, "channels", lang, owner="rep1")
    company_roi = label("roi", "company", lang)
    tiles = metrics(at)
    assert tiles[company_roi] == "450%" and t("metric.roi", lang) not in tiles
    assert tiles[t("metric.leads", lang)] == "10"  # the rep's own
    row = by(shown(at, company_roi), t("col.channel", lang))[{"zh": "搜索推广", "en": "Paid search"}[lang]]
    heads = {n: label(n, "company", lang) for n in ("spend", "cost_per_lead", "cac")}
    assert heads["spend"] == {"zh": "全公司市场费用", "en": "Company marketing spend"}[lang]
    assert (row[company_roi], row[heads["spend"]], row[heads["cost_per_lead"]]) == ("600%", "¥3,000", "¥100")
    assert row[heads["cac"]] == "¥500"  # the company's 6 won deals on paid search, not the rep's
    assert t("economics.spend_unsplit", lang) in texts(at)
    # the chart draws the rep's won amount alone: the company's spend beside it would read as the rep's return
    eco = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert f"**{fmt.md_escape(t('economics.chart_selection', lang))}**" in [m.value for m in at.markdown]
    assert [bar["name"] for bar in eco["data"]] == [t("metric.won_amount", lang)]
    mine = ask(
        Warehouse(company), Request.of(["won_amount"], ["channel"], {"owner": "rep1"}), Principal("m", "manager")
    )
    drawn = sum(y or 0 for y in eco["data"][0]["y"])
    assert drawn == mine.frame["won_amount"].sum() == 7000  # rep1's won amount, not the company's
    # the download heads its columns as the table does
    split = ask(
        Warehouse(company), Request.of(["leads", "roi"], ["channel"], {"owner": "rep1"}), Principal("m", "manager")
    )
    assert exported(split.frame, lang, names=economics.names(split, lang)).columns == [
        t("col.channel", lang),
        t("metric.leads", lang),
        company_roi,
    ]


def test_funnel_overall(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(company, monkeypatch, "channels")
    funnel = by(shown(at, "Median days in stage"), "Stage")
    # 60 leads; CRM-0..9 reached opportunity (so mql and sql too), TS-0/TS-1 jumped to won; 8 won
    assert {s: r["Leads reached"] for s, r in funnel.items()} == {
        "Lead": "60",
        "MQL": "12",
        "SQL": "12",
        "Opportunity": "12",
        "Won": "8",
    }
    assert [funnel[s]["Step conversion"] for s in funnel] == ["100.0%", "20.0%", "100.0%", "100.0%", "66.7%"]
    assert funnel["Won"]["Overall conversion"] == "13.3%"
    # lead → mql: 5 days for the ten CRM leads (their opportunity date), ~19 for the two trade-show ones
    assert funnel["Lead"]["Median days in stage"] == "5.0"
    assert funnel["Opportunity"]["Median days in stage"] == "4.0"  # CRM-0..5: 4 days; TS-0/1: 0
    assert funnel["Won"]["Median days in stage"] == "—"
    per_channel = by(shown(at, "MQL"), "Channel")  # stages as columns
    assert per_channel["Paid search"]["Won"] == "6" and per_channel["Paid search"]["Overall conversion"] == "20.0%"


def test_attribution_models_each_total_the_won_revenue(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(company, monkeypatch, "channels")
    attribution = by(shown(at, "U-shaped"), "Channel")
    # the fixture has no interactions: every won lead's only touch is its own channel
    assert attribution["Paid search"]["First touch"] == attribution["Paid search"]["Time decay"] == "¥21,000"
    assert attribution["Trade show"]["Linear"] == "¥1,000"
    assert "✓ Every model hands out exactly the period's won revenue, ¥22,000: First touch ¥22,000" in texts(at)
    at.radio(key="_view_model").set_value("u_shaped").run()
    assert at.query_params["model"] == "u_shaped"


def test_lead_volume_compares_the_last_full_period(
    company: Settings, monkeypatch: pytest.MonkeyPatch, on_day: Callable[[dt.date], None]
) -> None:
    on_day(dt.date(2026, 3, 15))  # March is still running: the last full week is 2–8 March
    at = open_page(company, monkeypatch, "channels", grain="week")
    assert at.radio(key="_view_grain").value == "week"
    # week of 2 March: 3 leads a day (trade show, CRM, web); week of 23 Feb: only 1 March (Sunday), 3 leads
    assert metrics(at)["Leads in 2026-03-02"] == "21"
    assert deltas(at)["Leads in 2026-03-02"] == "+600.0%"
    assert "2026-03-30 is incomplete" in texts(at)  # CRM-29, 30 March
    volume = by(shown(at, "Previous period"), "Channel")
    assert (volume["Paid search"]["Leads"], volume["Paid search"]["Previous period"]) == ("7", "1")
    assert volume["Paid search"]["Change"] == "+600.0%"


def test_choosing_a_channel_drills_down_to_its_campaigns_and_masked_leads(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(company, monkeypatch, "channels")
    at.selectbox(key="_fb_channel").set_value("paid_search").run()
    assert not at.exception
    assert at.query_params["channel"] == "paid_search"
    assert metrics(at)["Leads"] == "30"
    campaigns = shown(at, "Campaign")
    assert campaigns[0]["Campaign"] == "(no campaign)"  # the CRM leads carry no campaign
    assert (campaigns[0]["Leads"], campaigns[0]["Cost"], campaigns[0]["ROI"]) == ("30", "¥3,000", "600%")
    leads = shown(at, "Furthest stage")
    assert len(leads) == 30 and leads[0]["Lead ID"] == "CRM-29"  # newest first
    phones = {r["Lead ID"]: r["Phone"] for r in leads}
    assert phones["CRM-0"] == "13900130000"  # --no-auth serves as admin: unmasked (test_security: masked roles)
    assert {r["Furthest stage"] for r in leads} == {"Lead", "Opportunity", "Won"}
    assert "Leads: the newest 30 of 30" in texts(at)
    assert len(at.download_button) == 12  # and the campaigns and the leads


def test_a_click_on_a_channel_bar_narrows_to_it(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(company, monkeypatch, "channels")
    spec = json.loads(at.get("plotly_chart")[2].proto.spec)
    assert spec["data"][0]["x"] == ["paid_search", "trade_show", "unknown", "website"]
    event = {"selection": {"points": [{"x": "trade_show", "y": 1000, "curve_number": 1}]}}
    assert charts.clicked(event) == "trade_show"
    assert charts.clicked({"selection": {"points": []}}) is None and charts.clicked(None) is None


# -- filters in the URL ---------------------------------------------------------------------------
def test_filters_round_trip_through_the_url(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    query = {"start": "2026-03-01", "end": "2026-03-10", "channel": "paid_search"}
    at = open_page(company, monkeypatch, "channels", **query)
    # the URL's filters are in the widgets and in force
    assert at.date_input(key="_fb_period").value == (dt.date(2026, 3, 1), dt.date(2026, 3, 10))
    assert at.selectbox(key="_fb_channel").value == "paid_search"
    assert metrics(at)["Leads"] == "10"  # CRM-0..9
    paid = by(shown(at, "Acquisition cost (CAC)"), "Channel")["Paid search"]
    assert (paid["Marketing spend"], paid["Cost per lead"], paid["Won deals"], paid["ROI"]) == (
        "¥2,000",
        "¥200",
        "6",
        "950%",
    )
    # changing a widget changes the URL, the other filters stay
    at.selectbox(key="_fb_region").set_value("华东").run()
    assert {k: at.query_params.get(k) for k in (*query, "region")} == {**query, "region": "华东"}
    at.date_input(key="_fb_period").set_value((dt.date(2026, 3, 2), dt.date(2026, 3, 5))).run()
    assert (at.query_params["start"], at.query_params["end"]) == ("2026-03-02", "2026-03-05")
    at.selectbox(key="_fb_channel").set_value("").run()  # "All"
    assert "channel" not in at.query_params and at.query_params["region"] == "华东"
    at.date_input(key="_fb_period").set_value(()).run()
    assert "start" not in at.query_params and "end" not in at.query_params
    # the filters survive a page change
    at.switch_page("pages/cockpit.py").run()
    at.switch_page("pages/channels.py").run()
    assert at.selectbox(key="_fb_region").value == "华东"


@pytest.mark.parametrize("how", ["url", "page change"])
def test_the_cockpit_applies_only_the_filters_it_shows(
    company: Settings, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The cockpit shows only a period: a rep chosen on the channels page (or in a link to the cockpit) narrowed
    its tiles while nothing on it said so (60 leads read 10). It reads the company's; the channels page, when
    the user returns to it, still reads the rep's."""
    if how == "url":
        at = open_page(company, monkeypatch, "cockpit", owner="rep1")
    else:
        at = open_page(company, monkeypatch, "channels", owner="rep1")
        assert metrics(at)["Leads"] == "10"
        at.switch_page("pages/cockpit.py").run()
    shown_metrics = metrics(at)
    assert {k: shown_metrics[k] for k in KPIS} == {
        "Leads": "60",
        "Conversion": "13.3%",
        "Won-deal amount": "¥22,000",
        "ROI": "450%",
    }
    board = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert board["y"] == ["rep2", "rep1", "rep0"]
    leads = json.loads(at.get("plotly_chart")[1].proto.spec)["data"][0]  # leads and won deals per channel
    assert sum(leads["y"]) == 60
    at.switch_page("pages/channels.py").run()
    assert at.selectbox(key="_fb_owner").value == "rep1" and metrics(at)["Leads"] == "10"


def test_a_bookmarked_value_missing_from_the_data_still_applies(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(company, monkeypatch, "channels", channel="tiktok", start="2026-13-01", end="x")
    assert at.selectbox(key="_fb_channel").value == "tiktok"
    assert at.date_input(key="_fb_period").value == ()  # malformed dates are ignored
    assert metrics(at)["Leads"] == "0"
    assert t("channels.no_leads", "en") in texts(at)


def test_url_parameters_parse_and_serialize() -> None:
    f = filterbar.from_query({"start": "2026-03-10", "end": "2026-03-01", "owner": " rep1 ", "region": ""})
    assert (f.start, f.end, f.owner, f.region) == (dt.date(2026, 3, 1), dt.date(2026, 3, 10), "rep1", None)
    assert filterbar.to_query(f) == {"start": "2026-03-01", "end": "2026-03-10", "owner": "rep1"}
    assert filterbar.from_query({"start": "2026-03-01"}) == filterbar.Filters()  # a period needs both ends
    assert filterbar.from_query(filterbar.to_query(f)) == f


def test_filter_options_query(company: Settings) -> None:
    options = filterbar.options_by_kind(Warehouse(company).run_query("filter_options", user=SYSTEM))
    assert options == {
        "channel": ["paid_search", "trade_show", "unknown", "website"],
        "region": ["华东"],
        "owner": ["rep0", "rep1", "rep2"],
        "campaign": [],  # no lead has one
    }


# -- the cockpit ----------------------------------------------------------------------------------
def test_cockpit_tiles(company: Settings, monkeypatch: pytest.MonkeyPatch, on_day: Callable[[dt.date], None]) -> None:
    on_day(dt.date(2026, 3, 15))  # a Sunday
    at = open_page(company, monkeypatch, "cockpit")
    shown_metrics = metrics(at)
    # today: TS-14 and CRM-14 (yesterday 2); week from Monday 9 March: 16 (the week before, same days: 21);
    # month: 30 in 1–10 March and 10 in 11–15 (February: none)
    assert {k: shown_metrics[k] for k in ("New leads today", "New leads this week", "New leads this month")} == {
        "New leads today": "2",
        "New leads this week": "16",
        "New leads this month": "40",
    }
    d = deltas(at)
    assert (d["New leads today"], d["New leads this week"], d["New leads this month"]) == ("0.0%", "-23.8%", "—")
    assert {k: shown_metrics[k] for k in KPIS} == {
        "Leads": "60",
        "Conversion": "13.3%",
        "Won-deal amount": "¥22,000",
        "ROI": "450%",
    }
    assert shown_metrics["Receivables overdue"] == "¥0"  # the small company has no contracts
    assert d["Receivables overdue"] == "0 contracts · 0 customers"
    # the leaderboard: rep2 9,000 (CRM-2, CRM-5), rep1 7,000, rep0 5,000; TS-0/TS-1 have no owner
    board = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    assert board["y"] == ["rep2", "rep1", "rep0"] and board["x"] == [9000.0, 7000.0, 5000.0]
    assert "Won leads without an owner: 2 deals, ¥1,000 (not ranked)." in texts(at)
    assert "Customers at risk" not in shown_metrics  # churn is not built: no tile, no made-up number


def test_the_leaderboard_table_ranks_the_reps_as_the_chart_and_lists_won_deals_without_an_owner_last(
    small_demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's unowned won deals outweigh every rep's (60 deals, ¥2,559,140): the line under the chart says they
    are not ranked, so the table does not put them first."""
    at = open_page(small_demo, monkeypatch, "cockpit")
    owners = list(next(d for d in at.dataframe if "Owner" in d.value.columns).value["Owner"])
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["y"]
    assert owners[-1] == t("tiles.nobody", "en") and owners[: len(bars)] == bars, owners


def test_a_short_leaderboard_is_drawn_without_empty_rows(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three reps and the unowned deals: the table is as tall as its four rows (a sales user, who sees only
    their own row, saw it above five rows of nothing)."""
    import streamlit as st

    heights: dict[str, object] = {}
    draw = st.dataframe

    def spy(data: Any, *args: Any, **kwargs: Any) -> Any:
        shown = getattr(data, "data", data)  # a Styler's frame
        heights.update(dict.fromkeys(getattr(shown, "columns", []), kwargs.get("height")))
        return draw(data, *args, **kwargs)

    monkeypatch.setattr(st, "dataframe", spy)
    at = open_page(company, monkeypatch, "cockpit")
    board = next(d for d in at.dataframe if "Owner" in d.value.columns)
    assert len(board.value) == 4
    assert heights["Owner"] == "auto"  # Streamlit's own height for the rows it has, not a fixed 240 px


def test_a_rep_with_one_won_deal_reads_one_deal() -> None:
    from dashboard.components.leaderboard import leaderboard_figure

    board = pl.DataFrame(
        {"owner": ["张刚", "白建军"], "won_deals_by_win_date": [8, 1], "won_amount_by_win_date": [847990.0, 108320.0]}
    )
    bars = {lang: list(leaderboard_figure(board, lang, kiosk=False).data[0].text) for lang in ("en", "zh")}
    assert bars == {"en": ["¥847,990 · 8 deals", "¥108,320 · 1 deal"], "zh": ["¥847,990 · 8 单", "¥108,320 · 1 单"]}


@pytest.mark.parametrize("exists", [True, False])
def test_data_health_tile_only_when_the_query_exists(
    company: Settings, monkeypatch: pytest.MonkeyPatch, exists: bool
) -> None:
    """``data_health`` belongs to the data-quality issue: the tile shows only when that query is there."""
    others = [q for q in list_queries() if q != "data_health"]
    monkeypatch.setattr(
        "dashboard.components.tiles.list_queries", lambda: [*others, "data_health"] if exists else others
    )
    health = pl.DataFrame({"source_system": ["(all)", "crm", "erp"], "health_score": [90.0, 80.0, 95.0]})
    real = data.query
    monkeypatch.setattr(
        data, "query", lambda name, params=None: health if name == "data_health" else real(name, params)
    )
    at = open_page(company, monkeypatch, "cockpit")
    assert ("Data health" in metrics(at)) is exists
    if exists:
        assert (metrics(at)["Data health"], deltas(at)["Data health"]) == ("90 / 100", "lowest: CRM 80")


def test_kiosk_mode(company: Settings, monkeypatch: pytest.MonkeyPatch, on_day: Callable[[dt.date], None]) -> None:
    on_day(dt.date(2026, 3, 15))
    runs: list[float] = []

    def fragment(body: Callable[[], None], run_every: float) -> Callable[[], None]:
        runs.append(run_every)
        return body

    monkeypatch.setattr("dashboard.components.kiosk.st.fragment", fragment)
    at = open_page(company, monkeypatch, "cockpit", kiosk="1")
    assert runs == [company.analytics.kiosk_refresh_seconds]  # the tiles refresh on the configured timer
    assert not at.date_input  # no filter widgets on the wall
    assert metrics(at)["Won-deal amount"] == "¥22.0K"  # magnitudes, legible from three metres
    assert metrics(at)["Leads"] == "60"
    line = next(str(m.value) for m in at.markdown if str(m.value).startswith("Data as of"))
    line = line.replace("\u2060", "").replace("\u00a0", " ")  # each source's name and time kept whole
    names = ValueLabels(company.label_texts())  # each source by its name in the page's language
    for source in company.sources:
        assert f"**{names.label('source', source.name, 'en')}** 20" in line
    assert t("fresh.title", "en") not in [s.value for s in at.subheader]


@pytest.mark.parametrize("lang", LANGS)
def test_the_channel_chart_writes_its_counts_as_the_tables_do(lang: str) -> None:
    """The cockpit's leads-and-won-deals chart ticked 12k, 10k, 8k (Plotly's own abbreviation, English in the
    Chinese page) beside tables of 12,288 (the walk, session 19)."""
    from dashboard.components.channels import channel_figure

    summary = pl.DataFrame({"channel": ["paid_search", "organic"], "leads": [12_288, 10_463], "won_deals": [533, 490]})
    axis = channel_figure(summary, lang).layout.yaxis
    assert (axis.tickformat, axis.hoverformat) == (",.0~f", ",.0f")  # 12,000; fmt.axis("count")


def test_a_drill_down_without_leads_says_so_once_without_an_empty_table(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A channel picked for a period without its leads showed "No leads match the filters." and under it
    "Leads: newest 0 of 0" over an empty grid (Streamlit's English "empty" on the Chinese page) with CSV and
    Excel buttons (the walk, session 19)."""
    from tests.fixture_data import open_app_page

    at = open_app_page(
        company, monkeypatch, "channels", {"channel": "paid_search", "start": "2030-01-01", "end": "2030-02-01"}
    )
    assert not at.exception
    assert t("channels.no_leads", "en") in [i.value for i in at.info]
    assert f"**{t('drill.leads', 'en', shown='0', total='0')}**" not in [m.value for m in at.markdown]
    assert len(at.dataframe) == 0 and len(at.get("download_button")) == 0


@pytest.mark.parametrize("lang", LANGS)
def test_attribution_filtered_to_a_rep_hands_out_that_reps_won_deals(
    company: Settings, monkeypatch: pytest.MonkeyPatch, lang: str
) -> None:
    """Filtered to one rep, attribution spreads that rep's won deals over the channels that touched them (it used
    to show the whole company's whatever the filter), and every model totals the rep's won revenue by win date."""
    whose = Warehouse(company).sql(
        "SELECT channel, sum(won_amount) AS amount FROM lead_facts WHERE won_at IS NOT NULL AND owner = 'rep1' "
        "GROUP BY ALL",
        {},
        user=SYSTEM,
    )
    mine = dict(zip(whose["channel"].to_list(), whose["amount"].to_list(), strict=True))
    at = open_page(company, monkeypatch, "channels", lang, owner="rep1")
    linear = model_label("linear", lang)
    rows = by(shown(at, model_label("u_shaped", lang)), t("col.channel", lang))
    got = {channel: row[linear] for channel, row in rows.items()}
    paid = {"zh": "搜索推广", "en": "Paid search"}[lang]
    assert mine == {"paid_search": 7000} and got == {paid: "¥7,000"}  # the company's: ¥21,000 and trade show ¥1,000
    line = t("attribution.sums_ok", lang, total="¥7,000", parts="")
    assert line.split("¥7,000")[0] + "¥7,000" in texts(at)
