"""数据资产目录 Catalog: every system, table and field with its owner, classification, personal-data
flag, description and live profile, the lineage from source to page, and the Excel export."""

import streamlit as st

from dashboard.components import catalog_view, consent_view, data
from dashboard.components.frame import start_page
from dashboard.i18n import t

LANG = start_page("catalog", without_data="note")
st.caption(t("cat.intro", LANG))

INVENTORY = catalog_view.inventory()
catalog_view.export_button(INVENTORY, LANG)
systems, fields, lineage = st.tabs([t(f"cat.tab.{k}", LANG) for k in ("systems", "fields", "lineage")])
with systems:
    catalog_view.systems_section(INVENTORY, LANG)
    consent_view.counts_section(data.query("consent_counts"), LANG)
with fields:
    catalog_view.fields_section(INVENTORY, LANG)
with lineage:
    catalog_view.lineage_section(INVENTORY, LANG)
