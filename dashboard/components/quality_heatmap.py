"""The quality heatmap: sources × fields (grouped by entity), coloured by fill rate, validity or
uniqueness, flagged cells marked ⚠; selecting a cell (click, or the two pickers) shows its sample values.

Plotly heatmaps report no selection to Streamlit, so an invisible marker sits on each cell: clicking
it selects the cell.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import fmt, labels
from dashboard.components.data import query, settings
from dashboard.core.entities import ENTITIES, NEVER, parse_condition
from dashboard.i18n import heading, t

METRICS: dict[str, tuple[str, str]] = {  # metric → (column, flag column)
    "fill": ("fill_rate", "fill_flag"),
    "validity": ("valid_rate", "valid_flag"),
    "uniqueness": ("uniqueness", "unique_flag"),
}
PLACES = {"fill": 1, "validity": 1, "uniqueness": 1}  # each rate's decimals: on the map, its hover and captions
_SOURCE_KEY, _FIELD_KEY = "dq_cell_source", "dq_cell_field"


def cells(frame: pl.DataFrame, metric: str) -> pl.DataFrame:
    """The provided fields that have a value for the metric, with ``field`` = 'entity.column'; for the fill rate
    also the optional ones (applies_when "never": drawn grey, their share on hover, not judged) and those that apply
    to no row of the snapshot (an interaction's lead_id where every one names a customer: grey, the hover says so)."""
    value, flag = METRICS[metric]
    declared = "applies_when" in frame.columns  # a frame of the quality_heatmap query's columns has it
    never = (pl.col("applies_when") == NEVER).fill_null(False) if declared else pl.lit(False)
    no_row = (pl.col("applies_when").is_not_null() & (pl.col("applies_rows") == 0)).fill_null(False)
    optional = pl.lit(metric == "fill") & (never | no_row if declared else never)
    return frame.filter(pl.col("provided") & (pl.col(value).is_not_null() | optional)).with_columns(
        value=pl.col(value),
        flagged=pl.col(flag),
        field=pl.col("entity") + "." + pl.col("column_name"),
        optional=optional,
    )


def heatmap_figure(frame: pl.DataFrame, metric: str, lang: str) -> go.Figure:
    """Columns are 'entity.field' in canonical order, one band per entity, labelled on top."""
    data = cells(frame, metric)
    present = set(data["field"].to_list())
    fields = [f"{e}.{c.name}" for e, ent in ENTITIES.items() for c in ent.columns if f"{e}.{c.name}" in present]
    sources = sorted(data["source_system"].unique().to_list(), reverse=True)
    grid = {(r["source_system"], r["field"]): r for r in data.iter_rows(named=True)}
    z = [[(grid.get((s, f)) or {}).get("value") for f in fields] for s in sources]
    hover = [[_hover(grid.get((s, f)), lang) for f in fields] for s in sources]
    ticks = fmt.axis("pct", PLACES[metric])["tickformat"]
    fig = go.Figure(
        go.Heatmap(
            x=fields, y=sources, z=z, zmin=0, zmax=1, colorscale="RdYlGn", hoverinfo="text", text=hover,
            colorbar={"tickformat": ticks, "title": t(f"dq.metric.{metric}", lang)}, xgap=1, ygap=1,
        )
    )  # fmt: skip
    optional = [[True if (grid.get((s, f)) or {}).get("optional") else None for f in fields] for s in sources]
    if any(any(row) for row in optional):  # optional fields in grey, their share on hover
        grey = [[0, OPTIONAL_GREY], [1, OPTIONAL_GREY]]
        fig.add_trace(
            go.Heatmap(
                x=fields, y=sources, z=[[1 if o else None for o in row] for row in optional], colorscale=grey,
                showscale=False, hoverinfo="text", text=hover, xgap=1, ygap=1, name="optional",
            )
        )  # fmt: skip
    picks = list(grid.values())
    fig.add_trace(
        go.Scatter(
            x=[r["field"] for r in picks],
            y=[r["source_system"] for r in picks],
            mode="markers+text",
            text=["⚠" if r["flagged"] else "" for r in picks],
            textfont={"size": 12, "color": "#111"},
            marker={"symbol": "square", "size": 16, "opacity": 0},
            selected={"marker": {"opacity": 0.35, "color": "#1f3b73"}},
            unselected={"marker": {"opacity": 0}},
            customdata=[[r["source_system"], r["field"]] for r in picks],
            hoverinfo="skip",
            showlegend=False,
        )
    )
    _entity_bands(fig, fields, lang)
    fig.update_layout(
        height=max(300, 140 + 34 * len(sources)),
        margin={"l": 10, "r": 10, "t": 30 + LABEL_ROW_PX, "b": 10},
        xaxis={
            "tickangle": -90,  # upright names take a line's height each: neighbours never overlap
            "tickfont": {"size": 11},
            "type": "category",
            "categoryorder": "array",
            "categoryarray": fields,
            "tickvals": fields,
            "ticktext": [heading(f.split(".", 1)[1], lang) for f in fields],
            "automargin": True,
        },
        yaxis={
            "type": "category",
            "automargin": True,
            "tickvals": sources,
            "ticktext": [labels.value("source", s, lang) for s in sources],
        },
        clickmode="event+select",
        dragmode=False,
    )
    return fig


# The entity names above the columns: a column is drawn at least ~COLUMN_PX wide on the page, a name
# may reach half-way over each neighbouring band (those are named on the other of two rows), and one
# that would still not fit is shortened with "…", its full name on hover.
COLUMN_PX, LABEL_ROW_PX = 14, 16
OPTIONAL_GREY = "#d0d0d0"  # an optional field (applies_when "never"): shown, not judged


def text_px(text: str) -> float:
    """A 12 px label's width, roughly: Chinese characters are square, Latin ones about 0.6 em."""
    return sum(12.0 if ord(c) > 0x2E80 else 7.0 for c in text)


def shortened(text: str, room_px: float) -> str:
    """``text`` cut to fit ``room_px`` with an ellipsis, or whole when it fits."""
    if text_px(text) <= room_px:
        return text
    while text and text_px(text + "…") > room_px:
        text = text[:-1]
    return text.rstrip() + "…"


def bands(fields: list[str]) -> list[tuple[str, int, int]]:
    """(entity, first column, last column) of each run of one entity's fields."""
    out: list[tuple[str, int, int]] = []
    for i, field in enumerate(fields):
        entity = field.split(".")[0]
        if out and out[-1][0] == entity:
            out[-1] = (entity, out[-1][1], i)
        else:
            out.append((entity, i, i))
    return out


def _entity_bands(fig: go.Figure, fields: list[str], lang: str) -> None:
    """A divider between entities and the entity's name above its columns, on two alternating rows."""
    runs = bands(fields)
    for k, (entity, first, last) in enumerate(runs):
        width = last - first + 1
        neighbours = sum((runs[j][2] - runs[j][1] + 1) / 2 for j in (k - 1, k + 1) if 0 <= j < len(runs))
        name = labels.value("entity", entity, lang)
        shown = shortened(name, (width + neighbours) * COLUMN_PX)
        fig.add_annotation(
            x=(first + last) / 2,
            y=1.0,
            yref="paper",
            yanchor="bottom",
            yshift=LABEL_ROW_PX * (k % 2),
            text=f"<b>{shown}</b>",
            hovertext=name if shown != name else None,
            showarrow=False,
        )
        if first:
            fig.add_vline(x=first - 0.5, line={"color": "#555", "width": 1})


def rate(x: float | None, metric: str) -> str:
    """A quality rate as every part of the page writes it: at its metric's fixed precision (96.5%)."""
    return fmt.number(x, "pct", PLACES[metric])


def _hover(r: dict[str, Any] | None, lang: str) -> str:
    if r is None:
        return ""
    source = labels.value("source", r["source_system"], lang)
    return "<br>".join(
        [f"<b>{source}</b> · {field_label(r['entity'] + '.' + r['column_name'], lang)}", *_numbers(r, lang)]
    )


def applies_words(entity: str, condition: str, lang: str) -> str:
    """The rows a field applies to, in words: "stage = won" on lead_events → "lead stage events where stage is Won"
    / "阶段为赢单的线索阶段事件"."""
    cond = parse_condition(entity, condition)
    if cond.never:
        return t("dq.applies.optional", lang)
    rows, column = _in_sentence(labels.value("entity", entity, lang)), _in_sentence(heading(cond.column, lang))
    if cond.values is None:
        return t(f"dq.applies.{'empty' if cond.empty else 'filled'}", lang, rows=rows, column=column)
    dimension = labels.COLUMNS.get(cond.column)
    named = [labels.value(dimension, v, lang) if dimension else v for v in cond.values]
    return t("dq.applies.in", lang, rows=rows, column=column, values=t("dq.applies.or", lang).join(named))


def _in_sentence(name: str) -> str:
    """A label inside an English sentence: "Lead stage events" → "lead stage events" ("ID number" stays)."""
    return name[0].lower() + name[1:] if name[:2].istitle() else name


def fill_line(r: dict[str, Any], lang: str) -> str:
    """A field's fill rate in one line, over the rows it applies to: "Filled on 100.0% of lead stage events
    where stage is Won (114 / 114)"; a field on every row: "Fill rate 96.5% (1,930 / 2,000)"."""
    if r.get("applies_when") and r["applies_rows"]:
        rows = applies_words(r["entity"], r["applies_when"], lang)
        counts = {"filled": fmt.count(r["applies_filled"]), "total": fmt.count(r["applies_rows"])}
        return t("dq.applies.fill", lang, rate=rate(r["fill_rate"], "fill"), rows=rows, **counts)
    if r.get("applies_when") == NEVER:
        return t("dq.applies.never", lang, filled=fmt.count(r["filled"]), total=fmt.count(r["rows"]))
    if r.get("applies_when"):
        return t("dq.applies.none", lang, rows=applies_words(r["entity"], r["applies_when"], lang))
    filled = f"({fmt.count(r['filled'])} / {fmt.count(r['rows'])})"
    return f"{t('dq.metric.fill', lang)} {rate(r['fill_rate'], 'fill')} {filled}"


def _numbers(r: dict[str, Any], lang: str) -> list[str]:
    lines = [fill_line(r, lang)]
    if r["valid_rate"] is not None:
        invalid = f"({fmt.count(r['invalid'])} ✗)"
        lines.append(f"{t('dq.metric.validity', lang)} {rate(r['valid_rate'], 'validity')} {invalid}")
    approx = "" if r["distinct_exact"] else "≈"
    lines.append(
        f"{t('dq.metric.uniqueness', lang)} {rate(r['uniqueness'], 'uniqueness')} "
        f"({approx}{fmt.count(r['distinct_values'])})"
    )
    if r["flagged"]:
        lines.append(f"⚠ {t('dq.flagged', lang)}")
    return lines


def heatmap_section(lang: str) -> None:
    q = settings().quality
    frame = query(
        "quality_heatmap",
        {
            "fill_threshold": q.fill_rate_threshold,
            "validity_threshold": q.validity_threshold,
            "uniqueness_threshold": q.uniqueness_threshold,
        },
    )
    if frame.is_empty():
        st.info(t("dq.heatmap.empty", lang))
        return
    metric = st.radio(
        t("dq.metric", lang),
        list(METRICS),
        format_func=lambda m: t(f"dq.metric.{m}", lang),
        horizontal=True,
        key="dq_metric",
    )
    threshold = {"fill": q.fill_rate_threshold, "validity": q.validity_threshold, "uniqueness": q.uniqueness_threshold}
    st.caption(t(f"dq.heatmap.help.{metric}", lang, threshold=rate(threshold[metric], metric)))
    event = st.plotly_chart(
        heatmap_figure(frame, metric, lang),
        key="dq_heatmap",
        config={"displayModeBar": False},  # a cell is picked by a click; the toolbar would cover the names
        on_select="rerun",
        selection_mode="points",
        width="stretch",
    )
    _take_selection(event)
    cell_samples(cells(frame, metric), metric, lang)


def _take_selection(event: Any) -> None:
    points = ((event or {}).get("selection") or {}).get("points") or []
    picked = next((p.get("customdata") for p in points if p.get("customdata")), None)
    if picked and st.session_state.get("_dq_last_pick") != picked:
        st.session_state["_dq_last_pick"] = picked
        st.session_state[_SOURCE_KEY], st.session_state[_FIELD_KEY] = picked[0], picked[1]


def field_label(field: str, lang: str) -> str:
    """ "leads.channel" → "线索 · 渠道"."""
    entity, _, column = field.partition(".")
    return f"{labels.value('entity', entity, lang)} · {heading(column, lang)}"


def _keyed(data: pl.DataFrame, source: str, field: str) -> bool:
    """Whether the source gave the field's entity its record ids (the profile names an empty field's records by
    them; without, by their row number in the snapshot)."""
    entity = field.partition(".")[0]
    key = ENTITIES[entity].key
    mine = data.filter((pl.col("source_system") == source) & (pl.col("field") == f"{entity}.{key}"))
    return key is not None and not mine.is_empty()


def cell_samples(data: pl.DataFrame, metric: str, lang: str) -> None:
    """The chosen cell's numbers and offending values; starts on the worst flagged cell."""
    st.subheader(t("dq.cell.title", lang))
    sources = sorted(data["source_system"].unique().to_list())
    if not sources:
        return
    worst = data.sort(["flagged", "value"], descending=[True, False], nulls_last=True).row(0, named=True)
    if st.session_state.get(_SOURCE_KEY) not in sources:
        st.session_state[_SOURCE_KEY] = worst["source_system"]
    left, right = st.columns(2)
    source = left.selectbox(
        t("dq.cell.source", lang), sources, key=_SOURCE_KEY, format_func=lambda s: labels.value("source", s, lang)
    )
    fields = data.filter(pl.col("source_system") == source)["field"].to_list()
    if st.session_state.get(_FIELD_KEY) not in fields:
        st.session_state[_FIELD_KEY] = worst["field"] if worst["field"] in fields else fields[0]
    field = right.selectbox(
        t("dq.cell.field", lang), fields, key=_FIELD_KEY, format_func=lambda f: field_label(f, lang)
    )
    row = data.filter((pl.col("source_system") == source) & (pl.col("field") == field)).row(0, named=True)
    samples = {"fill": "empty_samples", "validity": "invalid_samples", "uniqueness": "duplicate_samples"}[metric]
    st.markdown("  \n".join(_numbers(row, lang)))  # our own words and numbers: no data to escape
    values = row[samples] or []
    if metric == "fill" and not _keyed(data, source, field):
        values = [t("dq.cell.row", lang, n=str(v).removeprefix("row ")) for v in values]  # the profile's "row N"
    if values:
        # a record's key in code font (an identifier to look up); "row N" is words for a person, as the page's text
        plain = metric == "fill" and not _keyed(data, source, field)
        shown = ", ".join(fmt.md_escape(str(v)) if plain else f"`{str(v).replace('`', '')}`" for v in values)
        st.markdown(f"{t(f'dq.cell.samples.{metric}', lang)}: {shown}")
        if row["personal"]:
            st.caption(t("dq.cell.masked", lang))
    else:
        st.caption(t("dq.cell.no_samples", lang))
