"""管理 Admin: local accounts and the audit log (admins only; app.py refuses the page to other roles)."""

import streamlit as st

from dashboard.components import admin_view
from dashboard.components.frame import start_page
from dashboard.i18n import t

LANG = start_page("admin", without_data=None)
users, log = st.tabs([t("admin.users", LANG), t("admin.audit", LANG)])
with users:
    admin_view.users_section(LANG)
with log:
    admin_view.audit_section(LANG)
