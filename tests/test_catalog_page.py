"""The catalog page (数据资产目录) driven with AppTest, in both languages."""

from __future__ import annotations

import json
import re

import polars as pl
import pytest

from dashboard.core.config import Settings
from dashboard.i18n import LANGS, t
from dashboard.i18n.values import ValueLabels
from dashboard.ops.catalog import excel_bytes, load_inventory
from dashboard.query.names import query_name
from tests.test_quality_pages import open_page

PAGE = "pages/catalog.py"


pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.mark.parametrize("lang", LANGS)
def test_the_catalog_renders_in_both_languages(company: Settings, monkeypatch: pytest.MonkeyPatch, lang: str) -> None:
    at = open_page(company, monkeypatch, lang, PAGE)
    assert [x.value for x in at.title] == [t("page.catalog", lang)]
    assert [tab.label for tab in at.tabs] == [t(f"cat.tab.{k}", lang) for k in ("systems", "fields", "lineage")]
    assert not at.error
    frames = [df.value for df in at.dataframe]
    systems = frames[0]
    names = ValueLabels(company.label_texts())
    sources = [names.label("source", s, lang) for s in company.source_names]  # by name, title in Chinese
    assert systems["source_system"].tolist() == sources
    assert systems.set_index("source_system").loc[names.label("source", "trade_show", lang), "owner"] == "市场部"
    fields = next(f for f in frames if "field" in f.columns)
    assert "description" in fields.columns  # in the page's language only
    where = (names.label("source", "trade_show", lang), names.label("entity", "leads", lang), "phone")
    described = fields.set_index(["source_system", "entity", "field"]).loc[where]
    assert described["description"] == ("手机号" if lang == "zh" else "Mobile number")
    assert described["examples"].startswith("138****")
    assert len(at.get("graphviz_chart")) == 1
    assert [b.label for b in at.get("download_button")] == [t("cat.export", lang)]


