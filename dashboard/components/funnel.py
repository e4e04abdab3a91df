"""The funnel (``funnel``): lead → mql → sql → opportunity → won, overall or for one channel, with
each step's conversion and the median days spent in each stage; and every channel side by side.
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import charts, fmt, labels
from dashboard.components.export_buttons import export_buttons
from dashboard.components.filterbar import Filters
from dashboard.components.tables import Kind, table
from dashboard.core.entities import STAGES
from dashboard.derived.analytics import FUNNEL
from dashboard.i18n import t

OVERALL = "(all)"
KINDS: dict[str, Kind] = {
    "leads_reached": "count",
    "step_conversion": "pct",
    "overall_conversion": "pct",
    "median_days_in_stage": "days",
}


def stage_label(stage: str, lang: str) -> str:
    return labels.value("stage", stage, lang)


def stage_labels(column: str, lang: str) -> pl.Expr:
    """``column``'s stage codes as their labels in ``lang``, in one vectorised step (a code with no label
    stays as it is)."""
    return labels.expr("stage", column, lang, STAGES)


def funnel_figure(rows: pl.DataFrame, title: str, lang: str) -> go.Figure:
    """One funnel: each bar says how many leads reached the stage and the step's conversion."""
    text = [
        f"{fmt.count(n)} · {fmt.pct(step)}" if i else fmt.count(n)
        for i, (n, step) in enumerate(zip(rows["leads_reached"], rows["step_conversion"], strict=True))
    ]
    fig = go.Figure(
        go.Funnel(
            y=[stage_label(s, lang) for s in rows["stage"]],
            x=rows["leads_reached"].to_list(),
            text=text,
            textinfo="text",
            marker={"color": charts.PALETTE[0]},
            hovertemplate="%{y}: %{x:,}<extra></extra>",
            # the first stage's count in its bar, every later stage's figures beside its narrower bar, with room
            # on the widest bar's right: Plotly squeezed what it placed inside (269 · 56.4% unreadably small)
            textposition=["inside"] + ["outside"] * (len(text) - 1),
            cliponaxis=False,
        )
    )
    widest = float(rows["leads_reached"][0] or 1)  # the first stage's bar
    fig.update_xaxes(range=[-widest / 2, widest * 1.1])
    return charts.layout(fig, title)


def by_channel(funnel: pl.DataFrame, lang: str) -> pl.DataFrame:
    """One row per channel: leads reaching each stage, and the overall conversion."""
    wide = (
        funnel.filter(pl.col("channel") != OVERALL)
        .pivot(on="stage", index="channel", values="leads_reached")
        .select("channel", *FUNNEL)
        .with_columns(overall_conversion=pl.col("won") / pl.when(pl.col("lead") > 0).then(pl.col("lead")))
        .sort("lead", descending=True)
    )
    return wide.rename({s: stage_label(s, lang) for s in FUNNEL})


def funnel_section(funnel: pl.DataFrame, filters: Filters, lang: str) -> None:
    scope = filters.channel or OVERALL
    rows = funnel.filter(pl.col("channel") == scope).sort("stage_order")
    if rows.is_empty() or not rows["leads_reached"][0]:
        st.info(t("channels.no_leads", lang))
        return
    scope_name = labels.value("channel", filters.channel, lang) if filters.channel else t("funnel.overall", lang)
    title = t("funnel.chart", lang, scope=scope_name)
    chart, steps = st.columns([2, 3])
    with chart:
        charts.show(funnel_figure(rows, title, lang), key="funnel_chart")
    with steps:
        shown = rows.select(
            stage_labels("stage", lang),
            "leads_reached",
            "step_conversion",
            "overall_conversion",
            "median_days_in_stage",
        )
        table(shown, KINDS, lang)
        st.caption(t("funnel.note", lang))
    if filters.channel is None:
        st.markdown(f"**{t('funnel.by_channel', lang)}**")
        wide = by_channel(funnel, lang)
        table(wide, {**{stage_label(s, lang): "count" for s in FUNNEL}, "overall_conversion": "pct"}, lang)
    export_buttons(funnel, "funnel", t("funnel.title", lang), filters, lang, kinds=KINDS)
