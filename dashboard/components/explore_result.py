"""Explore's answer: the totals, a chart (suggested from the result's shape, changeable), the sortable
table (pivoted when asked), the CSV/Excel export with the view written on top, and the comparison
with an earlier snapshot of a source."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import plotly.express as px
import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import charts, data, fmt
from dashboard.components import labels as values
from dashboard.components.explore_builder import _K, dim_label, filter_label, label, measure_label
from dashboard.components.export_buttons import audited, export_header
from dashboard.components.tables import FORMATTERS, pandas_frame
from dashboard.i18n import t
from dashboard.ops import export
from dashboard.query.explore import models as explore
from dashboard.query.explore.asof import earlier_snapshots
from dashboard.query.explore.models import MODELS, TOTAL, Result, Spec

_FORMAT: dict[str, Callable[[Any], str]] = {
    "count": lambda v: fmt.count(int(v)),
    "money": fmt.money,
    "pct": fmt.pct,
    "roi": FORMATTERS["roi"],
    "number": lambda v: f"{v:,.2f}".rstrip("0").rstrip("."),
}
_ASOF = "_ex_asof"


def run(spec: Spec, as_of: tuple[str, str] | None = None) -> Result:
    query = explore.build_query(spec)
    return explore.shape(spec, query, data.explore(query.sql, query.params, as_of))


def value_text(measure: str, model: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return fmt.NONE
    return _FORMAT[MODELS[model].measures[measure].fmt](value)


def model_missing(spec: Spec, lang: str) -> bool:
    """The model's part of the build is missing (golden customers before their first build): say so."""
    query = explore.rows_query(spec.model)
    if query is None or data.explore(query.sql, query.params)["n"].item() > 0:
        return False
    st.info(t(f"explore.not_built.{spec.model}", lang), icon=":material/hourglass_empty:")
    return True


def result_section(spec: Spec, lang: str) -> Spec:
    """Draw the answer; return the view with the chart the user chose (None: the suggested one)."""
    result = run(spec)
    with st.container(horizontal=True):
        for m in spec.measures:
            st.metric(
                f"{t('explore.total', lang)} · {measure_label(m, lang)}", value_text(m, spec.model, result.totals[m])
            )
    if result.truncated:
        st.warning(t("explore.truncated", lang, n=explore.MAX_GROUPS))
    chart = _chart_choice(spec, result, lang)
    spec = Spec(spec.model, spec.dims, spec.measures, spec.filters, spec.pivot, chart)
    if spec.dims and result.rows.height:
        charts.show(figure(result, chart or explore.suggest_chart(spec, result.rows), lang), key="_ex_figure")
    table = explore.pivot(result)
    st.dataframe(_styled(table, spec, lang), hide_index=True, width="stretch", placeholder=fmt.NONE)
    if spec.dims and not spec.pivot:
        st.caption(t("explore.table.caption", lang))
    export_result(table, spec, lang, "explore")
    return spec


def _chart_choice(spec: Spec, result: Result, lang: str) -> str | None:
    if not spec.dims:
        return None
    options = explore.chart_options(spec)
    suggested = explore.suggest_chart(spec, result.rows)
    key = _K["chart"]
    if st.session_state.get(key, "") not in ["", *options]:
        st.session_state[key] = ""
    chosen: str = (
        st.segmented_control(
            t("explore.chart", lang),
            ["", *options],
            key=key,
            format_func=lambda c: (
                t("explore.chart.auto", lang, chart=t(f"explore.chart.{suggested}", lang))
                if not c
                else t(f"explore.chart.{c}", lang)
            ),
        )
        or ""
    )
    return chosen or None


def _display(frame: pl.DataFrame, spec: Spec, lang: str) -> pl.DataFrame:
    """Date dimensions as text, so a pivot's total row and the dates share a column."""
    keys = [d.key for d in spec.dims]
    return frame.with_columns(
        [pl.col(k).cast(pl.String).replace({TOTAL: t("explore.total", lang)}) for k in keys if k in frame.columns]
    )


def _named(frame: pl.DataFrame, spec: Spec, lang: str, months: bool = True) -> pl.DataFrame:
    """Coded dimension values by their names (channels, stages, ...) and months as 2025年1月, for the screen
    only (an export keeps the codes)."""
    out: list[pl.Series | pl.Expr] = []
    for d in spec.dims:
        if d.key not in frame.columns:
            continue
        if months and d.grain == "month" and frame[d.key].dtype in (pl.Date, pl.Datetime):
            named = [fmt.month(v, lang) if v is not None else None for v in frame[d.key].to_list()]
            out.append(pl.Series(d.key, named, dtype=pl.String))
        elif not d.grain and d.column in values.COLUMNS and frame[d.key].dtype == pl.String:
            out.append(values.expr(values.COLUMNS[d.column], d.key, lang).alias(d.key))
    return frame.with_columns(out) if out else frame


