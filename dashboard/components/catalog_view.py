"""The catalog page's sections: systems, tables and fields (filterable), lineage, and the Excel export."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from itertools import pairwise
from typing import Any, get_args

import polars as pl
import streamlit as st

from dashboard.components import fmt, labels
from dashboard.components.data import query, settings, source_statuses
from dashboard.components.export_buttons import audited
from dashboard.components.quality_heatmap import PLACES, applies_words
from dashboard.components.tables import headers
from dashboard.core.dictionary import CLASSIFICATIONS
from dashboard.core.entities import NEVER, ColumnType
from dashboard.i18n import heading, t
from dashboard.ops.catalog import Inventory, build_inventory, excel_bytes
from dashboard.query.names import field_name, query_name, view_name

ALL = "(all)"
ENTITIES_WIDTH = 400  # px: the systems grid's widest entities column ("large"); a longer list wraps
WRAPPED_ROW_HEIGHT = 72  # three lines (the churn list's rows wrap at the same height)
GRID_HEAD = 40  # px: the grid's header row and border
WIDE = 0x2E80  # from here on a character is set full width (CJK marks, kana, ideographs)


def inventory() -> Inventory:
    return build_inventory(settings(), query("field_profile"), source_statuses())


CODED = {
    "source_system": "source",
    "entity": "entity",
    "classification": "classification",
    "state": "status",
    "owner": "source_owner",  # a source's team ([labels.source_owner]): the demo's are configured in Chinese
}


def _entities(lang: str) -> pl.Expr:
    """ "leads, customers" → "线索、客户"."""
    table = labels.labels().table("entity", lang)
    return (
        pl.col("entities")
        .str.split(", ")
        .list.eval(pl.element().replace_strict(table, default=pl.element()))
        .list.join("、" if lang == "zh" else ", ")
    )


def _describe(frame: pl.DataFrame, lang: str) -> pl.DataFrame:
    """Keep the description in the page's language; coded values by their names."""
    other = "description_en" if lang == "zh" else "description_zh"
    if other in frame.columns:
        frame = frame.drop(other).rename({f"description_{lang}": "description"})
    shown = labels.frame(frame, lang, CODED)
    if "type" in shown.columns:  # a field's type in a person's word (文本, 日期时间), not the code's (str, datetime)
        words = {v: t(f"cat.type.{v}", lang) for v in get_args(ColumnType)}
        shown = shown.with_columns(pl.col("type").replace_strict(words, default=pl.col("type"), return_dtype=pl.String))
    return shown.with_columns(labels.expr("source_kind", "kind", lang)) if "kind" in shown.columns else shown


def _columns(lang: str, columns: list[str]) -> dict[str, Any]:
    c = st.column_config
    return headers(columns, lang) | {
        "fill_rate": c.ProgressColumn(  # in percentage points : 96.5%, as the quality page writes it
            t("cat.col.fill_rate", lang), format=fmt.percent_column(PLACES["fill"]), min_value=0, max_value=100
        ),
        "applies_when": c.TextColumn(t("cat.col.applies_when", lang), help=t("cat.col.applies_when.help", lang)),
        "distinct_values": c.NumberColumn(t("cat.col.distinct", lang), format=fmt.column_format("count")),
        "rows": c.NumberColumn(t("cat.col.rows", lang), format=fmt.column_format("count")),
        "personal": c.CheckboxColumn(t("cat.col.personal", lang)),
        "required": c.CheckboxColumn(t("cat.col.required", lang)),
        "description": c.TextColumn(t("cat.col.description", lang), width="large"),
        # wide enough for its longest word (Date and time): the grid sized it to Text and cut the rest
        "type": c.TextColumn(t("col.type", lang), width="medium"),
    }


def systems_section(inv: Inventory, lang: str) -> None:
    tz = settings().timezone
    # one row per source: the times are formatted as a plain list, outside Polars
    local = [None if v is None else fmt.local_time(v, tz, lang) for v in inv.systems["last_refresh"].to_list()]
    cron = [fmt.cron(v, lang) for v in inv.systems["schedule"].to_list()]
    shown = inv.systems.with_columns(
        pl.Series("last_refresh", local, dtype=pl.String), pl.Series("schedule", cron, dtype=pl.String), _entities(lang)
    )
    config = _columns(lang, shown.columns)
    pairs = zip(inv.systems["source_system"], inv.systems["schedule"], strict=True)
    raw = "; ".join(f"{n}: {s}" for n, s in pairs if s)  # the cron strings themselves, in the column's help
    config["schedule"] = st.column_config.TextColumn(t("cat.col.schedule", lang), help=raw or None)
    systems = _describe(_named_once(shown, lang), lang)
    # a source's entities read whole (线索、客户、互动、线索阶段事件 was cut after 互动 at 1600 px: the grid sizes a
    # column by the letters it measured before, Latin ones): beside its name, where a phone's width shows them
    # without scrolling sideways, in a column as wide as the longest list, up to 400 px; a longer list wraps in
    # rows of three lines (the grid wraps only rows taller than 64 px), the grid as tall as its rows
    width = text_width([heading("entities", lang), *systems["entities"].drop_nulls()])
    config["entities"] = st.column_config.TextColumn(heading("entities", lang), width=min(width, ENTITIES_WIDTH))
    wrapped = width > ENTITIES_WIDTH
    order = [c for c in ("source_system", "title", "entities") if c in systems.columns]
    st.dataframe(
        systems,
        hide_index=True,
        placeholder="—",
        width="stretch",
        column_config=config,
        column_order=[*order, *(c for c in systems.columns if c not in order)],
        row_height=WRAPPED_ROW_HEIGHT if wrapped else None,
        height=GRID_HEAD + WRAPPED_ROW_HEIGHT * systems.height if wrapped else "auto",
    )


