"""Self-serve exploration (自助分析): the curated models an analyst picks from, the view they build
(dimensions, measures, filters, pivot, chart) and the SQL it becomes.

Generated SQL names only unqualified relations (they resolve in the asking user's role schema, so row
filters and masking apply) and column expressions from the model's whitelist; every filter value is
a bound ``$name`` parameter. No streamlit, no connection here: the caller runs ``Query.sql``.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import polars as pl

from dashboard.core.errors import QueryError
from dashboard.derived.tables import DERIVED_TABLES
from dashboard.i18n.metrics import EXPLORE_MEASURES
from dashboard.query.metrics import layer


class ExploreError(QueryError):
    """A view that cannot be built: an unknown model, column, measure or operator, or a bad value."""


KINDS = ("text", "number", "date", "bool")
GRAINS = ("day", "week", "month", "quarter", "year")
OPS: dict[str, tuple[str, ...]] = {  # filter operators each column kind takes
    "text": ("in", "not_in", "contains", "is_null", "not_null"),
    "number": ("between", "in", "not_in", "is_null", "not_null"),
    "date": ("between", "is_null", "not_null"),
    "bool": ("in", "is_null", "not_null"),
}
CHARTS = ("bar", "line", "stacked", "pie", "heatmap", "scatter")
MAX_GROUPS = 5000  # detail rows a view returns; more is reported as truncated
MAX_LIST = 500  # values in one list filter


@dataclass(frozen=True)
class Column:
    expr: str  # SQL over the model's own aliases (our text, never a user's)
    kind: str  # text | number | date | bool
    joins: tuple[str, ...] = ()
    dimension: bool = True  # ids and amounts are filters, not dimensions
    # the value dictionary (dashboard/i18n/values.py with cockpit.toml's [labels]) that names its codes, where the
    # column's name does not say it (the pages name a channel column's codes by the name "channel")
    labels: str | None = None


PRECISION = {"count": 0, "money": 0, "pct": 1, "number": 2}  # a unit's usual decimals (pct: of the percentage)


@dataclass(frozen=True)
class Measure:
    expr: str
    unit: str  # count | money (yuan) | pct (a ratio, shown as a percentage) | number
    joins: tuple[str, ...] = ()
    precision: int | None = None  # decimals shown and exported; None: the unit's usual

    @property
    def places(self) -> int:
        return PRECISION[self.unit] if self.precision is None else self.precision


@dataclass(frozen=True)
class Model:
    name: str
    relation: str  # "<table> AS t"
    columns: dict[str, Column]
    measures: dict[str, Measure]
    joins: dict[str, str] = field(default_factory=dict)  # in dependency order
    entities: tuple[str, ...] = ()  # canonical entities it reads (what an as-of comparison swaps)
    spend_map: dict[str, str] = field(default_factory=dict)  # column → marketing_spend expr, for ROI
    requires: str = ""  # the relation that must have rows, else the model says it is not built


# Joins to a record's golden customer (identity resolution) and its attributes.
_LINK = (
    "LEFT JOIN identity_links AS il ON il.record_kind = '{kind}' "
    "AND il.source_system = t.source_system AND il.source_record_id = t.{key}"
)
_GOLDEN = "LEFT JOIN customer_golden AS g ON g.customer_key = il.customer_key"
# Facts that carry their record's customer_key (query/facts.py): no identity-links join per query.
_OWN_GOLDEN = "LEFT JOIN customer_golden AS g ON g.customer_key = t.customer_key"


def _golden_columns(via: tuple[str, ...] = ("il", "g")) -> dict[str, Column]:
    """A record's golden customer's city and industry (region and owner too, where the record lacks them)."""
    return {c: Column(f"g.{c}", "text", via) for c in ("city", "industry", "region", "owner")}


def _customers_measure(keyed: bool = False) -> Measure:
    """Distinct golden customers: of the facts' own customer_key (``keyed``), or through the identity links."""
    return (
        Measure("count(DISTINCT t.customer_key)", "count")
        if keyed
        else Measure("count(DISTINCT il.customer_key)", "count", ("il",))
    )


