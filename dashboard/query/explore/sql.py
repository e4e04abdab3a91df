"""The Explore page's read-only SQL tab: a query an analyst types runs only if DuckDB's own parser
shows it is one SELECT that reads nothing but the relations of the user's role schema.

A role schema's search path does not stop ``base.leads``, ``read_csv('/etc/passwd')`` or
``FROM '/etc/passwd'`` (a replacement scan), and external access cannot be switched off on the shared
connection (the views read Parquet), so the query is checked, not trusted: ``json_serialize_sql``
parses it (it refuses anything but SELECT), and the tree is walked — every table reference must be an
unqualified name of a relation the role may read, or of a CTE in scope; table functions, schema- or
catalog-qualified names, ``AT`` time travel and functions that read settings or the catalog are
refused. The exact text that runs (the query wrapped in a row limit) is checked again, then run in a
process of its own (dashboard/query/sandbox.py) on a cursor in the role's schema, stopped at the time
and memory limits of ``[query]`` however long one expression takes.

Every refusal says why in both languages (``SqlRefused.text``; the i18n keys ``sql.refused.*``). The
SQL tab and ``cockpit sql`` both run a statement through ``run_audited``: the same checks, limits,
masking and audit entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from dashboard.core import audit
from dashboard.core.errors import AccessDenied, QueryError, QueryTimeout
from dashboard.i18n import t
from dashboard.query import sandbox
from dashboard.query.explore.models import ExploreError
from dashboard.query.security import SYSTEM, Principal, role_view_sql
from dashboard.query.warehouse import Warehouse, relations

MAX_LENGTH = 20_000  # characters of SQL
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
# Scalars that read settings, variables, the environment, the running query or the catalog's definitions.
DENIED_FUNCTIONS = frozenset(
    {
        "current_setting",
        "getvariable",
        "getenv",
        "current_query",
        "col_description",
        "obj_description",
        "shobj_description",
        "pseudonym",  # a token for a guessed phone would confirm the guess against the served pseudonyms
    }
)
DENIED_PREFIXES = ("pg_", "has_", "read_", "duckdb_", "pragma_", "json_execute", "inet_", "parquet_", "glob")
QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
TABLE_REFS = frozenset({"BASE_TABLE", "JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST", "TABLE_FUNCTION", "PIVOT"})


class SqlRefused(ExploreError):
    """The SQL tab will not run this query, or stopped it; ``message`` says why in English, ``text(lang)``
    in the user's language (``key`` is the i18n key under ``sql.refused.``)."""

    def __init__(self, key: str, **values: Any) -> None:
        self.key, self.values = key, values
        super().__init__(self.text("en"))

    def text(self, lang: str) -> str:
        return t(f"sql.refused.{self.key}", lang, **self.values)


@dataclass(frozen=True)
class SqlResult:
    frame: pl.DataFrame
    truncated: bool  # more than the row limit: the first rows are shown


def readable(role: str) -> list[str]:
    """The relations a role's SQL may name: those with a view in its schema."""
    return sorted(n for n, cols in relations().items() if role_view_sql(role, n, cols) is not None)


def _parse(wh: Warehouse, sql: str) -> dict[str, Any]:
    text = wh.sql("SELECT json_serialize_sql($q) AS tree", {"q": sql}, user=SYSTEM).item()
    tree: dict[str, Any] = json.loads(text)
    if tree.get("error"):
        message = str(tree.get("error_message", "")).splitlines()[0]
        if "Only SELECT" in message:
            raise SqlRefused("not_select", first=(sql.split() or ["?"])[0].upper()[:20])
        raise SqlRefused("unreadable", message=message)
    return tree


def check(wh: Warehouse, sql: str, role: str) -> None:
    """Refuse (SqlRefused, with the reason) anything but one SELECT over the role's own relations."""
    if len(sql) > MAX_LENGTH:
        raise SqlRefused("too_long", n=f"{MAX_LENGTH:,}")
    try:
        statements = _parse(wh, sql).get("statements") or []
        if len(statements) != 1:
            raise SqlRefused("statements", n=len(statements))
        _walk(statements[0], frozenset(), frozenset(readable(role)), role)
    except RecursionError:  # hundreds of nested subqueries: deeper than the tree can be read here
        raise SqlRefused("too_deep") from None


