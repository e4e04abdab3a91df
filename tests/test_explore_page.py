"""The Explore page driven with AppTest on the fixture company: building a view with the controls,
filters, pivot, the URL that rebuilds the view in a new session, saved views, the export's header,
the SQL tab, and an analyst's and a manager's view through sign-in."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from argon2 import PasswordHasher
from streamlit.testing.v1 import AppTest

from dashboard.access import auth
from dashboard.components.drilldown import campaign_names
from dashboard.components.explore_builder import dim_label
from dashboard.components.explore_result import export_table
from dashboard.core import audit
from dashboard.core.config import CONFIG_ENV, Settings
from dashboard.i18n import t
from dashboard.ops.export import to_csv
from dashboard.query.explore import views as explore_views
from dashboard.query.explore.models import Dim, Filter, Spec, decode, encode
from dashboard.query.security import ROLES, SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.fixture_data import open_app_page
from tests.test_security import UNMASKED

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
PASSWORD = "correct horse battery"
pytestmark = pytest.mark.usefixtures("fresh_caches")


def open_explore(settings: Settings, monkeypatch: pytest.MonkeyPatch, view: str | None = None) -> AppTest:
    return open_app_page(settings, monkeypatch, "explore", {"view": view} if view is not None else None)


def totals(at: AppTest) -> dict[str, str]:
    return {m.label.removeprefix("Total · "): m.value for m in at.metric}


def table(at: AppTest) -> pl.DataFrame:
    return pl.from_pandas(at.dataframe[0].value)


def widget(at: AppTest, kind: str, label: str) -> object:
    return next(w for w in at.get(kind) if w.label == label)


def test_the_default_view_and_building_one_with_the_controls(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_explore(company, monkeypatch)
    assert [x.value for x in at.title] == ["Explore"]
    assert totals(at) == {"Leads": "60"}
    assert dict(table(at).rows()) == {"Paid search": 30, "Trade show": 19, "website": 10, "Unknown": 1}
    assert len(at.get("plotly_chart")) == 1
    widget(at, "multiselect", "Measures").set_value(["count", "conversion_rate", "revenue"]).run()
    assert totals(at) == {"Leads": "60", "Conversion": "13.3%", "Won-deal amount": "¥22,000"}
    drawn = json.loads(at.get("plotly_chart")[0].proto.spec)  # three measures chosen, three drawn
    assert [tr["yaxis"] for tr in drawn["data"]] == ["y", "y2", "y3"]
    assert [drawn["layout"][a]["title"]["text"] for a in ("yaxis", "yaxis2", "yaxis3")] == [
        "Leads",
        "Conversion",
        "Won-deal amount",
    ]
    widget(at, "multiselect", "Group by").set_value(["owner"]).run()
    rows = {r["Owner"]: r for r in table(at).iter_rows(named=True)}
    assert rows["rep1"]["Leads"] == 10 and rows["rep1"]["Won-deal amount"] == 7000  # CRM-1 and CRM-4
    assert not at.error, [e.value for e in at.error]


def test_the_table_lists_categories_as_the_chart_draws_them(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk found the chart by value and the table under it in the codes' order (400 热线, 信息流广告, 自然流量,
    搜索推广, ...): both largest first; a view over months stays in time order."""
    bars = Spec("leads", (Dim("owner"),), ("count",), chart="bar")  # 30 leads without an owner: listed last by code
    at = open_explore(company, monkeypatch, view=encode(bars))
    rows = table(at)
    drawn = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert rows["Leads"].to_list() == [30, 10, 10, 10]
    assert rows["Owner"].fill_null("—").to_list() == drawn["layout"]["xaxis"]["categoryarray"]
    at = open_explore(company, monkeypatch, view=encode(Spec("leads", (Dim("created_at", "month"),), ("count",))))
    months = table(at).to_series(0).to_list()
    assert months == sorted(months, key=lambda m: datetime.strptime(m, "%b %Y")), months