def _pivot_dimension(spec: Spec) -> str | None:
    """The value dictionary of the pivoted dimension (its values become column names)."""
    return values.COLUMNS.get(spec.pivot or "")


def _styled(frame: pl.DataFrame, spec: Spec, lang: str) -> Any:
    shown = _display(_named(frame, spec, lang), spec, lang)
    formats: dict[str, Callable[[Any], str]] = {}
    model = MODELS[spec.model]
    for column in shown.columns:
        measure = _measure_of(column, spec)
        if measure is not None:
            kind = model.measures[measure].fmt
            formats[column] = _FORMAT["number" if column.endswith("_change") and kind == "count" else kind]
    headings = {c: _heading(c, spec, lang) for c in shown.columns}
    pandas = pandas_frame(shown).rename(columns=headings)
    return pandas.style.format({headings[c]: f for c, f in formats.items()}, na_rep=fmt.NONE)


def _measure_of(column: str, spec: Spec) -> str | None:
    """Which measure a result column shows: itself, a pivoted ``<measure>_<value>``, a compared one."""
    if column in spec.measures:
        return column
    if spec.pivot and len(spec.measures) == 1 and column not in {d.key for d in spec.dims}:
        return spec.measures[0]
    for m in spec.measures:
        if column.startswith(f"{m}_"):
            return m
    return None


def _heading(column: str, spec: Spec, lang: str) -> str:
    if column == TOTAL or column.endswith(f"_{TOTAL}"):
        prefix = column.removesuffix(f"_{TOTAL}") if column != TOTAL else ""
        return f"{measure_label(prefix, lang)} · {t('explore.total', lang)}" if prefix else t("explore.total", lang)
    if column in {d.key for d in spec.dims} or column in spec.measures or column.endswith(("_as_of", "_change")):
        return label(column, lang)
    if spec.pivot and len(spec.measures) > 1:
        for m in spec.measures:
            if column.startswith(f"{m}_"):
                return f"{measure_label(m, lang)} · {_pivoted(column.removeprefix(f'{m}_'), spec, lang)}"
    return _pivoted(column, spec, lang)  # a pivoted value


def _pivoted(value: str, spec: Spec, lang: str) -> str:
    dimension = _pivot_dimension(spec)
    return values.value(dimension, value, lang) if dimension else value


def figure(result: Result, chart: str, lang: str) -> go.Figure:
    """The result drawn as ``chart``; more than two dimensions draw the first two."""
    spec = result.spec
    rows = _named(result.rows, spec, lang, months=False).with_columns(
        [pl.col(d.key).cast(pl.String).fill_null(fmt.NONE) for d in spec.dims if not d.grain]
    )
    keys = [d.key for d in spec.dims][:2]
    labels = {c: label(c, lang) for c in rows.columns}
    # several measures on one axis: plotly melts them into "variable" and "value"
    labels |= {"variable": t("explore.measures", lang), "value": t("explore.value", lang)}
    first = spec.measures[0]
    x = next((d.key for d in spec.dims if d.grain), keys[0])
    other = next((k for k in keys if k != x), None)
    frame = pandas_frame(rows)
    if chart == "pie":
        fig = px.pie(frame, names=keys[0], values=first, labels=labels)
    elif chart == "heatmap" and other is not None:
        fig = px.density_heatmap(frame, x=x, y=other, z=first, histfunc="sum", labels=labels)
        fig.update_layout(coloraxis_colorbar_title_text=measure_label(first, lang))
    elif chart == "scatter" and len(spec.measures) >= 2:
        fig = px.scatter(frame, x=first, y=spec.measures[1], color=other, hover_name=keys[0], labels=labels)
    elif chart == "line":
        if other is not None:
            fig = px.line(frame.sort_values(x), x=x, y=first, color=other, markers=True, labels=labels)
        else:
            fig = px.line(frame.sort_values(x), x=x, y=list(spec.measures), markers=True, labels=labels)
    else:
        barmode = "stack" if chart == "stacked" else "group"
        if other is not None:
            fig = px.bar(frame, x=x, y=first, color=other, barmode=barmode, labels=labels)
        else:
            fig = px.bar(frame, x=x, y=list(spec.measures), barmode=barmode, labels=labels)
    fig.for_each_trace(lambda tr: tr.update(name=label(tr.name, lang)) if tr.name in spec.measures else None)
    title = " · ".join(measure_label(m, lang) for m in spec.measures)
    fig = charts.layout(fig, title)
    grain = next((d.grain for d in spec.dims if d.grain and d.key == x), None)
    if grain in ("day", "week", "month"):
        charts.local_dates(fig, lang, grain)
    return fig


