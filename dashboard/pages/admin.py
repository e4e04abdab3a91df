"""管理 Admin: local accounts and the audit log (admins only; app.py refuses the page to other roles)."""

import streamlit as st

from dashboard.components import admin_view
from dashboard.components.frame import ensure_frame
from dashboard.components.session import lang
from dashboard.i18n import t

ensure_frame()
LANG = lang()
st.title(t("page.admin", LANG))
users, log = st.tabs([t("admin.users", LANG), t("admin.audit", LANG)])
with users:
    admin_view.users_section(LANG)
with log:
    admin_view.audit_section(LANG)
