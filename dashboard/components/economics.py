"""Channel economics: the semantic layer's spend, leads, cost per lead, won deals, acquisition cost,
won-deal amount and ROI per channel. A channel without spend shows its amount and "—" for the ratios.
Filtered by owner or region, which spend does not record, the spend figures are the company's, headed so,
and the chart draws the selection's won-deal amount alone: the company's spend beside one rep's revenue would
read as that rep's return.

Clicking a channel's bars narrows the page to that channel (its campaigns and leads).
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import charts, filterbar
from dashboard.components.export_buttons import export_buttons
from dashboard.components.filterbar import Filters
from dashboard.components.tables import Kind, table
from dashboard.i18n import t
from dashboard.query.metrics import Answer, label, layer, rounded

CHART_KEY = "economics_chart"


def kinds(eco: pl.DataFrame) -> dict[str, Kind]:
    """Each metric column's cell format, from its unit (a ratio without decimals, like ROI, as "roi")."""
    metrics = layer().metrics
    out: dict[str, Kind] = {}
    for c in eco.columns:
        if c in metrics:
            m = metrics[c]
            out[c] = ("roi" if m.precision == 0 else "pct") if m.unit == "pct" else m.unit  # type: ignore[assignment]
    return out


def names(answer: Answer, lang: str) -> dict[str, str]:
    """Each metric column's heading: its label at the scope it was read (全公司市场费用 / Company spend)."""
    return {c: label(c, s, lang) for c, s in answer.scopes.items() if s != "none"}


def economics_figure(eco: pl.DataFrame, lang: str, company_spend: bool = False) -> go.Figure:
    """Spend and won-deal amount per channel; with ``company_spend`` (the spend read at company scope under an
    owner or region filter) the won-deal amount alone, titled as the selection's."""
    channels = eco["channel"].to_list()
    won = go.Bar(
        name=t("metric.won_amount", lang), x=channels, y=eco["won_amount"].to_list(), marker_color=charts.PALETTE[2]
    )
    spend = go.Bar(name=t("metric.spend", lang), x=channels, y=eco["spend"].to_list(), marker_color=charts.PALETTE[1])
    fig = go.Figure([won] if company_spend else [spend, won])
    fig.update_layout(barmode="group", yaxis_tickprefix="¥", yaxis_tickformat=",.0f", clickmode="event+select")
    title = t("economics.chart_selection" if company_spend else "economics.chart", lang)
    return charts.name_categories(charts.layout(fig, title), "channel", channels, lang)


def _narrow_to_clicked() -> None:
    channel = charts.clicked(st.session_state.get(CHART_KEY))
    if channel:
        filterbar.set_channel(channel)


def economics_section(eco: pl.DataFrame, answer: Answer, filters: Filters, lang: str) -> None:
    """``eco``: the split rows of ``answer``, whose scopes head the columns."""
    if eco.is_empty():
        st.info(t("channels.no_leads", lang))
        return
    heads = names(answer, lang)
    company_spend = answer.scopes.get("spend") == "company"
    charts.show(economics_figure(eco, lang, company_spend), key=CHART_KEY, on_click=_narrow_to_clicked)
    if filters.channel is None:
        st.caption(t("economics.click", lang))
    table(eco, kinds(eco), lang, names=heads)
    st.caption(t("economics.note", lang))
    if answer.unsplit:
        st.caption(t("economics.spend_unsplit", lang))
    export_buttons(rounded(eco), "channel_economics", t("economics.title", lang), filters, lang, names=heads)
