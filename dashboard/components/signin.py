"""Who is using this browser: the sign-in form (local accounts or single sign-on), the server-side
session checked on every run (this tab's, else the one the browser's cookie names after a reload or in
a new tab), sign-out, the client address, and the "sign-in is off" warning of ``--no-auth``.

A sign-in hands its session to the browser as an HttpOnly cookie: the page posts a one-time ticket to
dashboard/server.py, which sets the cookie (page script never sees it). The verified user is put where
the data layer's accessor finds it (components/data.py); pages never look at roles themselves.
"""

from __future__ import annotations

import json

import streamlit as st

from dashboard.access import auth, sessions
from dashboard.access.sessions import SessionError
from dashboard.components.data import set_user, settings
from dashboard.components.session import chosen, lang, use_language
from dashboard.core import audit
from dashboard.core.config import NO_AUTH_ENV, env
from dashboard.i18n import Lang, t
from dashboard.query.security import Principal

SESSION_KEY = "_session_id"
NOTICE_KEY = "auth_notice"  # why the last session ended (SessionError.reason), shown above the form
_TICKET_KEY = "_cookie_ticket"  # a new session's ticket, posted to the cookie route on the next run
_CLEAR_KEY = "_clear_cookie"  # signed out: the next run clears the browser's cookie
_DEAD_KEY = "_dead_cookie"  # a cookie this browser session already refused (not checked again)
_LANG_FOR = "_lang_for"  # the user whose saved language this browser session took up
ANONYMOUS = Principal("anonymous", "admin")


def auth_disabled() -> bool:
    return env(NO_AUTH_ENV) == "1"


def client_address() -> str | None:
    """The address dashboard/server.py read from the request (the trusted proxy header, else the peer)."""
    try:
        address = sessions.unstamped(st.context.headers.get(sessions.CLIENT_HEADER)) or st.context.ip_address
    except Exception:  # no browser connection (bare mode)
        return None
    return address if isinstance(address, str) and address else None  # AppTest has no client


def _cookie() -> str | None:
    try:
        value = st.context.cookies.get(sessions.COOKIE)
    except Exception:  # no browser connection (bare mode)
        return None
    return value if isinstance(value, str) and value and value != st.session_state.get(_DEAD_KEY) else None


def _sso_configured() -> bool:
    try:
        return bool(st.secrets.get("auth"))
    except Exception:  # no secrets file at all
        return False


def _record(action: str, user: str | None, role: str | None, **detail: object) -> None:
    audit.record(settings(), action, user, role, client_address(), **detail)  # type: ignore[arg-type]


def _browser_script(body: str) -> None:
    """A one-line request to the cookie route, run once by the browser (nothing the user typed is in it)."""
    st.sidebar.html(f"<script>{body}</script>", unsafe_allow_javascript=True, width=1)


def _hand_over(account: auth.Account | None, principal: Principal, method: str) -> None:
    """Start the session in this tab and have the browser keep it (the cookie) for reloads and new tabs."""
    sid = auth.start_session(settings(), account, principal, client_address())
    st.session_state[SESSION_KEY] = sid
    st.session_state[_TICKET_KEY] = sessions.ticket(settings(), sid)
    _record("sign_in", principal.username, principal.role, method=method)
    if chosen():  # picked on the sign-in form: it becomes the user's language
        sessions.remember_language(settings(), principal.username, lang())
        st.session_state[_LANG_FOR] = principal.username


def remember_language(principal: Principal | None, value: Lang) -> None:
    """The language switch's choice, kept for the signed-in user (not for --no-auth's anonymous)."""
    if principal is not None and not auth_disabled():
        sessions.remember_language(settings(), principal.username, value)


