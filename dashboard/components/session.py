"""Per-browser-session UI state: the chosen language (a signed-in user's choice is also kept for them,
see components/signin.py).

The choice lives in a plain session key (``lang``), not in the widget's own state: Streamlit drops a
widget's state on any run that does not draw it, and the language must survive every page change.
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from dashboard.i18n import LANGS, Lang, t

LANG_KEY = "lang"
CHOSEN_KEY = "_lang_chosen"
_WIDGET_KEY = "_lang_switch"
_LABELS = {"zh": "中文", "en": "English"}


def lang() -> Lang:
    value = st.session_state.get(LANG_KEY)
    return value if value in LANGS else "zh"


def chosen() -> bool:
    """Whether the person picked the language in this browser session (not just the default)."""
    return bool(st.session_state.get(CHOSEN_KEY))


def use_language(value: str) -> None:
    """Start at ``value`` (a signed-in user's saved choice) unless the person picked one here."""
    if value in LANGS and not chosen():
        st.session_state[LANG_KEY] = value


def _keep_choice(remember: Callable[[Lang], None] | None) -> None:
    st.session_state[LANG_KEY] = st.session_state[_WIDGET_KEY]
    st.session_state[CHOSEN_KEY] = True
    if remember is not None:
        remember(lang())


def language_switch(default: Lang, remember: Callable[[Lang], None] | None = None) -> Lang:
    """The zh/en switch in the sidebar; starts at the configured language. ``remember`` keeps a signed-in
    user's choice for their next sign-in, reload or tab."""
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
        args=(remember,),
    )
    return lang()
