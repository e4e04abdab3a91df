"""Scheduled reports (定时推送, ``[[reports]]``): a daily / weekly / monthly digest per recipient list.

The cockpit's KPIs for the last complete period against the one before, from the semantic layer's
metrics and the same named queries the cockpit page runs (receivables_overdue, data_health,
sales_leaderboard), one or
two chart images (plotly + kaleido, drawn by the server's Chrome/Chromium; without one the report
says so and goes without images), the period's newest leads, the top churn warnings when the churn
table exists, and any data-quality problems. HTML e-mail plus CSV attachments. Every query runs as the
recipient list's role, so masking and row filters are the warehouse's, as on the dashboard.
"""

from __future__ import annotations

import asyncio
import html
import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.core.config import BROWSER_ENV, ReportConfig, Settings, env
from dashboard.core.errors import AccessDenied, ConfigError
from dashboard.core.store import Store, now_utc
from dashboard.i18n import t
from dashboard.ops.alerts import Unavailable, last_periods, local_today, own_ranks, run_named
from dashboard.ops.export import csv_text
from dashboard.ops.notify import Attachment, Delivery, Image, Message, Sleep, send_to_addresses
from dashboard.ops.status import source_status
from dashboard.query.metrics import Request, ask, label, layer, rounded, value
from dashboard.query.security import Principal
from dashboard.query.warehouse import Warehouse

KPIS = ("leads", "conversion_rate", "won_amount", "roi")  # the semantic layer's metrics, as the cockpit's tiles
BY_CHANNEL = ("leads", "won_deals", "conversion_rate", "won_amount", "spend", "roi", "cost_per_lead")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
HISTORY_FILE = "reports.jsonl"
NONE = "—"


@dataclass(frozen=True)
class Kpi:
    label: str
    value: str
    previous: str
    change: str  # "+12.5%", or "—" when there is nothing to compare with


@dataclass
class Digest:
    report: ReportConfig
    lang: str
    current: tuple[date, date]
    previous: tuple[date, date]
    kpis: list[Kpi]
    channels: pl.DataFrame  # the metrics by channel of the period: the CSV attachment
    leaderboard: pl.DataFrame
    leads: pl.DataFrame
    churn: pl.DataFrame | None
    problems: list[str]
    notes: list[str] = field(default_factory=list)  # e.g. no browser for the charts, churn not built yet
    images: list[Image] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)  # list ("leads", "churn") → people without consent

    @property
    def title(self) -> str:
        return t(
            "report.title",
            self.lang,
            kind=t(f"report.period.{self.report.period}", self.lang),
            span=_span(self.current),
            name=self.report.name,
        )


def _span(p: tuple[date, date]) -> str:
    return p[0].isoformat() if p[0] == p[1] else f"{p[0].isoformat()} – {p[1].isoformat()}"


def _num(x: float | None, kind: str, digits: int = 1) -> str:
    """How a number reads in the report: count 1,234 · money ¥1,234 · pct 12.3% · score 87.5."""
    if x is None:
        return NONE
    if kind == "pct":
        return f"{x * 100:,.{digits}f}%"
    if kind == "money":
        return f"-¥{-x:,.0f}" if x < 0 else f"¥{x:,.0f}"
    return f"{x:,.1f}" if kind == "score" else f"{int(x):,}"


def _change(cur: float | None, prev: float | None) -> str:
    if cur is None or not prev:
        return NONE
    return f"{(cur - prev) / abs(prev) * 100:+.1f}%"


# -- building --------------------------------------------------------------------------------------
def principal(report: ReportConfig) -> Principal:
    return Principal(report.username or f"report:{report.name}", report.role, report.owner)


def find_report(settings: Settings, name: str) -> ReportConfig:
    for r in settings.reports:
        if r.name == name:
            return r
    known = ", ".join(r.name for r in settings.reports) or "none"
    raise ConfigError(f"no report named '{name}' (reports: {known})")


