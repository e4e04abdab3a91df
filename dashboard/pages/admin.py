"""管理 Admin: local accounts, the audit log and personal-data requests (admins only; app.py refuses the page to
other roles)."""

import streamlit as st

from dashboard.components import admin_view, privacy_view, refresh_view
from dashboard.components.frame import start_page
from dashboard.i18n import t

LANG = start_page("admin", without_data=None)
users, log, personal, running = st.tabs(
    [t("admin.users", LANG), t("admin.audit", LANG), t("admin.privacy", LANG), t("admin.refresh", LANG)]
)
with users:
    admin_view.users_section(LANG)
with log:
    admin_view.audit_section(LANG)
with personal:
    privacy_view.privacy_section(LANG)
with running:
    refresh_view.refresh_section(LANG)