# -- export ------------------------------------------------------------------------------------
def view_rows(spec: Spec, lang: str, as_of: tuple[str, str] | None = None) -> list[tuple[str, str]]:
    """The view written above an exported table: model, dimensions, measures, every filter."""
    rows = [
        (t("explore.model", lang), t(f"explore.model.{spec.model}", lang)),
        (t("explore.dims", lang), ", ".join(dim_label(d.key, lang) for d in spec.dims) or fmt.NONE),
        (t("explore.measures", lang), ", ".join(measure_label(m, lang) for m in spec.measures)),
    ]
    if spec.pivot:
        rows.append((t("explore.pivot", lang), dim_label(spec.pivot, lang)))
    rows += [(t("explore.filter", lang), filter_label(f, lang)) for f in spec.filters]
    if not spec.filters:
        rows.append((t("explore.filter", lang), t("filter.all", lang)))
    if as_of:
        rows.append((t("explore.compare", lang), f"{as_of[0]} @ {as_of[1]}"))
    return rows


def export_table(
    frame: pl.DataFrame, spec: Spec, lang: str, tz: str, as_of: tuple[str, str] | None = None
) -> tuple[list[tuple[str, str]], pl.DataFrame]:
    """The header rows (title, time, then the view) and the table as exported, headings translated."""
    header = [*export_header(t("page.explore", lang), None, lang, tz, ()), *view_rows(spec, lang, as_of)]
    shown = _display(frame, spec, lang)
    return header, shown.rename({c: _heading(c, spec, lang) for c in shown.columns})


def export_result(frame: pl.DataFrame, spec: Spec, lang: str, name: str, as_of: tuple[str, str] | None = None) -> None:
    """CSV and Excel of the table shown (formula-safe, audited), the view in the header rows."""
    tz = data.settings().timezone
    header, out = export_table(frame, spec, lang, tz, as_of)
    title = t("page.explore", lang)
    stamp = datetime.now(ZoneInfo(tz)).strftime("%Y%m%d")
    with st.container(horizontal=True, gap="small"):
        for ext, build, mime, icon in (
            ("csv", lambda: export.to_csv(out, header), "text/csv", ":material/download:"),
            ("xlsx", lambda: export.to_excel(out, header, sheet=title), export.XLSX_MIME, ":material/table_view:"),
        ):
            file_name = f"{name}_{stamp}.{ext}"
            st.download_button(
                t("export.csv" if ext == "csv" else "export.excel", lang),
                data=audited(build, file_name, out.height),
                file_name=file_name,
                mime=mime,
                key=f"_ex_export_{name}_{ext}",
                on_click="ignore",
                icon=icon,
                type="tertiary",
            )


# -- as-of comparison --------------------------------------------------------------------------
def compare_section(spec: Spec, lang: str) -> None:
    """The same view with one source at an earlier retained snapshot, side by side with now."""
    wh = data.warehouse()
    earlier = earlier_snapshots(wh.store, wh.manifest)
    model = MODELS[spec.model]
    if not model.entities:
        st.caption(t("explore.compare.derived", lang))
        return
    if not earlier:
        st.caption(t("explore.compare.none", lang))
        return
    source_pick, snapshot_pick = st.columns(2)
    source = source_pick.selectbox(
        t("explore.compare.source", lang),
        ["", *earlier],
        key="_ex_asof_source",
        format_func=lambda s: s or t("explore.compare.off", lang),
    )
    if not source:
        return
    snapshot = snapshot_pick.selectbox(t("explore.compare.snapshot", lang), earlier[source], key="_ex_asof_snapshot")
    provides = set(wh.manifest["sources"][source].get("entities") or {}) & set(model.entities)
    if not provides:
        st.caption(t("explore.compare.unrelated", lang, source=source))
    as_of = (source, snapshot)
    table = explore.compare(run(spec), run(spec, as_of))
    st.dataframe(_styled(table, spec, lang), hide_index=True, width="stretch", placeholder=fmt.NONE)
    export_result(table, spec, lang, "explore_compare", as_of)
