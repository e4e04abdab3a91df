"""The semantic layer: each metric defined once (dashboard/query/metrics.toml), asked for by name by the
cockpit, the channel pages, the big screen, reports, alerts and ``cockpit query --metric``.

A request (metrics, the dimensions to split by, filters, a period) becomes one SQL statement over the
asking user's role views: each model involved is aggregated at the asked grain (plus the join keys when
a metric needs two models), the models are joined, and every metric is computed from the joined sums.
What a role may see is part of the definition: a metric whose scope for the role is "company" is read
over every row (the system's reading) and only at the grains it allows, and says so in its label.
"""

from __future__ import annotations

import functools
import re
import threading
import tomllib
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import polars as pl

from dashboard.core.errors import QueryError
from dashboard.derived.golden import NOT_REVENUE
from dashboard.i18n import t
from dashboard.query.security import ROLES, ROW_FILTERED_ROLES, SYSTEM, Principal
from dashboard.query.warehouse import Warehouse

DEFINITIONS = Path(__file__).resolve().parents[1] / "metrics.toml"  # i18n reads its labels too
UNITS = ("count", "money", "pct")  # as components/fmt.py names them
SCOPES = ("rows", "company", "none")
GRAINS = ("day", "week", "month", "quarter", "year")
DEFAULT_PRECISION = {"count": 0, "money": 0, "pct": 1}  # money in whole yuan, a ratio to 0.1 %
MODEL_PARAMS = {"not_revenue": NOT_REVENUE}  # values a model's row condition may bind
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_REF = re.compile(r"\{([a-z][a-z0-9_]*)\}")
TOTAL = "is_total"  # the column marking the total row of a request with_total

Scope = Literal["rows", "company", "none"]


class MetricError(QueryError):
    """A metric, dimension or grain the layer does not know, or a request it cannot answer."""


@dataclass(frozen=True)
class Model:
    name: str
    relation: str
    time: str
    dimensions: tuple[str, ...]
    where: str = ""


@dataclass(frozen=True)
class RoleRule:
    scope: Scope = "rows"
    by: tuple[str, ...] | None = None  # the dimensions it may be split by (None: any)


@dataclass(frozen=True)
class Metric:
    name: str
    label: Mapping[str, str]
    help: Mapping[str, str]
    unit: str
    precision: int
    additive: bool
    grain: str
    model: str = ""  # a measure's model; empty for a formula
    measure: str = ""
    expr: str = ""
    needs: tuple[str, ...] = ()  # the measures a formula reads
    roles: Mapping[str, RoleRule] = field(default_factory=dict)

    def rule(self, role: str) -> RoleRule:
        return self.roles.get(role, RoleRule())


@dataclass(frozen=True)
class Layer:
    models: Mapping[str, Model]
    metrics: Mapping[str, Metric]
    join_keys: tuple[str, ...]

    def metric(self, name: str) -> Metric:
        if name not in self.metrics:
            raise MetricError(f"no metric named '{name}' (metrics: {', '.join(self.metrics)})")
        return self.metrics[name]

    def dimensions(self) -> list[str]:
        return list(dict.fromkeys(d for m in self.models.values() for d in m.dimensions))


def _text(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(isinstance(raw.get(k), str) and raw[k] for k in ("zh", "en")):
        raise MetricError(f'{where} needs zh and en text, e.g. {{ zh = "...", en = "..." }}')
    return {"zh": raw["zh"], "en": raw["en"]}


def _model(name: str, raw: Any) -> Model:
    where = f"metrics.toml [models.{name}]"
    if not isinstance(raw, dict) or not {"relation", "time", "dimensions"} <= raw.keys():
        raise MetricError(f"{where} needs relation, time and dimensions")
    unknown = set(raw) - {"relation", "time", "dimensions", "where"}
    if unknown:
        raise MetricError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}")
    dims = raw["dimensions"]
    if not isinstance(dims, list) or not all(isinstance(d, str) and _NAME.fullmatch(d) for d in dims):
        raise MetricError(f"{where} dimensions: a list of column names")
    return Model(name, raw["relation"], raw["time"], tuple(dims), raw.get("where", ""))


