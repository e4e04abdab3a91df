"""The admin page's two parts: local accounts (add, reset a password, remove) and the audit log search.

Every action checks the signed-in user's role again here (the page is refused to other roles before
it runs; a forged widget callback still finds no admin) and is recorded in the audit log.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from dashboard.access import auth
from dashboard.components import fmt, labels
from dashboard.components.data import settings, user
from dashboard.components.signin import client_address
from dashboard.components.tables import table
from dashboard.core import audit
from dashboard.core.errors import CockpitError
from dashboard.i18n import CATALOG, t
from dashboard.query.security import ROLES

_DONE_KEY = "_admin_done"


def _require_admin() -> None:
    if user().role != "admin":
        raise CockpitError("only an admin manages users and reads the audit log")


def _show_done() -> None:
    done = st.session_state.pop(_DONE_KEY, None)
    if done:
        (st.success if done[0] == "ok" else st.error)(done[1])


def users_section(lang: str) -> None:
    _require_admin()
    _show_done()
    accounts = auth.load_accounts(settings())
    tz = settings().timezone
    st.dataframe(
        pl.DataFrame(
            {
                t("auth.username", lang): list(accounts),
                t("admin.role", lang): [t(f"role.{a.role}", lang) for a in accounts.values()],
                t("admin.owner", lang): [a.owner or fmt.NONE for a in accounts.values()],
                t("admin.created", lang): [fmt.local_time(a.created_at, tz, lang) for a in accounts.values()],
            },
            schema={t(k, lang): pl.String for k in ("auth.username", "admin.role", "admin.owner", "admin.created")},
        ),
        hide_index=True,
        placeholder="—",
    )
    add, passwd, remove = st.tabs([t("admin.add", lang), t("admin.passwd", lang), t("admin.remove", lang)])
    with add, st.form("admin_add", clear_on_submit=True):
        name = st.text_input(t("auth.username", lang), max_chars=64)
        role = st.selectbox(t("admin.role", lang), ROLES, format_func=lambda r: t(f"role.{r}", lang))
        owner = st.text_input(t("admin.owner", lang), help=t("admin.owner_help", lang))
        password = st.text_input(t("auth.password", lang), type="password")
        if st.form_submit_button(t("admin.add", lang)):
            _act(lang, "user_add", name, lambda: auth.add_user(settings(), name, role, password, owner or None))
    with passwd, st.form("admin_passwd", clear_on_submit=True):
        name = st.selectbox(t("auth.username", lang), list(accounts), key="admin_passwd_user")
        password = st.text_input(t("admin.new_password", lang), type="password")
        if st.form_submit_button(t("admin.passwd", lang)) and name:
            _act(lang, "user_passwd", name, lambda: auth.set_password(settings(), name, password))
    with remove, st.form("admin_remove"):
        name = st.selectbox(t("auth.username", lang), list(accounts), key="admin_remove_user")
        if st.form_submit_button(t("admin.remove", lang), type="primary") and name:
            if name == user().username:
                st.error(t("admin.not_self", lang))
            else:
                _act(lang, "user_remove", name, lambda: auth.remove_user(settings(), name))


def _act(lang: str, action: str, target: str, do: Callable[[], object]) -> None:
    _require_admin()
    who = user()
    try:
        do()
    except CockpitError as e:
        st.session_state[_DONE_KEY] = ("error", e.message)
    else:
        audit.record(settings(), action, who.username, who.role, client_address(), target=target)
        st.session_state[_DONE_KEY] = ("ok", t(f"admin.done.{action}", lang, user=target))
    st.rerun()


def audit_section(lang: str) -> None:
    _require_admin()
    left, mid, right, far = st.columns(4)
    since = left.date_input(t("admin.since", lang), value=dt.date.today() - dt.timedelta(days=7))
    who = mid.text_input(t("admin.user_filter", lang), max_chars=64)
    action = right.selectbox(
        t("admin.action", lang),
        ("", *audit.ACTIONS),
        format_func=lambda a: t(f"audit.action.{a}", lang) if a else t("filter.all", lang),
    )
    text = far.text_input(t("admin.contains", lang), max_chars=200)
    # the day begins at midnight where the company is (the log's times are UTC)
    start = dt.datetime.combine(since, dt.time(), ZoneInfo(settings().timezone)) if isinstance(since, dt.date) else None
    events = audit.read(settings(), since=start, user=who.strip() or None, action=action or None, contains=text or None)
    st.caption(t("admin.events", lang, count=events.height))
    audit_table(events, lang)


def names(prefix: str, lang: str) -> dict[str, str]:
    """The catalogue's ``<prefix>.<code>`` texts by code."""
    return {k.removeprefix(f"{prefix}."): v for k, v in CATALOG[lang].items() if k.startswith(f"{prefix}.")}


def audit_table(events: pl.DataFrame, lang: str) -> None:
    """Audit events as a person reads them: the time in the company's time zone, the action, the role and a
    viewed page by their names, the headings in the language (the log itself keeps the codes)."""
    if events.is_empty():
        st.caption(t("admin.no_events", lang))
        return
    page = pl.col("action").is_in(["page_view", "page_refused"])
    shown = events.select(
        pl.col("at").dt.convert_time_zone(settings().timezone).dt.replace_time_zone(None),
        pl.col("action").replace(names("audit.action", lang)),
        "user",
        pl.col("role").replace(names("role", lang)),
        "client",
        pl.when(page).then(pl.col("target").replace(names("page", lang))).otherwise(pl.col("target")),
        "rows",
        # the details in words, a plain list made outside Polars (no Python callback on the serving path)
        pl.Series("detail", [None if d is None else detail_text(d, lang) for d in events["detail"]], pl.String),
    )
    table(shown, {"rows": "count"}, lang)


def detail_text(detail: str, lang: str) -> str:
    """An event's details as a person reads them (方式：密码；原因：…), not the log's JSON; a key or value this
    page has no name for is shown as it is."""
    try:
        items = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(items, dict):
        return detail
    colon, sep = ("：", "；") if lang == "zh" else (": ", "; ")
    return sep.join(f"{_named('audit.detail', k, lang)}{colon}{_detail_value(k, v, lang)}" for k, v in items.items())


def _named(prefix: str, code: object, lang: str) -> str:
    key = f"{prefix}.{code}"
    return t(key, lang) if key in CATALOG[lang] else str(code)


def _detail_value(key: str, value: object, lang: str) -> str:
    if key == "method":
        return _named("audit.method", value, lang)
    if key == "source":
        return labels.value("source", value, lang)
    if isinstance(value, dict):  # rows removed per entity
        return ", ".join(f"{labels.value('entity', k, lang)} {_detail_value('', v, lang)}" for k, v in value.items())
    if isinstance(value, int) and not isinstance(value, bool):
        return fmt.count(value)
    return str(value)