def test_a_source_is_named_once_and_an_optional_field_has_its_fill_bar(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk found 来源系统 and 名称 reading the same (a source is shown by its title) and no fill bar on an
    optional field (its rate is judged on no row): the title goes where it repeats the name, and an optional
    field's bar is its share of every row, said so in the column beside it."""
    at = open_page(company, monkeypatch, "zh", PAGE)
    systems, fields = at.dataframe[0].value, next(f.value for f in at.dataframe if "field" in f.value.columns)
    assert "title" not in systems.columns and systems["source_system"].tolist()[0] == "展会登记"
    optional = fields[fields["applies_when"] == t("cat.applies.optional", "zh")]
    assert len(optional) > 0 and optional["fill_rate"].notna().all(), optional
    phone = fields.set_index(["source_system", "entity", "field"]).loc[("展会登记", "线索", "phone"), "fill_rate"]
    assert phone == 100.0  # drawn in percentage points: 100.0%, as the quality page writes it


@pytest.mark.parametrize("lang", LANGS)
def test_each_source_is_named_once_and_each_type_in_words(
    company: Settings, monkeypatch: pytest.MonkeyPatch, lang: str
) -> None:
    """The walk found the English systems table with the Chinese title (展会登记) beside the English name (Trade shows),
    and the fields' type as the code's (str, datetime) in both languages."""
    at = open_page(company, monkeypatch, lang, PAGE)
    systems, fields = at.dataframe[0].value, next(f.value for f in at.dataframe if "field" in f.value.columns)
    names = ValueLabels(company.label_texts())
    assert "title" not in systems.columns, systems
    assert systems["source_system"].tolist() == [names.label("source", s, lang) for s in company.source_names]
    words = {"zh": {"文本", "日期时间", "数值", "是/否"}, "en": {"Text", "Date and time", "Number", "Yes/no"}}[lang]
    assert set(fields["type"]) == words, set(fields["type"])
    phone = fields.set_index(["source_system", "entity", "field"]).loc[
        (names.label("source", "trade_show", lang), names.label("entity", "leads", lang), "phone"), "type"
    ]
    assert phone == t("cat.type.str", lang)
    grid = next(d for d in at.dataframe if "field" in d.value.columns)
    assert json.loads(grid.proto.columns)["type"]["width"] == "medium"  # Date and time was cut to "Date ar"


@pytest.mark.parametrize("lang", LANGS)
def test_each_sources_entities_read_whole_beside_its_name(
    company: Settings, monkeypatch: pytest.MonkeyPatch, lang: str
) -> None:
    """Session 23's walk found the Systems tab at 1600 px cutting the demo CRM's entities after 线索、客户、互动、:
    each list stands beside the source's name (on a phone's width without scrolling sideways), its column as wide
    as the longest list in the page's language."""
    from dashboard.components.catalog_view import ENTITIES_WIDTH, text_width

    grid = open_page(company, monkeypatch, lang, PAGE).dataframe[0]
    systems = grid.value.set_index("source_system")
    names = ValueLabels(company.label_texts())
    crm = systems.loc[names.label("source", "crm", lang), "entities"]
    assert crm == ("、" if lang == "zh" else ", ").join(
        names.label("entity", e, lang) for e in ("leads", "lead_events")
    )
    assert list(grid.proto.column_order)[:2] == ["source_system", "entities"]
    widest = max(text_width([e]) for e in systems["entities"].dropna())
    assert text_width([crm]) <= widest <= json.loads(grid.proto.columns)["entities"]["width"] <= ENTITIES_WIDTH


def test_the_demos_systems_in_english_name_their_sources_and_teams_in_english(
    small_demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk found the English systems table naming the sources' owners 市场部, 财务部 ([labels.source_owner])."""
    systems = open_page(small_demo, monkeypatch, "en", PAGE).dataframe[0].value
    cjk = [v for c in ("source_system", "owner") for v in systems[c] if any("\u4e00" <= ch <= "\u9fff" for ch in v)]
    assert "title" not in systems.columns and cjk == [], systems
    assert "Marketing" in set(systems["owner"])


def test_the_field_filters(company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(company, monkeypatch, "en", PAGE)
    at.selectbox(key="cat_source").set_value("erp").run()
    at.toggle(key="cat_personal").set_value(True).run()
    fields = next(f for f in (d.value for d in at.dataframe) if "field" in f.columns)
    assert sorted(fields["field"]) == ["email", "id_number", "name", "phone"]  # ERP customers' personal fields
    assert t("cat.fields.count", "en", shown=4, total=64) in [c.value for c in at.caption]


def test_the_export_button_builds_the_workbook_the_cli_writes(company: Settings) -> None:
    data = excel_bytes(load_inventory(company))
    assert data[:2] == b"PK" and len(data) > 5000  # an .xlsx is a zip


def test_the_catalog_before_any_refresh(fresh_company: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(fresh_company, monkeypatch, "zh", PAGE)
    assert "尚未加载任何数据。用 `cockpit refresh` 加载数据源" in " ".join(i.value for i in at.info)  # 。 then no space
    assert at.dataframe[0].value["state"].tolist() == ["从未发布"] * 5


def test_the_consent_total_says_why_it_exceeds_the_sources(
    small_demo: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's web forms, trade show and bought lists bring people with leads and no customer record: the
    total (by person) is more than the sources' customer records added up, and the caption says why."""
    at = open_page(small_demo, monkeypatch, "zh", PAGE)
    counts = next(f for f in (d.value for d in at.dataframe) if "consent_no" in f.columns).set_index("source_system")
    total = counts.loc[t("consent.all", "zh"), "customers"]
    assert total > counts.drop(t("consent.all", "zh"))["customers"].sum()
    assert any("只在线索中出现" in c.value for c in at.caption)


@pytest.mark.parametrize("lang", LANGS)
def test_the_lineage_names_each_query_beside_its_identifier(
    company: Settings, monkeypatch: pytest.MonkeyPatch, lang: str
) -> None:
    """Session 23's walk read the lineage's queries as bare identifiers in Chinese (customer_profile, quality_trend):
    the grid has a query name column after the query, and each query's node reads its name above its identifier."""
    at = open_page(company, monkeypatch, lang, PAGE)
    grid = next(d.value for d in at.dataframe if "query" in d.value.columns)
    assert list(grid.columns).index("query_name") == list(grid.columns).index("query") + 1
    named = dict(zip(grid["query"], grid["query_name"], strict=True))
    assert {"customer_profile", "quality_trend", "consent_counts", "funnel"} <= named.keys()
    assert named == {q: query_name(q, lang) for q in named}
    assert named["funnel"] == t("funnel.title", lang) and named["quality_trend"] != "quality_trend"
    dot = at.get("graphviz_chart")[0].proto.spec
    assert f'"query:quality_trend" [label="{query_name("quality_trend", lang)}\\nquality_trend"' in dot


def test_hovering_the_lineage_shows_names_not_node_ids(company: Settings) -> None:
    """Graphviz writes each node's id (source:crm, query:funnel) as its SVG title, which a browser shows on hover;
    every node and edge carries a tooltip of its own, in the page's words."""
    from functools import partial

    from dashboard.components.catalog_view import _node_name, lineage_dot

    dot = lineage_dot(load_inventory(company).lineage, partial(_node_name, lang="zh"))
    drawn = [line for line in dot.splitlines() if line.startswith('"')]
    assert drawn and all("tooltip=" in line for line in drawn)
    tips = [line.split('tooltip="', 1)[1].split('"', 1)[0] for line in drawn]
    assert "CRM 销售手工录入 → 线索" in tips and not [tip for tip in tips if ":" in tip]


def test_each_lineage_node_is_as_wide_as_its_chinese_text() -> None:
    """Session 24's walk: 微信公众号 / 企业微信 ran past its cylinder (the browser's Graphviz measures a Chinese
    character as a Latin letter). Each node asks for its text's width: ten characters of 10 pt are 1.39 in."""
    from functools import partial

    from dashboard.components.catalog_view import _node_name, lineage_dot

    path = {"source_system": "wechat", "view": "interactions", "derived_table": "identity_links"}
    lineage = pl.DataFrame([{**path, "query": "customer_timeline", "pages": "customer_360"}])
    dot = lineage_dot(lineage, partial(_node_name, lang="zh"))
    widths = dict(re.findall(r'label="([^"]*)".*? width=([\d.]+)\]', dot))
    assert float(widths["微信公众号 / 企业微信"]) >= 10 * 10 / 72 + 0.4
    assert float(widths["客户时间线\\ncustomer_timeline"]) >= 5 * 10 / 72 + 0.4
    assert len(widths) == dot.count(" [label=") == 5  # every node: source, view, table, query, page
