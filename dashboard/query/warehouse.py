"""The query layer: an in-process DuckDB with one view per canonical entity (the union of every
source's current snapshot) and per derived table, built from manifest.json, plus named queries.

Named queries live in ``queries/<name>.sql``; their parameters are bound by DuckDB, never formatted
into the SQL text.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from dashboard.core.config import Settings
from dashboard.core.dictionary import MASK_MACROS
from dashboard.core.duck import attach_table, entity_columns, serving_connection
from dashboard.core.entities import ENTITIES
from dashboard.core.errors import AccessDenied, QueryError, QueryTimeout
from dashboard.core.keys import PSEUDONYM_KEY, own_key
from dashboard.core.store import Manifest, Store
from dashboard.derived.personal import PSN_SUFFIX, WHOLE, pseudonym_sql, pseudonymized
from dashboard.derived.tables import DERIVED_TABLES, FILTERED_LEADS_MACRO, attach_views
from dashboard.query.facts import attach_customer_keys, relation_kind
from dashboard.query.security import (
    ROLES,
    SALES_HELPERS,
    Personal,
    Principal,
    role_schema,
    role_view_sql,
)

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


# A personal key value replaced by a keyed pseudonym (same value, same token, so joins and counts hold);
# other values pass unchanged. The build writes the tokens of the sources' personal keys beside them
# (derived/personal.py, ``<relation>__psn``), which the role views read; this macro, with the key written into
# each serving connection (hex digits, checked: never bound per query; the SQL tab reads no catalog and refuses
# pseudonym()), covers what the build did not: a build made before the companion tables, a key found
# personal in a table without sources, an as-of comparison's older snapshot.
PSEUDONYM_MACRO = "CREATE OR REPLACE MACRO main.pseudonym(p) AS {token};"


def attach_pseudonymized(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    manifest: Manifest,
    base: str = "base",
    in_memory: frozenset[str] = IN_MEMORY,
) -> None:
    """``<base>.<relation>__psn`` over the build's companion tables (in memory beside a relation the
    connection holds in memory, ``in_memory``, its ENUM columns cast to the relation's), for
    attach_role_views to find."""
    tables = (manifest.get("derived") or {}).get("tables") or {}
    served = relations()
    for table, rel in sorted(tables.items()):
        relation = table.removesuffix(PSN_SUFFIX)
        if not table.endswith(PSN_SUFFIX) or relation not in served or not store.abs(rel).is_file():
            continue
        file = store.abs(rel)
        tokens = [c for c in pq.read_schema(file).names if c.endswith(PSN_SUFFIX)]
        columns = {**served[relation], **dict.fromkeys(tokens, "VARCHAR")}
        attach_table(con, table, [file], columns, base, relation in in_memory)
        enums = [c for c in ENUM_COLUMNS.get(relation, ()) if c in columns]
        if relation in in_memory and enums:  # our own names; the values are the relation's own rows'
            casts = ", ".join(f"CAST({c} AS {base}.{relation}__{c}) AS {c}" for c in enums)
            con.execute(f"CREATE OR REPLACE TABLE {base}.{table} AS SELECT * REPLACE ({casts}) FROM {base}.{table}")


def attach_role_views(
    con: duckdb.DuckDBPyConnection,
    base: str = "base",
    personal: dict[str, dict[str, Personal]] | None = None,
    key: str = "",
) -> None:
    """Each role's schema: a view per relation it may read, carrying its row filter and masking
    (dashboard/query/security.py), and its own filter macros. A relation a role may not read has no view
    there, so a query naming it fails for that role; main holds only the masking functions. ``personal``
    (relation → column → kind) overrides the `personal_columns` table (benchmarks/masking.py compares);
    ``key`` (hex) keys the pseudonyms of personal keys (none: every token is NULL, never the value)."""
    con.execute(MASK_MACROS)
    con.execute(PSEUDONYM_MACRO.format(token=pseudonym_sql(key, "p") if key else "NULL"))
    con.execute(SALES_HELPERS.format(base=base))
    precomputed: dict[str, dict[str, tuple[str, ...]]] = {}
    whole: set[str] = set()  # relations whose companion table holds every row (derived/personal.py WHOLE)
    if personal is None:  # the columns the refresh's profile found personal (derived/personal.py)
        personal = {}
        for relation, column, kind, sources in con.execute(
            f"SELECT relation, column_name, min(kind), CASE WHEN bool_or(source_system IS NULL) THEN [] "
            f"ELSE list(DISTINCT source_system ORDER BY source_system) END FROM {base}.personal_columns GROUP BY ALL"
        ).fetchall():
            personal.setdefault(relation, {})[column] = Personal(kind, tuple(sources))
        found = con.sql(f"SELECT relation, column_name, source_system, kind FROM {base}.personal_columns").pl()
        for relation, keys in pseudonymized(found).items():
            rows = _rows(con, base, f"{relation}{PSN_SUFFIX}")
            if rows:
                precomputed[relation] = keys
                if relation in WHOLE and rows == _rows(con, base, relation):  # a subset of it: all of it
                    whole.add(relation)
            elif rows == 0:  # no row of the relation comes from those sources: nothing to pseudonymize
                personal[relation] = {
                    c: p
                    for c, p in personal.get(relation, {}).items()
                    if not (c in keys and set(p.sources) <= set(keys[c]))
                }
    for role in ROLES:
        schema = role_schema(role)
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        con.execute(f"CREATE SCHEMA {schema}")
        for name, columns in relations().items():
            sql = role_view_sql(role, name, columns, base, personal.get(name), precomputed.get(name), name in whole)
            if sql is not None:
                con.execute(sql)
        if role_view_sql(role, "lead_facts", DERIVED_TABLES["lead_facts"], base) is not None:
            con.execute(FILTERED_LEADS_MACRO.format(s=schema))


def _rows(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> int | None:
    """The rows of ``schema.name``; None when there is no such relation."""
    if relation_kind(con, schema, name) is None:
        return None
    return int(con.execute(f"SELECT count(*) FROM {schema}.{name}").fetchone()[0])  # type: ignore[index]


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

Stamp = tuple[int, int, int] | None  # the manifest file's (inode, mtime in ns, size); None when absent


class _Build:
    """One manifest's views on a connection of their own, and how many queries are running on it.

    Its views are never changed once it is swapped in: a newer build replaces it whole, and it is
    closed when it has been replaced and its last query has finished."""

    def __init__(self, con: duckdb.DuckDBPyConnection, manifest: Manifest, stamp: Stamp) -> None:
        self.con = con
        self.manifest = manifest
        self.stamp = stamp
        self.readers = 0  # these two change only under Warehouse._lock
        self.retired = False


class Warehouse:
    """A read-only view of the current manifest; builds its views again when the manifest changes.

    Every query runs on its own cursor whose search path is the asking user's role schema (see
    attach_role_views), with the user's owner name bound as a variable for the sales row filter.

    Safe to share between threads (every session of the server uses one). A new manifest is built once,
    by one thread, on a new connection while the others keep reading the old one; it is then swapped in
    under the lock, so a query sees one manifest's views, never a mix, and nothing runs two calls on
    one connection at once (DuckDB refuses that: "connection is busy with another call"). The old
    connection is closed when its last query finishes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.data_path)
        self._lock = threading.Lock()  # guards _current and every build's readers/retired; held briefly
        self._building = threading.Lock()  # one build at a time
        self._current: _Build | None = None
        self._closed = False

    @functools.cached_property
    def _pseudonym_key(self) -> str:
        """The key of the keyed pseudonyms masked roles see for personal keys (runs/.pseudonym_key)."""
        return own_key(self.settings.data_path, PSEUDONYM_KEY)

    @property
    def version(self) -> int:
        """The version of the manifest being served (caught up with the one on disk)."""
        return int(self._build_for_disk().manifest.get("version", 0))

    @property
    def manifest(self) -> Manifest:
        """The manifest being served (caught up with the one on disk); read it, never change it."""
        return self._build_for_disk().manifest

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        """The connection of the build being served, for a test that registers a function on it; queries
        never run on it directly (each takes a cursor of its own)."""
        return self._build_for_disk().con

    # -- catching up with a publish --------------------------------------------------------------
    def _stamp(self) -> Stamp:
        """What tells a new manifest from the one served without reading it: the swap writes a new file."""
        try:
            st = self.store.manifest_path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _read_manifest(self) -> Manifest:
        return self.store.read_manifest()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """A new serving connection, held to ``[query] memory_limit`` (spilling past it)."""
        return serving_connection(self.settings.query.memory_limit, self.settings.spill_path)

    def _build(self, manifest: Manifest) -> duckdb.DuckDBPyConnection:
        """A new connection holding ``manifest``'s views and in-memory tables, and every role's schema."""
        con = self._connect()
        try:
            attach_views(con, self.store, manifest, IN_MEMORY, ENUM_COLUMNS, schema=BASE)
            attach_pseudonymized(con, self.store, manifest, BASE)
            # Explore's orders model reads orders whole; the timeline reads one customer's contracts by their key
            attach_customer_keys(con, BASE, IN_MEMORY | {"orders", "contracts"})
            self._attach_roles(con)
        except BaseException:
            con.close()
            raise
        return con

    def _attach_roles(self, con: duckdb.DuckDBPyConnection) -> None:
        """Every role's schema over the base relations (benchmarks/masking.py compares other masking)."""
        attach_role_views(con, BASE, key=self._pseudonym_key)

    def _build_for_disk(self) -> _Build:
        """The build serving the manifest on disk, made first when the manifest changed. While another
        thread makes it, the previous build is served rather than waited for (there is none at first)."""
        current, stamp = self._current, self._stamp()
        if current is not None and current.stamp == stamp:
            return current
        if current is None:
            self._building.acquire()
        elif not self._building.acquire(blocking=False):
            return current  # another thread is building the new one
        try:
            current = self._current
            if self._closed:
                raise QueryError("the warehouse has been closed")
            if current is not None and current.stamp == stamp:
                return current  # another thread caught up while this one waited
            manifest = self._read_manifest()
            if current is not None and manifest.get("version") == current.manifest.get("version"):
                current.stamp = stamp  # the same manifest written again: nothing to build
                return current
            try:
                fresh = _Build(self._build(manifest), manifest, stamp)
            except duckdb.Error as e:
                version, first = manifest.get("version", 0), str(e).splitlines()[0]
                raise QueryError(f"the views of manifest version {version} could not be built: {first}") from e
            self._swap(fresh)
            return fresh
        finally:
            self._building.release()

    def _swap(self, fresh: _Build | None) -> None:
        """Make ``fresh`` the build new queries use; the old one closes when its last query ends."""
        with self._lock:
            old, self._current = self._current, fresh
            self._closed = fresh is None
            if old is None:
                return
            old.retired = True
            if old.readers:
                return
        old.con.close()

    def _checkout(self) -> tuple[_Build, duckdb.DuckDBPyConnection]:
        """A cursor on the newest build, counted as a reader of it until _checkin."""
        self._build_for_disk()
        with self._lock:
            build = self._current  # the newest: a build swapped in since is newer than the one caught up to
            if build is None:
                raise QueryError("the warehouse has been closed")
            build.readers += 1
            try:
                return build, build.con.cursor()
            except BaseException:
                build.readers -= 1
                raise

    def _checkin(self, build: _Build, cur: duckdb.DuckDBPyConnection) -> None:
        cur.close()
        with self._lock:
            build.readers -= 1
            idle = build.retired and build.readers == 0
        if idle:
            build.con.close()

    # -- queries ---------------------------------------------------------------------------------
    def sql(
        self,
        sql: str,
        params: dict[str, Any] | None = None,
        user: Principal | None = None,
        timeout: float | None = None,
    ) -> pl.DataFrame:
        """Run SQL as ``user`` sees the data: a person through their role's views (row filter, masking),
        ``security.SYSTEM`` over the base relations. No principal is refused (AccessDenied): the safe path
        is the only default. With ``timeout`` seconds, a timer interrupts this query's cursor only."""
        if not isinstance(user, Principal):
            raise AccessDenied("no user given: the data layer reads only as a signed-in user or the system")
        # Only taking the cursor is serialised; the query runs on it outside the lock, so one user's long
        # query does not hold up everyone else's pages.
        build, cur = self._checkout()
        timer = threading.Timer(timeout, cur.interrupt) if timeout else None
        try:
            cur.execute(f"SET search_path = '{BASE if user.system else role_schema(user.role)}'")
            if user.role == "sales":
                cur.execute("SET VARIABLE cockpit_owner = $owner", {"owner": user.owner})
            if timer:
                timer.start()
            return as_text(cur.sql(sql, params=params or None).pl())
        except duckdb.InterruptException:
            raise QueryTimeout(f"the query ran longer than {timeout:g} s and was stopped") from None
        except duckdb.CatalogException as e:
            if user.system:
                raise QueryError(str(e).splitlines()[0]) from e
            role = user.role
            raise AccessDenied(f"this data is not available to the role '{role}'", str(e).splitlines()[0]) from e
        except duckdb.Error as e:
            raise QueryError(str(e).splitlines()[0]) from e
        finally:
            if timer:
                timer.cancel()
                timer.join()  # an interrupt already under way ends before its cursor is closed
            self._checkin(build, cur)

    def run_query(self, name: str, params: dict[str, Any] | None = None, user: Principal | None = None) -> pl.DataFrame:
        """A named query as ``user`` sees it (``security.SYSTEM``: unrestricted; None: refused)."""
        query = load_query(name)
        return self.sql(query.sql, bind_params(query, params), user)

    def close(self) -> None:
        """Stop serving: later calls fail with QueryError; queries still running finish first."""
        with self._building:  # not while a build is being swapped in
            self._swap(None)
