"""Explore's answer: the totals, a chart (suggested from the result's shape, changeable), the sortable
table (pivoted when asked), the CSV/Excel export with the view written on top, and the comparison
with an earlier snapshot of a source."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import plotly.express as px
import plotly.graph_objects as go
import polars as pl
import streamlit as st
from plotly.subplots import make_subplots

from dashboard.components import charts, data, fmt
from dashboard.components import labels as values
from dashboard.components.explore_builder import _K, dim_label, filter_label, label, measure_label, value_dictionary
from dashboard.components.export_buttons import audited, export_header
from dashboard.components.tables import pandas_frame
from dashboard.i18n import t
from dashboard.ops import export
from dashboard.query.explore import models as explore
from dashboard.query.explore.asof import earlier_snapshots
from dashboard.query.explore.models import MODELS, TOTAL, Measure, Result, Spec

_ASOF = "_ex_asof"
_PANEL_HEIGHT = 260  # each measure's panel when several are drawn


def run(spec: Spec, as_of: tuple[str, str] | None = None) -> Result:
    query = explore.build_query(spec, data.user().role)
    return explore.shape(spec, query, data.explore(query.sql, query.params, as_of))


def measure_def(measure: str, model: str) -> Measure:
    return MODELS[model].measures[measure]


def value_text(measure: str, model: str, value: Any, lang: str = "zh") -> str:
    """A measure's value as people read it: its unit, at its precision, "—" when there is none."""
    m = measure_def(measure, model)
    return fmt.number(value, m.unit, m.places, lang)


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
                f"{t('explore.total', lang)} · {measure_label(m, lang, spec.model)}",
                value_text(m, spec.model, result.totals[m], lang),
            )
    if result.truncated:
        st.warning(t("explore.truncated", lang, n=explore.MAX_GROUPS))
    if spec.dims and not result.rows.height:  # said so, not an empty grid and files of nothing
        st.info(t("explore.no_rows", lang), icon=":material/filter_alt_off:")
        return spec
    chart = _chart_choice(spec, result, lang)
    spec = Spec(spec.model, spec.dims, spec.measures, spec.filters, spec.pivot, chart)
    if spec.dims and result.rows.height:
        charts.show(figure(result, chart or explore.suggest_chart(spec, result.rows), lang), key="_ex_figure")
    table = largest_first(explore.pivot(result), spec)
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


def _period_text(v: object, grain: str, lang: str) -> str | None:
    """A period's name (2025年1月, Q1 2025); a pivot's total row and an empty period as they are."""
    if isinstance(v, str):
        try:
            return fmt.period(date.fromisoformat(v[:10]), grain, lang)
        except ValueError:
            return v
    return fmt.period(v, grain, lang) if isinstance(v, date) else None if v is None else str(v)


