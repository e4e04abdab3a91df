"""Multi-touch attribution (``attribution``): the period's won revenue split over channels by five
models side by side, the chosen one in front, and the proof that each model hands out exactly the
won revenue of the period. Filtered by region or owner, the won deals are that region's or owner's leads;
their touches, and so the credits, stay on every channel (the channel and campaign filters do not apply).
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import charts, fmt
from dashboard.components.data import metrics, query, settings
from dashboard.components.export_buttons import export_buttons
from dashboard.components.filterbar import Filters
from dashboard.components.tables import Kind, table
from dashboard.derived.analytics import MODELS
from dashboard.i18n import t
from dashboard.query.metrics import Request

TOLERANCE = 0.5  # yuan: sums of floating-point shares


def model_label(model: str, lang: str) -> str:
    return t(f"model.{model}", lang)


APPLIES = ("period", "region", "owner")  # the filters attribution takes: whose won deals, and when won


def won_deals(filters: Filters) -> tuple[pl.DataFrame, float]:
    """The attribution rows of the won deals the filters pick (won in the period, of the region and owner), and
    their won revenue by win date as the semantic layer reads it: what every model must hand out."""
    whose = {"region": filters.region, "owner": filters.owner}
    att = query("attribution", {**filters.period(), **whose})
    won = metrics(Request.of(["won_amount_by_win_date"], filters=whose, start=filters.start, end=filters.end))
    return att, float(won.frame["won_amount_by_win_date"].sum() or 0)


def model_totals(att: pl.DataFrame) -> dict[str, float]:
    return {m: float(att[m].sum()) for m in MODELS}


def attribution_figure(att: pl.DataFrame, chosen: str, lang: str) -> go.Figure:
    channels = att["channel"].to_list()
    fig = go.Figure(
        [
            go.Bar(
                name=model_label(m, lang),
                x=channels,
                y=att[m].to_list(),
                marker_color=charts.PALETTE[i],
                opacity=1.0 if m == chosen else 0.35,
            )
            for i, m in enumerate(MODELS)
        ]
    )
    fig.update_layout(barmode="group")
    fig.update_yaxes(**fmt.axis("money"))
    fig = charts.layout(fig, t("attribution.chart", lang, model=model_label(chosen, lang)))
    return charts.name_categories(fig, "channel", channels, lang)


def shown_table(att: pl.DataFrame, lang: str) -> tuple[pl.DataFrame, dict[str, Kind]]:
    """The table as the page shows it and its export writes it: each model under its name, in whole yuan."""
    return att.rename({m: model_label(m, lang) for m in MODELS}), {model_label(m, lang): "money" for m in MODELS}


def sums_line(totals: dict[str, float], won_revenue: float, lang: str) -> tuple[bool, str]:
    """Whether every model totals the won revenue, and the line that says so."""
    parts = " · ".join(f"{model_label(m, lang)} {fmt.money(v)}" for m, v in totals.items())
    ok = all(abs(v - won_revenue) <= TOLERANCE for v in totals.values())
    key = "attribution.sums_ok" if ok else "attribution.sums_off"
    return ok, t(key, lang, total=fmt.money(won_revenue), parts=parts)


def attribution_section(att: pl.DataFrame, won_revenue: float, chosen: str, filters: Filters, lang: str) -> None:
    """``won_revenue``: the won deals' revenue in the period by won date, from another query."""
    if att.is_empty():
        st.info(t("attribution.none", lang))
        return
    att = att.sort(chosen, "channel", descending=[True, False])
    charts.show(attribution_figure(att, chosen, lang), key="attribution_chart")
    shown, kinds = shown_table(att, lang)
    table(shown, kinds, lang)
    ok, line = sums_line(model_totals(att), won_revenue, lang)
    (st.caption if ok else st.warning)(line)
    st.caption(t("attribution.note", lang, half_life=f"{settings().analytics.attribution_half_life_days:g}"))
    export_buttons(shown, "attribution", t("attribution.title", lang), filters, lang, APPLIES, kinds)
