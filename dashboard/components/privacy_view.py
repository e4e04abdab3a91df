"""The admin page's Privacy tab: what retention would remove, the recent privacy requests, and erasing a
person (admins only; the role is checked again here, and the erasure is audited by dashboard/ops/privacy)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard.components.admin_view import audit_table, names
from dashboard.components.data import settings, user
from dashboard.components.signin import client_address
from dashboard.components.tables import table
from dashboard.core import audit
from dashboard.core.errors import CockpitError
from dashboard.i18n import t
from dashboard.ops import privacy
from dashboard.pipeline.review import Who

_DONE_KEY = "_privacy_done"
_ACTIONS = ("privacy_forget", "privacy_export", "privacy_retention")


def _require_admin() -> None:
    if user().role != "admin":
        raise CockpitError("only an admin handles personal-data requests")


def privacy_section(lang: str) -> None:
    _require_admin()
    done = st.session_state.pop(_DONE_KEY, None)
    if done:
        (st.success if done[0] == "ok" else st.error)(done[1])
    st.subheader(t("privacy.retention", lang))
    if not settings().privacy.retention:
        st.caption(t("privacy.no_retention", lang))
    elif st.toggle(t("privacy.preview", lang), key="privacy_preview"):  # reads every snapshot kept: only when asked
        preview = privacy.retention_preview(settings())
        st.caption(t("privacy.would_go", lang, count=int(preview["expired"].sum()) if preview.height else 0))
        where = pl.col("where").replace(names("privacy.where", lang))  # the current snapshot, older ones, ...
        table(preview.with_columns(where), {"files": "count", "rows": "count", "expired": "count"}, lang)
    st.subheader(t("privacy.recent", lang))
    events = [audit.read(settings(), action=a, limit=50) for a in _ACTIONS]
    audit_table(pl.concat(events).sort("at", descending=True).head(50), lang)
    st.subheader(t("privacy.forget", lang))
    with st.form("privacy_forget", clear_on_submit=True):
        st.selectbox(
            t("privacy.kind", lang),
            privacy.KINDS,
            format_func=lambda k: t(f"privacy.kind.{k}", lang),
            key="privacy_kind",
        )
        st.text_input(t("privacy.value", lang), max_chars=200, key="privacy_value")
        st.text_input(t("privacy.reason", lang), max_chars=500, key="privacy_reason")
        st.form_submit_button(t("privacy.forget_button", lang), type="primary", on_click=_forget, args=(lang,))


def _forget(lang: str) -> None:
    """The form's callback: runs before the page is drawn again, so the page shows the outcome."""
    _require_admin()
    who = user()
    state = st.session_state
    try:
        ident = privacy.parse_identifier(state["privacy_kind"], state.get("privacy_value") or "")
        proof = privacy.forget(
            settings(), ident, state.get("privacy_reason") or "", Who(who.username, who.role, client_address())
        )
    except CockpitError as e:
        state[_DONE_KEY] = ("error", e.message)
    else:
        message = t("privacy.done", lang, files=len(proof.changes), rows=proof.rows, person=proof.pseudonym)
        state[_DONE_KEY] = ("ok", message)
