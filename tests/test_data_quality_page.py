"""The data-quality page's words as a person reads them in Chinese (walked in Chromium, session 17): no field
codes in the trend's legend, no English "row 5" for a record without an id, sources and fields by their names
in the cross-source examples."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from dashboard.components.quality_view import trend_figure
from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.pipeline.refresh import refresh
from tests.test_quality_pages import markdown, open_page

pytestmark = pytest.mark.usefixtures("fresh_caches")


def _trend_rows(at: list[dt.datetime]) -> pl.DataFrame:
    rows = [
        {"snapshot_at": when, "entity": "interactions", "column_name": column, "provided": True, "fill_rate": 0.9}
        for when in at
        for column in ("channel", "customer_ref")
    ]
    return pl.DataFrame(rows).with_columns(pl.col("snapshot_at").dt.replace_time_zone("UTC"))


def test_the_trend_names_fields_and_snapshots_as_the_heatmap_does() -> None:
    refresh = dt.datetime(2026, 12, 6, 1, 52, 1, 730000)
    fig = trend_figure(_trend_rows([refresh, refresh + dt.timedelta(seconds=5)]), "fill", "zh", "Asia/Shanghai")
    assert [trace.name for trace in fig.data] == ["互动 · 渠道", "互动 · 客户引用"]
    # two snapshots five seconds apart (a refresh and the incremental one after it): two points, local time
    assert list(fig.data[0].x) == ["2026年12月6日 09:52:01", "2026年12月6日 09:52:06"]
    one = trend_figure(_trend_rows([refresh]), "fill", "en", "Asia/Shanghai")
    assert list(one.data[0].x) == ["2026-12-06 09:52"] and one.layout.xaxis.type == "category"


@pytest.mark.parametrize(("lang", "said"), [("zh", "缺少该值的记录: 第 "), ("en", "Records without a value: row ")])
def test_records_without_an_id_are_named_by_their_row_in_the_language(
    company: Settings, monkeypatch: pytest.MonkeyPatch, lang: str, said: str
) -> None:
    """Won events without their amount (lead events carry no id): the rate over the won events, flagged, and the
    event by its row, as words a person reads (not in code font: it is no identifier to type anywhere)."""
    stages = company.base_dir / "imports" / "crm" / "stages.csv"
    lines = stages.read_text(encoding="utf-8-sig").splitlines()
    lines = [line.rsplit(",", 1)[0] + "," if line.startswith(("CRM-1,赢单", "CRM-3,赢单")) else line for line in lines]
    stages.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    assert refresh(company, ["crm"]).exit_code == 0
    at = open_page(company, monkeypatch, lang)
    at.selectbox(key="dq_cell_source").set_value("crm").run()
    at.selectbox(key="dq_cell_field").set_value("lead_events.amount").run()
    text = markdown(at)
    rate = {"zh": "阶段为赢单的线索阶段事件中 75.0% 已填写（6 / 8）", "en": "Filled on 75.0% of lead stage events"}
    assert rate[lang] in text and t("dq.flagged", lang) in text
    shown = next(line for line in text.splitlines() if line.startswith(said))
    assert "`" not in shown and shown.removeprefix(said).split()[0].strip(",，").isdigit(), shown
    assert ("row" not in text) if lang == "zh" else ("第" not in text)


def test_cross_source_examples_name_sources_and_fields(small_demo: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(small_demo, monkeypatch, "zh")  # the demo's CRM, ERP, forms and WeChat disagree on names
    examples = next(d.value for d in at.dataframe if "examples" in d.value.columns)
    assert set(examples["field"]) == {"姓名"}
    shown = [e.split(": ")[0] for row in examples["examples"] for e in row]
    assert {"CRM 销售手工录入", "ERP 订单与合同"} <= set(shown) and not {"crm", "erp", "web_forms"} & set(shown)


def _emoji(ch: str) -> bool:
    """A character only an emoji font draws (✅ ⛔ 🗑, the emoji variation selector)."""
    return ord(ch) >= 0x1F000 or ch in "\u2705\u26d4\ufe0f"


def test_the_validation_history_marks_statuses_with_symbols_every_font_draws(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = open_page(company, monkeypatch, "zh")
    history = next(d.value for d in at.dataframe if "expectations" in d.value.columns)
    statuses = set(history["status"])
    assert "✓ 已发布" in statuses, statuses
    assert not [s for s in statuses if any(_emoji(ch) for ch in s)], statuses
