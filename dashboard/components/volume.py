"""Lead volume per channel over time (``lead_volume``), and the change against the previous period.

The comparison uses the latest period that is over: this month so far against all of last month
would show a fall every month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import charts, fmt, labels
from dashboard.components.export_buttons import export_buttons
from dashboard.components.filterbar import Filters
from dashboard.components.tables import Kind, signed_pct, table
from dashboard.i18n import t

GRAINS: tuple[str, ...] = ("day", "week", "month")
KINDS: dict[str, Kind] = {"leads": "count", "previous_leads": "count", "change_rate": "change"}


def next_period(start: date, grain: str) -> date:
    if grain == "day":
        return start + timedelta(days=1)
    if grain == "week":
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def previous_period(start: date, grain: str) -> date:
    if grain == "day":
        return start - timedelta(days=1)
    if grain == "week":
        return start - timedelta(days=7)
    return date(start.year - (start.month == 1), (start.month - 2) % 12 + 1, 1)


def label(period: date, grain: str, lang: str) -> str:
    return fmt.month(period, lang) if grain == "month" else fmt.day(period, lang)


@dataclass(frozen=True)
class Change:
    period: date
    leads: int
    previous: int
    latest: date  # the newest period in the data (the compared one, or a running one after it)

    @property
    def rate(self) -> float | None:
        return (self.leads - self.previous) / self.previous if self.previous else None


def compared_period(volume: pl.DataFrame, grain: str, through: date) -> Change | None:
    """Total leads of the latest period that ended by ``through`` (exclusive), against the one before."""
    if volume.is_empty():
        return None
    totals = dict(volume.group_by("period").agg(pl.col("leads").sum()).iter_rows())
    periods = sorted(totals)
    over = [p for p in periods if next_period(p, grain) <= through]
    period = over[-1] if over else periods[-1]
    return Change(period, int(totals[period]), int(totals.get(previous_period(period, grain), 0)), periods[-1])


def volume_figure(volume: pl.DataFrame, grain: str, lang: str) -> go.Figure:
    order = volume.group_by("channel").agg(pl.col("leads").sum()).sort("leads", descending=True)["channel"]
    fig = go.Figure()
    for channel in order.to_list():
        rows = volume.filter(pl.col("channel") == channel)
        fig.add_bar(name=labels.value("channel", channel, lang), x=rows["period"].to_list(), y=rows["leads"].to_list())
    fig.update_layout(
        barmode="stack",
        xaxis_title=t(f"grain.{grain}", lang),
        yaxis={"title": t("col.leads", lang), "tickformat": ",d"},
        legend_traceorder="normal",  # biggest channel first, as in the table
    )
    return charts.local_dates(charts.layout(fig, t("volume.chart", lang)), lang, grain)


def volume_section(volume: pl.DataFrame, grain: str, filters: Filters, today: date, lang: str) -> None:
    """Chart, the compared period's total and per-channel change, and the export of every row."""
    through = min(today, filters.end + timedelta(days=1)) if filters.end else today
    change = compared_period(volume, grain, through)
    if change is None:
        st.info(t("channels.no_leads", lang))
        return
    charts.show(volume_figure(volume, grain, lang), key="volume_chart")
    total, breakdown = st.columns([1, 3])
    total.metric(
        t("volume.period_leads", lang, period=label(change.period, grain, lang)),
        fmt.count(change.leads),
        delta=signed_pct(change.rate) if change.rate is not None else None,
        delta_description=t("volume.vs_previous", lang, previous=fmt.count(change.previous)),
    )
    if change.latest != change.period:
        total.caption(t("volume.running", lang, period=label(change.latest, grain, lang)))
    with breakdown:
        rows = volume.filter(pl.col("period") == change.period).drop("period")
        table(rows, KINDS, lang)
    export_buttons(volume, f"lead_volume_{grain}", t("volume.chart", lang), filters, lang, kinds=KINDS)