def _stage_expr() -> str:
    return (
        "CASE WHEN t.won_at IS NOT NULL THEN 'won' WHEN t.lost_at IS NOT NULL THEN 'lost' "
        "WHEN t.opportunity_at IS NOT NULL THEN 'opportunity' WHEN t.sql_at IS NOT NULL THEN 'sql' "
        "WHEN t.mql_at IS NOT NULL THEN 'mql' ELSE 'lead' END"
    )


def _leads() -> Model:
    golden = {k: v for k, v in _golden_columns(("g",)).items() if k in ("city", "industry")}
    cols = {
        "channel": Column("t.channel", "text"),
        "campaign": Column("t.campaign", "text"),
        "region": Column("t.region", "text"),
        **golden,
        "owner": Column("t.owner", "text"),
        "source_system": Column("t.source_system", "text"),
        "stage": Column(_stage_expr(), "text"),
        "created_at": Column("t.created_at", "date"),
        "won_at": Column("t.won_at", "date"),
        "opportunity_at": Column("t.opportunity_at", "date"),
        "lost_at": Column("t.lost_at", "date"),
        "phone_valid": Column("t.phone_valid", "bool"),
        "won_amount": Column("t.won_amount", "number", dimension=False),
        "lead_id": Column("t.lead_id", "text", dimension=False),
    }
    measures = {
        "count": Measure("count(*)", "count"),
        "customers": _customers_measure(keyed=True),
        "won": Measure("count(t.won_at)", "count"),
        "revenue": Measure("coalesce(sum(t.won_amount), 0)", "money"),
        "avg_won_amount": Measure("avg(t.won_amount)", "money"),
        "conversion_rate": Measure("count(t.won_at) / count(*)", "pct"),
        "roi": Measure("", "pct", precision=0),  # revenue against the matching spend (see _roi_sql)
    }
    joins = {"g": _OWN_GOLDEN}
    spend = {"channel": "s.channel", "campaign": "coalesce(s.campaign, '')", "created_at": "s.spend_date"}
    return Model("leads", "lead_facts AS t", cols, measures, joins, ("leads", "lead_events"), spend)


def _customers() -> Model:
    have = DERIVED_TABLES["customer_golden"]
    kinds = {"VARCHAR": "text", "DOUBLE": "number", "BIGINT": "number", "TIMESTAMP": "date", "BOOLEAN": "bool"}
    skip = {"customer_key", "name", "phone", "email", "id_number", "company", "name_pinyin"}
    cols = {c: Column(f"t.{c}", kinds[ty]) for c, ty in have.items() if c not in skip and ty in kinds}
    cols = {c: Column(v.expr, v.kind, dimension=v.kind != "number") for c, v in cols.items()}
    cols["customer_key"] = Column("t.customer_key", "text", dimension=False)
    measures = {"count": Measure("count(*)", "count")}
    for c in ("lifetime_revenue", "open_receivables"):
        measures[f"sum_{c}"] = Measure(f"coalesce(sum(t.{c}), 0)", "money")
        measures[f"avg_{c}"] = Measure(f"avg(t.{c})", "money")
    measures["sum_orders"] = Measure("coalesce(sum(t.orders), 0)", "count")
    joins = {"c": "LEFT JOIN churn_scores AS c ON c.customer_key = t.customer_key"}
    for c, kind in (("risk_band", "text"), ("risk", "number"), ("days_inactive", "number")):
        cols[c] = Column(f"c.{c}", kind, ("c",), dimension=kind == "text")
    measures["avg_risk"] = Measure("avg(c.risk)", "pct", ("c",))
    return Model("customers", "customer_golden AS t", cols, measures, joins, requires="customer_golden")


def _orders() -> Model:
    cols = {
        "source_system": Column("t.source_system", "text"),
        "product": Column("t.product", "text"),
        "status": Column("t.status", "text", labels="kind"),  # as the Customer 360 timeline names an order
        **_golden_columns(("g",)),
        "ordered_at": Column("t.ordered_at", "date"),
        "amount": Column("t.amount", "number", dimension=False),
        "quantity": Column("t.quantity", "number", dimension=False),
        "order_id": Column("t.order_id", "text", dimension=False),
    }
    measures = {
        "count": Measure("count(*)", "count"),
        "customers": _customers_measure(keyed=True),
        "sum_amount": Measure("coalesce(sum(t.amount), 0)", "money"),
        "avg_amount": Measure("avg(t.amount)", "money"),
        "sum_quantity": Measure("coalesce(sum(t.quantity), 0)", "number", precision=0),
    }
    joins = {"g": _OWN_GOLDEN}
    return Model("orders", "orders AS t", cols, measures, joins, ("orders",))


