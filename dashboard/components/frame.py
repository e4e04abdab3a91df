"""How every page starts: inside app.py's frame (navigation, language switch, banner), its title in
the reader's language, and the how-to-load hint when nothing has been published yet.

Streamlit still has its legacy mode for a ``pages/`` folder next to the entry script: until
``st.navigation`` has run once in the process (a deep link right after the server starts, and every
run in AppTest), it runs the page file alone. A page that finds itself in that mode turns it off and
reruns, so app.py draws the page. Internal API, pinned with streamlit==1.67.0.
"""

from __future__ import annotations

import json
from typing import Literal

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from dashboard.components import data
from dashboard.components.session import lang
from dashboard.i18n import Lang, sentences, t

# Every page's own style, a constant (no data, no user text). On a phone, no chart toolbar: Plotly draws
# it over the chart's top right corner, on the legend or a title, and a finger pinches to zoom instead.
# Up to a tablet's width a period's two dates a little smaller, so both fit their field (768 px: 9 px over).
# A tile's number is sized to its tile (container units: "¥324,717,952" fits four tiles a row at 768 px)
# and its label and second line wrap, as does a badge's text (a profile's source names): Streamlit would
# cut each with "…".
PAGE_CSS = """<style>
@media (max-width: 640px) { .modebar-container { display: none !important; } }
@media (max-width: 1024px) { [data-testid="stDateInputFieldsScroller"] { font-size: 0.9em; } }
[data-testid="stMetric"] { container-type: inline-size; }
[data-testid="stMetric"] .stMarkdownEllipsis { overflow: visible !important; text-overflow: clip !important; }
[data-testid="stMetricLabel"] *, [data-testid="stMetricDelta"] *, [data-testid="stMetricDeltaDescription"],
[data-testid="stMetricDeltaDescription"] * { white-space: normal !important; overflow: visible !important; }
[data-testid="stMetricValue"] p { font-size: min(2.25rem, 13cqw); }
.stMarkdownBadge { white-space: normal !important; overflow: visible !important; text-overflow: clip !important; }
</style>"""


# An empty date field shows its parts' placeholders, which Streamlit writes in English whatever the page's
# language (yyyy-mm-dd: its date field is fixed to en-US): each part's own text is hidden and the page's
# word drawn in its place (年-月-日), at the field's size (smaller up to a tablet's width, as above).
DATE_PARTS_CSS = """<style>
[data-testid="stDateInputField"] [role="spinbutton"][data-placeholder="true"] { font-size: 0 !important; }
[data-testid="stDateInputField"] [role="spinbutton"][data-placeholder="true"]::after { font-size: 0.875rem; }
@media (max-width: 1024px) {
  [data-testid="stDateInputField"] [role="spinbutton"][data-placeholder="true"]::after { font-size: 0.7875rem; }
}
PARTS</style>"""


def page_style() -> None:
    st.html(PAGE_CSS)


# A period's calendar offers Streamlit's quick ranges (Date range, Select..., Past Week, Past Month, ...) whenever
# its earliest date is over two years back, as an open period's is; it writes them in English only, so a Chinese
# page goes without them (its two dates are picked on the calendar or typed; the URL's period is untouched).
ENGLISH_ONLY_CSS = '[data-testid="stDateInputQuickSelect"] { display: none !important; }\n'


def date_parts(lang: Lang) -> None:
    """An empty date field's year, month and day placeholders in ``lang`` (our own words, no user text), and no
    quick ranges in a language Streamlit does not write them in."""
    parts = "".join(
        f'[data-testid="stDateInputField"] [role="spinbutton"][data-placeholder="true"][data-type="{part}"]::after'
        f" {{ content: {json.dumps(t(f'date.part.{part}', lang), ensure_ascii=False)}; }}\n"
        for part in ("year", "month", "day")
    )
    st.html(DATE_PARTS_CSS.replace("PARTS", parts + (ENGLISH_ONLY_CSS if lang != "en" else "")))


def ensure_frame() -> None:
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def no_data_hint(lang: Lang) -> None:
    st.info(sentences([t("cockpit.no_data", lang), t("cockpit.how_to_load", lang)], lang), icon=":material/upload:")


def start_page(page: str, without_data: Literal["stop", "note"] | None = "stop") -> Lang:
    """A page's first lines; returns the reader's language. With nothing published, ``without_data``
    decides: "stop" shows the hint and ends the page there, "note" shows it and goes on, None says nothing
    (the page needs no data)."""
    ensure_frame()
    language = lang()
    st.title(t(f"page.{page}", language))
    if without_data is not None and not data.has_data():
        no_data_hint(language)
        if without_data == "stop":
            st.stop()
    return language
