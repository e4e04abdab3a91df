"""Marketing consent (营销同意) on the pages: the catalog's counts per source and overall, and the churn
page's split of its list into the outreach list and the people left out of it for no consent."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard.components import fmt, labels
from dashboard.components.tables import headers
from dashboard.i18n import t

COUNTS = ("customers", "consent_yes", "consent_no", "consent_unknown")


def split(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A list with a ``consent`` column → (whom marketing may reach: yes or unknown, who said no)."""
    if "consent" not in frame.columns:
        return frame, frame.clear()
    no = pl.col("consent") == "no"
    return frame.filter(~no), frame.filter(no)


def counts_section(counts: pl.DataFrame, lang: str) -> None:
    """Customers with consent yes / no / unknown, per source (its records) and overall (golden customers)."""
    st.subheader(t("consent.catalog.title", lang))
    st.caption(t("consent.catalog.caption", lang))
    shown = labels.frame(counts, lang, {"source_system": "source"}).with_columns(
        pl.col("source_system").replace("(all)", t("consent.all", lang))
    )
    config = headers(shown.columns, lang) | {
        c: st.column_config.NumberColumn(t(f"consent.col.{c}", lang), format=fmt.column_format("count")) for c in COUNTS
    }
    st.dataframe(shown, hide_index=True, width="stretch", column_config=config)


def left_out_section(no_consent: pl.DataFrame, lang: str) -> None:
    """The at-risk customers who said no to marketing: named apart, flagged, not in the outreach list."""
    if no_consent.is_empty():
        return
    with st.expander(t("consent.churn.left_out", lang, n=f"{no_consent.height:,}"), icon=":material/block:"):
        st.caption(t("consent.churn.left_out.caption", lang))
        named = ("rank", "company_rank", "name", "company", "owner", "region", "risk_band", "consent")
        cols = [c for c in named if c in no_consent]
        shown = no_consent.select(cols).with_columns(
            labels.expr("consent", "consent", lang), labels.expr("risk_band", "risk_band", lang)
        )
        st.dataframe(shown, hide_index=True, width="stretch", column_config=headers(shown.columns, lang))