def text_width(texts: list[str]) -> int:
    """A grid column's width in px for the widest of ``texts`` on one line (14 px type: a Chinese character
    or mark (、) 14 px, a Latin letter or a digit at most 7.5 on average; the cell's padding 24)."""
    return max((round(sum(14 if ord(ch) >= WIDE else 7.5 for ch in s)) + 24 for s in texts), default=0)


def _named_once(systems: pl.DataFrame, lang: str) -> pl.DataFrame:
    """The configured title only beside a source nobody named in ``lang`` (it is shown by its code there); none
    where the name says it: in Chinese a source is called by its title (来源系统 and 名称 read the same), and in
    English the Chinese title stood beside the English name."""
    names = labels.labels().table("source", lang, systems["source_system"].to_list())
    unnamed = pl.col("source_system").replace_strict(names, return_dtype=pl.String) == pl.col("source_system")
    titles = systems.with_columns(
        pl.when(unnamed & (pl.col("title") != pl.col("source_system"))).then(pl.col("title")).alias("title")
    )
    return titles if titles["title"].is_not_null().any() else titles.drop("title")


def fields_section(inv: Inventory, lang: str) -> None:
    tables = _describe(inv.tables, lang)
    st.dataframe(
        tables, hide_index=True, placeholder="—", width="stretch", column_config=_columns(lang, tables.columns)
    )
    a, b, c, d = st.columns(4)
    source = a.selectbox(
        t("cat.filter.source", lang),
        [ALL, *inv.systems["source_system"]],
        key="cat_source",
        format_func=_all(lang, "source"),
    )
    entity = b.selectbox(
        t("cat.filter.entity", lang),
        [ALL, *inv.tables["entity"].unique(maintain_order=True)],
        key="cat_entity",
        format_func=_all(lang, "entity"),
    )
    cls = c.selectbox(
        t("cat.filter.classification", lang),
        [ALL, *CLASSIFICATIONS],
        key="cat_class",
        format_func=_all(lang, "classification"),
    )
    personal = d.toggle(t("cat.filter.personal", lang), key="cat_personal")
    fields = inv.fields
    for col, value in (("source_system", source), ("entity", entity), ("classification", cls)):
        if value != ALL:
            fields = fields.filter(pl.col(col) == value)
    if personal:
        fields = fields.filter(pl.col("personal"))
    st.caption(t("cat.fields.count", lang, shown=fields.height, total=inv.fields.height))
    shown = _describe(_applies(_field_names(fields, lang), lang), lang).with_columns(pl.col("fill_rate") * 100)
    st.dataframe(shown, hide_index=True, placeholder="—", width="stretch", column_config=_columns(lang, shown.columns))


def _field_names(fields: pl.DataFrame, lang: str) -> pl.DataFrame:
    """Each field's name beside its identifier (lead_id 线索编号): the identifier is what the SQL tab takes."""
    pairs = zip(fields["field"].to_list(), fields["entity"].to_list(), strict=True)
    names = pl.Series("field_name", [field_name(f, lang, e) for f, e in pairs], dtype=pl.String)
    return fields.insert_column(fields.get_column_index("field") + 1, names)


def _applies(fields: pl.DataFrame, lang: str) -> pl.DataFrame:
    """The rows each field's fill rate counts, in words (as the quality page writes them); empty: every row."""
    pairs = zip(fields["entity"].to_list(), fields["applies_when"].to_list(), strict=True)
    words = [_applies_words(entity, cond, lang) for entity, cond in pairs]  # a plain list: no callback
    return fields.with_columns(pl.Series("applies_when", words, dtype=pl.String))


def _applies_words(entity: str, condition: str | None, lang: str) -> str | None:
    """An optional field's rate counts every row here (ops.catalog: how often it is filled, not judged)."""
    if condition == NEVER:
        return t("cat.applies.optional", lang)
    return applies_words(entity, condition, lang) if condition else None