def _rules(name: str, raw: Any) -> dict[str, RoleRule]:
    rules = {}
    for role, rule in (raw or {}).items():
        where = f"metrics.toml [metrics.{name}] roles.{role}"
        if role not in ROLES:
            raise MetricError(f"{where}: no role '{role}' (roles: {', '.join(ROLES)})")
        rule = {"scope": rule} if isinstance(rule, str) else rule
        if not isinstance(rule, dict) or rule.get("scope") not in SCOPES:
            raise MetricError(f"{where}: scope is one of {', '.join(SCOPES)}")
        by = rule.get("by")
        rules[role] = RoleRule(rule["scope"], None if by is None else tuple(by))
    return rules


KEYS = {"label", "help", "model", "measure", "expr", "needs", "unit", "precision", "additive", "grain", "roles"}


def _metric(name: str, raw: Any, models: Mapping[str, Model]) -> Metric:
    where = f"metrics.toml [metrics.{name}]"
    if not _NAME.fullmatch(name):
        raise MetricError(f"{where}: a metric's name is lower-case letters, digits and _")
    if not isinstance(raw, dict):
        raise MetricError(f"{where} is not a table")
    unknown = set(raw) - KEYS
    if unknown:
        raise MetricError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}")
    if bool(raw.get("measure")) == bool(raw.get("expr")):
        raise MetricError(f"{where} needs either measure (with model) or expr, not both")
    if raw.get("measure") and raw.get("model") not in models:
        raise MetricError(f"{where} model: one of {', '.join(models)}")
    unit = raw.get("unit")
    if unit not in UNITS:
        raise MetricError(f"{where} unit: one of {', '.join(UNITS)}")
    grain = raw.get("grain", "month")
    if grain not in GRAINS:
        raise MetricError(f"{where} grain: one of {', '.join(GRAINS)}")
    if not isinstance(raw.get("additive"), bool):
        raise MetricError(f"{where} additive: true or false")
    expr = raw.get("expr", "")
    needs = tuple(dict.fromkeys([*_REF.findall(expr), *raw.get("needs", [])]))
    return Metric(
        name,
        _text(raw.get("label"), f"{where} label"),
        _text(raw.get("help"), f"{where} help"),
        unit,
        int(raw.get("precision", DEFAULT_PRECISION[unit])),
        raw["additive"],
        grain,
        raw.get("model", ""),
        raw.get("measure", ""),
        expr,
        needs,
        _rules(name, raw.get("roles")),
    )