def _named(frame: pl.DataFrame, spec: Spec, lang: str, grains: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Coded dimension values by their names (channels, stages, ...) and periods as 2025年1月 (the date
    dimensions at ``grains``, all when None), for the screen only (an export keeps codes and dates)."""
    out: list[pl.Series | pl.Expr] = []
    for d in spec.dims:
        if d.key not in frame.columns:
            continue
        if d.grain and (grains is None or d.grain in grains):
            named = [_period_text(v, d.grain, lang) for v in frame[d.key].to_list()]
            out.append(pl.Series(d.key, named, dtype=pl.String))
        elif not d.grain and (named_by := value_dictionary(spec.model, d.column)) and frame[d.key].dtype == pl.String:
            out.append(values.expr(named_by, d.key, lang).alias(d.key))
    return frame.with_columns(out) if out else frame


def _pivot_dimension(spec: Spec) -> str | None:
    """The value dictionary of the pivoted dimension (its values become column names)."""
    return value_dictionary(spec.model, spec.pivot) if spec.pivot else None


def _styled(frame: pl.DataFrame, spec: Spec, lang: str) -> Any:
    shown = _display(_named(frame, spec, lang), spec, lang)
    formats: dict[str, Callable[[Any], str]] = {}
    for column in shown.columns:
        measure = _measure_of(column, spec)
        if measure is not None:
            m = measure_def(measure, spec.model)
            formats[column] = lambda v, m=m: fmt.number(v, m.unit, m.places, lang)  # type: ignore[misc]
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
        return (
            f"{measure_label(prefix, lang, spec.model)} · {t('explore.total', lang)}"
            if prefix
            else t("explore.total", lang)
        )
    if column in {d.key for d in spec.dims} or column in spec.measures or column.endswith(("_as_of", "_change")):
        return label(column, lang, spec.model)
    if spec.pivot and len(spec.measures) > 1:
        for m in spec.measures:
            if column.startswith(f"{m}_"):
                return f"{measure_label(m, lang, spec.model)} · {_pivoted(column.removeprefix(f'{m}_'), spec, lang)}"
    return _pivoted(column, spec, lang)  # a pivoted value


def _pivoted(value: str, spec: Spec, lang: str) -> str:
    grain = next((d.grain for d in spec.dims if d.key == spec.pivot), None)
    if grain:
        return _period_text(value, grain, lang) or fmt.NONE
    dimension = _pivot_dimension(spec)
    return values.value(dimension, value, lang) if dimension else value


def _axis(m: Measure) -> dict[str, Any]:
    """An axis in the measure's unit: ticks ¥12,000 or 15%, the hover at the measure's precision."""
    return fmt.axis(m.unit, m.places)


def figure(result: Result, chart: str, lang: str) -> go.Figure:
    """The result drawn as ``chart``, every measure in it: a pie draws its one measure, a scatter its two
    against each other; the others draw one panel per measure, on a shared axis, each with its own scale
    and unit. More than two dimensions draw the first two."""
    spec = result.spec
    rows = _named(result.rows, spec, lang, grains=("quarter", "year")).with_columns(
        [pl.col(d.key).cast(pl.String).fill_null(fmt.NONE) for d in spec.dims if not d.grain]
    )
    keys = [d.key for d in spec.dims][:2]
    labels = {c: label(c, lang, spec.model) for c in rows.columns}
    x = next((d.key for d in spec.dims if d.grain), keys[0])
    grain = next((d.grain for d in spec.dims if d.grain and d.key == x), None)
    other = next((k for k in keys if k != x), None)
    measures = [measure_def(m, spec.model) for m in spec.measures]
    if chart == "pie":
        fig = px.pie(pandas_frame(rows), names=keys[0], values=spec.measures[0], labels=labels)
        value = "%{value:" + _axis(measures[0])["hoverformat"] + "}"
        prefix = "¥" if measures[0].unit == "money" else ""
        share = "%{percent:.1%}"  # a share at one decimal, as every rate on the pages (plotly's own: 0.829%, 61.9%)
        fig.update_traces(texttemplate=share, hovertemplate=f"%{{label}}: {prefix}{value} ({share})<extra></extra>")
    elif chart == "scatter" and len(spec.measures) == 2:
        first, second = spec.measures
        fig = px.scatter(pandas_frame(rows), x=first, y=second, color=other, hover_name=keys[0], labels=labels)
        fig.update_xaxes(**_axis(measures[0]))
        fig.update_yaxes(**_axis(measures[1]))
    else:
        order = None if grain else by_value(rows, x, spec.measures[0])
        if order is not None:  # categories largest first, as a person reads a bar chart (not by their codes)
            rows = rows.sort(pl.col(x).replace_strict(order, list(range(len(order))), default=len(order)))
        fig = _panels(rows, spec, chart, x, other, lang)
        if order is not None:
            fig.update_xaxes(categoryorder="array", categoryarray=order)
    title = " · ".join(measure_label(m, lang, spec.model) for m in spec.measures)
    panels = len(spec.measures) if chart not in ("pie", "scatter") else 1
    fig = charts.layout(fig, title, height=None if panels == 1 else 120 + _PANEL_HEIGHT * panels)
    if grain in ("day", "week", "month"):
        charts.local_dates(fig, lang, grain)
    return fig


def largest_first(table: pl.DataFrame, spec: Spec) -> pl.DataFrame:
    """A table over categories in the chart's order: the first dimension's values by their total of the first
    measure, largest first, and each one's rows by that measure (not by code: 400 热线, 信息流广告, 自然流量, ...
    read as no order); a table over dates, or pivoted, as it comes."""
    if spec.pivot or not spec.dims or any(d.grain for d in spec.dims) or spec.measures[0] not in table.columns:
        return table
    first, m = spec.dims[0].key, pl.col(spec.measures[0])
    return table.sort([m.sum().over(first), m], descending=True, nulls_last=True, maintain_order=True)


def by_value(rows: pl.DataFrame, x: str, measure: str) -> list[str]:
    """``x``'s categories by their total of ``measure``, largest first (a missing total last)."""
    totals = rows.group_by(x, maintain_order=True).agg(pl.col(measure).sum())
    return totals.sort(measure, descending=True, nulls_last=True, maintain_order=True)[x].to_list()


