"""The Streamlit entry point: page config, the language switch, sign-in, the role's navigation, the
warning banner and st.navigation.

Every page is registered (so any URL resolves), but the sidebar lists only the pages the user's role
opens; a page opened by URL that the role does not open is refused and the refusal is audited.
"""

from functools import partial

import streamlit as st

from dashboard.components.banner import show_banner
from dashboard.components.data import default_language, settings
from dashboard.components.frame import date_parts, page_style
from dashboard.components.guard import user_errors
from dashboard.components.session import language_switch
from dashboard.components.signin import (
    client_address,
    current_user,
    keep_in_browser,
    remember_language,
    sign_in_form,
    user_box,
)
from dashboard.core import audit
from dashboard.i18n import Lang, t
from dashboard.ops.watchdog import PROGRESS
from dashboard.query.security import Principal, pages_for

# (file under pages/, icon); the first is the default page.
PAGES: tuple[tuple[str, str], ...] = (
    ("cockpit", ":material/dashboard:"),
    ("channels", ":material/campaign:"),
    ("customer_360", ":material/person_search:"),
    ("churn", ":material/trending_down:"),
    ("data_quality", ":material/fact_check:"),
    ("catalog", ":material/menu_book:"),
    ("explore", ":material/query_stats:"),
    ("admin", ":material/admin_panel_settings:"),
    ("import_source", ":material/upload_file:"),
)
HOME = "home"
_LAST_PAGE = "_last_page"
_AFTER_SIGN_IN = "_after_sign_in"


def _query() -> dict[str, list[str]]:
    return {key: st.query_params.get_all(key) for key in st.query_params}


def _remember_deep_link() -> None:
    """The page and query a link named (…/customer_360?customer=…), opened once the user has signed in
    (the sign-in form's runs call no st.navigation, so the page is read from the URL)."""
    try:
        url = st.context.url
    except Exception:  # no browser connection
        url = None
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] if isinstance(url, str) else ""
    st.session_state[_AFTER_SIGN_IN] = (name if name in dict(PAGES) else HOME, _query())


def _home() -> None:
    """The bare address: app.py sends the user on to their role's first page (run() below)."""


def pages(lang: Lang) -> dict[str, st.Page]:
    """Every page under its own address (…/cockpit), so a bookmark or a reload opens it again; the bare
    address is the home page, which opens none of them (Streamlit serves its default page only there)."""
    every = {name: st.Page(f"pages/{name}.py", title=t(f"page.{name}", lang), icon=icon) for name, icon in PAGES}
    return {HOME: st.Page(_home, title=t(f"page.{PAGES[0][0]}", lang), default=True), **every}


def _audit_view(principal: Principal, action: str, page: str) -> None:
    """One page_view per page change (not per widget rerun); every refusal."""
    if action == "page_view" and st.session_state.get(_LAST_PAGE) == page:
        return
    st.session_state[_LAST_PAGE] = page
    audit.record(settings(), action, principal.username, principal.role, client_address(), target=page)


def run() -> None:
    st.set_page_config(page_icon=":material/dashboard:", layout="wide")
    page_style()
    with user_errors():
        principal = current_user()  # None: the sign-in form, then the page (and query) the URL named
        lang = language_switch(default_language(), partial(remember_language, principal))
        date_parts(lang)
        if principal is None:
            _remember_deep_link()
            sign_in_form(lang)
            return
        every = pages(lang)
        page = st.navigation(list(every.values()), position="hidden")
        wanted = st.session_state.pop(_AFTER_SIGN_IN, None)
        if wanted and (every[wanted[0]].url_path != page.url_path or wanted[1] != _query()):
            st.switch_page(every[wanted[0]], query_params=wanted[1])  # what the link named before sign-in
        allowed = pages_for(principal.role)
        if page.url_path == every[HOME].url_path:
            st.switch_page(every[(*allowed, PAGES[0][0])[0]], query_params=_query())
        keep_in_browser()
        with st.sidebar:
            for name in allowed:
                st.page_link(every[name])
        user_box(principal, lang)
        name = next(n for n, p in every.items() if p.url_path == page.url_path)
        if name not in allowed:
            _audit_view(principal, "page_refused", name)
            st.error(t("auth.refused", lang, page=t(f"page.{name}", lang), role=t(f"role.{principal.role}", lang)))
            return
        _audit_view(principal, "page_view", name)
        show_banner(lang)
        page.run()


with PROGRESS.run():  # counted for /healthz and systemd's watchdog (dashboard/server.py)
    run()
