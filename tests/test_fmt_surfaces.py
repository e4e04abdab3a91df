"""Numbers and dates for people on the surfaces that still wrote their own (issue 19, point 4): the quality
view and heatmap, the churn list and card, the generic tables' dates, the big screen's compact figures,
and the churn, attribution and drill-down exports — rounded to what the page shows, numbers kept as numbers,
headed by labels.

The fixture company (tests/fixture_data.py): paid search 30 leads (6 won, ¥21,000, spend ¥3,000).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime

import polars as pl
import pytest

from dashboard.components import fmt
from dashboard.components.attribution import shown_table
from dashboard.components.channels import channel_columns
from dashboard.components.churn_view import export_frame
from dashboard.components.drilldown import AS_METRICS, CAMPAIGN_KINDS, LEAD_KINDS
from dashboard.components.export_buttons import exported
from dashboard.components.quality_heatmap import _numbers, heatmap_figure
from dashboard.components.quality_view import score, trend_figure
from dashboard.components.tables import FORMATTERS, styled
from dashboard.components.tiles import compact_count, compact_money
from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.ops.export import to_csv
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse


def csv_rows(frame: pl.DataFrame) -> list[list[str]]:
    return list(csv.reader(io.StringIO(to_csv(frame).decode("utf-8-sig"))))


def test_a_chart_axis_writes_a_unit_as_the_formatter_does() -> None:
    assert fmt.axis("pct", 1) == {"tickformat": ",.1~%", "hoverformat": ",.1%"}  # 12.5% and 20%, hover 1,250.0%
    assert fmt.axis("money") == {"tickprefix": "¥", "tickformat": ",.0~f", "hoverformat": ",.0f"}
    assert fmt.percent_column(1) == "%,.1f%%"  # a grid's 12.3 (percentage points) → 12.3%
    with pytest.raises(ValueError, match="no unit 'yen'"):
        fmt.axis("yen")


def printf(pattern: str, x: float) -> str:
    """A grid cell as Streamlit's sprintf writes ``x`` in a NumberColumn pattern ("%,.0f%%": a ',' separates
    thousands; d3-format's "," likewise for a Plotly axis)."""
    spec = re.fullmatch(r"(?P<pre>[^%]*)%(?P<sep>,?)\.(?P<places>\d+)f(?P<post>.*)", pattern)
    assert spec, pattern
    number = f"{x:{spec['sep']}.{spec['places']}f}"
    return spec["pre"] + number + spec["post"].replace("%%", "%")


def test_roi_reads_the_same_on_the_cockpit_as_on_the_channels_page() -> None:
    """The walk found ROI 1250% in the cockpit's channel table and 1,250% on Channels (and counts and yuan in
    the browser's own locale): every metric column of the table is written as fmt.number writes it."""
    frame = pl.DataFrame({"channel": ["paid_search"], "leads": [12_288], "won_amount": [21_856_180.0], "roi": [12.5]})
    shown, config = channel_columns(frame, "zh")
    cells = {c: printf(config[c]["type_config"]["format"], shown[c].item()) for c in ("leads", "won_amount", "roi")}
    assert cells == {"leads": "12,288", "won_amount": "¥21,856,180", "roi": "1,250%"}
    assert cells["roi"] == fmt.number(12.5, "pct", 0) == FORMATTERS["roi"](12.5)  # Channels' economics table


def test_dates_and_times_in_the_pages_language() -> None:
    when = datetime(2025, 1, 3, 9, 5, tzinfo=UTC)
    assert fmt.day_time(when, "zh") == "2025年1月3日 09:05" and fmt.day_time(when, "en") == "2025-01-03 09:05"
    assert fmt.day_time(None, "zh") == "—"
    frame = pl.DataFrame({"day": [date(2025, 1, 3), None], "at": [when, when], "n": [1, 2]})
    zh = styled(frame, {"n": "count"}, "zh").to_html()  # no kind given: a date column is still a date
    assert "2025年1月3日" in zh and "2025年1月3日 09:05" in zh and "2025-01-03" not in zh and "—" in zh
    en = styled(frame, {"n": "count"}, "en").to_html()
    assert "2025-01-03 09:05" in en and "年" not in en


