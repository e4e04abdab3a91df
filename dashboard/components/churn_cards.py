"""The churn warning list on every screen: on a phone or a tablet one card per customer, read top to bottom
with nothing to scroll sideways (the grid's ten columns do not fit a narrow screen, so under ``NARROW_PX``
the page shows these cards and hides the grid: both are drawn, the screen's width decides by CSS, which the
server cannot see); and the grid drawn afresh after a language switch. Names, companies and reasons are
data: shown as escaped text, never as HTML."""

from __future__ import annotations

from typing import Any

import polars as pl
import streamlit as st

from dashboard.components import fmt, labels
from dashboard.components.signin import auth_disabled
from dashboard.i18n import t, units_kept

PROFILE_PAGE = "pages/customer_360.py"  # ?customer=<customer_key>
GRID_KEY = "churn_grid"  # the container around the grid (its CSS class: st-key-churn_grid)
CARDS_KEY = "churn_cards"
NARROW_PX = 900  # a 768 px tablet shows cards; the grid needs a laptop's width
CARDS_SHOWN = 20  # cards drawn at first; each "more" adds as many
_SHOWN_KEY = "_churn_cards_shown"
_DRAWN_IN = "_churn_grid_lang"  # the language this tab's page last drew the grid in
RELOAD = "<script>window.location.reload()</script>"
REASONS = ("reason_1", "reason_2", "reason_3")
# A constant: which of the two the screen's width shows.
STYLE = f"""<style>
@media (max-width: {NARROW_PX}px) {{ .st-key-{GRID_KEY} {{ display: none !important; }} }}
@media (min-width: {NARROW_PX + 1}px) {{ .st-key-{CARDS_KEY} {{ display: none !important; }} }}
</style>"""


def measured_afresh(lang: str) -> None:
    """Reload the page when this tab drew the grid in the other language before, so it is drawn in a fresh
    browser page. The grid (glide-data-grid) decides whether a cell's text needs wrapping from an average
    letter width it learns once per browser page and never forgets: after Chinese reasons it takes a long
    English line for one that fits and cuts it at the cell's edge, until a reload. The signed-in user's
    language survives the reload (it is saved for them); with sign-in off it would not, so no reload."""
    drawn = st.session_state.get(_DRAWN_IN)
    if drawn is not None and drawn != lang and not auth_disabled():
        st.session_state.pop(_DRAWN_IN)
        st.html(RELOAD, unsafe_allow_javascript=True, width=1)
        st.stop()
    st.session_state[_DRAWN_IN] = lang


def narrow_or_wide() -> None:
    """The style that shows the grid on a wide screen and the cards on a narrow one."""
    st.html(STYLE)


def _card(n: int, row: dict[str, Any], separator: str, lang: str) -> None:
    key = str(row["customer_key"])
    name = str(row["name"] or key)
    with st.container(border=True, key=f"churn_card_{n}"):  # a tap on the name opens the profile in this tab
        label = fmt.md_escape(f"{row['rank']} · {name}")
        st.page_link(PROFILE_PAGE, label=label, icon=":material/person_search:", query_params={"customer": key})
        place = [str(row[c]) for c in ("company", "owner") if row[c]]
        if row["region"]:
            place.append(labels.value("region", row["region"], lang))
        if place:
            st.caption(fmt.md_escape(" · ".join(place)))
        st.markdown(
            t(
                "churn.cards.line",
                lang,
                band=fmt.md_escape(labels.value("risk_band", row["risk_band"], lang)),
                risk=fmt.pct(row["risk"]),
                value=fmt.money(row["expected_value_at_risk"]),
            )
        )
        reasons = [units_kept(str(row[c])) for c in REASONS if row[c]]
        if reasons:
            st.markdown(fmt.md_escape(separator.join(reasons)))


def cards(frame: pl.DataFrame, lang: str) -> None:
    """The warning list's first rows as cards, in the grid's order, and a button for more."""
    shown = min(int(st.session_state.get(_SHOWN_KEY, CARDS_SHOWN)), frame.height)
    separator = t("churn.reasons.separator", lang)
    with st.container(key=CARDS_KEY):
        for n, row in enumerate(frame.head(shown).iter_rows(named=True), start=1):
            _card(n, row, separator, lang)
        if shown < frame.height:
            st.caption(t("churn.cards.shown", lang, shown=fmt.count(shown), listed=fmt.count(frame.height)))
            st.button(
                t("churn.cards.more", lang, n=fmt.count(min(CARDS_SHOWN, frame.height - shown))),
                on_click=_more,
                args=(shown,),
                key="churn_cards_more",
            )


def _more(shown: int) -> None:
    st.session_state[_SHOWN_KEY] = shown + CARDS_SHOWN