def _interactions() -> Model:
    cols = {
        "channel": Column("t.channel", "text"),
        "kind": Column("t.kind", "text", labels="kind"),
        "outcome": Column("t.outcome", "text"),
        "source_system": Column("t.source_system", "text"),
        **_golden_columns(),
        "occurred_at": Column("t.occurred_at", "date"),
        "lead_id": Column("t.lead_id", "text", dimension=False),
    }
    measures = {"count": Measure("count(*)", "count"), "customers": _customers_measure()}
    joins = {"il": _LINK.format(kind="customer", key="customer_ref"), "g": _GOLDEN}
    return Model("interactions", "interactions AS t", cols, measures, joins, ("interactions",))


def _spend() -> Model:
    cols = {
        "channel": Column("t.channel", "text"),
        "campaign": Column("coalesce(t.campaign, '')", "text"),
        "source_system": Column("t.source_system", "text"),
        "spend_date": Column("t.spend_date", "date"),
        "cost": Column("t.cost", "number", dimension=False),
    }
    measures = {
        "count": Measure("count(*)", "count"),
        "sum_cost": Measure("coalesce(sum(t.cost), 0)", "money"),
        "avg_cost": Measure("avg(t.cost)", "money"),
    }
    return Model("spend", "marketing_spend AS t", cols, measures, entities=("marketing_spend",))


MODELS: dict[str, Model] = {m.name: m for m in (_leads(), _customers(), _orders(), _interactions(), _spend())}


# -- the view ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dim:
    column: str
    grain: str | None = None  # date columns: day | week | month | quarter | year

    @property
    def key(self) -> str:
        """The dimension's name in the result (and in the URL): ``channel``, ``created_at_month``."""
        return f"{self.column}_{self.grain}" if self.grain else self.column


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    values: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Spec:
    model: str = "leads"
    dims: tuple[Dim, ...] = ()
    measures: tuple[str, ...] = ("count",)
    filters: tuple[Filter, ...] = ()
    pivot: str | None = None  # a dimension's key, spread into columns
    chart: str | None = None  # None: suggested from the result's shape

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"m": self.model, "d": [d.key for d in self.dims], "x": list(self.measures)}
        if self.filters:
            d["f"] = [[f.column, f.op, [_json_value(v) for v in f.values]] for f in self.filters]
        if self.pivot:
            d["p"] = self.pivot
        if self.chart:
            d["c"] = self.chart
        return d

    @staticmethod
    def from_dict(d: Any) -> Spec:
        """A view from its stored form, checked against its model (an error names what is wrong)."""
        if not isinstance(d, dict):
            raise ExploreError("a view must be an object with a model, dimensions and measures")
        model = model_for(str(d.get("m", "")))
        dims = tuple(parse_dim(model, str(k)) for k in _list(d.get("d"), "dimensions"))
        measures = tuple(str(x) for x in _list(d.get("x"), "measures"))
        filters = []
        for item in _list(d.get("f"), "filters"):
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[2], list)):
                raise ExploreError(f"a filter must be [column, operator, values], got {str(item)[:80]!r}")
            filters.append(Filter(str(item[0]), str(item[1]), tuple(item[2])))
        pivot = d.get("p")
        chart = d.get("c")
        return validate(
            Spec(
                model.name, dims, measures, tuple(filters), str(pivot) if pivot else None, str(chart) if chart else None
            )
        )


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ExploreError(f"the view's {what} must be a list")
    return value


def _json_value(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date | datetime) else v


