"""Filters pages share."""

from __future__ import annotations

from datetime import date

import streamlit as st

from dashboard.i18n import t


def date_range(lang: str, key: str) -> tuple[date | None, date | None]:
    """An optional period: empty (all time) until the user picks both a start and an end."""
    picked = st.date_input(t("cockpit.date_range", lang), value=[], key=key, width=320)
    if isinstance(picked, tuple) and len(picked) == 2:
        return picked[0], picked[1]
    st.caption(t("cockpit.all_time", lang))
    return None, None
