"""Quarantine review on the data-quality page: each rejected snapshot still on disk, why it failed,
its row counts against the current snapshot, and (when the config allows it) "publish anyway" and
"discard", each needing a reason and recorded with who and when. "Publish anyway" is queued as a
background job (ops/jobs.py): its derived build runs in a process of its own, never in this page's
callback, and the page shows the job's latest step until its outcome, polling in a fragment.
"""

from __future__ import annotations

import polars as pl
import streamlit as st

from dashboard.components import fmt
from dashboard.components.data import query, settings, user
from dashboard.components.signin import client_address
from dashboard.core import audit
from dashboard.core.config import find_config
from dashboard.core.errors import CockpitError
from dashboard.i18n import t
from dashboard.ops import jobs
from dashboard.pipeline.review import Quarantined, Who, discard, list_quarantined

_DONE_KEY = "_dq_review_done"
_MINE_KEY = "_dq_review_jobs"  # the publish jobs this session queued: their outcome is shown here once
POLL_SECONDS = 2.0


def row_counts(q: Quarantined) -> pl.DataFrame:
    """Per entity: rows in the quarantined snapshot, in the current one, and the change."""
    entities = list(dict.fromkeys([*q.rows, *q.current_rows]))
    return pl.DataFrame(
        {
            "entity": entities,
            "quarantined": [q.rows.get(e) for e in entities],
            "current": [q.current_rows.get(e) for e in entities],
        },
        schema={"entity": pl.String, "quarantined": pl.Int64, "current": pl.Int64},
    ).with_columns(change=pl.col("quarantined") - pl.col("current"))


def review_section(lang: str) -> None:
    done = st.session_state.pop(_DONE_KEY, None)
    if done:
        {"success": st.success, "warning": st.warning, "error": st.error}[done[0]](done[1])
    _jobs(lang)
    waiting = list_quarantined(settings())  # not cached: the folder is the truth, and changes with a refresh
    if not waiting:
        st.info(t("dq.review.none", lang))
    else:
        labels = {f"{q.source} · {q.snapshot_id}": q for q in waiting}
        q = labels[st.selectbox(t("dq.review.pick", lang), list(labels), key="dq_review_pick")]
        _one(q, lang)
    _audit_log(lang)


def _one(q: Quarantined, lang: str) -> None:
    tz = settings().timezone
    st.warning(t("dq.review.status", lang, source=q.source, when=fmt.local_time(q.finished_at, tz, lang)))
    failed = query("expectation_results", {"source": q.source, "snapshot_id": q.snapshot_id, "failed_only": 1})
    if failed.is_empty():
        st.markdown("\n".join(f"- {fmt.md_escape(r)}" for r in q.reasons) or fmt.NONE)
    else:
        cols = [
            "suite",
            "expectation",
            "column_name",
            "blocking",
            "unexpected_count",
            "unexpected_percent",
            "observed",
            "samples",
        ]
        st.dataframe(failed.select(cols), hide_index=True, placeholder="—", width="stretch")
    way = q.way_forward_zh if lang == "zh" and q.way_forward_zh else q.way_forward
    if way:  # the one-off publish command and the cockpit.toml setting, with the numbers filled in
        st.code("\n".join(way), language=None)
    st.markdown(f"**{t('dq.review.rows', lang, current=q.current_snapshot or fmt.NONE)}**")
    st.dataframe(row_counts(q), hide_index=True, placeholder="—")
    if not settings().quality.allow_quarantine_actions:
        st.caption(t("dq.review.disabled", lang))
        return
    if user().role != "admin":
        st.caption(t("dq.review.admin_only", lang))
        return
    st.text_input(t("dq.review.reason", lang), key=f"dq_reason_{q.snapshot_id}")
    left, right = st.columns(2)
    args = (q.source, q.snapshot_id, lang)
    left.button(
        t("dq.review.publish", lang),
        key="dq_publish",
        disabled=not q.has_data,
        type="primary",
        on_click=_act,
        args=("publish", *args),
    )
    right.button(t("dq.review.discard", lang), key="dq_discard", on_click=_act, args=("discard", *args))


def _act(action: str, source: str, snapshot_id: str, lang: str) -> None:
    """The buttons' callback: runs before the page is drawn again, so the page shows the new state.
    Publishing is only queued here; discarding (a folder removed) is done at once."""
    reason = str(st.session_state.get(f"dq_reason_{snapshot_id}") or "")
    if not reason.strip():
        st.session_state[_DONE_KEY] = ("warning", t("dq.review.need_reason", lang))
        return
    who = user()
    if who.role != "admin":  # the buttons are drawn for admins only; a forged callback is still refused
        st.session_state[_DONE_KEY] = ("error", t("dq.review.admin_only", lang))
        return
    decider = Who(who.username, who.role, client_address())
    try:
        if action == "publish":
            job = jobs.queue_publish(settings(), find_config(), source, snapshot_id, reason, decider)
            mine = st.session_state.get(_MINE_KEY, [])
            st.session_state[_MINE_KEY] = [*(n for n in mine if n != job.name), job.name]  # a retry: once
            return  # the job's progress is drawn by _jobs
        busy = jobs.active_job(settings(), source, snapshot_id)
        if busy is not None:  # its publish is under way: let it finish (or fail) first
            raise jobs.JobBusy(busy)
        discard(settings(), source, snapshot_id, reason, decider)
    except jobs.JobBusy as err:
        st.session_state[_DONE_KEY] = ("warning", _job_text("dq.review.job_busy", err.job, lang))
        return
    except CockpitError as err:
        st.session_state[_DONE_KEY] = ("error", err.message)
        return
    st.session_state[_DONE_KEY] = ("success", t("dq.review.discarded", lang, source=source, snapshot=snapshot_id))


def _job_text(key: str, job: jobs.Job, lang: str, **more: str) -> str:
    when = fmt.local_time(job.queued_at, settings().timezone, lang)
    return t(key, lang, source=job.source, snapshot=job.snapshot_id, who=job.user, when=when, **more)


def _jobs(lang: str) -> None:
    """The outcome of the jobs this session queued (once), and every publish still queued or running."""
    found = jobs.list_jobs(settings())
    mine = st.session_state.get(_MINE_KEY, [])
    for job in found:
        if job.name in mine and not job.active:
            mine.remove(job.name)
            if job.state == jobs.PUBLISHED:
                st.success(t("dq.review.published", lang, source=job.source, snapshot=job.snapshot_id))
            else:
                st.error(_job_text("dq.review.job_failed", job, lang, error=job.error or "?"))
    running = tuple(job.name for job in found if job.active)
    if running:
        _live(running, lang)


@st.fragment(run_every=POLL_SECONDS)
def _live(names: tuple[str, ...], lang: str) -> None:
    """Polls the running jobs' status files; when one ends, the whole page is drawn again (new manifest)."""
    current = {job.name: job for job in jobs.list_jobs(settings())}
    if any(name not in current or not current[name].active for name in names):
        st.rerun()
    for name in names:
        job = current[name]
        if job.state == jobs.QUEUED or not job.step:
            st.info(_job_text("dq.review.job_queued", job, lang))
        else:
            st.info(_job_text("dq.review.job_running", job, lang, step=job.step))


def _audit_log(lang: str) -> None:
    entries = audit.decisions(settings())
    if entries:
        st.markdown(f"**{t('dq.review.log', lang)}**")
        cols = ["at", "who", "action", "source", "snapshot_id", "reason"]
        st.dataframe(pl.DataFrame(entries[::-1]).select(cols), hide_index=True, placeholder="—", width="stretch")
