"""The red banner on every page when a source was quarantined, is stale or was never published."""

from __future__ import annotations

import streamlit as st

from dashboard.components import fmt
from dashboard.components.data import settings, source_statuses
from dashboard.i18n import t
from dashboard.ops.status import SourceStatus


def reason(status: SourceStatus, lang: str, tz: str) -> str:
    """Why the source needs attention, in one line (the first recorded reason when there is one)."""
    reasons = (status.last_attempt or {}).get("reasons") or []
    if status.problem == "stale":
        return t(
            "banner.stale_reason",
            lang,
            published=fmt.local_time(status.published_at, tz, lang),
            due=fmt.local_time(status.next_due, tz, lang),
        )
    if reasons:
        return str(reasons[0])
    return t("banner.no_attempt", lang)


def banner_text(statuses: list[SourceStatus], lang: str, tz: str) -> str | None:
    """Markdown for the banner, or None when every source is fine."""
    troubled = [s for s in statuses if s.problem]
    if not troubled:
        return None
    if all(s.never_published and not s.last_attempt for s in statuses):
        return t("banner.nothing_loaded", lang, count=len(statuses))
    lines = [t("banner.title", lang)]
    for s in troubled:
        problem = t(f"banner.{s.problem}", lang)
        lines.append(
            f"- **{fmt.md_escape(s.title)}** ({fmt.md_escape(s.name)}) — {problem}: "
            f"{fmt.md_escape(reason(s, lang, tz))}"
        )
    return "\n".join(lines)


def show_banner(lang: str) -> None:
    text = banner_text(source_statuses(), lang, settings().timezone)
    if text:
        st.error(text, icon=":material/warning:")
