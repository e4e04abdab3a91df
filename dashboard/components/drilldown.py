"""One channel up close: its campaigns (``campaign_summary``) and the leads behind them
(``channel_leads``, phones already masked by the query).
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import charts, fmt, labels
from dashboard.components.export_buttons import export_buttons
from dashboard.components.filterbar import Filters
from dashboard.components.funnel import stage_labels
from dashboard.components.tables import Kind, table
from dashboard.i18n import t

LEADS_LIMIT = 500
# the tables' number columns: shown at these precisions and exported rounded to them
CAMPAIGN_KINDS: dict[str, Kind] = {
    "leads": "count", "won_deals": "count", "won_amount": "money", "cost": "money", "roi": "roi",
}  # fmt: skip
# the query's won deals and their amount are the layer's won_deals and won_amount (leads created in the
# period) split by campaign: headed by those metrics' labels, one term on every page
AS_METRICS = {"won": "won_deals", "revenue": "won_amount"}
LEAD_KINDS: dict[str, Kind] = {"created_at": "datetime", "won_amount": "money"}


def campaign_names(frame: pl.DataFrame, lang: str) -> pl.DataFrame:
    """Leads without a campaign are grouped under a name that says so (the value dictionary's, as in Explore),
    not an empty cell."""
    return frame.with_columns(labels.expr("campaign", "campaign", lang))


def campaign_figure(campaigns: pl.DataFrame, lang: str) -> go.Figure:
    names = campaigns["campaign"].to_list()
    fig = go.Figure(
        [
            go.Bar(name=t("col.cost", lang), y=names, x=campaigns["cost"].to_list(), orientation="h"),
            go.Bar(name=t("metric.won_amount", lang), y=names, x=campaigns["won_amount"].to_list(), orientation="h"),
        ]
    )
    fig.update_layout(barmode="group", yaxis_autorange="reversed")
    fig.update_xaxes(**fmt.axis("money"))
    fig.update_traces(marker_color=charts.PALETTE[1], selector={"name": t("col.cost", lang)})
    fig.update_traces(marker_color=charts.PALETTE[2], selector={"name": t("metric.won_amount", lang)})
    height = 120 + 28 * max(len(names), 3)
    return charts.layout(fig, t("drill.campaign_chart", lang), height=height)


def drilldown(campaigns: pl.DataFrame, leads: pl.DataFrame, total_leads: int, filters: Filters, lang: str) -> None:
    """``total_leads``: how many leads the filters select (the leads table shows the newest only)."""
    campaigns = campaign_names(campaigns, lang).rename(AS_METRICS, strict=False)
    st.markdown(f"**{t('drill.campaigns', lang, channel=labels.value('channel', filters.channel, lang))}**")
    if campaigns.is_empty():
        st.info(t("channels.no_leads", lang))
    else:
        charts.show(campaign_figure(campaigns, lang), key="campaign_chart")
        table(campaigns.drop("channel"), CAMPAIGN_KINDS, lang)
        export_buttons(campaigns, "campaigns", t("drill.campaigns_title", lang), filters, lang, kinds=CAMPAIGN_KINDS)
    if leads.is_empty():  # said once, not over an empty table
        if not campaigns.is_empty():
            st.info(t("channels.no_leads", lang))
        return
    st.markdown(f"**{t('drill.leads', lang, shown=fmt.count(leads.height), total=fmt.count(total_leads))}**")
    shown = campaign_names(leads, lang).with_columns(stage_labels("furthest_stage", lang))
    if "consent" in shown.columns:  # marketing consent by its name: Consented, No consent, Consent unknown
        shown = shown.with_columns(labels.expr("consent", "consent", lang))
    table(shown.drop("channel"), LEAD_KINDS, lang, height=420)
    st.caption(t("drill.masked", lang))
    export_buttons(shown, "leads", t("drill.leads_title", lang), filters, lang, kinds=LEAD_KINDS)