def _walk(node: Any, scope: frozenset[str], allowed: frozenset[str], role: str) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, scope, allowed, role)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type") if isinstance(node.get("type"), str) and "class" not in node else None
    if kind == "RECURSIVE_CTE_NODE":  # the recursive part names the CTE itself
        scope = scope | {str(node.get("cte_name", "")).lower()}
    if kind is not None and kind.endswith("_NODE"):
        if kind not in QUERY_NODES:
            raise SqlRefused("node", kind=kind.lower())
    elif kind is not None and "sample" in node and kind not in TABLE_REFS:
        raise SqlRefused("clause", kind=kind.lower())
    if kind == "BASE_TABLE":
        _table(node, scope, allowed, role)
    elif kind == "TABLE_FUNCTION":
        name = str((node.get("function") or {}).get("function_name", "")).lower()
        if name not in TABLE_FUNCTIONS:
            raise SqlRefused("table_function", name=name[:40])
    if "function_name" in node:
        _function(node)
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        # each CTE sees the outer scope and the CTEs before it; the rest of the node sees them all
        inner = scope
        for entry in cte_map.get("map") or []:
            _walk(entry.get("value"), inner, allowed, role)
            inner = inner | {str(entry.get("key", "")).lower()}
        scope = inner
    for key, value in node.items():
        if key != "cte_map":
            _walk(value, scope, allowed, role)


def _table(node: dict[str, Any], scope: frozenset[str], allowed: frozenset[str], role: str) -> None:
    name = str(node.get("table_name", ""))
    path = ".".join((node.get("qualified_name") or {}).get("path") or [name])
    if node.get("schema_name") or node.get("catalog_name") or ("." in path and path != name):
        raise SqlRefused("qualified", path=path[:80])
    if node.get("at_clause"):
        raise SqlRefused("time_travel", name=name[:40])
    if name.lower() not in scope | allowed:
        raise SqlRefused("table", name=name[:80], role=role, tables=", ".join(sorted(allowed)))


def _function(node: dict[str, Any]) -> None:
    name = str(node.get("function_name", "")).lower()
    if node.get("schema") or node.get("catalog"):
        raise SqlRefused("qualified_function", name=name[:40])
    if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
        raise SqlRefused("function", name=name[:40])


def _strip(sql: str) -> str:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise SqlRefused("empty")
    return text


def run_readonly(
    wh: Warehouse, sql: str, user: Principal, max_rows: int | None = None, timeout: float | None = None
) -> SqlResult:
    """Check, then run the query as ``user`` sees the data, at most ``max_rows`` rows and ``timeout``
    seconds (default and most: ``[query] sql_max_rows`` and ``sql_timeout_seconds``). The text that
    runs is checked too (the wrapping must not change what is read)."""
    limits = wh.settings.query
    rows = limits.sql_max_rows if max_rows is None else min(int(max_rows), limits.sql_max_rows)
    if timeout is not None and not 0 < timeout <= limits.sql_timeout_seconds:
        raise SqlRefused("timeout_limit", seconds=f"{limits.sql_timeout_seconds:g}")
    query = _strip(sql)
    check(wh, query, user.role)
    wrapped = f"SELECT * FROM (\n{query}\n) AS q LIMIT {rows + 1}"
    check(wh, wrapped, user.role)
    frame = _execute(wh, wrapped, user, limits.sql_timeout_seconds if timeout is None else timeout)
    return SqlResult(frame.head(rows), frame.height > rows)


def _execute(wh: Warehouse, sql: str, user: Principal, timeout: float) -> pl.DataFrame:
    """The checked query in a sandboxed process (the user's role schema, the time and memory limits);
    refusals, stops and engine errors become SqlRefused with their reason."""
    try:
        return sandbox.run(wh.settings, sql, user, timeout)
    except AccessDenied as e:
        raise SqlRefused("role", role=user.role, detail=e.detail) from None
    except QueryTimeout:
        raise SqlRefused("timeout", seconds=f"{timeout:g}") from None
    except sandbox.Stopped as e:
        raise SqlRefused(e.reason, **e.values) from None
    except QueryError as e:  # an engine error: its first line
        raise SqlRefused("error", message=e.message) from None


def run_audited(
    wh: Warehouse,
    sql: str,
    user: Principal,
    client: str | None,
    max_rows: int | None = None,
    timeout: float | None = None,
) -> SqlResult:
    """``run_readonly``, with the run or the refusal in the audit log (action ``query``, target
    ``explore_sql``, the text, and the client: the browser's address, or ``cli``)."""
    who = (wh.settings, "query", user.username, user.role, client)
    try:
        result = run_readonly(wh, sql, user, max_rows, timeout)
    except SqlRefused as e:
        audit.record(*who, target="explore_sql", sql=sql[:2000], refused=e.message)
        raise
    audit.record(*who, target="explore_sql", rows=result.frame.height, sql=sql[:2000])
    return result