def build(settings: Settings, report: ReportConfig, now: datetime | None = None, charts: bool = True) -> Digest:
    now = now or now_utc()
    lang = report.language or settings.language
    cur, prev = last_periods(report.period, local_today(settings, now))
    wh = Warehouse(settings)
    user = principal(report)

    def q(name: str, params: dict[str, Any] | None = None) -> pl.DataFrame:
        return wh.run_query(name, params or {}, user=user)

    span = {"start": cur[0], "end": cur[1]}
    summary = ask(wh, Request.of(BY_CHANNEL, ["channel"], start=cur[0], end=cur[1]), user).frame
    before = ask(wh, Request.of(BY_CHANNEL, ["channel"], start=prev[0], end=prev[1]), user).frame
    now_t, prev_t = (ask(wh, Request.of(KPIS, start=a, end=b), user) for a, b in (cur, prev))
    kpis = []
    for name in KPIS:
        scope, m = now_t.scopes[name], layer().metric(name)
        if scope == "none":
            continue
        a, b = value(now_t, name), value(prev_t, name)
        show = (_num(a, m.unit, m.precision), _num(b, m.unit, m.precision))
        kpis.append(Kpi(label(name, scope, lang), *show, _change(a, b)))
    overdue = [q("receivables_overdue", {"as_of": d}).row(0, named=True) for d in (cur[1], prev[1])]
    a, b = (o["overdue_amount"] for o in overdue)
    kpis.append(Kpi(t("tiles.overdue", lang), _num(a, "money"), _num(b, "money"), _change(a, b)))
    try:
        health = q("data_health")
    except AccessDenied:  # a sales list's report: they do not read the data-quality tables, as on the cockpit
        health = pl.DataFrame(schema={"source_system": pl.String, "health_score": pl.Float64})
    else:
        overall = health.filter(pl.col("source_system") == "(all)")
        score = overall["health_score"][0] if overall.height else None
        kpis.append(Kpi(t("tiles.health", lang), _num(score, "score"), NONE, NONE))

    digest = Digest(
        report, lang, cur, prev, kpis, rounded(summary),
        leaderboard=q("sales_leaderboard", span).head(5),
        leads=q("channel_leads", {**span, "limit": report.leads}) if report.leads else pl.DataFrame(),
        churn=None,
        problems=quality_problems(settings, health, now),
    )  # fmt: skip
    if report.top_churn:
        try:
            params = {"lang": lang, "limit": report.top_churn} if report.churn_query == "churn_list" else {}
            digest.churn = own_ranks(run_named(wh, report.churn_query, params, user).head(report.top_churn))
        except Unavailable:
            digest.notes.append(t("report.churn_unavailable", lang))
    digest.leads = _without_no_consent(digest, "leads", digest.leads)
    if digest.churn is not None:
        digest.churn = _without_no_consent(digest, "churn", digest.churn)
    if charts and report.charts:
        digest.images, note = chart_images(digest, before)
        digest.notes += [note] if note else []
    return digest


def _without_no_consent(d: Digest, name: str, rows: pl.DataFrame) -> pl.DataFrame:
    """A marketing list leaves out whoever said no to marketing (``consent = 'no'``) and counts them; unknown
    consent stays in. The consent column itself is not sent."""
    if "consent" not in rows.columns:
        return rows
    no = pl.col("consent") == "no"
    d.left_out[name] = int(rows.select(no.sum()).item() or 0)
    return rows.filter(~no).drop("consent")


def quality_problems(settings: Settings, health: pl.DataFrame, now: datetime) -> list[str]:
    """What needs a person: quarantined, stale or never published sources, with the reason."""
    scores = dict(zip(health["source_system"], health["health_score"], strict=True))
    out = []
    for st in source_status(settings, now):
        if st.problem is None:
            continue
        reasons = (st.last_attempt or {}).get("reasons") or []
        detail = f": {reasons[0]}" if reasons else ""
        score = f" (health {scores[st.name]:.1f})" if scores.get(st.name) is not None else ""
        out.append(f"{st.title} [{st.name}] {st.problem}{score}{detail}")
    return out


