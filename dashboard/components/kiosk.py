"""Big-screen mode (``?kiosk=1``): no sidebar or chrome, light-on-dark numbers legible from three
metres, tiles that refresh on a timer without reloading the page, and "data as of" per source.

The style sheet is a constant: no data and no user text ever goes into HTML.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard.components import fmt
from dashboard.components.data import settings, source_statuses
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


def live(body: Callable[[], None], kiosk: bool) -> None:
    """Run ``body``; in kiosk mode as a fragment that reruns on the configured interval."""
    if kiosk:

        def tick() -> None:
            with PROGRESS.run():  # a fragment's rerun is a page run of its own for /healthz
                body()

        st.fragment(tick, run_every=settings().analytics.kiosk_refresh_seconds)()
    else:
        body()


def data_as_of(lang: str) -> None:
    """One line: when each source's current snapshot was published."""
    tz = settings().timezone
    parts = [
        f"**{fmt.md_escape(s.title)}** {fmt.local_time(s.published_at, tz) if s.published_at else fmt.NONE}"
        for s in source_statuses()
    ]
    st.markdown(f"{t('kiosk.as_of', lang)} · " + " · ".join(parts))