def test_a_filter_added_with_the_controls_narrows_the_view(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_explore(company, monkeypatch)
    widget(at, "selectbox", "Column").set_value("owner").run()
    widget(at, "selectbox", "Condition").set_value("not_in").run()
    values = widget(at, "multiselect", "Values (pick or type)")
    assert values.options == ["rep0", "rep1", "rep2"]  # the column's values, for the picking
    values.set_value(["rep0"]).run()
    next(b for b in at.button if b.label == "Add").click().run()
    assert totals(at) == {"Leads": "50"}
    assert "Owner is none of rep0" in [t.value for t in at.text]
    next(b for b in at.button if b.label == "Remove").click().run()
    assert totals(at) == {"Leads": "60"}


def test_pivot_and_chart_choice(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_explore(company, monkeypatch)
    widget(at, "multiselect", "Group by").set_value(["channel", "stage"]).run()
    widget(at, "selectbox", "Pivot into columns").set_value("stage").run()
    wide = table(at)
    total = wide.filter(pl.col("Channel") == "Total").row(0, named=True)
    assert (total["Won"], total["Total"]) == (8, 60)  # the pivoted stages by their names
    assert wide.filter(pl.col("Channel") == "Paid search")["Total"].item() == 30
    token = at.query_params["view"]
    assert decode(token[0] if isinstance(token, list) else token).pivot == "stage"  # the URL follows
    at.get("button_group")[0].set_value("heatmap").run()
    assert not at.exception and len(at.get("plotly_chart")) == 1


def test_the_url_alone_rebuilds_the_view(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_explore(company, monkeypatch)
    widget(at, "multiselect", "Group by").set_value(["created_at_week", "channel"]).run()
    widget(at, "multiselect", "Measures").set_value(["count", "won"]).run()
    token = at.query_params["view"]
    token = token[0] if isinstance(token, list) else token
    first = (totals(at), table(at))
    again = open_explore(company, monkeypatch, view=token)
    assert totals(again) == first[0] and table(again).equals(first[1])
    broken = open_explore(company, monkeypatch, view="not-a-view")
    assert [e.value for e in broken.error] == ["the view in the link cannot be read (it was cut off or changed)"]
    assert totals(broken) == {"Leads": "60"}  # the default view instead


def test_save_and_reopen_a_view(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_explore(company, monkeypatch)
    widget(at, "selectbox", "Data").set_value("orders").run()
    widget(at, "multiselect", "Group by").set_value(["ordered_at_month"]).run()
    widget(at, "multiselect", "Measures").set_value(["sum_amount"]).run()
    widget(at, "text_input", "Name").input("orders by month")
    next(b for b in at.button if b.label == "Save view").click().run()
    saved = explore_views.load_views(company, "anonymous")
    assert list(saved) == ["orders by month"]
    fresh = open_explore(company, monkeypatch)
    assert totals(fresh) == {"Leads": "60"}
    widget(fresh, "selectbox", "My saved views").set_value("orders by month")
    next(b for b in fresh.button if b.label == "Open").click().run()
    assert totals(fresh) == {"Amount": "¥28,800"}


def test_the_export_carries_the_view_on_top() -> None:
    spec = Spec("leads", (Dim("channel"),), ("count",), (Filter("owner", "in", ("=cmd|' /C calc'!A0",)),))
    header, out = export_table(pl.DataFrame({"channel": ["paid_search"], "count": [10]}), spec, "en", "Asia/Shanghai")
    text = to_csv(out, header).decode("utf-8-sig")
    assert "\r\nFilter,Owner is one of =cmd|' /C calc'!A0\r\n" in text
    assert "Measures,Leads" in text and "Group by,Channel" in text and "Channel,Leads" in text
    assert "\r\npaid_search,10\r\n" in text


def test_the_sql_tab_on_the_page(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_explore(company, monkeypatch)
    at.text_area[0].input("SELECT channel, count(*) AS n FROM lead_facts GROUP BY channel ORDER BY n DESC")
    next(b for b in at.button if b.label == "Run").click().run()
    assert pl.from_pandas(at.dataframe[-1].value).row(0) == ("paid_search", 30)
    at.text_area[0].input("SELECT * FROM read_csv('/etc/passwd')")
    next(b for b in at.button if b.label == "Run").click().run()
    assert [e.value for e in at.error] == [
        "'read_csv' is not allowed: the SQL tab reads only the tables listed, no files or table functions"
    ]
    events = audit.read(company, action="query").filter(pl.col("target") == "explore_sql")
    assert events.height == 2


# -- signed in as a role -------------------------------------------------------------------------
@pytest.fixture
def accounts(company: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(auth, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    for role in ROLES:
        auth.add_user(company, role, role, PASSWORD, "rep1" if role == "sales" else None)
    return company


def signed_in(settings: Settings, monkeypatch: pytest.MonkeyPatch, user: str, view: str | None = None) -> AppTest:
    monkeypatch.delenv("COCKPIT_NO_AUTH", raising=False)
    monkeypatch.setenv(CONFIG_ENV, str(settings.base_dir / "cockpit.toml"))
    at = AppTest.from_file(APP, default_timeout=60)
    if view is not None:
        at.query_params["view"] = view
    at.run()
    at.text_input[0].input(user)
    at.text_input[1].input(PASSWORD)
    at.button[0].click().run()
    if at.sidebar.radio[0].value != "en":
        at.sidebar.radio[0].set_value("en").run()
    at.switch_page("pages/explore.py").run()
    assert not at.exception, at.exception
    return at


def test_a_shared_link_shows_each_user_their_own_permissions(
    accounts: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = encode(Spec("leads", (Dim("owner"),), ("count",)))
    manager = signed_in(accounts, monkeypatch, "manager", view)
    assert totals(manager) == {"Leads": "60"}
    at = signed_in(accounts, monkeypatch, "analyst")
    at.text_area[0].input("SELECT phone FROM leads")
    next(b for b in at.button if b.label == "Run").click().run()
    phones = pl.from_pandas(at.dataframe[-1].value)["phone"].to_list()
    assert len(phones) == 60 and not any(UNMASKED["phone"].search(p) for p in phones)
    sales = signed_in(accounts, monkeypatch, "sales", view)
    assert not sales.metric and sales.error  # Explore is not a sales page: refused, nothing shown


@pytest.mark.parametrize(
    ("model", "column", "codes", "named"),
    [
        ("orders", "status", {"A", "B", "C"}, {"已完成", "部分处理", "未处理", "销售", "退货", "已取消"}),
        ("interactions", "kind", {"click", "service request", "wecom_chat"}, {"点击", "上门拜访", "电话沟通"}),
        ("customers", "rfm_segment", {"champion", "at_risk"}, {"重要价值", "流失风险"}),
        ("customers", "value_tier", {"high", "low"}, {"高价值", "低价值"}),
    ],
)
def test_coded_dimensions_are_shown_by_their_names(
    small_demo: Settings, monkeypatch: pytest.MonkeyPatch, model: str, column: str, codes: set[str], named: set[str]
) -> None:
    """The demo's order statuses (SAP's A/B/C, the POS's 销售/退货), interaction kinds and golden customers' RFM
    segments and value tiers, grouped in Explore in Chinese: by the names the Customer 360 page gives them."""
    at = open_explore(small_demo, monkeypatch, view=encode(Spec(model, (Dim(column),), ("count",))))
    at.sidebar.radio[0].set_value("zh").run()
    assert not at.exception, at.exception
    shown = set(table(at)[dim_label(column, "zh")].to_list())
    assert not codes & shown, shown
    assert named & shown, shown


def test_industries_are_named_in_the_page_language(small_demo: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo writes industries in Chinese (制造业) and names them in English in cockpit.toml ([labels.industry]): the
    English table, the filter and the export's header name them in English; the Chinese page as written."""
    spec = Spec("leads", (Dim("industry"),), ("count",), (Filter("industry", "in", ("制造业",)),))
    at = open_explore(small_demo, monkeypatch, view=encode(Spec("leads", (Dim("industry"),), ("count",))))
    at.sidebar.radio[0].set_value("en").run()
    assert not at.exception, at.exception
    shown = set(table(at)[dim_label("industry", "en")].to_list())
    assert "Manufacturing" in shown and not [s for s in shown if any("\u4e00" <= ch <= "\u9fff" for ch in s)], shown
    header, _ = export_table(pl.DataFrame({"industry": ["制造业"], "count": [1]}), spec, "en", "UTC")
    assert (t("explore.filter", "en"), f"Industry {t('explore.op.in', 'en')} Manufacturing") in header, header
    at.sidebar.radio[0].set_value("zh").run()
    assert "制造业" in set(table(at)[dim_label("industry", "zh")].to_list())


def test_a_pie_writes_each_share_at_one_decimal() -> None:
    from dashboard.components.explore_result import figure
    from dashboard.query.explore.models import Result

    rows = pl.DataFrame({"status": ["销售", "C", "退货"], "count": [4630, 2669, 62]})
    spec = Spec("orders", (Dim("status"),), ("count",), chart="pie")
    pie = figure(Result(spec, rows, {"count": 7361}, False, {}), "pie", "zh").data[0]
    assert pie.texttemplate == "%{percent:.1%}" and "%{percent:.1%}" in pie.hovertemplate


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_leads_without_a_campaign_are_grouped_under_the_name_the_channels_page_gives_them(
    small_demo: Settings, monkeypatch: pytest.MonkeyPatch, lang: str
) -> None:
    """The demo's call-centre leads carry no campaign (nor do some CRM ones): grouped by campaign in Explore they are
    one group, named as the Channels page's drill-down names it, never a blank cell."""
    at = open_explore(small_demo, monkeypatch, view=encode(Spec("leads", (Dim("campaign"),), ("count",))))
    at.sidebar.radio[0].set_value(lang).run()
    assert not at.exception, at.exception
    shown = dict(table(at).rows())
    assert not {"", None, "—"} & set(shown), shown
    leads = Warehouse(small_demo).run_query("channel_leads", {"limit": 10**6}, user=SYSTEM)
    without = leads.filter(pl.col("campaign") == "")
    [name] = set(campaign_names(without, lang)["campaign"])  # as the drill-down's tables and chart show them
    assert without.height > 0 and shown[name] == without.height


def test_a_view_that_matches_nothing_says_so_instead_of_an_empty_table(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter that matched no row showed a total of 0 over an empty grid (Streamlit's English "empty" on the
    Chinese page), "Click a heading to sort" and CSV/Excel files of nothing (the walk, session 19)."""
    view = encode(Spec("leads", (Dim("channel"),), ("count",), (Filter("region", "in", ("火星",)),)))
    at = open_app_page(company, monkeypatch, "explore", {"view": view})
    assert len(at.dataframe) == 0 and len(at.get("download_button")) == 0 and not at.get("plotly_chart")
    assert [i.value for i in at.info] == [t("explore.no_rows", "en")]
