"""KPI tiles: the few big numbers a manager reads first."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
import streamlit as st

from dashboard.components import fmt
from dashboard.i18n import t


@dataclass(frozen=True)
class ChannelTotals:
    leads: int
    won: int
    revenue: float
    spend_revenue: float  # revenue of the channels that have spend (ROI's numerator side)
    cost: float | None  # None: no channel had spend

    @property
    def conversion(self) -> float | None:
        return self.won / self.leads if self.leads else None

    @property
    def roi(self) -> float | None:
        return (self.spend_revenue - self.cost) / self.cost if self.cost else None


def channel_totals(summary: pl.DataFrame) -> ChannelTotals:
    """Totals over the rows of ``channel_summary``; ROI only counts channels with spend."""
    spent = summary.filter(pl.col("cost").is_not_null() & (pl.col("cost") > 0))
    return ChannelTotals(
        leads=int(summary["leads"].sum()),
        won=int(summary["won"].sum()),
        revenue=float(summary["revenue"].sum()),
        spend_revenue=float(spent["revenue"].sum()),
        cost=float(spent["cost"].sum()) if spent.height else None,
    )


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
