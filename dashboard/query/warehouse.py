"""The query layer: an in-process DuckDB with one view per canonical entity (the union of every
source's current snapshot) and per derived table, built from manifest.json, plus named queries.

Named queries live in ``queries/<name>.sql``; their parameters are bound by DuckDB, never formatted
into the SQL text.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard.core.config import Settings
from dashboard.core.dictionary import MASK_MACROS
from dashboard.core.duck import entity_columns
from dashboard.core.entities import ENTITIES
from dashboard.core.errors import AccessDenied, QueryError, QueryTimeout
from dashboard.core.store import Manifest, Store
from dashboard.derived.tables import DERIVED_TABLES, FILTERED_LEADS_MACRO, attach_views
from dashboard.query.security import ROLES, SALES_HELPERS, Principal, role_schema, role_view_sql

QUERIES_DIR = Path(__file__).resolve().parents[2] / "queries"
# The page summaries, held in memory by the serving connection.
IN_MEMORY = frozenset({"lead_facts", "attribution", "filter_values", "customer_index"})
# Their filter bar's columns, held as ENUMs (small integer codes): a group by or filter on a channel compares
# codes instead of strings (measured at large: the channels page's queries 298 -> 223 ms). Results come
# back as text (Warehouse.sql); the values are sorted, so they also order as text does.
ENUM_COLUMNS: dict[str, tuple[str, ...]] = {"lead_facts": ("source_system", "channel", "campaign", "region", "owner")}


def relations() -> dict[str, dict[str, str]]:
    """Every relation the query layer serves, and its columns: the entities, then the derived tables."""
    return {**{e: entity_columns(e) for e in ENTITIES}, **DERIVED_TABLES}


def attach_role_views(con: duckdb.DuckDBPyConnection, base: str = "base") -> None:
    """Each role's schema: a view per relation it may read, carrying its row filter and masking
    (dashboard/query/security.py), and its own filter macros. A relation a role may not read has no view
    there, so a query naming it fails for that role; main holds only the masking functions."""
    con.execute(MASK_MACROS)
    con.execute(SALES_HELPERS.format(base=base))
    for role in ROLES:
        schema = role_schema(role)
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        con.execute(f"CREATE SCHEMA {schema}")
        for name, columns in relations().items():
            sql = role_view_sql(role, name, columns, base)
            if sql is not None:
                con.execute(sql)
        if role_view_sql(role, "lead_facts", DERIVED_TABLES["lead_facts"], base) is not None:
            con.execute(FILTERED_LEADS_MACRO.format(s=schema))


# -- named queries ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    name: str
    type: str  # date | str | int | float
    optional: bool


@dataclass(frozen=True)
class NamedQuery:
    name: str
    sql: str
    description: str
    params: tuple[Param, ...]
    columns: tuple[str, ...]


_HEADER = re.compile(r"^--\s*(name|description|params|columns):\s*(.*)$")


def load_query(name: str) -> NamedQuery:
    if not re.fullmatch(r"[a-z0-9_]+", name):
        raise QueryError(f"no query named '{name}'")
    path = QUERIES_DIR / f"{name}.sql"
    if not path.is_file():
        raise QueryError(f"no query named '{name}' (available: {', '.join(list_queries())})")
    sql = path.read_text(encoding="utf-8")
    header: dict[str, str] = {}
    for line in sql.splitlines():
        if m := _HEADER.match(line.strip()):
            header[m.group(1)] = m.group(2).strip()
    params = []
    for item in filter(None, (p.strip() for p in header.get("params", "").split(","))):
        pname, _, ptype = item.partition(":")
        params.append(Param(pname.strip(), ptype.strip().rstrip("?") or "str", ptype.strip().endswith("?")))
    columns = tuple(c.strip() for c in header.get("columns", "").split(",") if c.strip())
    return NamedQuery(name, sql, header.get("description", ""), tuple(params), columns)


def list_queries() -> list[str]:
    return sorted(p.stem for p in QUERIES_DIR.glob("*.sql"))


def _coerce(param: Param, value: Any) -> Any:
    if value is None or value == "":
        return None
    try:
        if param.type == "date":
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
        if param.type == "int":
            return int(value)
        if param.type == "float":
            return float(value)
    except ValueError:
        raise QueryError(f"parameter '{param.name}' must be a {param.type}, got {value!r}") from None
    return str(value)


def bind_params(query: NamedQuery, params: dict[str, Any] | None) -> dict[str, Any]:
    params = dict(params or {})
    known = {p.name for p in query.params}
    unknown = sorted(set(params) - known)
    if unknown:
        raise QueryError(
            f"query '{query.name}' has no parameter {', '.join(unknown)} (parameters: {', '.join(known) or 'none'})"
        )
    bound = {}
    for p in query.params:
        value = _coerce(p, params.get(p.name))
        if value is None and not p.optional:
            raise QueryError(f"query '{query.name}' needs parameter '{p.name}' ({p.type})")
        bound[p.name] = value
    return bound


def as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the ENUM columns of the in-memory tables (polars Categorical) back as text."""
    cats = [n for n, d in frame.schema.items() if isinstance(d, (pl.Categorical, pl.Enum))]
    lists = [
        n for n, d in frame.schema.items() if isinstance(d, pl.List) and isinstance(d.inner, (pl.Categorical, pl.Enum))
    ]
    if not cats and not lists:
        return frame
    return frame.with_columns(pl.col(cats).cast(pl.String), pl.col(lists).cast(pl.List(pl.String)))


