"""KPI tiles: the few big numbers a manager reads first (their totals: dashboard.derived.analytics.channel_totals)."""

from __future__ import annotations

import streamlit as st

from dashboard.components import fmt
from dashboard.derived.analytics import ChannelTotals, channel_totals
from dashboard.i18n import t

__all__ = ["ChannelTotals", "channel_totals", "kpi_row"]


def kpi_row(totals: ChannelTotals, lang: str) -> None:
    leads, conversion, revenue, roi = st.columns(4)
    leads.metric(t("kpi.leads", lang), fmt.count(totals.leads))
    conversion.metric(
        t("kpi.conversion", lang),
        fmt.pct(totals.conversion),
        help=t("kpi.conversion.help", lang, won=fmt.count(totals.won), leads=fmt.count(totals.leads)),
    )
    revenue.metric(t("kpi.revenue", lang), fmt.money(totals.revenue), help=t("kpi.revenue.help", lang))
    roi.metric(
        t("kpi.roi", lang),
        fmt.pct(totals.roi, digits=0),
        help=t("kpi.roi.help" if totals.cost else "kpi.roi.no_spend", lang),
    )
