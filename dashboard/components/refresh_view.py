"""The admin page's Refresh tab: each refresh running now, its steps with their rows and times, and the
estimate of what is left. It redraws itself every few seconds, so a refresh started after the page opened
shows up and one that ends goes (the refresh writes what it reads: dashboard/pipeline/progress.py)."""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard.components import fmt, labels
from dashboard.components.data import settings
from dashboard.i18n import CATALOG, t
from dashboard.ops.watchdog import PROGRESS
from dashboard.pipeline import progress
from dashboard.pipeline.progress import RefreshProgress

POLL_SECONDS = 3.0


def refresh_section(lang: str) -> None:
    def tick() -> None:
        with PROGRESS.run():  # a fragment's rerun is a page run of its own for /healthz
            _draw(lang)

    st.fragment(tick, run_every=POLL_SECONDS)()


def _draw(lang: str) -> None:
    runs = progress.running(settings().data_path)
    if not runs:
        st.caption(t("refresh.none", lang))
    units = tuple(t("refresh.units", lang).split("|"))
    for run in runs:
        when = fmt.local_time(run.started_at, settings().timezone, lang)
        elapsed = progress.duration(run.elapsed, units)
        st.markdown(
            t("refresh.running", lang, started=when, pid=run.pid, done=run.done, total=len(run.steps), elapsed=elapsed)
        )
        st.progress(run.done / len(run.steps))
        if run.remaining is None:
            st.caption(t("refresh.no_estimate", lang))
        elif run.remaining < 1:
            st.caption(t("refresh.almost", lang))
        else:
            st.caption(t("refresh.left", lang, left=progress.duration(run.remaining, units)))
        st.dataframe(_steps(run, lang, units), hide_index=True, width="stretch")


def _steps(run: RefreshProgress, lang: str, units: tuple[str, ...]) -> pl.DataFrame:
    words = CATALOG[lang]
    return pl.DataFrame(
        {
            t("refresh.step", lang): [
                labels.value("source", s.source, lang) if s.source else words.get(f"refresh.step.{s.name}", s.label)
                for s in run.steps
            ],
            t("refresh.state", lang): [
                labels.value("status", s.outcome, lang) if s.outcome else t(f"refresh.state.{s.state}", lang)
                for s in run.steps
            ],
            t("refresh.rows", lang): [s.rows for s in run.steps],
            t("refresh.time", lang): [
                "" if s.state == progress.WAITING else progress.duration(s.seconds, units) for s in run.steps
            ],
        },
        schema={
            t("refresh.step", lang): pl.String,
            t("refresh.state", lang): pl.String,
            t("refresh.rows", lang): pl.Int64,
            t("refresh.time", lang): pl.String,
        },
    )
