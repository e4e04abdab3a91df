"""The Explore page's read-only SQL tab: a query an analyst types runs only if DuckDB's own parser
shows it is one SELECT that reads nothing but the relations of the user's role schema.

A role schema's search path does not stop ``base.leads``, ``read_csv('/etc/passwd')`` or
``FROM '/etc/passwd'`` (a replacement scan), and external access cannot be switched off on the shared
connection (the views read Parquet), so the query is checked, not trusted: ``json_serialize_sql``
parses it (it refuses anything but SELECT), and the tree is walked — every table reference must be an
unqualified name of a relation the role may read, or of a CTE in scope; table functions, schema- or
catalog-qualified names, ``AT`` time travel and functions that read settings or the catalog are
refused. The exact text that runs (the query wrapped in a row limit) is checked again, then run on a
cursor in the role's schema, interrupted after a time limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from dashboard.core.errors import AccessDenied, QueryError
from dashboard.query.explore.models import ExploreError
from dashboard.query.security import Principal, role_view_sql
from dashboard.query.warehouse import Warehouse, relations

MAX_ROWS = 10_000
TIMEOUT_SECONDS = 10.0
MAX_LENGTH = 20_000  # characters of SQL
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
# Scalars that read settings, variables, the running query or the catalog's definitions.
DENIED_FUNCTIONS = frozenset(
    {"current_setting", "getvariable", "current_query", "col_description", "obj_description", "shobj_description"}
)
DENIED_PREFIXES = ("pg_", "has_", "read_", "duckdb_", "pragma_", "json_execute", "inet_", "parquet_", "glob")
QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
TABLE_REFS = frozenset({"BASE_TABLE", "JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST", "TABLE_FUNCTION", "PIVOT"})


class SqlRefused(ExploreError):
    """The SQL tab will not run this query; the message says why."""


@dataclass(frozen=True)
class SqlResult:
    frame: pl.DataFrame
    truncated: bool  # more than MAX_ROWS rows: the first MAX_ROWS are shown


def readable(role: str) -> list[str]:
    """The relations a role's SQL may name: those with a view in its schema."""
    return sorted(n for n, cols in relations().items() if role_view_sql(role, n, cols) is not None)


def _parse(wh: Warehouse, sql: str) -> dict[str, Any]:
    text = wh.sql("SELECT json_serialize_sql($q) AS tree", {"q": sql}).item()
    tree: dict[str, Any] = json.loads(text)
    if tree.get("error"):
        message = str(tree.get("error_message", "")).splitlines()[0]
        if "Only SELECT" in message:
            first = (sql.split() or ["?"])[0].upper()[:20]
            raise SqlRefused(
                f"only a SELECT can run here; '{first}' is refused (no COPY, ATTACH, INSTALL, SET, PRAGMA, "
                "CALL, EXPLAIN or writing)"
            )
        raise SqlRefused(f"the query cannot be read: {message}")
    return tree


def check(wh: Warehouse, sql: str, role: str) -> None:
    """Refuse (SqlRefused, with the reason) anything but one SELECT over the role's own relations."""
    if len(sql) > MAX_LENGTH:
        raise SqlRefused(f"the query is longer than {MAX_LENGTH:,} characters")
    statements = _parse(wh, sql).get("statements") or []
    if len(statements) != 1:
        raise SqlRefused(f"one SELECT statement at a time (found {len(statements)})")
    _walk(statements[0], frozenset(), frozenset(readable(role)), role)


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
            raise SqlRefused(f"this kind of query is not allowed here ({kind.lower()})")
    elif kind is not None and "sample" in node and kind not in TABLE_REFS:
        raise SqlRefused(f"'{kind.lower()}' is not allowed here: read the tables with SELECT")
    if kind == "BASE_TABLE":
        _table(node, scope, allowed, role)
    elif kind == "TABLE_FUNCTION":
        name = str((node.get("function") or {}).get("function_name", "")).lower()
        if name not in TABLE_FUNCTIONS:
            raise SqlRefused(
                f"'{name[:40]}' is not allowed: the SQL tab reads only the tables listed, no files or table functions"
            )
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
        raise SqlRefused(f"'{path[:80]}': name tables without a schema or database (they are your role's own views)")
    if node.get("at_clause"):
        raise SqlRefused(f"'{name[:40]}': AT (time travel) is not allowed")
    if name.lower() not in scope | allowed:
        raise SqlRefused(
            f"'{name[:80]}' is not a table the role '{role}' can read here (tables: {', '.join(sorted(allowed))})"
        )


def _function(node: dict[str, Any]) -> None:
    name = str(node.get("function_name", "")).lower()
    if node.get("schema") or node.get("catalog"):
        raise SqlRefused(f"'{name[:40]}': call functions without a schema or database")
    if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
        raise SqlRefused(f"the function '{name[:40]}' is not allowed here")


def _strip(sql: str) -> str:
    text = sql.strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise SqlRefused("type a SELECT query")
    return text


def run_readonly(
    wh: Warehouse, sql: str, user: Principal, max_rows: int = MAX_ROWS, timeout: float = TIMEOUT_SECONDS
) -> SqlResult:
    """Check, then run the query as ``user`` sees the data, at most ``max_rows`` rows and ``timeout``
    seconds. The text that runs is checked too (the wrapping must not change what is read)."""
    query = _strip(sql)
    check(wh, query, user.role)
    wrapped = f"SELECT * FROM (\n{query}\n) AS q LIMIT {int(max_rows) + 1}"
    check(wh, wrapped, user.role)
    frame = _execute(wh, wrapped, user, timeout)
    return SqlResult(frame.head(max_rows), frame.height > max_rows)


def _execute(wh: Warehouse, sql: str, user: Principal, timeout: float) -> pl.DataFrame:
    """The checked query through Warehouse.sql (the user's role schema, a time limit); refusals and
    engine errors become SqlRefused with their message."""
    try:
        return wh.sql(sql, user=user, timeout=timeout)
    except AccessDenied as e:
        raise SqlRefused(f"not available to the role '{user.role}': {e.detail}") from None
    except QueryError as e:  # a time-out says so itself; an engine error is its first line
        raise SqlRefused(e.message) from None
