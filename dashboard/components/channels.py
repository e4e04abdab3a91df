"""The per-channel chart and table: the semantic layer's metrics split by channel (the total row apart)."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import fmt, labels
from dashboard.components.charts import layout, name_categories, show
from dashboard.i18n import t
from dashboard.query.metrics import TOTAL, Answer, layer, rounded

__all__ = ["channel_chart", "channel_table", "rounded", "rows"]


def rows(answer: Answer) -> pl.DataFrame:
    """The split rows of an answer asked with_total, without the total row."""
    frame = answer.frame
    return frame.filter(~pl.col(TOTAL)).drop(TOTAL) if TOTAL in frame.columns else frame


def channel_figure(summary: pl.DataFrame, lang: str) -> go.Figure:
    """Grouped bars: leads and won deals per channel, largest channel first."""
    channels = summary["channel"].fill_null("—").to_list()
    fig = go.Figure(
        [
            go.Bar(name=t("metric.leads", lang), x=channels, y=summary["leads"].to_list(), marker_color="#4c78a8"),
            go.Bar(
                name=t("metric.won_deals", lang), x=channels, y=summary["won_deals"].to_list(), marker_color="#54a24b"
            ),
        ]
    )
    fig.update_layout(
        title=t("chart.by_channel", lang),
        barmode="group",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "y": 1.1, "x": 1, "xanchor": "right"},
        xaxis_title=t("col.channel", lang),
    )
    fig.update_yaxes(**fmt.axis("count"))  # 12,000 as every count is written, not Plotly's 12k
    return name_categories(fig, "channel", channels, lang)


def channel_chart(summary: pl.DataFrame, lang: str) -> None:
    """Drawn as every chart is (charts.show): its title above it as page text, the legend top left clear of
    the toolbar, and no toolbar on a phone."""
    show(layout(channel_figure(summary, lang), t("chart.by_channel", lang)), key="channel_chart")


def channel_columns(summary: pl.DataFrame, lang: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The table's frame (channels by name, a ratio in percentage points) and its column_config: each metric
    column in fmt.column_format's pattern, written as every other table writes it (ROI 1,250%, not 1250%)."""
    metrics = layer().metrics
    config: dict[str, Any] = {"channel": st.column_config.TextColumn(t("col.channel", lang))}
    shown = summary.with_columns(labels.expr("channel", "channel", lang))
    for c in summary.columns:
        if c not in metrics:
            continue
        m = metrics[c]
        if m.unit == "pct":  # a grid's pattern has no percent of its own: the ratio is drawn in percentage points
            shown = shown.with_columns(pl.col(c) * 100)
        config[c] = st.column_config.NumberColumn(
            t(f"metric.{c}", lang), help=t(f"metric.{c}.help", lang), format=fmt.column_format(m.unit, m.precision)
        )
    return shown, config


def channel_table(summary: pl.DataFrame, lang: str) -> None:
    """Each metric column headed by its label and drawn at its precision (a ratio as 13.3%, ROI as 450%);
    empty means no value (a channel without spend has no ROI). The cells stay numbers, so a header sorts."""
    shown, config = channel_columns(summary, lang)
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        placeholder="—",  # an empty cost or ratio is drawn as —, not "None"
        column_config=config,
    )