def sign_in_form(lang: Lang) -> None:
    st.title(t("auth.title", lang))
    if st.session_state.pop(_CLEAR_KEY, False):
        _browser_script(f'fetch("{sessions.COOKIE_ROUTE}", {{method: "DELETE"}})')
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.warning(t(f"auth.session.{notice}", lang))
    if _sso_configured():
        st.button(t("auth.sso", lang), on_click=st.login, type="primary")
        st.divider()
    accounts = auth.load_accounts(settings())
    if not accounts and not _sso_configured():
        st.error(t("auth.no_accounts", lang))
        return
    with st.form("sign_in"):
        username = st.text_input(t("auth.username", lang), max_chars=64)
        password = st.text_input(t("auth.password", lang), type="password", max_chars=256)
        submitted = st.form_submit_button(t("auth.submit", lang), type="primary")
    if not submitted:
        return
    try:
        account = auth.sign_in(settings(), username.strip(), password, client_address())
    except auth.AuthError as e:
        _record("sign_in_failed", username.strip()[:64] or None, None, reason=e.message)
        st.error(t("auth.locked", lang, seconds=int(e.retry_after) + 1) if e.retry_after else t("auth.wrong", lang))
        return
    _hand_over(account, account.principal, "password")
    st.rerun()  # the same page, with the query parameters the link named


def _from_sso() -> Principal | None:
    if not (_sso_configured() and st.user.is_logged_in):
        return None
    principal = auth.sso_principal(settings(), st.user.to_dict())
    if principal is None:
        _record("sign_in_failed", str(st.user.get("email") or "") or None, None, reason="no role for this identity")
        st.error(t("auth.sso_no_role", lang()))
        st.button(t("auth.sign_out", lang()), on_click=st.logout)
        st.stop()
    assert principal is not None
    _hand_over(None, principal, "sso")
    return principal


def _resume() -> Principal | None:
    """This tab's session, else the one the browser's cookie names; None (and why, for the form) when
    neither is valid."""
    sid = st.session_state.get(SESSION_KEY)
    cookie = _cookie()
    if not isinstance(sid, str) and cookie is None:
        return None
    try:
        if not isinstance(sid, str):
            sid = sessions.session_id(settings(), str(cookie))
        principal = auth.resume_session(settings(), sid)
    except SessionError as e:
        st.session_state.pop(SESSION_KEY, None)
        st.session_state[_DEAD_KEY] = cookie
        st.session_state[NOTICE_KEY] = e.reason
        _record("session_rejected", None, None, reason=e.message)
        return None
    st.session_state[SESSION_KEY] = sid
    return principal


def current_user() -> Principal | None:
    """The verified user of this browser, or None (then the page draws the sign-in form). A user's saved
    language is taken up once per browser session."""
    if auth_disabled():
        set_user(ANONYMOUS)
        return ANONYMOUS
    set_user(None)
    principal = _resume() or _from_sso()
    if principal is None:
        return None
    set_user(principal)
    if st.session_state.get(_LANG_FOR) != principal.username:
        st.session_state[_LANG_FOR] = principal.username
        saved = sessions.language(settings(), principal.username)
        if saved:
            use_language(saved)
    return principal


def keep_in_browser() -> None:
    """After a sign-in, have the browser trade the session's ticket for its cookie. Called once the run
    stays on its page (a switch_page would drop what this run drew)."""
    ticket = st.session_state.pop(_TICKET_KEY, None)
    if ticket:
        _browser_script(f"fetch({json.dumps(sessions.COOKIE_ROUTE)}, {{method: 'POST', body: {json.dumps(ticket)}}})")


def _sign_out(principal: Principal) -> None:
    _record("sign_out", principal.username, principal.role)
    sid = st.session_state.pop(SESSION_KEY, None)
    if isinstance(sid, str):
        sessions.end(settings(), sid)  # every tab of this browser is signed out on its next run
    st.session_state[_DEAD_KEY] = _cookie()
    st.session_state[_CLEAR_KEY] = True
    st.session_state.pop(_LANG_FOR, None)
    if _sso_configured() and st.user.is_logged_in:
        st.logout()


def user_box(principal: Principal, lang: str) -> None:
    """The sidebar's signed-in line and sign-out button; the --no-auth warning instead when it is off."""
    if auth_disabled():
        st.warning(t("auth.disabled", lang), icon=":material/lock_open:")
        return
    st.sidebar.caption(t("auth.signed_in", lang, user=principal.username, role=t(f"role.{principal.role}", lang)))
    st.sidebar.button(t("auth.sign_out", lang), on_click=_sign_out, args=(principal,), key="sign_out")
