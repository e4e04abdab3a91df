"""Explore's numbers as people read them (issue 19, point 4): every chosen measure drawn, in its own
panel with its own unit; periods by their names in the page's language; "—" for a missing value; the
export's cells numbers rounded to each measure's precision under headings in the language.

The fixture company (tests/fixture_data.py): 60 leads, paid search 30 (6 won, ¥21,000), trade show 19
(2 won, ¥1,000), website 10 (none won), one without a channel.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import polars as pl
import pytest

from dashboard.components import fmt
from dashboard.components.explore_builder import label, measure_label
from dashboard.components.explore_result import _styled, export_table, figure, value_text
from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.i18n.metrics import EXPLORE_MEASURES
from dashboard.ops.export import to_csv
from dashboard.query.explore.models import MODELS, Dim, Spec
from dashboard.query.metrics import Request, ask, layer, value
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.test_explore import answer

THREE = ("count", "conversion_rate", "revenue")


@pytest.fixture
def wh(company: Settings) -> Warehouse:
    return Warehouse(company)


def cells(data: bytes) -> list[list[str]]:
    """The table part of an exported CSV: the rows after the blank line under the header rows."""
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    return rows[rows.index([]) + 1 :]


@pytest.mark.parametrize("chart", ["bar", "line", "stacked"])
def test_three_measures_chosen_three_drawn(wh: Warehouse, chart: str) -> None:
    result = answer(wh, Spec("leads", (Dim("channel"),), THREE))
    fig = figure(result, chart, "zh")
    assert len(fig.data) == 3
    assert [fig.layout[a].title.text for a in ("yaxis", "yaxis2", "yaxis3")] == ["线索数", "转化率", "赢单金额"]
    assert {tr.yaxis for tr in fig.data} == {"y", "y2", "y3"}  # each measure on its own scale
    revenue = next(tr for tr in fig.data if tr.yaxis == "y3")
    assert dict(zip(revenue.x, revenue.y, strict=True))["搜索推广"] == 21000
    assert fig.layout.yaxis3.tickprefix == "¥" and fig.layout.yaxis2.tickformat == ",.1~%"  # as fmt.axis writes it
    assert fig.layout.title.text == "线索数 · 转化率 · 赢单金额"
    text = json.dumps(fig.to_plotly_json(), default=str)
    assert '"variable"' not in text and '"value"' not in text


@pytest.mark.parametrize("chart", ["bar", "stacked", "line"])
def test_bars_are_ordered_by_value_not_by_code(wh: Warehouse, chart: str) -> None:
    """The walk found Explore's channels in their codes' order (event, organic, paid_search, ...), which read as
    no order at all under their names: the largest first, as a person reads a bar chart; dates stay in time order."""
    result = answer(wh, Spec("leads", (Dim("channel"),), ("count",)))
    fig = figure(result, chart, "en")
    counts = dict(zip(fig.data[0].x, fig.data[0].y, strict=True))
    assert list(fig.layout.xaxis.categoryarray) == sorted(counts, key=lambda c: -counts[c])
    assert list(fig.data[0].x) == list(fig.layout.xaxis.categoryarray)[: len(fig.data[0].x)]  # the line too
    assert fig.layout.xaxis.categoryarray[0] == "Paid search"  # 30 of the company's 60 leads
    months = figure(answer(wh, Spec("leads", (Dim("created_at", "month"),), ("count",))), chart, "en")
    assert months.layout.xaxis.categoryarray is None


def test_three_measures_by_two_dimensions(wh: Warehouse) -> None:
    """The second dimension is the colours: each of them in each measure's panel, named once."""
    result = answer(wh, Spec("leads", (Dim("channel"), Dim("owner")), THREE))
    owners = result.rows["owner"].n_unique()
    fig = figure(result, "bar", "en")
    assert len(fig.data) == 3 * owners
    assert sum(bool(tr.showlegend) for tr in fig.data) == owners
    assert fig.layout.legend.title.text == "Owner"
    heat = figure(result, "heatmap", "en")
    assert len(heat.data) == 3 and {tr.coloraxis for tr in heat.data} == {"coloraxis", "coloraxis2", "coloraxis3"}
    assert heat.layout.coloraxis3.colorbar.title.text == "Won-deal amount"


def test_months_by_their_names(wh: Warehouse) -> None:
    spec = Spec("orders", (Dim("ordered_at", "month"),), ("sum_amount",))
    result = answer(wh, spec)
    months = result.rows["ordered_at_month"].to_list()
    shown = _styled(result.rows, spec, "zh").data
    assert shown["下单时间 · 月"].to_list() == [f"{m.year}年{m.month}月" for m in months]
    assert _styled(result.rows, spec, "en").data["Ordered · month"].to_list()[0] == fmt.month(months[0], "en")
    fig = figure(result, "line", "zh")
    assert fig.layout.xaxis.tickformat == "%Y年%-m月"  # the axis draws 2025年1月 (seen in the browser test)
    quarters = answer(wh, Spec("orders", (Dim("ordered_at", "quarter"),), ("count",)))
    first = quarters.rows["ordered_at_quarter"][0]
    assert figure(quarters, "bar", "zh").data[0].x[0] == f"{first.year}年第{(first.month - 1) // 3 + 1}季度"


def test_a_missing_value_is_a_dash(wh: Warehouse) -> None:
    """Website won nothing: its average won amount is missing, shown as "—", exported as an empty cell."""
    spec = Spec("leads", (Dim("channel"),), ("avg_won_amount",))
    result = answer(wh, spec)
    shown = _styled(result.rows, spec, "zh").to_html()
    assert "—" in shown and "None" not in shown and "nan" not in shown
    assert value_text("avg_won_amount", "leads", None) == value_text("roi", "leads", float("nan")) == "—"
    header, out = export_table(result.rows, spec, "zh", "Asia/Shanghai")
    assert ["website", ""] in cells(to_csv(out, header))


