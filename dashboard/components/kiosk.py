"""Big-screen mode (``?kiosk=1``): no sidebar or chrome, light-on-dark numbers legible from three
metres, and everything that changes inside one part that refreshes on a timer without reloading the
page: it follows every publish, a failed refresh shows a note and is retried on the next tick, and
"data as of" says how old each source is, amber once a source is past its schedule.

One screen, no scrolling: two rows of tiles, then the 30-day leads trend, the funnel and the sales
leaderboard side by side. A tile's number is sized to its tile (CSS container units), so "¥1,319万" is
never cut off. From 2560 px wide the text is drawn twice as large, and ``&scale=2`` does the same for
the charts: a 4K wall shown at 100 % then shows the 1080p layout. While a tick reruns, the previous
numbers stay fully drawn (Streamlit would fade them as stale).

The style sheet is a constant: no data and no user text ever goes into HTML.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import charts, fmt, labels
from dashboard.components.data import query, settings, source_statuses
from dashboard.components.filterbar import Filters
from dashboard.components.funnel import OVERALL, funnel_figure
from dashboard.components.leaderboard import leaderboard
from dashboard.components.tiles import Tile, show
from dashboard.core.errors import CockpitError
from dashboard.core.store import now_utc
from dashboard.i18n import NO_BREAK, t, unbroken
from dashboard.ops.watchdog import PROGRESS

PARAM = "kiosk"
TREND_DAYS = 30
TREND_TICK_DAYS = 7  # a date under every 7th day of the trend
CSS = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
header[data-testid="stHeader"], [data-testid="stToolbar"], [data-testid="stDecoration"], footer {
  display: none !important;
}
@media (min-width: 2560px) { html { font-size: 200%; } }  /* a 4K wall: the 1080p layout, twice as large */
.stApp, [data-testid="stAppViewContainer"], [data-testid="stMain"] { background: #0b0f17; color: #f5f7fa; }
[data-testid="stMainBlockContainer"] { max-width: 100%; padding: 0.8rem 2rem 0.5rem 2rem; }
[data-testid="stElementContainer"][data-stale="true"], [data-stale="true"] { opacity: 1 !important; }
.stApp h1 { color: #ffffff; font-size: 1.9rem; padding: 0; }
.stApp [data-testid="stMarkdownContainer"] p, .stApp [data-testid="stCaptionContainer"] p {
  font-size: 1.05rem; color: #c9d3df;
}
.stApp [data-testid="stMarkdownContainer"] strong { color: #ffffff; }
[data-testid="stColumn"] [data-testid="stMarkdownContainer"] p { font-size: 1.6rem; }  /* chart titles */
[data-testid="stMetric"] {
  container-type: inline-size;
  background: #151c28; border: 1px solid #2a3342 !important; border-radius: 14px; padding: 0.8rem 1.2rem;
  min-height: 9.5rem;
}
[data-testid="stMetric"] .stMarkdownEllipsis { overflow: visible; text-overflow: clip; }
[data-testid="stMetricLabel"] .stMarkdownEllipsis { white-space: normal; }
[data-testid="stMetricLabel"] p { font-size: min(1.6rem, 9cqw) !important; color: #c9d3df !important; }
[data-testid="stMetricValue"] p {
  font-size: min(4.4rem, 19cqw) !important; font-weight: 700; color: #ffffff !important; line-height: 1.15;
}
[data-testid="stMetricDelta"] { background: transparent !important; padding-left: 0 !important; }
[data-testid="stMetricDelta"] p, [data-testid="stMetricDeltaDescription"] p {
  font-size: min(1.2rem, 6.5cqw) !important; white-space: normal !important;
}
[data-testid="stMetricDelta"] svg { width: 1.3rem; height: 1.3rem; }
[data-testid="stMetricDelta"]:not(:has(svg)) { color: #c9d3df !important; }
[data-testid="stMetricDeltaDescription"] p { color: #9fb0c3 !important; }
[data-testid="stMetric"] [data-testid="stTooltipIcon"] { display: none; }
.stApp [data-testid="stAlert"] p { font-size: 1.2rem; }
</style>"""


def active() -> bool:
    return st.query_params.get(PARAM, "").lower() in ("1", "true", "yes")


def style() -> None:
    st.html(CSS)


def live(body: Callable[[], None], lang: str) -> None:
    """``body`` as a fragment that reruns on the configured interval. A tick that fails (a query refused
    while a build swaps in, a file being replaced) shows what failed, inside the fragment, and the next
    tick draws the screen again: nothing outside the fragment can leave an error on the wall."""

    def tick() -> None:
        with PROGRESS.run():  # a fragment's rerun is a page run of its own for /healthz
            try:
                body()
            except (CockpitError, OSError) as e:
                when = fmt.local_time(now_utc().isoformat(), settings().timezone, lang)
                st.warning(t("kiosk.retrying", lang, when=when, error=str(e)), icon=":material/sync_problem:")

    st.fragment(tick, run_every=settings().analytics.kiosk_refresh_seconds)()


