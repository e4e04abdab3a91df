"""数据质量 Data quality: health scores, the field heatmap, trends, validation history, quarantine
review, freshness, cross-source consistency and the Great Expectations Data Docs."""

import streamlit as st

from dashboard.components import quality_view
from dashboard.components.frame import start_page
from dashboard.components.quality_heatmap import heatmap_section
from dashboard.components.quarantine_review import review_section
from dashboard.i18n import t

LANG = start_page("data_quality", without_data="note")

quality_view.health_tiles(LANG)
TABS = ("heatmap", "trend", "history", "review", "freshness", "consistency", "docs")
heatmap, trend, history, review, freshness, consistency, docs = st.tabs([t(f"dq.tab.{k}", LANG) for k in TABS])
with heatmap:
    heatmap_section(LANG)
with trend:
    quality_view.trend_section(LANG)
with history:
    quality_view.history_section(LANG)
with review:
    review_section(LANG)
with freshness:
    quality_view.freshness_section(LANG)
with consistency:
    quality_view.consistency_section(LANG)
with docs:
    quality_view.data_docs_section(LANG)
