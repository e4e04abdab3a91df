"""Alert rules (``[[alerts]]`` in cockpit.toml), evaluated after every refresh: a source quarantined
or stale past its schedule, a data-health score below a threshold, a metric moving more than X%
against the previous period, more churn-risk customers than N.

Each rule has a severity and a cool-down: a problem already sent is not sent again until the
cool-down has passed (state in ``data_dir/runs/alerts_state.json``; every finding is appended to
``runs/alerts.jsonl``). A rule that cannot be evaluated is reported, never raised: the churn table
not being built yet is "not available yet", not a crash.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from dashboard.core.config import AlertConfig, Settings
from dashboard.core.errors import CockpitError, QueryError
from dashboard.core.store import Store, now_utc, write_json
from dashboard.ops.notify import Delivery, Message, Sleep, send
from dashboard.ops.status import source_status
from dashboard.query.metrics import Request, ask
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse, load_query

STATE_FILE = "alerts_state.json"
HISTORY_FILE = "alerts.jsonl"
METRICS = "metrics"  # a metric_change rule's query that names the semantic layer: its column is a metric
DEFAULT_CHURN_QUERY = "churn_list"  # with band = high unless the rule gives its own query


@dataclass(frozen=True)
class Finding:
    rule: str
    subject: str  # what it is about: a source, a row of a query ("channel=paid_search"), "(all)"
    text: str  # one line a person reads


@dataclass
class AlertRun:
    findings: list[Finding] = field(default_factory=list)
    suppressed: list[Finding] = field(default_factory=list)  # inside their cool-down
    unavailable: list[str] = field(default_factory=list)  # e.g. the churn table is not built yet
    errors: list[str] = field(default_factory=list)  # a rule that could not be evaluated
    deliveries: list[Delivery] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"alert {f.rule}: {f.text}" for f in self.findings]
        out += [f"alert {f.rule}: {f.text} (cool-down, not sent again)" for f in self.suppressed]
        out += [f"alert: {u}" for u in self.unavailable] + [f"alert error: {e}" for e in self.errors]
        return out + [f"notify {d.describe()}" for d in self.deliveries]


class Unavailable(CockpitError):
    """The data a rule reads does not exist yet (e.g. the churn table before its first build)."""


# -- periods ---------------------------------------------------------------------------------------
def last_periods(period: str, today: date) -> tuple[tuple[date, date], tuple[date, date]]:
    """The last complete day / week (Mon–Sun) / month before ``today``, and the one before it."""
    if period == "day":
        cur = today - timedelta(days=1)
        return (cur, cur), (cur - timedelta(days=1), cur - timedelta(days=1))
    if period == "week":
        start = today - timedelta(days=today.weekday() + 7)
        return (start, start + timedelta(days=6)), (start - timedelta(days=7), start - timedelta(days=1))
    end = today.replace(day=1) - timedelta(days=1)
    start = end.replace(day=1)
    prev_end = start - timedelta(days=1)
    return (start, end), (prev_end.replace(day=1), prev_end)


def local_today(settings: Settings, now: datetime) -> date:
    return now.astimezone(ZoneInfo(settings.timezone)).date()


# -- rules -----------------------------------------------------------------------------------------
def run_named(wh: Warehouse, name: str, params: dict[str, Any], user: Principal) -> pl.DataFrame:
    """A named query; a missing query or table means "not available yet"."""
    try:
        return wh.run_query(name, params, user=user)
    except QueryError as e:
        if "no query named" in e.message or "does not exist" in e.message:
            raise Unavailable(f"query '{name}' is not available yet ({e.message})") from None
        raise


def own_ranks(ranked: pl.DataFrame) -> pl.DataFrame:
    """churn_list's rows as the user reads them (the churn page, the e-mailed report): ``rank`` is the place among
    the customers they see (a sales rep's own list runs 1, 2, 3, ...), ``company_rank`` the place on the whole
    company's list, kept only where the two differ (a manager sees the whole list: one number)."""
    if "company_rank" in ranked.columns and (ranked["company_rank"] == ranked["rank"]).all():
        return ranked.drop("company_rank")
    return ranked


def check_sources(rule: AlertConfig, settings: Settings, wh: Warehouse, now: datetime) -> list[Finding]:
    out = []
    for st in source_status(settings, now):
        if rule.sources and st.name not in rule.sources:
            continue
        if st.quarantined:
            reasons = (st.last_attempt or {}).get("reasons") or ["no reason recorded"]
            out.append(Finding(rule.name, st.name, f"{st.name} quarantined: {reasons[0]}"))
        elif st.stale:
            out.append(
                Finding(
                    rule.name,
                    st.name,
                    f"{st.name} stale: last published {st.published_at}, next run was due {st.next_due}",
                )
            )
    return out


def check_health(rule: AlertConfig, settings: Settings, wh: Warehouse, now: datetime) -> list[Finding]:
    assert rule.below is not None
    scores = run_named(wh, "data_health", {}, user=SYSTEM)
    return [
        Finding(
            rule.name,
            r["source_system"],
            f"data health of {r['source_system']} is {r['health_score']:.1f} (below {rule.below:g})",
        )
        for r in scores.iter_rows(named=True)
        if r["health_score"] is not None and r["health_score"] < rule.below
    ]


def check_churn(rule: AlertConfig, settings: Settings, wh: Warehouse, now: datetime) -> list[Finding]:
    assert rule.above is not None
    params = dict(rule.params) if rule.query else {"band": "high", **rule.params}
    at_risk = run_named(wh, rule.query or DEFAULT_CHURN_QUERY, params, user=SYSTEM).height
    if at_risk <= rule.above:
        return []
    return [Finding(rule.name, "(all)", f"{at_risk} churn-risk customers (more than {rule.above})")]


def metric_values(
    rule: AlertConfig, settings: Settings, wh: Warehouse, now: datetime
) -> dict[str, tuple[float | None, float | None]]:
    """Per row (named by the ``by`` columns): (previous period's value, last period's value)."""
    assert rule.query is not None and rule.column is not None
    if rule.query == METRICS:
        return _layer_values(rule, settings, wh, now)
    query = load_query(rule.query)
    names = {p.name for p in query.params}
    column, by = rule.column, list(rule.by)
    for c in [column, *by]:
        if c not in query.columns:
            raise CockpitError(f"query '{rule.query}' has no column '{c}' (columns: {', '.join(query.columns)})")
    if {"start", "end"} <= names:
        cur, prev = last_periods(rule.period, local_today(settings, now))
        frames = [run_named(wh, rule.query, {**rule.params, "start": a, "end": b}, user=SYSTEM) for a, b in (prev, cur)]
    elif f"previous_{column}" in query.columns:
        frame = run_named(wh, rule.query, dict(rule.params), user=SYSTEM)
        frames = [frame.select(*by, pl.col(f"previous_{column}").alias(column)), frame]
    else:
        raise CockpitError(
            f"query '{rule.query}' has neither start/end parameters nor a previous_{column} column to compare with"
        )
    keyed = [_by_key(f, by, column) for f in frames]
    # a row the last period lacks (a channel without leads) counts 0; one the period before lacks has no base
    return {k: (keyed[0].get(k), keyed[1].get(k, 0.0)) for k in dict.fromkeys([*keyed[1], *keyed[0]])}


def _layer_values(
    rule: AlertConfig, settings: Settings, wh: Warehouse, now: datetime
) -> dict[str, tuple[float | None, float | None]]:
    """``query = "metrics"``: ``column`` is a metric of the semantic layer, split by ``by``, ``params`` its
    dimension filters; the last period against the one before, as the cockpit counts it."""
    assert rule.column is not None
    cur, prev = last_periods(rule.period, local_today(settings, now))
    frames = [
        ask(wh, Request.of([rule.column], rule.by, dict(rule.params), a, b), SYSTEM).frame for a, b in (prev, cur)
    ]
    keyed = [_by_key(f, list(rule.by), rule.column) for f in frames]
    return {k: (keyed[0].get(k), keyed[1].get(k, 0.0)) for k in dict.fromkeys([*keyed[1], *keyed[0]])}


def _by_key(frame: pl.DataFrame, by: list[str], column: str) -> dict[str, float | None]:
    if not by:
        return {column: float(frame[column].sum()) if frame.height else None}
    out: dict[str, float | None] = {}
    for row in frame.select(*by, column).iter_rows(named=True):
        key = ", ".join(f"{c}={row[c]}" for c in by)
        value = row[column]
        out[key] = None if value is None else float(value) + (out.get(key) or 0.0)
    return out


def check_metric(rule: AlertConfig, settings: Settings, wh: Warehouse, now: datetime) -> list[Finding]:
    assert rule.change_pct is not None
    out = []
    for key, (prev, cur) in metric_values(rule, settings, wh, now).items():
        if not prev or cur is None:  # no base to compare with: a percentage would mean nothing
            continue
        change = (cur - prev) / abs(prev) * 100
        if abs(change) > rule.change_pct:
            text = (
                f"{rule.query}.{rule.column} {key}: {prev:,.4g} → {cur:,.4g} ({change:+.1f}%, last {rule.period} "
                f"against the one before; threshold {rule.change_pct:g}%)"
            )
            out.append(Finding(rule.name, key, text))
    return out


CHECKS = {
    "source": check_sources,
    "data_health": check_health,
    "metric_change": check_metric,
    "churn_risk": check_churn,
}


# -- evaluation, cool-down, sending ----------------------------------------------------------------
def evaluate(settings: Settings, now: datetime | None = None, warehouse: Warehouse | None = None) -> AlertRun:
    """Every rule's findings (nothing sent, no state changed)."""
    now = now or now_utc()
    wh = warehouse or Warehouse(settings)
    run = AlertRun()
    for rule in settings.alerts:
        try:
            run.findings += CHECKS[rule.kind](rule, settings, wh, now)
        except Unavailable as e:
            run.unavailable.append(f"{rule.name}: {e.message}")
        except CockpitError as e:
            run.errors.append(f"{rule.name}: {e.message}")
    return run


def run_alerts(
    settings: Settings, now: datetime | None = None, warehouse: Warehouse | None = None, sleep: Sleep = time.sleep
) -> AlertRun:
    """Evaluate, hold back what is inside its cool-down, send the rest (one message per rule), persist."""
    now = now or now_utc()
    run = evaluate(settings, now, warehouse)
    store = Store(settings.data_path)
    state = load_state(store)
    rules = {r.name: r for r in settings.alerts}
    due: dict[str, list[Finding]] = {}
    for f in run.findings:
        last = state.get(f"{f.rule}|{f.subject}")
        if last and now - datetime.fromisoformat(last) < timedelta(minutes=rules[f.rule].cooldown_minutes):
            run.suppressed.append(f)
        else:
            due.setdefault(f.rule, []).append(f)
    run.findings = [f for fs in due.values() for f in fs]
    for name, findings in due.items():
        rule = rules[name]
        msg = alert_message(rule, findings)
        deliveries = [send(settings, ch, msg, sleep) for ch in rule.channels]
        run.deliveries += deliveries
        if any(d.ok for d in deliveries):  # nothing got through: try again after the next refresh
            for f in findings:
                state[f"{f.rule}|{f.subject}"] = now.isoformat()
    if due:
        write_json(store.runs / STATE_FILE, state)
    _append_history(store, now, run)
    return run


def alert_message(rule: AlertConfig, findings: list[Finding]) -> Message:
    title = f"[{rule.severity.upper()}] CRM Cockpit: {rule.name}"
    text = "\n".join(f"- {f.text}" for f in findings)
    data = {"rule": rule.name, "kind": rule.kind, "findings": [asdict(f) for f in findings]}
    return Message(title, text, rule.severity, data=data)


def load_state(store: Store) -> dict[str, str]:
    path = store.runs / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return state if isinstance(state, dict) else {}


def _append_history(store: Store, now: datetime, run: AlertRun) -> None:
    entries = [{"rule": f.rule, "subject": f.subject, "text": f.text, "sent": True} for f in run.findings]
    entries += [{"rule": f.rule, "subject": f.subject, "text": f.text, "sent": False} for f in run.suppressed]
    if not entries:
        return
    store.runs.mkdir(parents=True, exist_ok=True)
    with open(store.runs / HISTORY_FILE, "a", encoding="utf-8") as fh:
        for e in entries:
            fh.write(json.dumps({"at": now.isoformat(), **e}, ensure_ascii=False) + "\n")
