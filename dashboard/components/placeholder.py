"""A page that is not built yet says so, and what it will show; it never shows made-up data."""

from __future__ import annotations

import streamlit as st

from dashboard.components.session import lang
from dashboard.i18n import t


def not_built(page: str) -> None:
    current = lang()
    st.title(t(f"page.{page}", current))
    st.info(f"{t('page.not_built', current)} {t(f'page.{page}.plan', current)}")