# -- charts ----------------------------------------------------------------------------------------
def find_browser() -> str | None:
    configured = env(BROWSER_ENV)
    if configured:
        return None if configured == "none" or not Path(configured).is_file() else configured
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def chart_images(d: Digest, before: pl.DataFrame) -> tuple[list[Image], str | None]:
    """PNG charts, or none and a sentence saying why (the report goes out either way)."""
    browser = find_browser()
    if browser is None:
        return [], t("report.no_browser", d.lang)
    figs = chart_figures(d, before)[: d.report.charts]
    try:
        # on a thread of its own: asyncio.run refuses to start where an event loop already runs
        # (a caller inside Streamlit, a test runner's leftover loop)
        with ThreadPoolExecutor(max_workers=1) as pool:
            pngs = pool.submit(lambda: asyncio.run(_render(figs, browser))).result()
    except Exception as e:  # kaleido/Chrome failing must not stop the report: it is sent without charts
        return [], t("report.chart_failed", d.lang, error=f"{type(e).__name__}: {str(e)[:200]}")
    return [Image(f"chart{i}", png) for i, png in enumerate(pngs, 1)], None


def chart_figures(d: Digest, before: pl.DataFrame) -> list[Any]:
    import plotly.graph_objects as go

    prev = dict(zip(before["channel"], before["leads"], strict=True))
    ch = d.channels.sort("leads", descending=True)
    names = ch["channel"].to_list()
    leads = go.Figure(
        [
            go.Bar(name=_span(d.previous), x=names, y=[prev.get(n, 0) for n in names], marker_color="#b0bec5"),
            go.Bar(name=_span(d.current), x=names, y=ch["leads"].to_list(), marker_color="#1f77b4"),
        ]
    )
    leads.update_layout(title=t("report.chart_leads", d.lang), barmode="group", template="plotly_white")
    revenue = go.Figure(go.Bar(x=names, y=ch["won_amount"].to_list(), marker_color="#2ca02c"))
    revenue.update_layout(title=t("report.chart_revenue", d.lang), template="plotly_white")
    return [leads, revenue]


async def _render(figs: list[Any], browser: str) -> list[bytes]:
    import kaleido

    opts = {"format": "png", "width": 720, "height": 360}
    async with kaleido.Kaleido(n=1, timeout=90, mathjax=False, path=browser) as k:
        return [bytes(await k.calc_fig(f, opts=opts)) for f in figs]


# -- rendering -------------------------------------------------------------------------------------
def _cell(v: Any) -> str:
    if v is None:
        return NONE
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1 else f"{v:,.2f}"
    return str(v)


def _table(frame: pl.DataFrame, lang: str) -> str:
    def heading(c: str) -> str:
        for key in (f"metric.{c}", f"col.{c}"):  # a metric by its label, as on the pages
            try:
                return t(key, lang)
            except KeyError:
                continue
        return c

    head = "".join(f"<th>{html.escape(heading(c))}</th>" for c in frame.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in frame.iter_rows()
    )
    return f'<table border="1" cellpadding="4" cellspacing="0"><tr>{head}</tr>{rows}</table>'


def render_html(d: Digest) -> str:
    e, lang = html.escape, d.lang
    kpi_rows = "".join(
        f"<tr><td>{e(k.label)}</td><td><b>{e(k.value)}</b></td><td>{e(k.previous)}</td><td>{e(k.change)}</td></tr>"
        for k in d.kpis
    )
    parts = [
        f"<h2>{e(d.title)}</h2>",
        f"<p>{e(t('report.compared', lang, current=_span(d.current), previous=_span(d.previous)))}</p>",
        f'<table border="1" cellpadding="4" cellspacing="0"><tr><th></th><th>{e(_span(d.current))}</th>'
        f"<th>{e(_span(d.previous))}</th><th>{e(t('col.change_rate', lang))}</th></tr>{kpi_rows}</table>",
        *(f'<p><img src="cid:{i.cid}" alt="chart" width="720"></p>' for i in d.images),
        *(f"<p><i>{e(n)}</i></p>" for n in d.notes),
        f"<h3>{e(t('report.channels', lang))}</h3>",
        _table(d.channels, lang),
        f"<h3>{e(t('tiles.leaderboard_title', lang))}</h3>",
        _table(d.leaderboard, lang),
    ]
    if d.leads.height or d.left_out.get("leads"):
        parts += [f"<h3>{e(t('report.leads', lang, n=d.leads.height))}</h3>", _table(d.leads, lang)]
        parts += _left_out(d, "leads")
    if d.churn is not None:
        parts += [f"<h3>{e(t('report.churn', lang))}</h3>", _table(d.churn, lang), *_left_out(d, "churn")]
    parts.append(f"<h3>{e(t('report.quality', lang))}</h3>")
    items = "".join(f"<li>{e(p)}</li>" for p in d.problems)
    parts.append(f"<ul>{items}</ul>" if d.problems else f"<p>{e(t('report.quality_ok', lang))}</p>")
    return f'<html><body style="font-family: sans-serif">{"".join(parts)}</body></html>'