BASE = "base"  # the unrestricted relations; users read them only through their role's schema


class Warehouse:
    """A read-only view of the current manifest; rebuilds its views when the manifest changes.

    Every query runs on its own cursor whose search path is the asking user's role schema (see
    attach_role_views), with the user's owner name bound as a variable for the sales row filter."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.data_path)
        self._con = duckdb.connect(":memory:")
        self._lock = threading.Lock()
        self._version: tuple[int, float] | None = None
        self.manifest: Manifest = {}

    @property
    def version(self) -> int:
        self._sync()
        return int(self.manifest.get("version", 0))

    def _sync(self) -> None:
        try:
            mtime = self.store.manifest_path.stat().st_mtime
        except FileNotFoundError:
            mtime = 0.0
        first = self._version is None
        manifest = self.store.read_manifest() if first or mtime != self._version[1] else None  # type: ignore[index]
        if manifest is not None and (first or manifest.get("version") != self._version[0]):  # type: ignore[index]
            attach_views(self._con, self.store, manifest, IN_MEMORY, ENUM_COLUMNS, schema=BASE)
            attach_role_views(self._con, BASE)
            self.manifest = manifest
        if manifest is not None:
            self._version = (int(manifest.get("version", 0)), mtime)

    def sql(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        user: Principal | None = None,
        timeout: float | None = None,
    ) -> pl.DataFrame:
        """Run SQL as ``user`` sees the data (None: the system — derived builds, internal callers, tests);
        with ``timeout`` seconds, a timer interrupts this query's cursor only."""
        # The lock covers catching up with a new build and opening the cursor; the query itself runs on
        # its own cursor outside it, so one user's long query does not hold up everyone else's pages.
        with self._lock:
            self._sync()
            cur = self._con.cursor()
        timer = threading.Timer(timeout, cur.interrupt) if timeout else None
        try:
            cur.execute(f"SET search_path = '{BASE if user is None else role_schema(user.role)}'")
            if user is not None and user.role == "sales":
                cur.execute("SET VARIABLE cockpit_owner = $owner", {"owner": user.owner})
            if timer:
                timer.start()
            return as_text(cur.sql(sql, params=params or None).pl())
        except duckdb.InterruptException:
            raise QueryTimeout(f"the query ran longer than {timeout:g} s and was stopped") from None
        except duckdb.CatalogException as e:
            if user is None:
                raise QueryError(str(e).splitlines()[0]) from e
            role = user.role
            raise AccessDenied(f"this data is not available to the role '{role}'", str(e).splitlines()[0]) from e
        except duckdb.Error as e:
            raise QueryError(str(e).splitlines()[0]) from e
        finally:
            if timer:
                timer.cancel()
            cur.close()

    def run_query(self, name: str, params: dict[str, Any] | None = None, user: Principal | None = None) -> pl.DataFrame:
        """A named query as ``user`` sees it (None: the system, unrestricted)."""
        query = load_query(name)
        return self.sql(query.sql, bind_params(query, params), user)

    def close(self) -> None:
        self._con.close()