def parse(text: str) -> Layer:
    """The layer in ``text`` (metrics.toml), checked: a mistake names the metric and the key."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MetricError(f"metrics.toml: {e}") from None
    models = {n: _model(n, m) for n, m in raw.get("models", {}).items()}
    metrics = {n: _metric(n, m, models) for n, m in raw.get("metrics", {}).items()}
    for m in metrics.values():
        for need in m.needs:
            if need not in metrics or not metrics[need].measure:
                raise MetricError(f"metrics.toml [metrics.{m.name}] reads '{need}', which is not a measure metric")
    return Layer(models, metrics, tuple(raw.get("join_keys", ())))


@functools.cache
def layer() -> Layer:
    return parse(DEFINITIONS.read_text(encoding="utf-8"))


# -- requests ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    metrics: tuple[str, ...]
    by: tuple[str, ...] = ()
    filters: tuple[tuple[str, str], ...] = ()  # dimension = value
    start: date | None = None
    end: date | None = None  # inclusive
    with_total: bool = False  # also the total row (is_total = true) beside the split rows

    @staticmethod
    def of(
        metrics: Sequence[str],
        by: Sequence[str] = (),
        filters: Mapping[str, Any] | None = None,
        start: date | None = None,
        end: date | None = None,
        with_total: bool = False,
    ) -> Request:
        kept = tuple(sorted((k, str(v)) for k, v in (filters or {}).items() if v not in (None, "")))
        return Request(tuple(dict.fromkeys(metrics)), tuple(by), kept, start, end, with_total)


@dataclass(frozen=True)
class Answer:
    """The rows (the ``by`` columns, then one column per metric shown), and for each metric asked the
    scope it was read at; a metric the role may not see at this grain is in ``hidden``."""

    frame: pl.DataFrame
    scopes: Mapping[str, Scope]
    hidden: tuple[str, ...]
    unsplit: tuple[str, ...]  # filters dropped from a company figure: some model it reads cannot apply them


def _check(request: Request, lay: Layer) -> None:
    dims = lay.dimensions()
    for d in (*request.by, *(k for k, _ in request.filters)):
        if d not in dims:
            raise MetricError(f"no dimension named '{d}' (dimensions: {', '.join(dims)})")
    for name in request.metrics:
        lay.metric(name)


def _measures(names: Sequence[str], lay: Layer) -> list[Metric]:
    out: dict[str, Metric] = {}
    for name in names:
        m = lay.metric(name)
        for base in (m,) if m.measure else (lay.metric(n) for n in m.needs):
            out[base.name] = base
    return list(out.values())


def compile_sql(request: Request, lay: Layer | None = None) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    """The SQL of ``request`` over unqualified relations (the asking user's role views), its bound
    parameters, and the filters a model could not apply."""
    lay = lay or layer()
    _check(request, lay)
    measures = _measures(request.metrics, lay)
    models = list(dict.fromkeys(m.model for m in measures))
    for name in models:
        lacking = [d for d in request.by if d not in lay.models[name].dimensions]
        if lacking:
            users = [m.name for m in measures if m.model == name]
            raise MetricError(f"{', '.join(users)} cannot be split by {', '.join(lacking)} (model '{name}')")
    keys = [k for k in lay.join_keys if len(models) > 1 and all(k in lay.models[n].dimensions for n in models)]
    grain = list(dict.fromkeys([*request.by, *keys]))
    params: dict[str, Any] = {"m_start": request.start, "m_end": request.end}
    ctes, unsplit = [], []
    for i, name in enumerate(models):
        model = lay.models[name]
        where = [
            f"($m_start IS NULL OR {model.time} >= CAST($m_start AS TIMESTAMP))",
            f"($m_end IS NULL OR {model.time} < CAST($m_end AS TIMESTAMP) + INTERVAL 1 DAY)",
        ]
        if model.where:
            where.append(f"({model.where})")
            params.update({k: v for k, v in MODEL_PARAMS.items() if f"${k}" in model.where})
        for j, (dim, value) in enumerate(request.filters):
            if dim in model.dimensions:
                where.append(f"{dim} = $f{j}")
                params[f"f{j}"] = value
            else:
                unsplit.append(dim)
        select = list(grain)  # grouped as stored (ENUM codes are cheaper to group than text)
        select += [f"{m.measure} AS {m.name}" for m in measures if m.model == name]
        group = " GROUP BY ALL" if grain else ""
        ctes.append(f"m{i} AS (SELECT {', '.join(select)} FROM {model.relation} WHERE {' AND '.join(where)}{group})")
    joined = "m0"
    for i in range(1, len(models)):
        on = " AND ".join(f"CAST(m0.{d} AS VARCHAR) IS NOT DISTINCT FROM CAST(m{i}.{d} AS VARCHAR)" for d in grain)
        on = on or "true"
        joined += f" FULL OUTER JOIN m{i} ON {on}"
    dim_cols = [
        f"coalesce({', '.join(f'CAST(m{i}.{d} AS VARCHAR)' for i in range(len(models)))}) AS {d}" for d in grain
    ]
    row_cols = [f"m{models.index(m.model)}.{m.name} AS {m.name}" for m in measures]
    rows = f"j AS (SELECT {', '.join([*dim_cols, *row_cols])} FROM {joined})"
    outputs = []
    for name in request.metrics:
        m = lay.metric(name)
        sql = f"sum({name})" if m.measure else _REF.sub(lambda r: f"sum({r.group(1)})", m.expr)
        if m.measure and (m.unit == "count" or m.measure.startswith("coalesce(")):
            sql = f"coalesce({sql}, 0)"  # nothing counted is 0 (spend stays empty: no spend is not ¥0 spent)
        if m.unit == "count" and m.measure:
            sql = f"CAST({sql} AS BIGINT)"
        outputs.append(f"{sql} AS {name}")
    by = list(request.by)
    if request.with_total:
        group = f" GROUP BY GROUPING SETS (({', '.join(by)}), ())" if by else ""
        outputs.append(f"{'grouping(' + by[0] + ') = 1' if by else 'true'} AS {TOTAL}")
    else:
        group = f" GROUP BY {', '.join(by)}" if by else ""
    projection = ", ".join([*by, *outputs])
    first = request.metrics[0] if request.metrics else None
    order = [f"{TOTAL} DESC"] if request.with_total and by else []
    order += [f"{first} DESC NULLS LAST", *by] if by and first else []
    order_by = f" ORDER BY {', '.join(order)}" if order else ""
    sql = f"WITH {', '.join(ctes)}, {rows} SELECT {projection} FROM j{group}{order_by}"
    return sql, params, tuple(dict.fromkeys(unsplit))


def scope_of(metric: Metric, user: Principal, by: Sequence[str]) -> Scope:
    """The scope ``metric`` is shown at to ``user`` split by ``by``: "none" when not at that grain."""
    rule = metric.rule(user.role)
    if rule.scope != "none" and rule.by is not None and not set(by) <= set(rule.by):
        return "none"
    return rule.scope


# The company's figures (a sales rep's ROI, spend, cost per lead) are the same for every user shown them:
# read over every row once per manifest version and kept, so each rep's page does not scan all the company's
# leads and spend again for one aggregate row (measured: docs/benchmarks.md, "Semantic layer").
COMPANY_CACHE_SIZE = 256  # answers per warehouse (a few rows each); emptied when a new manifest is served
_Key = tuple[str, tuple[tuple[str, Any], ...]]
_company: weakref.WeakKeyDictionary[Warehouse, tuple[int, dict[_Key, pl.DataFrame]]] = weakref.WeakKeyDictionary()
_company_lock = threading.Lock()


def company_rows(wh: Warehouse, sql: str, params: Mapping[str, Any]) -> pl.DataFrame:
    """``sql`` over every row (the system's reading), from the answers kept for the manifest being served."""
    version, key = wh.version, (sql, tuple(sorted(params.items())))
    with _company_lock:
        held = _company.get(wh)
        if held is None or held[0] != version:
            held = _company[wh] = (version, {})
        kept = held[1].get(key)
    if kept is not None:
        return kept
    rows = wh.sql(sql, dict(params), user=SYSTEM)
    with _company_lock:
        if len(held[1]) >= COMPANY_CACHE_SIZE:
            held[1].pop(next(iter(held[1])))  # the oldest
        held[1][key] = rows
    return rows


def forget_company_rows() -> None:
    """Drop every kept company figure, as if each warehouse had just served a new manifest (a cold start)."""
    with _company_lock:
        _company.clear()


def unfit(name: str, request: Request, lay: Layer | None = None) -> tuple[str, ...]:
    """The filters of ``request`` that some model metric ``name`` reads cannot apply (spend has no owner or
    region): applied to the others only, they would set one owner's revenue against every owner's spend."""
    lay = lay or layer()
    models = [lay.models[m.model] for m in _measures([name], lay)]
    return tuple(d for d, _ in request.filters if any(d not in m.dimensions for m in models))


def _scope(metric: Metric, request: Request, user: Principal, lay: Layer) -> Scope:
    """``scope_of``, and a metric whose models cannot all apply the request's filters is never read with a
    filter on some of them only: it is the company's figure (those filters dropped for every model), or,
    for a role that does not see every row (a sales rep's contract value filtered by channel), not shown."""
    scope: Scope = "rows" if user.system else scope_of(metric, user, request.by)
    if scope == "rows" and unfit(metric.name, request, lay):
        return "none" if user.role in ROW_FILTERED_ROLES and not user.system else "company"
    return scope


def ask(wh: Warehouse, request: Request, user: Principal) -> Answer:
    """``request`` as ``user`` may see it: metrics at "rows" over their own views, at "company" over
    every row (an aggregate only, at the grains the definition allows; without the filters their models
    cannot all apply, nor an owner), "none" left out."""
    lay = layer()
    _check(request, lay)
    scopes = {n: _scope(lay.metric(n), request, user, lay) for n in request.metrics}
    groups: dict[tuple[Scope, tuple[str, ...]], list[str]] = {}  # by scope and the filters dropped
    for name, scope in scopes.items():
        if scope != "none":
            dropped = tuple(sorted({"owner", *unfit(name, request, lay)})) if scope == "company" else ()
            groups.setdefault((scope, dropped), []).append(name)
    frame: pl.DataFrame | None = None
    unsplit: list[str] = []
    for (scope, dropped), names in sorted(groups.items(), key=lambda g: g[0][0] != "rows"):
        filters = tuple((k, v) for k, v in request.filters if k not in dropped)
        unsplit += [k for k, _ in request.filters if k in dropped]
        part = Request(tuple(names), request.by, filters, request.start, request.end, request.with_total)
        sql, params, _ = compile_sql(part, lay)  # every filter left applies to every model it reads
        rows = wh.sql(sql, params, user=user) if scope == "rows" else company_rows(wh, sql, params)
        keys = [*request.by, *([TOTAL] if request.with_total else [])]
        if frame is None:
            frame = rows
        elif keys:
            frame = frame.join(rows, on=keys, how="full", coalesce=True, nulls_equal=True)
        else:  # one row each
            frame = pl.concat([frame, rows], how="horizontal")
    if frame is None:
        frame = pl.DataFrame({d: [] for d in request.by}, schema=dict.fromkeys(request.by, pl.String))
    shown = [n for n in request.metrics if scopes[n] != "none"]
    extra = [TOTAL] if request.with_total and TOTAL in frame.columns else []
    frame = frame.select(*request.by, *shown, *extra)
    hidden = tuple(n for n in request.metrics if scopes[n] == "none")
    return Answer(frame, scopes, hidden, tuple(dict.fromkeys(unsplit)))


def value(answer: Answer, name: str) -> float | None:
    """The one value of ``name`` in a request without ``by`` (the total row of one with_total)."""
    if name not in answer.frame.columns or answer.frame.is_empty():
        return None
    rows = answer.frame.filter(pl.col(TOTAL)) if TOTAL in answer.frame.columns else answer.frame
    v = rows[name][0] if rows.height else None
    return None if v is None else float(v)


def label(name: str, scope: Scope, lang: str) -> str:
    """The metric's label (i18n ``metric.<name>``, from the definition); the company's figure says so."""
    text = t(f"metric.{name}", lang)
    if scope != "company":
        return text
    # inside a phrase a word starts small (Company marketing spend), an acronym stays (Company ROI)
    inner = text if text[1:2].isupper() else text[:1].lower() + text[1:]
    return t("scope.company", lang, label=inner)


def help_text(name: str, scope: Scope, lang: str) -> str:
    text = t(f"metric.{name}.help", lang)
    return t("scope.company.help", lang, help=text) if scope == "company" else text


def rounded(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame``'s metric columns rounded to each metric's precision (exports keep numbers as numbers)."""
    lay = layer()
    return frame.with_columns(
        pl.col(c).round(lay.metrics[c].precision + (2 if lay.metrics[c].unit == "pct" else 0))
        for c in frame.columns
        if c in lay.metrics and frame[c].dtype.is_float()
    )
