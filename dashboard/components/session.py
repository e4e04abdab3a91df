"""Per-browser-session UI state: the chosen language.

The choice lives in a plain session key (``lang``), not in the widget's own state: Streamlit drops a
widget's state on any run that does not draw it, and the language must survive every page change.
"""

from __future__ import annotations

import streamlit as st

from dashboard.i18n import LANGS, Lang, t

LANG_KEY = "lang"
_WIDGET_KEY = "_lang_switch"
_LABELS = {"zh": "中文", "en": "English"}


def lang() -> Lang:
    value = st.session_state.get(LANG_KEY)
    return value if value in LANGS else "zh"


def _keep_choice() -> None:
    st.session_state[LANG_KEY] = st.session_state[_WIDGET_KEY]


def language_switch(default: Lang) -> Lang:
    """The zh/en switch in the sidebar; starts at the configured language."""
    if st.session_state.get(LANG_KEY) not in LANGS:
        st.session_state[LANG_KEY] = default
    st.session_state[_WIDGET_KEY] = lang()
    st.sidebar.radio(
        t("app.language", lang()),
        LANGS,
        key=_WIDGET_KEY,
        format_func=_LABELS.__getitem__,
        horizontal=True,
        on_change=_keep_choice,
    )
    return lang()
