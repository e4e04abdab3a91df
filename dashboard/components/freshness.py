"""One line per source: its title, when its current snapshot was published, and its state."""

from __future__ import annotations

import streamlit as st

from dashboard.components import fmt, labels
from dashboard.components.data import settings, source_statuses
from dashboard.i18n import t
from dashboard.ops.status import SourceStatus

_COLOR = {"fresh": "green", "stale": "orange", "quarantined": "red", "never_published": "gray"}


def freshness_line(status: SourceStatus, lang: str, tz: str) -> str:
    state = status.problem or "fresh"
    published = (
        t("fresh.published", lang, when=fmt.local_time(status.published_at, tz, lang))
        if status.published_at
        else t("fresh.not_published", lang)
    )
    name = labels.value("source", status.name, lang)  # its title in Chinese
    return f"**{fmt.md_escape(name)}** · {published} · :{_COLOR[state]}[{t(f'fresh.{state}', lang)}]"


def freshness(lang: str) -> None:
    tz = settings().timezone
    st.subheader(t("fresh.title", lang))
    st.markdown("  \n".join(freshness_line(s, lang, tz) for s in source_statuses()))