def encode(spec: Spec) -> str:
    """The view as one URL-safe token (``?view=...``): the URL alone rebuilds it."""
    text = json.dumps(spec.to_dict(), ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii").rstrip("=")


def decode(token: str) -> Spec:
    try:
        raw = base64.urlsafe_b64decode(token.strip() + "=" * (-len(token.strip()) % 4))
        data = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ExploreError("the view in the link cannot be read (it was cut off or changed)") from None
    return Spec.from_dict(data)


def model_for(name: str) -> Model:
    try:
        return MODELS[name]
    except KeyError:
        raise ExploreError(f"no model named '{name[:40]}' (models: {', '.join(MODELS)})") from None


def column_for(model: Model, name: str) -> Column:
    try:
        return model.columns[name]
    except KeyError:
        raise ExploreError(
            f"model '{model.name}' has no column '{name[:40]}' (columns: {', '.join(model.columns)})"
        ) from None


def parse_dim(model: Model, key: str) -> Dim:
    """``channel`` or ``created_at_month`` back into a dimension of the model."""
    if key in model.columns:
        return Dim(key)
    base, _, grain = key.rpartition("_")
    if base in model.columns and grain in GRAINS:
        return Dim(base, grain)
    raise ExploreError(f"model '{model.name}' has no dimension '{key[:40]}' (dimensions: {', '.join(dim_keys(model))})")


def dim_keys(model: Model) -> list[str]:
    """Every dimension the model offers: its categories, and each date column at each grain."""
    keys: list[str] = []
    for name, col in model.columns.items():
        if not col.dimension:
            continue
        keys += [Dim(name, g).key for g in GRAINS] if col.kind == "date" else [name]
    return keys


def validate(spec: Spec) -> Spec:
    """The spec checked against its model; filter values coerced to the column's kind."""
    model = model_for(spec.model)
    seen: set[str] = set()
    for d in spec.dims:
        col = column_for(model, d.column)
        if not col.dimension or (col.kind == "date") != (d.grain in GRAINS):
            raise ExploreError(f"'{d.key}' is not a dimension of model '{model.name}'")
        if d.key in seen:
            raise ExploreError(f"dimension '{d.key}' is chosen twice")
        seen.add(d.key)
    if not spec.measures:
        raise ExploreError("choose at least one measure")
    for m in spec.measures:
        if m not in model.measures:
            raise ExploreError(
                f"model '{model.name}' has no measure '{m[:40]}' (measures: {', '.join(model.measures)})"
            )
    if len(set(spec.measures)) != len(spec.measures):
        raise ExploreError("a measure is chosen twice")
    if "roi" in spec.measures:
        _check_roi(model, spec)
    filters = tuple(_coerce_filter(model, f) for f in spec.filters)
    if spec.pivot is not None and (spec.pivot not in seen or len(spec.dims) < 2):
        raise ExploreError(f"pivot '{spec.pivot[:40]}' must be one of two or more chosen dimensions")
    if spec.chart is not None and spec.chart not in CHARTS:
        raise ExploreError(f"no chart '{spec.chart[:20]}' (charts: {', '.join(CHARTS)})")
    return Spec(spec.model, spec.dims, spec.measures, filters, spec.pivot, spec.chart)


def _check_roi(model: Model, spec: Spec) -> None:
    mapped = ", ".join(model.spend_map) or "none"
    for d in spec.dims:
        if d.column not in model.spend_map:
            raise ExploreError(f"ROI compares revenue with spend, which is known only by {mapped}: not by '{d.key}'")
    for f in spec.filters:
        if f.column not in model.spend_map:
            raise ExploreError(
                f"ROI compares revenue with spend, which can be filtered only by {mapped}: not by '{f.column}'"
            )


def _coerce_filter(model: Model, f: Filter) -> Filter:
    col = column_for(model, f.column)
    if f.op not in OPS[col.kind]:
        raise ExploreError(f"filter on '{f.column}': '{f.op[:20]}' does not apply (use {', '.join(OPS[col.kind])})")
    if f.op in ("is_null", "not_null"):
        return Filter(f.column, f.op, ())
    if f.op == "between":
        if len(f.values) != 2 or all(v in (None, "") for v in f.values):
            raise ExploreError(f"filter on '{f.column}': a range needs a lower or an upper end")
        return Filter(f.column, f.op, tuple(None if v in (None, "") else _coerce(col, f.column, v) for v in f.values))
    if f.op == "contains":
        if len(f.values) != 1 or not isinstance(f.values[0], str) or not f.values[0]:
            raise ExploreError(f"filter on '{f.column}': 'contains' needs one piece of text")
        return Filter(f.column, f.op, (f.values[0],))
    if not f.values:
        raise ExploreError(f"filter on '{f.column}': choose at least one value")
    if len(f.values) > MAX_LIST:
        raise ExploreError(f"filter on '{f.column}': at most {MAX_LIST} values")
    return Filter(f.column, f.op, tuple(_coerce(col, f.column, v) for v in f.values))


def _coerce(col: Column, name: str, v: Any) -> Any:
    try:
        if col.kind == "number":
            if isinstance(v, bool):
                raise ValueError
            return float(v)
        if col.kind == "date":
            return v if isinstance(v, date) and not isinstance(v, datetime) else date.fromisoformat(str(v)[:10])
        if col.kind == "bool":
            if isinstance(v, bool):
                return v
            if str(v).lower() in ("true", "false"):
                return str(v).lower() == "true"
            raise ValueError
    except (TypeError, ValueError):
        raise ExploreError(f"filter on '{name}': {str(v)[:40]!r} is not a {col.kind}") from None
    if not isinstance(v, str | int | float):
        raise ExploreError(f"filter on '{name}': {str(v)[:40]!r} is not text")
    return str(v)


# -- SQL --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Query:
    sql: str
    params: dict[str, Any]
    dims: tuple[str, ...]  # result column names of the dimensions
    sets: tuple[tuple[str, ...], ...]  # the grouping sets, in the order of their _set number


_SQL_TYPE = {"text": "VARCHAR", "number": "DOUBLE", "date": "DATE", "bool": "BOOLEAN"}


def _dim_expr(model: Model, d: Dim, exprs: dict[str, str] | None = None) -> str:
    expr = (exprs or {}).get(d.column, model.columns[d.column].expr)
    return f"CAST(date_trunc('{d.grain}', {expr}) AS DATE)" if d.grain else expr


def _where(
    model: Model, filters: tuple[Filter, ...], params: dict[str, Any], exprs: dict[str, str] | None = None
) -> list[str]:
    """One condition per filter; values only as parameters ($f0, $f1, ...)."""
    out: list[str] = []
    for f in filters:
        col = model.columns[f.column]
        expr = (exprs or {}).get(f.column, col.expr)
        p = f"f{len(params)}"
        if f.op == "is_null":
            out.append(f"{expr} IS NULL")
        elif f.op == "not_null":
            out.append(f"{expr} IS NOT NULL")
        elif f.op == "contains":
            params[p] = f.values[0]
            out.append(f"contains(lower(CAST({expr} AS VARCHAR)), lower(${p}))")
        elif f.op == "between":
            lo, hi = f.values
            if lo is not None:
                params[p] = lo
                out.append(f"{expr} >= CAST(${p} AS {_SQL_TYPE[col.kind]})")
            if hi is not None:
                q = f"f{len(params)}"
                params[q] = hi
                # a date range includes its last day: before the next midnight
                upper = f"CAST(${q} AS DATE) + INTERVAL 1 DAY" if col.kind == "date" else f"CAST(${q} AS DOUBLE)"
                out.append(f"{expr} {'<' if col.kind == 'date' else '<='} {upper}")
        else:
            params[p] = list(f.values)
            found = f"list_contains(CAST(${p} AS {_SQL_TYPE[col.kind]}[]), {expr})"
            out.append(found if f.op == "in" else f"({expr} IS NULL OR NOT {found})")
    return out


def _grouping_sets(spec: Spec) -> tuple[tuple[str, ...], ...]:
    """The detail, the grand total, and with a pivot the totals per pivot column and per row."""
    keys = tuple(d.key for d in spec.dims)
    if not keys:
        return ((),)
    sets: list[tuple[str, ...]] = [keys, ()]
    if spec.pivot:
        sets += [(spec.pivot,), tuple(k for k in keys if k != spec.pivot)]
    return tuple(dict.fromkeys(sets))


def _needed_joins(model: Model, spec: Spec) -> list[str]:
    wanted: set[str] = set()
    for name in [d.column for d in spec.dims] + [f.column for f in spec.filters]:
        wanted |= set(model.columns[name].joins)
    for m in spec.measures:
        wanted |= set(model.measures[m].joins)
    return [sql for name, sql in model.joins.items() if name in wanted]


def _set_case(exprs: dict[str, str], sets: tuple[tuple[str, ...], ...]) -> str:
    """Which grouping set a row belongs to, numbered as ``sets``."""
    if len(sets) == 1:
        return "0"
    keys = list(exprs)
    whens = []
    for i, s in enumerate(sets):
        bits = sum(1 << (len(keys) - 1 - j) for j, k in enumerate(keys) if k not in s)
        whens.append(f"WHEN {bits} THEN {i}")
    return f"CASE GROUPING({', '.join(exprs.values())}) {' '.join(whens)} END"


def withheld(role: str) -> frozenset[str]:
    """Explore's measures ``role`` is not shown over its own rows: those that are semantic-layer metrics with
    another scope for the role. A sales rep's ROI and marketing spend are company figures (the cockpit shows
    them labelled so); by channel over the rep's own leads they would be the company's spend against one
    rep's revenue (issue 19, point 1)."""
    lay = layer()
    return frozenset(m for m, name in EXPLORE_MEASURES.items() if lay.metric(name).rule(role).scope != "rows")


def build_query(spec: Spec, role: str | None = None) -> Query:
    """The one SELECT that answers the view: grouping sets give exact totals (a conversion rate or a
    distinct count does not add up), ``_set`` says which set a row belongs to. With ``role``, a measure
    the role is not shown row by row (``withheld``) is refused."""
    spec = validate(spec)
    refused = [m for m in spec.measures if role is not None and m in withheld(role)]
    if refused:
        raise ExploreError(f"measure '{refused[0]}' is a company-level figure for role {role}: see the cockpit")
    model = model_for(spec.model)
    params: dict[str, Any] = {}
    keys = tuple(d.key for d in spec.dims)
    sets = _grouping_sets(spec)
    exprs = {d.key: _dim_expr(model, d) for d in spec.dims}
    select = [f'{e} AS "{k}"' for k, e in exprs.items()]
    measures = [f'{model.measures[m].expr} AS "{m}"' for m in spec.measures if m != "roi"]
    if "roi" in spec.measures:  # an aggregate in every row of m (ROI alone without a dimension is one row)
        measures.append("count(*) AS _rows")
    where = _where(model, spec.filters, params)
    grouping = _group_by(exprs, sets)
    body = (
        f"SELECT {', '.join([*select, *measures, f'{_set_case(exprs, sets)} AS _set'])}\n"
        f"FROM {model.relation}\n"
        + "".join(f"{j}\n" for j in _needed_joins(model, spec))
        + (f"WHERE {' AND '.join(where)}\n" if where else "")
        + grouping
    )
    if "roi" in spec.measures:
        body = _roi_sql(model, spec, body, keys, sets, params)
    order = ["_set"] + [f'"{k}" NULLS LAST' for k in keys]
    sql = f"SELECT * FROM (\n{body}\n) ORDER BY {', '.join(order)} LIMIT {MAX_GROUPS + len(sets)}"
    return Query(sql, params, keys, sets)


def _group_by(exprs: dict[str, str], sets: tuple[tuple[str, ...], ...]) -> str:
    """Grouped by the expressions themselves: an alias could name a different column of the table."""
    if not exprs:
        return ""
    return "GROUP BY GROUPING SETS (" + ", ".join("(" + ", ".join(exprs[k] for k in s) + ")" for s in sets) + ")\n"


def _roi_sql(
    model: Model,
    spec: Spec,
    body: str,
    keys: tuple[str, ...],
    sets: tuple[tuple[str, ...], ...],
    params: dict[str, Any],
) -> str:
    """Revenue per group against the spend of the same channel/campaign/period and filters, as the semantic
    layer's roi reads it (dashboard/metrics.toml): each group cut by channel, the revenue of its channels with
    spend less that spend, over it. A channel without spend returns nothing on spend, so its revenue is left
    out: Explore's total is the cockpit's ROI, and a month's is the cockpit's for that month."""
    lead = {k: _dim_expr(model, d) for k, d in zip(keys, spec.dims, strict=True)}
    paid = {k: _dim_expr(model, d, model.spend_map) for k, d in zip(keys, spec.dims, strict=True)}
    if "channel" not in {d.column for d in spec.dims}:  # the cells are the groups' channels
        lead["_channel"], paid["_channel"] = model.columns["channel"].expr, model.spend_map["channel"]

    def cells(exprs: dict[str, str], value: str, relation: str, where: list[str]) -> str:
        cols = [f'CAST({e} AS VARCHAR) AS "{k}"' for k, e in exprs.items()]
        return (
            f"SELECT {', '.join([*cols, value])} FROM {relation}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + " GROUP BY ALL"
        )

    revenue = cells(
        lead, "coalesce(sum(t.won_amount), 0) AS _revenue", model.relation, _where(model, spec.filters, params)
    )
    where = _where(model, spec.filters, params, model.spend_map)
    cost = cells(paid, "sum(s.cost) AS _cost", "marketing_spend AS s", where)
    same = " AND ".join(f'r."{k}" IS NOT DISTINCT FROM s."{k}"' for k in lead)
    joined = ", ".join(f'coalesce(r."{k}", s."{k}") AS "{k}"' for k in lead)
    out = {k: f'c."{k}"' for k in keys}
    spend = "sum(c._cost)"
    roi = f"CASE WHEN {spend} > 0 THEN (sum(c._revenue) FILTER (WHERE c._cost > 0) - {spend}) / {spend} END"
    select = [*(f'{e} AS "{k}"' for k, e in out.items()), f"{roi} AS roi", f"{_set_case(out, sets)} AS _set"]
    on = " AND ".join(["g._set = m._set", *(f'g."{k}" IS NOT DISTINCT FROM CAST(m."{k}" AS VARCHAR)' for k in keys)])
    return (
        f"WITH m AS (\n{body}),\n"
        f"c AS (SELECT {joined}, r._revenue, s._cost FROM ({revenue}) AS r FULL JOIN ({cost}) AS s ON {same}),\n"
        f"g AS (SELECT {', '.join(select)} FROM c {_group_by(out, sets)})\n"
        f"SELECT m.* EXCLUDE (_rows, _set), g.roi, m._set FROM m LEFT JOIN g ON {on}"
    )


# -- the result -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Result:
    spec: Spec
    rows: pl.DataFrame  # the detail: one row per combination of the dimensions
    totals: dict[str, Any]  # measure → the grand total (computed, not summed)
    truncated: bool
    subtotals: dict[tuple[str, ...], pl.DataFrame]  # other grouping sets (the pivot's totals)


def shape(spec: Spec, query: Query, frame: pl.DataFrame) -> Result:
    """Split the query's rows by grouping set; measures in the spec's order."""
    spec = validate(spec)
    cols = [*query.dims, *spec.measures]
    parts = {
        s: frame.filter(pl.col("_set") == i).select([c for c in cols if c in s or c in spec.measures])
        for i, s in enumerate(query.sets)
    }
    detail = parts[query.sets[0]]
    total = parts.get((), detail if not query.dims else detail.clear())
    totals = {m: (total[m][0] if total.height else None) for m in spec.measures}
    subtotals = {s: f for s, f in parts.items() if s and s != query.sets[0]}
    return Result(spec, detail.head(MAX_GROUPS), totals, detail.height > MAX_GROUPS, subtotals)


TOTAL = "__total__"  # the label of a pivot's total row and column (translated by the page)


def pivot(result: Result) -> pl.DataFrame:
    """The pivot dimension's values become columns (one per value and measure), with a total per row
    and a total row, both computed by the query."""
    spec = result.spec
    if not spec.pivot:
        return result.rows
    index = [d.key for d in spec.dims if d.key != spec.pivot]
    values = list(spec.measures)
    rows = result.rows.with_columns(pl.col(spec.pivot).cast(pl.String).fill_null("—"))
    wide = rows.pivot(on=spec.pivot, index=index, values=values, aggregate_function=None).sort(index, nulls_last=True)
    if len(values) == 1:
        wide = wide.rename({c: c.removeprefix(f"{values[0]}_") for c in wide.columns if c not in index})
    row_totals = result.subtotals.get(tuple(index))
    if row_totals is not None:
        named = row_totals.rename({m: f"{m}_{TOTAL}" if len(values) > 1 else TOTAL for m in values})
        wide = wide.join(
            named.select([*index, *[c for c in named.columns if c not in index]]),
            on=index,
            how="left",
            nulls_equal=True,
        )
    col_totals = result.subtotals.get((spec.pivot,))
    if col_totals is not None:
        col_totals = col_totals.with_columns(pl.col(spec.pivot).cast(pl.String).fill_null("—"))
        total_row: dict[str, Any] = {k: None for k in wide.columns}
        total_row[index[0]] = TOTAL
        for r in col_totals.iter_rows(named=True):
            for m in values:
                total_row[r[spec.pivot] if len(values) == 1 else f"{m}_{r[spec.pivot]}"] = r[m]
        for m in values:
            total_row[TOTAL if len(values) == 1 else f"{m}_{TOTAL}"] = result.totals[m]
        wide = wide.cast({index[0]: pl.String}) if wide.schema[index[0]] != pl.String else wide
        wide = pl.concat([wide, pl.DataFrame([total_row], schema=wide.schema, strict=False)], how="vertical")
    return wide


def chart_options(spec: Spec) -> list[str]:
    """The charts that can draw the view's shape."""
    n_dims, n_meas = len(spec.dims), len(spec.measures)
    if n_dims == 0:
        return ["bar"]
    options = ["bar", "line"]
    if n_dims >= 2 or n_meas >= 2:
        options.append("stacked")
    if n_dims == 1 and n_meas == 1:
        options.append("pie")
    if n_dims == 2:
        options.append("heatmap")
    if n_meas == 2:  # one measure across, the other up
        options.append("scatter")
    return options


def suggest_chart(spec: Spec, rows: pl.DataFrame) -> str:
    """What the result's shape reads best as: time → line; two categories → stacked or a heatmap when
    both are many; one small breakdown of one measure → pie; two measures over many items → scatter."""
    dates = [d for d in spec.dims if d.grain]
    if not spec.dims:
        return "bar"
    if dates:
        return "line"
    if len(spec.dims) == 2:
        many = all(rows[d.key].n_unique() > 8 for d in spec.dims) if rows.height else False
        return "heatmap" if many else "stacked"
    if len(spec.measures) == 2 and rows.height > 12:
        return "scatter"
    if (
        len(spec.measures) == 1
        and 1 < rows.height <= 6
        and model_for(spec.model).measures[spec.measures[0]].unit in ("count", "money")
    ):
        return "pie"
    return "bar"


def values_query(model_name: str, column: str, limit: int = 200) -> Query:
    """The distinct values of a column (for a filter's choices), as the user sees them."""
    model = model_for(model_name)
    col = column_for(model, column)
    joins = [sql for name, sql in model.joins.items() if name in col.joins]
    sql = (
        f"SELECT DISTINCT {col.expr} AS value FROM {model.relation} {' '.join(joins)} "
        f"WHERE {col.expr} IS NOT NULL ORDER BY 1 LIMIT {int(limit)}"
    )
    return Query(sql, {}, (), ((),))


def rows_query(model_name: str) -> Query | None:
    """How many rows the model's required relation has (0: that part of the build is not there yet)."""
    model = model_for(model_name)
    if not model.requires:
        return None
    return Query(f"SELECT count(*) AS n FROM {model.requires}", {}, (), ((),))


def compare(now: Result, then: Result) -> pl.DataFrame:
    """The same view on two snapshots, side by side: per measure its value now, then, and the change;
    the last row is the total."""
    keys = [d.key for d in now.spec.dims]
    measures = list(now.spec.measures)
    renamed = then.rows.rename({m: f"{m}_as_of" for m in measures})
    if keys:
        table = now.rows.join(renamed, on=keys, how="full", coalesce=True, nulls_equal=True)
        total = {**{k: None for k in keys}, **now.totals, **{f"{m}_as_of": then.totals[m] for m in measures}}
        table = pl.concat(
            [
                table.with_columns(pl.col(keys[0]).cast(pl.String)),
                pl.DataFrame([{**total, keys[0]: TOTAL}], schema_overrides={keys[0]: pl.String}),
            ],
            how="diagonal_relaxed",
        )
    else:
        table = pl.concat([now.rows, renamed], how="horizontal")
    for m in measures:
        table = table.with_columns(
            (pl.col(m).cast(pl.Float64) - pl.col(f"{m}_as_of").cast(pl.Float64)).alias(f"{m}_change")
        )
    order = [*keys, *[c for m in measures for c in (m, f"{m}_as_of", f"{m}_change")]]
    return table.select(order)
