"""Big-screen mode (``?kiosk=1``): no sidebar or chrome, light-on-dark numbers legible from three
metres, and everything that changes inside one part that refreshes on a timer without reloading the
page: it follows every publish, a failed refresh shows a note and is retried on the next tick, and
"data as of" says how old each source is, amber once a source is past its schedule.

The style sheet is a constant: no data and no user text ever goes into HTML.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import streamlit as st

from dashboard.components import fmt
from dashboard.components.data import settings, source_statuses
from dashboard.core.errors import CockpitError
from dashboard.core.store import now_utc
from dashboard.i18n import t
from dashboard.ops.watchdog import PROGRESS

PARAM = "kiosk"
CSS = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"],
header[data-testid="stHeader"], [data-testid="stToolbar"], [data-testid="stDecoration"], footer {
  display: none !important;
}
.stApp, [data-testid="stAppViewContainer"], [data-testid="stMain"] { background: #0b0f17; color: #f5f7fa; }
[data-testid="stMainBlockContainer"] { max-width: 100%; padding: 1.2rem 2.5rem 1rem 2.5rem; }
.stApp h1 { color: #ffffff; font-size: 2.6rem; padding: 0 0 0.4rem 0; }
.stApp [data-testid="stMarkdownContainer"] p, .stApp [data-testid="stCaptionContainer"] p {
  font-size: 1.3rem; color: #c9d3df;
}
.stApp [data-testid="stMarkdownContainer"] strong { color: #ffffff; }
[data-testid="stMetric"] {
  background: #151c28; border: 1px solid #2a3342 !important; border-radius: 14px; padding: 1rem 1.4rem;
  min-height: 13.5rem;
}
[data-testid="stMetricLabel"] p { font-size: 1.8rem !important; color: #c9d3df !important; }
[data-testid="stMetricValue"] p {
  font-size: 4.8rem !important; font-weight: 700; color: #ffffff !important; line-height: 1.15;
}
[data-testid="stMetricDelta"] { background: transparent !important; padding-left: 0 !important; }
[data-testid="stMetricDelta"] p, [data-testid="stMetricDeltaDescription"] p {
  font-size: 1.45rem !important; white-space: normal !important;
}
[data-testid="stMetricDelta"] svg { width: 1.45rem; height: 1.45rem; }
[data-testid="stMetricDelta"]:not(:has(svg)) { color: #c9d3df !important; }
[data-testid="stMetricDeltaDescription"] p { color: #9fb0c3 !important; }
[data-testid="stMetric"] [data-testid="stTooltipIcon"] { display: none; }
.stApp [data-testid="stAlert"] p { font-size: 1.3rem; }
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
                when = fmt.local_time(now_utc().isoformat(), settings().timezone)
                st.warning(t("kiosk.retrying", lang, when=when, error=str(e)), icon=":material/sync_problem:")

    st.fragment(tick, run_every=settings().analytics.kiosk_refresh_seconds)()


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
            when = f"{fmt.local_time(s.published_at, tz)} ({age(s.published_at, now, lang)})"
        text = f"**{fmt.md_escape(s.title)}** {fmt.md_escape(when)}"
        color = _STATE_COLOR.get(s.problem or "")
        parts.append(f":{color}[{text}]" if color else text)
    st.markdown(f"{t('kiosk.as_of', lang)} · " + " · ".join(parts))
