"""The per-channel chart and table built from ``channel_summary``."""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import labels
from dashboard.components.charts import name_categories
from dashboard.i18n import t


def channel_figure(summary: pl.DataFrame, lang: str) -> go.Figure:
    """Grouped bars: leads and won deals per channel, largest channel first."""
    channels = summary["channel"].fill_null("—").to_list()
    fig = go.Figure(
        [
            go.Bar(name=t("col.leads", lang), x=channels, y=summary["leads"].to_list(), marker_color="#4c78a8"),
            go.Bar(name=t("col.won", lang), x=channels, y=summary["won"].to_list(), marker_color="#54a24b"),
        ]
    )
    fig.update_layout(
        title=t("chart.by_channel", lang),
        barmode="group",
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "y": 1.1, "x": 1, "xanchor": "right"},
        xaxis_title=t("col.channel", lang),
    )
    return name_categories(fig, "channel", channels, lang)


def channel_chart(summary: pl.DataFrame, lang: str) -> None:
    st.plotly_chart(channel_figure(summary, lang), width="stretch")


def channel_table(summary: pl.DataFrame, lang: str) -> None:
    """The numbers stay numbers (sortable); only their display is formatted. Empty means no spend."""
    number = st.column_config.NumberColumn
    st.dataframe(
        summary.with_columns(labels.expr("channel", "channel", lang)),
        hide_index=True,
        width="stretch",
        placeholder="—",  # an empty cost or ratio is drawn as —, not "None"
        column_config={
            "channel": st.column_config.TextColumn(t("col.channel", lang)),
            "leads": number(t("col.leads", lang), format="localized"),
            "won": number(t("col.won", lang), format="localized"),
            "conversion_rate": number(t("col.conversion_rate", lang), format="percent"),
            "revenue": number(t("col.revenue", lang), format="yen"),
            "cost": number(t("col.cost", lang), format="yen"),
            "roi": number(t("col.roi", lang), format="percent"),
            "cost_per_lead": number(t("col.cost_per_lead", lang), format="yen"),
        },
    )