def test_the_big_screens_compact_figures_are_the_formatters() -> None:
    assert compact_money(131_000_000, "zh") == fmt.number(131_000_000, "money", lang="zh", compact=True) == "¥1.31亿"
    assert compact_money(2_050_000, "en") == "¥2.05M" and compact_money(None, "zh") == "—"
    assert compact_count(60_000, "zh") == "60,000" and compact_count(1_200_000, "zh") == "120万"


def _quality_row(**rates: float | None) -> dict[str, object]:
    row: dict[str, object] = {"source_system": "crm", "entity": "customers", "column_name": "phone", "provided": True}
    row |= {"rows": 200, "filled": 193, "invalid": 7, "distinct_values": 150, "distinct_exact": True}
    row |= {"fill_flag": False, "valid_flag": True, "unique_flag": False, "flagged": True}
    return row | {"fill_rate": 0.9651, "valid_rate": 0.96373, "uniqueness": 0.7772} | rates


def test_the_quality_rates_are_written_at_one_precision_everywhere() -> None:
    row = _quality_row()
    lines = _numbers(row, "en")
    assert lines[:3] == ["Fill rate 96.5% (193 / 200)", "Validity 96.4% (7 ✗)", "Uniqueness 77.7% (150)"]
    heat = heatmap_figure(pl.DataFrame([row]), "validity", "zh")
    assert heat.data[0].colorbar.tickformat == ",.1~%"  # not ".0%" beside 96.4% in the hover
    trend = trend_figure(pl.DataFrame([row | {"snapshot_at": datetime(2026, 3, 1)}]), "fill", "zh")
    assert (trend.layout.yaxis.tickformat, trend.layout.yaxis.hoverformat) == (",.1~%", ",.1%")
    assert score(87.6) == "88" and score(None) == "—"


def test_the_churn_export_is_rounded_to_the_list_and_names_order_revenue() -> None:
    warnings = pl.DataFrame(
        {"customer_key": ["K1"], "risk": [0.123456], "expected_value_at_risk": [1234.5678], "order_revenue": [9876.54]}
    )
    rows = csv_rows(exported(export_frame(warnings), "zh"))
    assert rows[0] == ["客户", "流失风险", "预计流失收入", "订单收入"]  # the list's revenue is order revenue
    assert rows[1] == ["K1", "0.123", "1235", "9877"]  # 12.3% in the list; whole yuan


def test_the_attribution_export_is_rounded_and_headed_by_the_models(company: Settings) -> None:
    att = Warehouse(company).run_query("attribution", {}, user=SYSTEM)
    frame, kinds = shown_table(att, "en")
    rows = csv_rows(exported(frame, "en", kinds))
    assert rows[0] == ["Channel", "First touch", "Last touch", "Linear", "U-shaped", "Time decay"]
    credits = [r[1:] for r in rows[1:]]
    assert credits and all(c.isdigit() for r in credits for c in r), credits  # whole yuan, as the table shows
    linear = sum(int(r[2]) for r in credits)  # each rounded: within a yuan a channel of the unrounded sum
    assert abs(linear - att["linear"].sum()) <= len(credits) and att["linear"].sum() == pytest.approx(22_000)


def test_the_drill_down_exports_are_rounded_and_name_the_metrics(company: Settings) -> None:
    wh = Warehouse(company)
    campaigns = wh.run_query("campaign_summary", {"channel": "paid_search"}, user=SYSTEM).rename(AS_METRICS)
    rows = csv_rows(exported(campaigns, "zh", CAMPAIGN_KINDS))
    assert rows[0][2:6] == ["线索数", "赢单数", "赢单金额", t("col.cost", "zh")]  # as on the cockpit
    assert sum(int(r[4]) for r in rows[1:]) == 21_000
    roi = [r[6] for r in rows[1:] if r[6]]
    assert roi and all(len(x.partition(".")[2]) <= 2 for x in roi), roi  # 600% shown: 6.0, not 6.000000001
    leads = wh.run_query("channel_leads", {"channel": "paid_search"}, user=SYSTEM)
    rows = csv_rows(exported(leads, "en", LEAD_KINDS))
    amounts = [r[rows[0].index("Won-deal amount")] for r in rows[1:]]
    assert all(a == "" or a.isdigit() for a in amounts) and sum(int(a) for a in amounts if a) == 21_000
