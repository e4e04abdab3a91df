"""Explore's read-only SQL tab: one SELECT over the user's own views (dashboard/query/explore/sql.py checks
it, dashboard/query/sandbox.py runs it), time-, memory- and row-limited; every run and every refusal is
audited (``run_audited``, the path ``cockpit sql`` takes too)."""

from __future__ import annotations

import streamlit as st

from dashboard.components import data, fmt
from dashboard.components.signin import client_address
from dashboard.i18n import t
from dashboard.query import sandbox
from dashboard.query.explore.sql import MAX_LENGTH, SqlRefused, SqlResult, readable, run_audited
from dashboard.query.names import field_name, view_name
from dashboard.query.warehouse import relations

_SQL = "_ex_sql"
_LAST = "_ex_sql_result"


def sql_tab(lang: str) -> None:
    who, limits = data.user(), data.settings().query
    sandbox.warm(data.settings())  # a worker builds its views now, so the first Run does not wait for one
    rows = f"{limits.sql_max_rows:,}"
    st.caption(t("explore.sql.rules", lang, rows=rows, seconds=f"{limits.sql_timeout_seconds:g}"))
    tables = readable(who.role)
    with st.expander(t("explore.sql.tables", lang, n=len(tables)), icon=":material/table:"):
        every = relations()
        for name in tables:  # the identifiers as a query types them, each with its name in the page's language
            fields = ("、" if lang == "zh" else ", ").join(
                f"`{c}`{_named(field_name(c, lang, name), lang)}" for c in every[name]
            )
            st.markdown(f"**{view_name(name, lang)}** `{name}` — {fields}")
    st.text_area(
        t("explore.sql.query", lang),
        key=_SQL,
        height=160,
        max_chars=MAX_LENGTH,
        placeholder="SELECT channel, count(*) AS leads FROM lead_facts GROUP BY channel ORDER BY leads DESC",
    )
    st.button(t("explore.sql.run", lang), icon=":material/play_arrow:", type="primary", on_click=_clicked)
    last = st.session_state.get(_LAST)
    if isinstance(last, SqlRefused):
        st.error(last.text(lang))
    elif isinstance(last, SqlResult):
        if last.truncated:
            st.warning(t("explore.sql.truncated", lang, rows=rows))
        st.caption(t("explore.sql.rows", lang, rows=f"{last.frame.height:,}"))
        st.dataframe(last.frame, hide_index=True, width="stretch", placeholder=fmt.NONE)


def _named(name: str, lang: str) -> str:
    """A name beside its identifier: 线索编号 in Chinese brackets, (Lead id) in English ones (our words only)."""
    return f"（{name}）" if lang == "zh" else f" ({name})"


def _clicked() -> None:
    st.session_state[_LAST] = _run(st.session_state.get(_SQL) or "")


def _run(sql: str) -> SqlResult | SqlRefused:
    """The result, or the refusal (shown in the page's language); both are audited with the query's text."""
    try:
        return run_audited(data.warehouse(), sql, data.user(), client_address())
    except SqlRefused as e:
        return e
