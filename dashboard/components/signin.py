"""Who is using this browser session: the sign-in form (local accounts or single sign-on), the signed
session token checked on every run, sign-out, and the "sign-in is off" warning of ``--no-auth``.

The verified user is put where the data layer's accessor finds it (components/data.py); pages never
look at roles themselves.
"""

from __future__ import annotations

import streamlit as st

from dashboard.access import auth
from dashboard.components.data import set_user, settings
from dashboard.core import audit
from dashboard.core.config import NO_AUTH_ENV, env
from dashboard.i18n import t
from dashboard.query.security import Principal

TOKEN_KEY = "auth_token"
NOTICE_KEY = "auth_notice"
ANONYMOUS = Principal("anonymous", "admin")


def auth_disabled() -> bool:
    return env(NO_AUTH_ENV) == "1"


def client_address() -> str | None:
    try:
        address = st.context.ip_address
    except Exception:  # no browser connection (bare mode)
        return None
    return address if isinstance(address, str) else None  # AppTest has no client


def _sso_configured() -> bool:
    try:
        return bool(st.secrets.get("auth"))
    except Exception:  # no secrets file at all
        return False


def _record(action: str, user: str | None, role: str | None, **detail: object) -> None:
    audit.record(settings(), action, user, role, client_address(), **detail)  # type: ignore[arg-type]


def _sign_in_form(lang: str) -> None:
    st.title(t("auth.title", lang))
    notice = st.session_state.pop(NOTICE_KEY, None)
    if notice:
        st.warning(notice)
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
    client = client_address()
    try:
        account = auth.sign_in(settings(), username.strip(), password, client)
    except auth.AuthError as e:
        _record("sign_in_failed", username.strip()[:64] or None, None, reason=e.message)
        st.error(t("auth.locked", lang, seconds=int(e.retry_after) + 1) if e.retry_after else t("auth.wrong", lang))
        return
    st.session_state[TOKEN_KEY] = auth.issue_session(settings(), account, account.principal)
    _record("sign_in", account.username, account.role, method="password")
    st.rerun()


def _from_sso(lang: str) -> Principal | None:
    if not (_sso_configured() and st.user.is_logged_in):
        return None
    principal = auth.sso_principal(settings(), st.user.to_dict())
    if principal is None:
        _record("sign_in_failed", str(st.user.get("email") or "") or None, None, reason="no role for this identity")
        st.error(t("auth.sso_no_role", lang))
        st.button(t("auth.sign_out", lang), on_click=st.logout)
        st.stop()
    assert principal is not None
    st.session_state[TOKEN_KEY] = auth.issue_session(settings(), None, principal)
    _record("sign_in", principal.username, principal.role, method="sso")
    return principal


def current_user(lang: str) -> Principal | None:
    """The verified user of this session, or None after drawing the sign-in form."""
    if auth_disabled():
        set_user(ANONYMOUS)
        return ANONYMOUS
    set_user(None)
    principal: Principal | None = None
    token = st.session_state.get(TOKEN_KEY)
    if isinstance(token, str):
        try:
            principal, renewed = auth.check_session(settings(), token)
            st.session_state[TOKEN_KEY] = renewed
        except auth.SessionError as e:
            del st.session_state[TOKEN_KEY]
            st.session_state[NOTICE_KEY] = e.message
            _record("session_rejected", None, None, reason=e.message)
    if principal is None:
        principal = _from_sso(lang)
    if principal is None:
        _sign_in_form(lang)
        return None
    set_user(principal)
    return principal


def _sign_out(principal: Principal) -> None:
    _record("sign_out", principal.username, principal.role)
    st.session_state.pop(TOKEN_KEY, None)
    if _sso_configured() and st.user.is_logged_in:
        st.logout()


def user_box(principal: Principal, lang: str) -> None:
    """The sidebar's signed-in line and sign-out button; the --no-auth warning instead when it is off."""
    if auth_disabled():
        st.warning(t("auth.disabled", lang), icon=":material/lock_open:")
        return
    st.sidebar.caption(t("auth.signed_in", lang, user=principal.username, role=t(f"role.{principal.role}", lang)))
    st.sidebar.button(t("auth.sign_out", lang), on_click=_sign_out, args=(principal,), key="sign_out")