def _all(lang: str, dimension: str) -> Callable[[Any], str]:
    return lambda v: t("dq.all_sources", lang) if v == ALL else labels.value(dimension, v, lang)


def lineage_dot(lineage: pl.DataFrame, name: Callable[[str, str], str] = lambda kind, n: n) -> str:
    """source → view → derived table → query → page, as Graphviz DOT (one node per name and kind; ``name``
    says what a node is called on screen)."""
    edges: set[tuple[str, str]] = set()
    for r in lineage.iter_rows(named=True):
        chain = [f"source:{r['source_system']}", f"view:{r['view']}"]
        if r["derived_table"]:
            chain.append(f"table:{r['derived_table']}")
        chain.append(f"query:{r['query']}")
        edges.update(pairwise(chain))
        edges.update((chain[-1], f"page:{p}") for p in (r["pages"] or "").split(", ") if p)
    shapes = {"source": "cylinder", "view": "box", "table": "box3d", "query": "note", "page": "tab"}
    nodes = sorted({n for e in edges for n in e})
    lines = ["digraph lineage {", f"rankdir=LR; node [fontsize={LINEAGE_FONT}];"]
    shown = {n: name(*n.split(":", 1)).replace('"', "'") for n in nodes}
    # a tooltip of its own on every node and edge: a browser shows the SVG title (the node's id) on hover otherwise;
    # a width of its own too, at least its text's: the browser's Graphviz measures a Chinese character as a Latin
    # letter's width, and 微信公众号 / 企业微信 ran past its shape
    for n in nodes:
        kind = n.split(":", 1)[0]
        width = f"{label_inches(shown[n]):.2f}"
        lines.append(f'"{n}" [label="{shown[n]}", tooltip="{shown[n]}", shape={shapes[kind]}, width={width}];')
    lines += [f'"{a}" -> "{b}" [tooltip="{shown[a]} → {shown[b]}"];' for a, b in sorted(edges)]
    return "\n".join([*lines, "}"])


LINEAGE_FONT = 10  # points
LABEL_MARGIN = 0.45  # inches beside a label's text: Graphviz's own margin and the widest shape's sides (a cylinder)


def label_inches(label: str) -> float:
    """The width in inches a lineage node needs for ``label`` (lines split at ``\\n``): a full-width character
    one em (the font's size), any other at most 0.6 of it, 72 points an inch."""
    ems = max(sum(1.0 if ord(ch) >= WIDE else 0.6 for ch in line) for line in label.split("\\n"))
    return ems * LINEAGE_FONT / 72 + LABEL_MARGIN


def _node_name(kind: str, value: str, lang: str) -> str:
    """A source and a view (an entity) by their names, a page by its title; a derived table and a named query by
    their names above their identifiers (what the SQL tab and `cockpit query NAME` take)."""
    if kind == "source":
        return labels.value("source", value, lang)
    if kind == "view":
        return labels.value("entity", value, lang)
    if kind == "page":
        return t(f"page.{value}", lang)
    if kind == "table":  # its name above the identifier a query types
        return f"{view_name(value, lang)}\\n{value}"
    if kind == "query":
        return f"{query_name(value, lang)}\\n{value}"
    return value


def lineage_section(inv: Inventory, lang: str) -> None:
    st.caption(t("cat.lineage.help", lang))
    if inv.lineage.is_empty():
        st.info(t("cat.lineage.empty", lang))
        return
    st.graphviz_chart(lineage_dot(inv.lineage, partial(_node_name, lang=lang)), width="stretch")
    page_titles = {p: t(f"page.{p}", lang) for p in ("cockpit", "channels", "customer_360", "churn", "data_quality")}
    page_titles |= {p: t(f"page.{p}", lang) for p in ("catalog", "explore", "admin", "import_source")}
    tables = inv.lineage["derived_table"].to_list()
    named = pl.Series("derived_table_name", [v and view_name(v, lang) for v in tables], dtype=pl.String)
    lineage = inv.lineage.insert_column(inv.lineage.get_column_index("derived_table") + 1, named)
    queries = pl.Series("query_name", [query_name(q, lang) for q in lineage["query"].to_list()], dtype=pl.String)
    lineage = lineage.insert_column(lineage.get_column_index("query") + 1, queries)
    shown = labels.frame(lineage, lang, {**CODED, "view": "entity"}).with_columns(
        pl.col("pages").str.split(", ").list.eval(pl.element().replace(page_titles)).list.join(", ")
    )
    st.dataframe(shown, hide_index=True, placeholder="—", width="stretch", column_config=headers(shown.columns, lang))


def export_button(inv: Inventory, lang: str) -> None:
    st.download_button(
        t("cat.export", lang),
        data=audited(lambda: excel_bytes(inv), "data_asset_inventory.xlsx", inv.fields.height),
        file_name="data_asset_inventory.xlsx",
        mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        on_click="ignore",
        icon=":material/download:",
        key="cat_export",
    )
