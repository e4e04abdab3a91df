"""驾驶舱 Cockpit: a few big numbers for managers (new leads, conversion, revenue, ROI, receivables
overdue, data health, the sales leaderboard), leads and won deals per channel, and each source's
freshness. ``?kiosk=1`` is the big-screen mode: dark, no chrome, refreshing on a timer.
"""

import streamlit as st

from dashboard.components import data, kiosk
from dashboard.components.channels import channel_chart, channel_table, rounded, rows
from dashboard.components.export_buttons import export_buttons
from dashboard.components.filterbar import current, filter_bar, shown_only
from dashboard.components.frame import no_data_hint, start_page
from dashboard.components.freshness import freshness
from dashboard.components.kpi import split_request, totals
from dashboard.components.leaderboard import KINDS as BOARD
from dashboard.components.leaderboard import leaderboard, named
from dashboard.components.tables import table
from dashboard.components.tiles import (
    at_risk_tile,
    has_query,
    health_tile,
    kpi_tiles,
    money_format,
    new_leads_tiles,
    receivables_tile,
    show,
    today,
)
from dashboard.i18n import t

KIOSK = kiosk.active()
LANG = start_page("cockpit", without_data=None if KIOSK else "note")  # the wall checks on every tick
if KIOSK:
    kiosk.style()
MONEY = money_format(LANG, compact=KIOSK)
# the semantic layer's metrics (dashboard/metrics.toml): the tiles, and the channel table's columns
TILES = ("leads", "conversion_rate", "won_amount", "roi")
BOARD_ROWS = 5  # the leaderboard's table shows this many rows before it scrolls
BY_CHANNEL = ("leads", "won_deals", "conversion_rate", "won_amount", "spend", "roi", "cost_per_lead")


def tiles() -> None:
    as_of = today(data.settings().timezone)
    split = data.metrics(split_request(BY_CHANNEL, FILTERS))
    summary = rows(split)
    board = data.query("sales_leaderboard", FILTERS.period())
    new_leads = new_leads_tiles(data.query("new_leads", {"as_of": as_of}), LANG)
    kpis = kpi_tiles(totals(split, TILES, FILTERS), TILES, LANG, compact=KIOSK) if summary["leads"].sum() else []
    status = [receivables_tile(data.query("receivables_overdue", {"as_of": as_of}), LANG, MONEY)]
    health = data.query_if_allowed("data_health") if has_query("data_health") else None
    if health is not None:  # sales do not read the data-quality tables
        status.append(health_tile(health, LANG))
    card = data.query_if_allowed("churn_model_card") if has_query("churn_model_card") else None
    if card is not None and (at_risk := at_risk_tile(data.query("churn_bands"), card, LANG, MONEY)):
        status.append(at_risk)  # churn warnings: only once their scores passed a backtest
    if KIOSK:  # one screen: tiles, then the leads trend, the funnel and the leaderboard
        kiosk.screen([*new_leads, *kpis, *status], board, FILTERS, as_of, LANG)
    else:
        for group in (new_leads, kpis, status):
            show(group, per_row=max(len(group), 3))
    if not kpis:
        st.info(t("cockpit.no_leads", LANG))
    if KIOSK:
        kiosk.data_as_of(LANG)
        return
    leaderboard(board, LANG, KIOSK)
    if board.height:  # no won deal: the line above says so, no empty table under it
        # a board of a few reps (a sales user's own) at its own height, not above rows of nothing
        table(named(board, LANG), BOARD, LANG, height=240 if board.height > BOARD_ROWS else "auto")
        board_title = t("tiles.leaderboard_title", LANG)
        export_buttons(board, "sales_leaderboard", board_title, FILTERS, LANG, ("period",), BOARD)
    if summary["leads"].sum():
        st.subheader(t("cockpit.by_channel", LANG))
        channel_chart(summary, LANG)
        channel_table(summary, LANG)
        export_buttons(rounded(summary), "channel_summary", t("cockpit.by_channel", LANG), FILTERS, LANG, ("period",))


def wall() -> None:
    """The big screen: all of it inside the part that refreshes, so it follows every publish."""
    if data.has_data():
        tiles()
    else:
        no_data_hint(LANG)
        freshness(LANG)


if KIOSK:
    FILTERS = shown_only(current(), ("period",))  # the wall draws no filter bar: a period in its URL at most
    kiosk.live(wall, LANG)
else:
    if data.has_data():
        FILTERS = filter_bar(LANG, {}, fields=("period",))
        tiles()
    freshness(LANG)