def screen(tiles: Sequence[Tile], board: pl.DataFrame, filters: Filters, as_of: date, lang: str) -> None:
    """The wall: the tiles in two rows, then the leads trend, the funnel and the leaderboard side by side."""
    show(tiles, per_row=max(math.ceil(len(tiles) / 2), 3))
    trend, funnel, ranking = st.columns(3, gap="large")
    with trend:
        charts.show(trend_figure(query("lead_volume", trend_params(as_of)), as_of, lang), key="kiosk_trend", kiosk=True)
    with funnel:
        rows = query("funnel", filters.period()).filter(pl.col("channel") == OVERALL).sort("stage_order")
        if rows.height and rows["leads_reached"][0]:  # no leads in the period: the tiles say so
            charts.show(wall_funnel(rows, lang), key="kiosk_funnel", kiosk=True)
    with ranking:
        leaderboard(board, lang, kiosk=True)


def wall_funnel(rows: pl.DataFrame, lang: str) -> go.Figure:
    """The whole company's funnel of the period, in the wall's colours."""
    title = t("funnel.chart", lang, scope=t("funnel.overall", lang))
    return charts.layout(funnel_figure(rows, title, lang), title, kiosk=True)


def trend_params(as_of: date) -> dict[str, object]:
    """``lead_volume`` per day over the last TREND_DAYS days, today included."""
    return {"grain": "day", "start": as_of - timedelta(days=TREND_DAYS - 1), "end": as_of}


def trend_figure(volume: pl.DataFrame, as_of: date, lang: str) -> go.Figure:
    """New leads per day, all channels together; a day without leads is a zero, not a gap."""
    per_day = dict(volume.group_by("period").agg(pl.col("leads").sum()).iter_rows())
    days = [as_of - timedelta(days=n) for n in range(TREND_DAYS - 1, -1, -1)]
    fig = go.Figure(
        go.Scatter(
            x=days,
            y=[int(per_day.get(d, 0)) for d in days],
            mode="lines+markers",
            fill="tozeroy",
            line={"color": charts.PALETTE[0], "width": 4},
            hovertemplate="%{x}: %{y:,}<extra></extra>",
        )
    )
    fig.update_yaxes(tickformat=",d", rangemode="tozero")
    charts.local_dates(charts.layout(fig, t("kiosk.trend", lang, days=TREND_DAYS), kiosk=True), lang)
    # a date each week back from today, so today has its date; none in the first week, where a date would
    # sit on the counts' 0 (the year is plain); room on the right for half of today's date, which Plotly
    # would hide rather than draw past the figure's edge
    ticks = [d for d in days[::-TREND_TICK_DAYS] if (d - days[0]).days >= TREND_TICK_DAYS]
    fig.update_layout(margin_r=round(2.5 * charts.KIOSK_FONT_SIZE))
    return fig.update_xaxes(tickvals=ticks, tickformat="%-m月%-d日" if lang == "zh" else "%b %-d")


def age(published_at: str, now: datetime, lang: str) -> str:
    """How long ago, in the largest whole unit: "3 小时前", "3 h ago"."""
    minutes = max(int((now - datetime.fromisoformat(published_at)).total_seconds() // 60), 0)
    if minutes < 1:
        return t("kiosk.age.now", lang)
    if minutes < 60:
        return t("kiosk.age.minutes", lang, n=minutes)
    if minutes < 48 * 60:
        return t("kiosk.age.hours", lang, n=minutes // 60)
    return t("kiosk.age.days", lang, n=minutes // (24 * 60))


_STATE_COLOR = {"stale": "orange", "quarantined": "red", "never_published": "gray"}


def data_as_of(lang: str) -> None:
    """One line: when each source's current snapshot was published and how long ago; a source past its
    schedule (or quarantined) in amber (red)."""
    tz, now = settings().timezone, now_utc()
    parts = []
    for s in source_statuses():
        when = fmt.NONE
        if s.published_at:
            when = t(
                "kiosk.when", lang, time=fmt.local_time(s.published_at, tz, lang), age=age(s.published_at, now, lang)
            )
        # each source whole: the line breaks between sources, never inside 2026年12月6日 or a name
        name = labels.value("source", s.name, lang)  # as the cockpit's freshness lines name it
        text = f"**{fmt.md_escape(unbroken(name))}**{NO_BREAK}{fmt.md_escape(unbroken(when))}"
        color = _STATE_COLOR.get(s.problem or "")
        parts.append(f":{color}[{text}]" if color else text)
    st.markdown(f"{t('kiosk.as_of', lang)} · " + " · ".join(parts))
