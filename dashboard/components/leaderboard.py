"""The sales leaderboard (``sales_leaderboard``): the top owners by won-deal amount by win date (the
semantic layer's ``won_amount_by_win_date``, labelled so) as bars; won deals nobody owns are counted in a
line below, not ranked.
"""

from __future__ import annotations

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import charts, fmt
from dashboard.components.tables import Kind
from dashboard.components.tiles import money_format
from dashboard.i18n import t

UNASSIGNED = "(unassigned)"  # the query's owner for won leads nobody owns
TOP = 10
KIOSK_HEIGHT = 700  # beside the tiles on a 1080p screen
DEALS, AMOUNT = "won_deals_by_win_date", "won_amount_by_win_date"  # the query's columns: the layer's metrics
KINDS: dict[str, Kind] = {DEALS: "count", AMOUNT: "money"}


def named(board: pl.DataFrame, lang: str) -> pl.DataFrame:
    """The board as shown: the reps in their rank, then won deals nobody owns, not ranked, under "无负责人" /
    "Unassigned" (the export keeps the query's)."""
    last = board.sort(pl.col("owner") == UNASSIGNED, maintain_order=True)
    return last.with_columns(pl.col("owner").replace(UNASSIGNED, t("tiles.nobody", lang)))


def leaderboard_figure(board: pl.DataFrame, lang: str, kiosk: bool) -> go.Figure:
    top = board.filter(pl.col("owner") != UNASSIGNED).head(TOP)
    money = money_format(lang, compact=kiosk)
    text = [
        f"{money(r)} · {t('tiles.deals.one', lang) if d == 1 else t('tiles.deals', lang, deals=fmt.count(d))}"
        for r, d in zip(top[AMOUNT], top[DEALS], strict=True)
    ]
    fig = go.Figure(
        go.Bar(
            x=top[AMOUNT].to_list(),
            y=top["owner"].to_list(),
            orientation="h",
            text=text,
            textposition="auto",
            marker_color=charts.PALETTE[2],
            hovertemplate="%{y}: ¥%{x:,.0f}<extra></extra>",
        )
    )
    fig.update_layout(yaxis_autorange="reversed", xaxis_tickprefix="¥", xaxis_tickformat=",.0f")
    if kiosk:  # the bars carry their figures; axis ticks are too small to read from afar
        fig.update_xaxes(showticklabels=False, showgrid=False)
        # from each bar's start, so a figure longer than its bar runs on to its right (the wall draws every
        # figure at one size, charts.show), never back over the names
        fig.update_traces(textposition="inside", insidetextanchor="start")
    height = KIOSK_HEIGHT if kiosk else 70 + 30 * max(top.height, 3)
    return charts.layout(fig, t("tiles.leaderboard", lang, top=TOP), kiosk=kiosk, height=height)


def leaderboard(board: pl.DataFrame, lang: str, kiosk: bool) -> None:
    if board.filter(pl.col("owner") != UNASSIGNED).is_empty():
        st.info(t("tiles.no_won", lang))
    else:
        charts.show(leaderboard_figure(board, lang, kiosk), key="leaderboard_chart", kiosk=kiosk)
    nobody = board.filter(pl.col("owner") == UNASSIGNED)
    if nobody.height:
        row = nobody.row(0, named=True)
        revenue = money_format(lang, compact=kiosk)(row[AMOUNT])
        st.caption(t("tiles.unassigned", lang, deals=fmt.count(row[DEALS]), revenue=revenue))
