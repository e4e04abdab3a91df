"""驾驶舱 Cockpit: the headline KPIs, leads and won deals per channel, and each source's freshness."""

import streamlit as st

from dashboard.components import data
from dashboard.components.channels import channel_chart, channel_table
from dashboard.components.filters import date_range
from dashboard.components.frame import ensure_frame
from dashboard.components.freshness import freshness
from dashboard.components.kpi import channel_totals, kpi_row
from dashboard.components.session import lang
from dashboard.i18n import t

ensure_frame()
LANG = lang()
st.title(t("page.cockpit", LANG))

if not data.has_data():
    st.info(f"{t('cockpit.no_data', LANG)} {t('cockpit.how_to_load', LANG)}", icon=":material/upload:")
else:
    start, end = date_range(LANG, key="cockpit_period")
    summary = data.query("channel_summary", {"start": start, "end": end})
    if summary.is_empty() or not summary["leads"].sum():
        st.info(t("cockpit.no_leads", LANG))
    else:
        kpi_row(channel_totals(summary), LANG)
        st.subheader(t("cockpit.by_channel", LANG))
        channel_chart(summary, LANG)
        channel_table(summary, LANG)

freshness(LANG)
