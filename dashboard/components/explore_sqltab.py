"""Explore's read-only SQL tab: one SELECT over the user's own views (dashboard/query/explore/sql.py checks
it), time- and row-limited; every run and every refusal is audited."""

from __future__ import annotations

import streamlit as st

from dashboard.components import data, fmt
from dashboard.components.signin import client_address
from dashboard.core import audit
from dashboard.i18n import t
from dashboard.query.explore.sql import MAX_ROWS, TIMEOUT_SECONDS, SqlRefused, SqlResult, readable, run_readonly
from dashboard.query.warehouse import relations

_SQL = "_ex_sql"
_LAST = "_ex_sql_result"


def sql_tab(lang: str) -> None:
    who = data.user()
    st.caption(t("explore.sql.rules", lang, rows=f"{MAX_ROWS:,}", seconds=f"{TIMEOUT_SECONDS:g}"))
    tables = readable(who.role)
    with st.expander(t("explore.sql.tables", lang, n=len(tables)), icon=":material/table:"):
        every = relations()
        for name in tables:
            st.markdown(f"**{fmt.md_escape(name)}** — {fmt.md_escape(', '.join(every[name]))}")
    st.text_area(
        t("explore.sql.query", lang),
        key=_SQL,
        height=160,
        max_chars=20_000,
        placeholder="SELECT channel, count(*) AS leads FROM lead_facts GROUP BY channel ORDER BY leads DESC",
    )
    st.button(t("explore.sql.run", lang), icon=":material/play_arrow:", type="primary", on_click=_clicked)
    last = st.session_state.get(_LAST)
    if isinstance(last, str):
        st.error(last)
    elif isinstance(last, SqlResult):
        if last.truncated:
            st.warning(t("explore.sql.truncated", lang, rows=f"{MAX_ROWS:,}"))
        st.caption(t("explore.sql.rows", lang, rows=f"{last.frame.height:,}"))
        st.dataframe(last.frame, hide_index=True, width="stretch", placeholder=fmt.NONE)


def _clicked() -> None:
    st.session_state[_LAST] = _run(st.session_state.get(_SQL) or "")


def _run(sql: str) -> SqlResult | str:
    """The result, or the refusal's message; both are audited with the query's text."""
    who, cfg = data.user(), data.settings()
    try:
        result = run_readonly(data.warehouse(), sql, who)
    except SqlRefused as e:
        audit.record(
            cfg,
            "query",
            who.username,
            who.role,
            client_address(),
            target="explore_sql",
            sql=sql[:2000],
            refused=e.message,
        )
        return e.message
    audit.record(
        cfg,
        "query",
        who.username,
        who.role,
        client_address(),
        target="explore_sql",
        rows=result.frame.height,
        sql=sql[:2000],
    )
    return result
