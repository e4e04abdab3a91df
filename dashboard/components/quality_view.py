"""The data-quality page's sections other than the heatmap and the quarantine review: health scores,
trends across retained snapshots, validation history, freshness, cross-source consistency, Data Docs.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import polars as pl
import streamlit as st

from dashboard.components import fmt, labels
from dashboard.components.data import query, settings, source_statuses
from dashboard.components.quality_heatmap import METRICS, PLACES, field_label
from dashboard.components.tables import headers
from dashboard.core.store import Store
from dashboard.i18n import heading, t
from dashboard.pipeline.data_docs import site_dir, site_status

ALL = "(all)"
HEALTH_PLACES = 1  # the decimals of a health score's parts (completeness, validity, conformance)
# symbols the page's fonts draw (DejaVu, Noto CJK): an emoji is an empty box on a machine without an emoji font
# (Debian's chromium on a wall screen, CI)
_STATUS_ICON = {"published": "✓", "quarantined": "✗", "published_anyway": "⚠", "discarded": "⊘"}


def health_tiles(lang: str) -> None:
    health = query("data_health")
    if health.is_empty():
        return
    overall = health.filter(pl.col("source_system") == ALL)
    sources = health.filter(pl.col("source_system") != ALL)
    cols = st.columns(min(len(sources) + 1, 6))
    if overall.height:
        cols[0].metric(t("dq.health.overall", lang), score(overall["health_score"][0]))
    for i, r in enumerate(sources.iter_rows(named=True), 1):
        name = labels.value("source", r["source_system"], lang)
        cols[i % len(cols)].metric(name, score(r["health_score"]), help=_health_help(r, lang))
    st.caption(t("dq.health.formula", lang))


def score(x: float | None) -> str:
    """A health score out of 100, whole points (the cockpit's tile writes it so too)."""
    return fmt.number(x, "number", 0)


def _health_help(r: dict[str, Any], lang: str) -> str:
    parts = {k: fmt.number(r[k], "pct", HEALTH_PLACES) for k in ("completeness", "validity", "conformance")}
    return t("dq.health.parts", lang, **parts)


def snapshot_labels(at: pl.Series, lang: str, tz: str | None = None) -> list[str]:
    """Each snapshot's time as the company reads it (in ``tz``), to the minute, or to the second where two
    snapshots share a minute (a refresh and the one right after it)."""
    aware = isinstance(at.dtype, pl.Datetime) and at.dtype.time_zone is not None
    local = at.dt.convert_time_zone(tz).dt.replace_time_zone(None) if tz and aware else at
    times = local.to_list()
    minutes = [fmt.day_time(x, lang) for x in times]
    if len(set(minutes)) < len(set(times)):
        return [f"{m}:{x.second:02d}" for m, x in zip(minutes, times, strict=True)]
    return minutes


def trend_figure(trend: pl.DataFrame, metric: str, lang: str, tz: str | None = None) -> go.Figure:
    """One line per field across the retained snapshots; the snapshots are the x axis's categories, oldest first
    (a time axis stretches one snapshot, or two a few seconds apart, to milliseconds)."""
    value = METRICS[metric][0]
    fig = go.Figure()
    data = trend.filter(pl.col("provided") & pl.col(value).is_not_null()).sort("snapshot_at", maintain_order=True)
    data = data.with_columns(snapshot=pl.Series(snapshot_labels(data["snapshot_at"], lang, tz), dtype=pl.String))
    for (entity, column), part in data.group_by(["entity", "column_name"], maintain_order=True):
        fig.add_trace(
            go.Scatter(
                x=part["snapshot"].to_list(),
                y=part[value].to_list(),
                mode="lines+markers",
                name=field_label(f"{entity}.{column}", lang),
            )
        )
    order = data["snapshot"].unique(maintain_order=True).to_list()
    fig.update_layout(
        yaxis={**fmt.axis("pct", PLACES[metric]), "range": [0, 1.05], "title": t(f"dq.metric.{metric}", lang)},
        xaxis={"title": t("dq.trend.snapshot", lang), "type": "category", "categoryarray": order},
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        height=420,
    )
    return fig


def trend_section(lang: str) -> None:
    sources = query("quality_heatmap")["source_system"].unique().sort().to_list()
    if not sources:
        st.info(t("dq.heatmap.empty", lang))
        return
    left, right = st.columns(2)
    source = left.selectbox(
        t("dq.cell.source", lang), sources, key="dq_trend_source", format_func=lambda s: _all(s, lang)
    )
    metric = right.radio(
        t("dq.metric", lang),
        list(METRICS),
        format_func=lambda m: t(f"dq.metric.{m}", lang),
        horizontal=True,
        key="dq_trend_metric",
    )
    trend = query("quality_trend", {"source": source})
    snapshots = trend["snapshot_id"].n_unique()
    help_key = "dq.trend.help.one" if snapshots == 1 else "dq.trend.help"
    st.caption(t(help_key, lang, count=snapshots, retention=settings().retention))
    st.plotly_chart(trend_figure(trend, metric, lang, settings().timezone), width="stretch", key="dq_trend_chart")


def history_section(lang: str) -> None:
    runs = query("validation_history")
    if runs.is_empty():
        st.info(t("dq.history.empty", lang))
        return
    sources = [ALL, *runs["source_system"].unique().sort().to_list()]
    source = st.selectbox(
        t("dq.cell.source", lang), sources, key="dq_history_source", format_func=lambda s: _all(s, lang)
    )
    chosen = None if source == ALL else source
    shown = runs if chosen is None else runs.filter(pl.col("source_system") == chosen)
    shown = shown.with_columns(
        status=pl.col("status").replace_strict(_STATUS_ICON, default="") + " " + labels.expr("status", "status", lang)
    ).pipe(labels.frame, lang)
    shown = in_local_time(shown)
    st.dataframe(
        shown,
        hide_index=True,
        placeholder="—",
        width="stretch",
        column_config=headers(shown.columns, lang, _history_columns(lang)),
    )
    failed = query("expectation_results", {"source": chosen, "failed_only": 1}).drop("success")
    st.markdown(f"**{t('dq.history.failed', lang)}**")
    if failed.is_empty():
        st.caption(t("dq.history.none_failed", lang))
    else:
        failed = in_local_time(labels.frame(failed, lang))
        config = headers(failed.columns, lang, _failure_columns(lang))
        st.dataframe(failed, hide_index=True, placeholder="—", width="stretch", column_config=config)


def in_local_time(frame: pl.DataFrame) -> pl.DataFrame:
    """Its times as the company reads them, in its time zone (as Freshness and the trend write them); the
    runs' table keeps UTC."""
    aware = [c for c, d in frame.schema.items() if isinstance(d, pl.Datetime) and d.time_zone]
    local = pl.col(aware).dt.convert_time_zone(settings().timezone).dt.replace_time_zone(None)
    return frame.with_columns(local) if aware else frame


def _all(source: str, lang: str) -> str:
    return t("dq.all_sources", lang) if source == ALL else labels.value("source", source, lang)


def _history_columns(lang: str) -> dict[str, Any]:
    c = st.column_config
    return {
        "finished_at": c.DatetimeColumn(t("dq.col.finished_at", lang), format=fmt.DATETIME_COLUMN[lang]),
        "status": c.TextColumn(t("dq.col.status", lang)),
        "rows": c.NumberColumn(t("dq.col.rows", lang), format=fmt.column_format("count")),
        "rejected_rows": c.NumberColumn(t("dq.col.rejected_rows", lang), format=fmt.column_format("count")),
        "failed_blocking": c.NumberColumn(t("dq.col.failed_blocking", lang)),
        "reason": c.TextColumn(t("dq.col.reason", lang), width="large"),
        "reviewed_at": c.DatetimeColumn(t("dq.col.reviewed_at", lang), format=fmt.DATETIME_COLUMN[lang]),
    }


def _failure_columns(lang: str) -> dict[str, Any]:
    c = st.column_config
    return {
        "finished_at": c.DatetimeColumn(t("dq.col.finished_at", lang), format=fmt.DATETIME_COLUMN[lang]),
        "column_name": c.TextColumn(t("dq.col.column", lang)),
        "unexpected_count": c.NumberColumn(t("dq.col.failing_rows", lang), format=fmt.column_format("count")),
        # GX gives percentage points; written as the import gate writes a failing share (gate_text: 1 decimal)
        "unexpected_percent": c.NumberColumn(t("dq.col.failing_percent", lang), format=fmt.percent_column(1)),
        "samples": c.ListColumn(t("dq.col.samples", lang)),
    }


def freshness_section(lang: str) -> None:
    """Each source's last successful refresh against its schedule; stale ones in red."""
    tz = settings().timezone
    header = [t(f"dq.fresh.{k}", lang) for k in ("source", "schedule", "published", "due", "state")]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for s in source_statuses():
        state = s.problem or "fresh"
        color = {"fresh": "green", "stale": "red", "quarantined": "orange", "never_published": "gray"}[state]
        cells = [
            f"**{fmt.md_escape(labels.value('source', s.name, lang))}**",
            fmt.cron(s.schedule, lang),
            fmt.local_time(s.published_at, tz, lang),
            fmt.local_time(s.next_due, tz, lang),
            f":{color}[{t(f'fresh.{state}', lang)}]",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    st.markdown("\n".join(lines))
    st.caption(t("dq.fresh.help", lang, minutes=settings().quality.stale_grace_minutes))


def consistency_section(lang: str) -> None:
    summary = query("identity_consistency")
    cols = st.columns(max(summary.height, 1))
    for col, r in zip(cols, summary.iter_rows(named=True), strict=False):
        col.metric(
            t(f"dq.consistency.{r['field']}", lang),
            fmt.count(r["conflicting"]),
            help=t("dq.consistency.of", lang, total=fmt.count(r["compared"]), rate=fmt.pct(r["conflict_rate"])),
        )
    st.caption(t("dq.consistency.help", lang))
    field = st.selectbox(
        t("dq.consistency.field", lang), [ALL, "phone", "email", "name"], key="dq_conflict_field",
        format_func=lambda f: t("dq.all_fields", lang) if f == ALL else t(f"dq.consistency.{f}", lang),
    )  # fmt: skip
    examples = query(
        "identity_conflicts", {"field": None if field == ALL else field, "conflicts_only": 1, "limit": 100}
    )
    if examples.is_empty():
        st.caption(t("dq.consistency.none", lang))
    else:
        examples = labels.frame(examples, lang).with_columns(
            field=pl.col("field").replace({f: heading(f, lang) for f in ("phone", "email", "name")}),
            examples=pl.Series([_by_source(e, lang) for e in examples["examples"].to_list()], dtype=pl.List(pl.String)),
        )
        config = headers(examples.columns, lang, {"examples": st.column_config.ListColumn(heading("examples", lang))})
        st.dataframe(examples, hide_index=True, placeholder="—", width="stretch", column_config=config)


def _by_source(examples: list[str] | None, lang: str) -> list[str]:
    """identity_consistency's examples ("source: masked value") with each source by its name."""
    out = []
    for example in examples or []:
        source, sep, shown = example.partition(": ")
        out.append(f"{labels.value('source', source, lang)}: {shown}" if sep else example)
    return out


def data_docs_section(lang: str) -> None:
    store = Store(settings().data_path)
    status = site_status(store)
    index = site_dir(store) / "index.html"
    if status is None:
        st.info(t("dq.docs.none", lang))
        return
    if status.get("error"):
        st.warning(t("dq.docs.failed", lang, error=status["error"]))
        return
    built = fmt.local_time(status.get("built_at"), settings().timezone, lang)
    st.markdown(t("dq.docs.built", lang, when=built, count=len(status.get("suites") or [])))
    st.markdown(f"[{t('dq.docs.open', lang)}]({index.resolve().as_uri()})  \n`{index.resolve()}`")
    st.caption(t("dq.docs.help", lang))
    st.download_button(
        t("dq.docs.download", lang), data=lambda: _zip(site_dir(store)), file_name="data_docs.zip",
        mime="application/zip", on_click="ignore", key="dq_docs_zip",
    )  # fmt: skip


def _zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()
