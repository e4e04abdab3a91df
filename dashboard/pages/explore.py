"""自助分析 Explore: pick a model, dimensions, measures and filters; the answer as a chart and a
sortable table with totals, pivoted if asked; saved per user, shared by URL, compared with an earlier
snapshot, exported with the view on top; and a read-only SQL tab over the user's own views."""

import streamlit as st

from dashboard.components.explore_builder import builder, remember, saved_views
from dashboard.components.explore_result import compare_section, model_missing, result_section
from dashboard.components.explore_sqltab import sql_tab
from dashboard.components.frame import start_page
from dashboard.components.guard import user_errors
from dashboard.i18n import t

LANG = start_page("explore")

build, sql = st.tabs([t("explore.tab.build", LANG), t("explore.tab.sql", LANG)])
with build, user_errors():
    spec = builder(LANG)
    if not model_missing(spec, LANG):
        spec = result_section(spec, LANG)
        remember(spec)
        with st.expander(t("explore.compare", LANG), icon=":material/compare_arrows:"):
            compare_section(spec, LANG)
        st.subheader(t("explore.save.title", LANG))
        saved_views(spec, LANG)
with sql, user_errors():
    sql_tab(LANG)