def _left_out(d: Digest, name: str) -> list[str]:
    n = d.left_out.get(name, 0)
    return [f"<p><i>{html.escape(t('consent.report.left_out', d.lang, n=n))}</i></p>"] if n else []


def render_text(d: Digest) -> str:
    lines = [d.title, t("report.compared", d.lang, current=_span(d.current), previous=_span(d.previous)), ""]
    lines += [f"{k.label}: {k.value} ({k.previous}, {k.change})" for k in d.kpis]
    lines += ["", *d.notes, "", t("report.quality", d.lang) + ":"]
    lines += [f"- {p}" for p in d.problems] or [t("report.quality_ok", d.lang)]
    return "\n".join(lines)


def message(d: Digest) -> Message:
    # formula-safe, as `cockpit query --format csv` prints them
    attachments = [Attachment(f"{d.report.name}_channels_{d.current[0]}.csv", csv_text(d.channels).encode())]
    if d.leads.height:
        attachments.append(Attachment(f"{d.report.name}_leads_{d.current[0]}.csv", csv_text(d.leads).encode()))
    return Message(d.title, render_text(d), "info", render_html(d), tuple(attachments), tuple(d.images))


# -- sending ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sent:
    report: str
    delivery: Delivery | None  # None: a dry run
    files: list[Path]
    notes: list[str]


def send_report(
    settings: Settings,
    name: str,
    now: datetime | None = None,
    dry_run: bool = False,
    out_dir: Path | None = None,
    sleep: Sleep = time.sleep,
) -> Sent:
    """Build and send a report; ``dry_run`` writes it (.eml, .html, CSVs) to ``out_dir`` instead."""
    from dashboard.ops.notify import email_message

    report = find_report(settings, name)
    digest = build(settings, report, now)
    msg = message(digest)
    files: list[Path] = []
    delivery = None
    if dry_run:
        out = out_dir or settings.data_path / "runs" / "reports"
        out.mkdir(parents=True, exist_ok=True)
        stem = out / f"{name}_{digest.current[0].isoformat()}"
        files = [stem.with_suffix(".eml"), stem.with_suffix(".html")]
        files[0].write_bytes(bytes(email_message(settings, report.to, msg)))
        files[1].write_text(msg.html or "", encoding="utf-8")
        for a in msg.attachments:
            files.append(out / a.filename)
            files[-1].write_bytes(a.content)
    else:
        delivery = send_to_addresses(settings, report.to, msg, f"report {name}", sleep)
    _record(settings, name, digest, delivery, files)
    return Sent(name, delivery, files, digest.notes)


def _record(settings: Settings, name: str, d: Digest, delivery: Delivery | None, files: list[Path]) -> None:
    runs = Store(settings.data_path).runs
    runs.mkdir(parents=True, exist_ok=True)
    entry = {
        "at": now_utc().isoformat(),
        "report": name,
        "period": [d.current[0].isoformat(), d.current[1].isoformat()],
        "dry_run": delivery is None,
        "ok": delivery.ok if delivery else None,
        "error": delivery.error if delivery else None,
        "files": [str(f) for f in files],
    }
    with open(runs / HISTORY_FILE, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