def _panels(rows: pl.DataFrame, spec: Spec, chart: str, x: str, other: str | None, lang: str) -> go.Figure:
    """One panel per measure (a bar, line or heatmap), the x axis shared; the second dimension as colours
    named once in the legend (a heatmap: as its rows)."""
    n = len(spec.measures)
    fig = make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.06 if n > 1 else 0)
    groups = rows[other].unique(maintain_order=True).to_list() if other and chart != "heatmap" else [None]
    for i, name in enumerate(spec.measures, start=1):
        m, heading = measure_def(name, spec.model), measure_label(name, lang, spec.model)
        if chart == "heatmap" and other is not None:
            _heatmap(fig, rows.group_by([x, other], maintain_order=True).agg(pl.col(name).sum()), x, other, i, m)
            fig.update_yaxes(title_text=label(other, lang, spec.model), row=i, col=1)
            fig.update_layout({"coloraxis" if i == 1 else f"coloraxis{i}": {"colorbar_title_text": heading}})
            continue
        for j, group in enumerate(groups):
            part = rows if group is None else rows.filter(pl.col(other) == group)  # type: ignore[arg-type]
            if chart == "line" and any(d.grain and d.key == x for d in spec.dims):  # dates in time order
                part = part.sort(x)
            color = charts.PALETTE[(j if other else i - 1) % len(charts.PALETTE)]
            shared = {
                "x": part[x].to_list(),
                "y": part[name].to_list(),
                "name": heading if group is None else str(group),
                "legendgroup": str(group),
                "showlegend": group is not None and i == 1,
                "marker": {"color": color},
            }
            if chart == "line":
                fig.add_trace(go.Scatter(mode="lines+markers", line={"color": color}, **shared), row=i, col=1)
            else:
                fig.add_trace(go.Bar(**shared), row=i, col=1)
        fig.update_yaxes(title_text=heading, row=i, col=1, **_axis(m))
    fig.update_xaxes(title_text=label(x, lang, spec.model), row=n, col=1)
    if other is not None and chart != "heatmap":
        fig.update_layout(legend_title_text=label(other, lang, spec.model))
    fig.update_layout(barmode="stack" if chart == "stacked" else "group")
    return fig


def _heatmap(fig: go.Figure, grid: pl.DataFrame, x: str, y: str, row: int, m: Measure) -> None:
    """Panel ``row``'s heatmap, its colour scale beside it in the measure's unit."""
    axis = "coloraxis" if row == 1 else f"coloraxis{row}"
    z = grid.columns[-1]
    trace = go.Heatmap(x=grid[x].to_list(), y=grid[y].to_list(), z=grid[z].to_list(), coloraxis=axis)
    fig.add_trace(trace, row=row, col=1)
    low, high = fig.layout[f"yaxis{row if row > 1 else ''}"].domain
    scale = {k: v for k, v in _axis(m).items() if k in ("tickformat", "tickprefix")}
    colorbar = {"y": (low + high) / 2, "len": high - low, **scale}
    fig.update_layout({axis: {"colorscale": "Blues", "colorbar": colorbar}})  # light is little, dark is much


# -- export ------------------------------------------------------------------------------------
def view_rows(spec: Spec, lang: str, as_of: tuple[str, str] | None = None) -> list[tuple[str, str]]:
    """The view written above an exported table: model, dimensions, measures, every filter."""
    rows = [
        (t("explore.model", lang), t(f"explore.model.{spec.model}", lang)),
        (t("explore.dims", lang), ", ".join(dim_label(d.key, lang) for d in spec.dims) or fmt.NONE),
        (t("explore.measures", lang), ", ".join(measure_label(m, lang, spec.model) for m in spec.measures)),
    ]
    if spec.pivot:
        rows.append((t("explore.pivot", lang), dim_label(spec.pivot, lang)))
    rows += [(t("explore.filter", lang), filter_label(spec.model, f, lang)) for f in spec.filters]
    if not spec.filters:
        rows.append((t("explore.filter", lang), t("filter.all", lang)))
    if as_of:
        rows.append((t("explore.compare", lang), f"{as_of[0]} @ {as_of[1]}"))
    return rows


def export_table(
    frame: pl.DataFrame, spec: Spec, lang: str, tz: str, as_of: tuple[str, str] | None = None
) -> tuple[list[tuple[str, str]], pl.DataFrame]:
    """The header rows (title, time, then the view) and the table as exported: headings in the language,
    numbers still numbers, rounded to each measure's precision (a conversion of 5.8% is 0.058)."""
    header = [*export_header(t("page.explore", lang), None, lang, tz, ()), *view_rows(spec, lang, as_of)]
    shown = _display(frame, spec, lang)
    numbers = []
    for column in shown.columns:
        measure = _measure_of(column, spec)
        if measure is not None:
            m = measure_def(measure, spec.model)
            cells = [fmt.rounded(v, m.unit, m.places) for v in shown[column].to_list()]
            numbers.append(pl.Series(column, cells, dtype=pl.Int64 if m.places == 0 and m.unit != "pct" else None))
    shown = shown.with_columns(numbers) if numbers else shown
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