def test_the_export_keeps_numbers_rounded_under_labelled_headings(wh: Warehouse) -> None:
    spec = Spec("leads", (Dim("channel"),), ("count", "conversion_rate", "avg_won_amount"))
    result = answer(wh, spec)
    header, out = export_table(result.rows, spec, "zh", "Asia/Shanghai")
    rows = cells(to_csv(out, header))
    assert rows[0] == ["渠道", "线索数", "转化率", "平均赢单金额"]
    trade_show = next(r for r in rows if r[0] == "trade_show")
    assert trade_show == ["trade_show", "19", "0.105", "500"]  # 2 of 19 is 10.5% on the screen
    assert out.schema["线索数"] == pl.Int64 and out.schema["转化率"] == pl.Float64
    header, out = export_table(result.rows, spec, "en", "Asia/Shanghai")
    assert cells(to_csv(out, header))[0] == ["Channel", "Leads", "Conversion", "Average deal size"]


def test_one_formatter_per_unit() -> None:
    assert fmt.number(429313, "money") == "¥429,313"
    assert fmt.number(-1200.4, "money") == "-¥1,200"
    assert fmt.number(0.05813953488372093, "pct", 1) == "5.8%"
    assert fmt.number(0.9912, "pct", 1) == "99.1%"  # one precision per metric: not 99% beside 18.24%
    assert fmt.number(-0.612, "pct", 0) == "-61%"
    assert fmt.number(60000, "count") == "60,000"
    assert fmt.number(1234.5678, "number", 2) == "1,234.57"
    assert fmt.number(131_000_000, "money", lang="zh", compact=True) == "¥1.31亿"
    assert fmt.number(2_050_000, "money", lang="zh", compact=True) == "¥205万"
    assert fmt.number(2_050_000, "money", lang="en", compact=True) == "¥2.05M"
    assert fmt.number(9_999, "money", lang="zh", compact=True) == "¥9,999"
    assert fmt.number(1_200_000, "count", lang="zh", compact=True) == "120万"
    assert fmt.number(float("nan"), "money") == fmt.number(None, "pct") == fmt.pct(float("nan")) == "—"
    assert fmt.rounded(0.05813953488372093, "pct", 1) == 0.058
    assert fmt.rounded(7333.333, "money", 0) == 7333 and isinstance(fmt.rounded(7333.3, "money", 0), int)
    assert fmt.rounded(float("nan"), "money") is None
    assert fmt.period(date(2025, 4, 1), "quarter", "zh") == "2025年第2季度"
    assert fmt.period(date(2025, 4, 1), "quarter", "en") == "Q2 2025"
    assert fmt.period(date(2025, 1, 1), "year", "zh") == "2025年"
    with pytest.raises(ValueError, match="no unit 'yen'"):
        fmt.number(1, "yen")


# Explore's measures that are the semantic layer's metrics (dashboard/metrics.toml)
AS_METRICS = {
    ("leads", "count"): "leads",
    ("leads", "won"): "won_deals",
    ("leads", "revenue"): "won_amount",
    ("leads", "conversion_rate"): "conversion_rate",
    ("leads", "avg_won_amount"): "avg_deal_size",
    ("leads", "roi"): "roi",
    ("orders", "sum_amount"): "order_revenue",
    ("spend", "sum_cost"): "spend",
}


@pytest.mark.parametrize(("where", "metric"), AS_METRICS.items(), ids=[m for m in AS_METRICS.values()])
def test_a_measure_that_is_a_metric_reads_as_the_metric_does(where: tuple[str, str], metric: str) -> None:
    """The same number written the same way on Explore as on the cockpit: the unit and precision agree."""
    measure, defined = MODELS[where[0]].measures[where[1]], layer().metric(metric)
    assert (measure.unit, measure.places) == (defined.unit, defined.precision)


def test_a_measure_that_is_a_metric_gives_its_number_under_its_name(wh: Warehouse) -> None:
    """One term on every page: Explore's measures that are the layer's metrics are headed by the metric's
    label (Explore's won revenue is 赢单金额 / Won-deal amount, as on the cockpit) and give its number."""
    assert [measure_label(m, "en") for m in ("won", "revenue", "avg_won_amount", "roi")] == [
        "Won deals",
        "Won-deal amount",
        "Average deal size",
        "ROI",
    ]
    assert measure_label("revenue", "zh") == "赢单金额" and measure_label("sum_cost", "zh") == "市场费用"
    # the leads counted: 线索数 / Leads, as the cockpit heads the same number (session 24's walk: 行数 / Rows)
    for lang in ("zh", "en"):
        assert measure_label("count", lang, "leads") == t("metric.leads", lang) == label("count", lang, "leads")
    assert answer(wh, Spec("leads", (), ("count",))).totals["count"] == value(
        ask(wh, Request.of(["leads"]), SYSTEM), "leads"
    )
    assert (
        measure_label("count", "zh", "orders") == "订单数"
        and measure_label("count", "en", "interactions") == "Interactions"
    )
    for model in ("leads", "spend"):
        named = {m: n for m, n in EXPLORE_MEASURES.items() if m in MODELS[model].measures}
        totals = answer(wh, Spec(model, (), tuple(named))).totals
        layer_says = ask(wh, Request.of(list(named.values())), SYSTEM)
        for measure, metric in named.items():
            assert measure_label(measure, "zh", model) == t(f"metric.{metric}", "zh"), measure
            assert totals[measure] == pytest.approx(value(layer_says, metric)), measure
