"""The query layer: an in-process DuckDB with one view per canonical entity (the union of every
source's current snapshot) and per derived table, built from manifest.json, plus named queries.

Named queries live in ``queries/<name>.sql``; their parameters are bound by DuckDB, never formatted
into the SQL text.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow.parquet as pq

from dashboard.config import Settings
from dashboard.entities import ENTITIES, LINEAGE_COLUMNS, VALIDITY_FLAGS
from dashboard.errors import AccessDenied, QueryError, QueryTimeout
from dashboard.pipeline.store import Manifest, Store
from dashboard.security import (
    MASK_MACROS,
    ROLES,
    SALES_HELPERS,
    Principal,
    role_schema,
    role_view_sql,
)

QUERIES_DIR = Path(__file__).resolve().parents[1] / "queries"
_SQL_TYPES = {"str": "VARCHAR", "datetime": "TIMESTAMP", "float": "DOUBLE", "int": "BIGINT"}
# Derived tables and the columns they have when no build exists yet.
DERIVED_TABLES: dict[str, dict[str, str]] = {
    "identity_links": {
        "source_system": "VARCHAR",
        "source_record_id": "VARCHAR",
        "record_kind": "VARCHAR",
        "customer_key": "VARCHAR",
        "match_rule": "VARCHAR",
        "confidence": "DOUBLE",
    },
    # keys that disappeared when their customer merged into another → the key their records have now
    "customer_redirects": {"old_key": "VARCHAR", "customer_key": "VARCHAR", "merged_at": "TIMESTAMP"},
    # golden customers and every value each source gave them (dashboard/golden.py)
    "customer_golden": {
        "customer_key": "VARCHAR",
        "name": "VARCHAR",
        "phone": "VARCHAR",
        "email": "VARCHAR",
        "id_number": "VARCHAR",
        "company": "VARCHAR",
        "industry": "VARCHAR",
        "region": "VARCHAR",
        "city": "VARCHAR",
        "owner": "VARCHAR",
        "records": "BIGINT",
        "sources": "VARCHAR[]",
        "confidence": "DOUBLE",
        "conflicts": "VARCHAR[]",
        "lifecycle_stage": "VARCHAR",
        "rfm_segment": "VARCHAR",
        "value_tier": "VARCHAR",
        "lifetime_revenue": "DOUBLE",
        "orders": "BIGINT",
        "first_order_at": "TIMESTAMP",
        "last_order_at": "TIMESTAMP",
        "last_contact_at": "TIMESTAMP",
        "open_receivables": "DOUBLE",
        "channels": "VARCHAR[]",
        "name_pinyin": "VARCHAR",
    },
    "customer_attributes": {
        "customer_key": "VARCHAR",
        "owner": "VARCHAR",
        "attribute": "VARCHAR",
        "value": "VARCHAR",
        "chosen": "BOOLEAN",
        "conflict": "BOOLEAN",
        "source_system": "VARCHAR",
        "snapshot_id": "VARCHAR",
        "source_record_id": "VARCHAR",
        "seen_at": "TIMESTAMP",
        "sources": "VARCHAR[]",
        "records": "BIGINT",
    },
    # customer_attributes' phones and e-mails sorted by value: a search by either prunes row groups
    "customer_lookup": {
        "attribute": "VARCHAR",
        "value": "VARCHAR",
        "customer_key": "VARCHAR",
        "owner": "VARCHAR",
    },
    # customer_golden's search columns (read from its file, READ_FROM), held in memory with the phone and
    # e-mail also masked at load: a search scans memory, and masked roles do not mask every row per query
    "customer_index": {
        "customer_key": "VARCHAR",
        "name": "VARCHAR",
        "name_pinyin": "VARCHAR",
        "phone": "VARCHAR",
        "email": "VARCHAR",
        "company": "VARCHAR",
        "city": "VARCHAR",
        "owner": "VARCHAR",
        "lifecycle_stage": "VARCHAR",
        "lifetime_revenue": "DOUBLE",
        "phone_masked": "VARCHAR",
        "email_masked": "VARCHAR",
    },
    "lead_facts": {
        "source_system": "VARCHAR",
        "lead_id": "VARCHAR",
        "created_at": "TIMESTAMP",
        "channel": "VARCHAR",
        "campaign": "VARCHAR",
        "region": "VARCHAR",
        "owner": "VARCHAR",
        "customer_ref": "VARCHAR",
        "name": "VARCHAR",
        "phone": "VARCHAR",
        "phone_valid": "BOOLEAN",
        "mql_at": "TIMESTAMP",
        "sql_at": "TIMESTAMP",
        "opportunity_at": "TIMESTAMP",
        "won_at": "TIMESTAMP",
        "won_amount": "DOUBLE",
        "lost_at": "TIMESTAMP",
        "days_in_lead": "FLOAT",
        "days_in_mql": "FLOAT",
        "days_in_sql": "FLOAT",
        "days_in_opportunity": "FLOAT",
    },
    "filter_values": {"kind": "VARCHAR", "value": "VARCHAR", "channel": "VARCHAR"},
    "attribution": {
        "source_system": "VARCHAR",
        "lead_id": "VARCHAR",
        "won_at": "TIMESTAMP",
        "channel": "VARCHAR",
        "first_touch": "DOUBLE",
        "last_touch": "DOUBLE",
        "linear": "DOUBLE",
        "u_shaped": "DOUBLE",
        "time_decay": "DOUBLE",
    },
    # per-field profile of every retained and quarantined snapshot (dashboard/quality.py, made at publish)
    "field_quality": {
        "source_system": "VARCHAR",
        "snapshot_id": "VARCHAR",
        "entity": "VARCHAR",
        "column_name": "VARCHAR",
        "source_column": "VARCHAR",
        "provided": "BOOLEAN",
        "is_key": "BOOLEAN",
        "personal": "BOOLEAN",
        "rows": "BIGINT",
        "filled": "BIGINT",
        "fill_rate": "DOUBLE",
        "checked": "BIGINT",
        "invalid": "BIGINT",
        "valid_rate": "DOUBLE",
        "distinct_values": "BIGINT",
        "distinct_exact": "BOOLEAN",
        "uniqueness": "DOUBLE",
        "empty_samples": "VARCHAR[]",
        "invalid_samples": "VARCHAR[]",
        "duplicate_samples": "VARCHAR[]",
        "examples": "VARCHAR[]",
        "computed_at": "TIMESTAMPTZ",
        "state": "VARCHAR",  # current | previous | quarantined
        "snapshot_at": "TIMESTAMPTZ",
    },
    # one row per refresh attempt, and per expectation result (dashboard/quality_tables.py)
    "validation_runs": {
        "source_system": "VARCHAR",
        "snapshot_id": "VARCHAR",
        "started_at": "TIMESTAMPTZ",
        "finished_at": "TIMESTAMPTZ",
        "status": "VARCHAR",
        "rows": "BIGINT",
        "rejected_rows": "BIGINT",
        "expectations": "BIGINT",
        "failed": "BIGINT",
        "failed_blocking": "BIGINT",
        "reason": "VARCHAR",
        "reviewed_by": "VARCHAR",
        "reviewed_at": "TIMESTAMPTZ",
        "review_reason": "VARCHAR",
    },
    "validation_results": {
        "source_system": "VARCHAR",
        "snapshot_id": "VARCHAR",
        "finished_at": "TIMESTAMPTZ",
        "status": "VARCHAR",
        "suite": "VARCHAR",
        "expectation": "VARCHAR",
        "column_name": "VARCHAR",
        "success": "BOOLEAN",
        "blocking": "BOOLEAN",
        "element_count": "BIGINT",
        "unexpected_count": "BIGINT",
        "unexpected_percent": "DOUBLE",
        "observed": "VARCHAR",
        "samples": "VARCHAR[]",
    },
    # per golden customer and field (phone, email, name) that two or more sources give: do they agree?
    "identity_consistency": {
        "customer_key": "VARCHAR",
        "field": "VARCHAR",
        "n_sources": "BIGINT",
        "n_values": "BIGINT",
        "conflict": "BOOLEAN",
        "examples": "VARCHAR[]",
    },
    # churn warnings (dashboard/churn.py): one row per customer with activity before the as-of date
    "churn_scores": {
        "rank": "BIGINT",
        "customer_key": "VARCHAR",
        "owner": "VARCHAR",
        "region": "VARCHAR",
        "segment": "VARCHAR",
        "risk": "DOUBLE",
        "risk_band": "VARCHAR",
        "expected_value_at_risk": "DOUBLE",
        "value_at_stake": "DOUBLE",
        "last_activity_at": "TIMESTAMP",
        "days_inactive": "BIGINT",
        "orders": "BIGINT",
        "revenue": "DOUBLE",
        "reason_codes": "VARCHAR[]",
        "reasons_zh": "VARCHAR[]",
        "reasons_en": "VARCHAR[]",
        "as_of": "DATE",
        "method": "VARCHAR",
    },
    # the churn model card: one row per method compared on the backtest (chosen = the one serving)
    "churn_model": {
        "method": "VARCHAR",
        "auc": "DOUBLE",
        "precision_top10": "DOUBLE",
        "brier": "DOUBLE",
        "chosen": "BOOLEAN",
        "status": "VARCHAR",
        "as_of": "DATE",
        "horizon_days": "BIGINT",
        "notes": "VARCHAR",
        "train_cutoff": "DATE",
        "backtest_cutoff": "DATE",
        "backtest_customers": "BIGINT",
        "backtest_churn_rate": "DOUBLE",
        "customers_scored": "BIGINT",
        "trained_at": "TIMESTAMPTZ",
        "calibration_predicted": "DOUBLE[]",  # the backtest's customers in ten equal bins of predicted risk
        "calibration_observed": "DOUBLE[]",
        "calibration_customers": "BIGINT[]",
    },
}


@contextmanager
def work_connection(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB for a build's heavy work, held to ``settings.memory_limit``."""
    with bounded_connection(settings.memory_limit, settings.spill_path) as con:
        yield con


_UNITS = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
MIN_DUCKDB_MEMORY = 512 * 2**20  # what a bounded connection gets at least, however full the process is


def size_bytes(text: str) -> int:
    """'4GB' → 4000000000, '2 GiB' → 2147483648 (the config's memory_limit, as DuckDB reads it)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a memory size: {text!r} (examples: 4GB, 512MB, 2GiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def process_rss() -> int:
    """This process's resident memory in bytes (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def process_share(memory_limit: str) -> str:
    """What DuckDB may use when ``memory_limit`` is the whole process's: the limit less what the process
    holds now, at least 512 MiB and never more than the limit."""
    limit = size_bytes(memory_limit)
    left = max(MIN_DUCKDB_MEMORY, limit - process_rss())
    return f"{min(left, limit) // 2**20}MiB"


@contextmanager
def bounded_connection(
    memory_limit: str | None, spill_root: Path | None, shared: bool = False
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB held to ``memory_limit``: past it, DuckDB spills to a folder of its own under
    ``spill_root`` (removed on close) instead of growing to 80 % of the machine's memory, its default.
    Measured at large: the golden records alone took 16 GB without a limit. ``shared``: the limit is the
    whole process's, so DuckDB gets what the process does not already hold (at least 512 MiB)."""
    config: dict[str, Any] = {}
    spill: Path | None = None
    if memory_limit:
        config["memory_limit"] = process_share(memory_limit) if shared else memory_limit.replace(" ", "")
    if spill_root is not None:
        spill_root.mkdir(parents=True, exist_ok=True)
        spill = Path(tempfile.mkdtemp(prefix="duckdb-", dir=spill_root))
        config["temp_directory"] = str(spill)
    con = duckdb.connect(":memory:", config=config)
    try:
        yield con
    finally:
        con.close()
        if spill is not None:
            shutil.rmtree(spill, ignore_errors=True)


def quote_path(p: Path) -> str:
    return "'" + str(p).replace("'", "''") + "'"


def _empty_select(columns: dict[str, str]) -> str:
    cols = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in columns.items())
    return f"SELECT {cols} WHERE false"


def entity_columns(entity: str) -> dict[str, str]:
    e = ENTITIES[entity]
    cols = {c.name: _SQL_TYPES[c.type] for c in e.columns}
    cols.update({flag: "BOOLEAN" for col, flag in VALIDITY_FLAGS.items() if col in cols})
    cols.update({c: "VARCHAR" for c in LINEAGE_COLUMNS})
    return cols


# Derived tables that are columns of another's file, read from it when the warehouse loads.
READ_FROM = {"customer_index": "customer_golden"}
# Columns a file may lack, and how to compute them from the columns it has: masked copies computed at load,
# and columns later versions added to a derived table (a build made before them).
COMPUTED_IF_ABSENT = {
    "phone_masked": "main.mask_phone(phone)",
    "email_masked": "main.mask_email(email)",
    "days_in_lead": "epoch(mql_at - created_at) / 86400",
    "days_in_mql": "epoch(sql_at - mql_at) / 86400",
    "days_in_sql": "epoch(opportunity_at - sql_at) / 86400",
    "days_in_opportunity": "epoch(won_at - opportunity_at) / 86400",
}


def view_sql(name: str, files: list[Path], columns: dict[str, str], kind: str = "VIEW") -> str:
    """The view (or in-memory table) over a set of Parquet files (paths from our manifest, not a user)."""
    if not files:
        return f"CREATE OR REPLACE {kind} {name} AS {_empty_select(columns)}"
    file_list = ", ".join(quote_path(f) for f in files)
    # A snapshot written before a column existed still serves: the column reads as NULL, or as what
    # COMPUTED_IF_ABSENT computes it from.
    present = {c for f in files for c in pq.read_schema(f).names}
    cols = ", ".join(
        f"CAST({c if c in present else COMPUTED_IF_ABSENT.get(c, 'NULL')} AS {t}) AS {c}" for c, t in columns.items()
    )
    return f"CREATE OR REPLACE {kind} {name} AS SELECT {cols} FROM read_parquet([{file_list}], union_by_name = true)"


IN_MEMORY = frozenset({"lead_facts", "attribution", "filter_values", "customer_index"})
# Their filter bar's columns, held as ENUMs (small integer codes): a group by or filter on a channel compares
# codes instead of strings (measured at large: the channels page's queries 298 -> 223 ms). Results come
# back as text (Warehouse.sql); the values are sorted, so they also order as text does.
ENUM_COLUMNS: dict[str, tuple[str, ...]] = {"lead_facts": ("source_system", "channel", "campaign", "region", "owner")}


def _as_enums(con: duckdb.DuckDBPyConnection, schema: str, table: str, columns: tuple[str, ...]) -> None:
    """Turn ``columns`` of the freshly loaded ``schema.table`` into ENUMs of the values they hold."""
    con.execute(f"ALTER TABLE {schema}.{table} RENAME TO {table}__text")  # our own schema and table names
    casts = []
    for c in columns:  # our own schema, table and column names
        enum = f"{schema}.{table}__{c}"
        con.execute(f"DROP TYPE IF EXISTS {enum}")  # the previous build's, whose table is gone
        con.execute(
            f"CREATE TYPE {enum} AS ENUM "
            f"(SELECT DISTINCT {c} FROM {schema}.{table}__text WHERE {c} IS NOT NULL ORDER BY 1)"
        )
        casts.append(f"CAST({c} AS {enum}) AS {c}")
    # our own names, and casts to the types just created
    con.execute(f"CREATE TABLE {schema}.{table} AS SELECT * REPLACE ({', '.join(casts)}) FROM {schema}.{table}__text")
    con.execute(f"DROP TABLE {schema}.{table}__text")


def drop_relation(con: duckdb.DuckDBPyConnection, name: str, schema: str = "main") -> None:
    """Drop a view or table by name (DuckDB's DROP VIEW IF EXISTS fails on a table of that name)."""
    found = con.sql(
        "SELECT 'TABLE' FROM duckdb_tables() WHERE table_name = $n AND schema_name = $s "
        "UNION ALL SELECT 'VIEW' FROM duckdb_views() WHERE view_name = $n AND schema_name = $s AND NOT internal",
        params={"n": name, "s": schema},
    ).fetchall()
    for (kind,) in found:
        con.execute(f"DROP {kind} {schema}.{name}")  # our own schema and table names


# The filter bar's filters, shared by the channel queries: FROM filtered_leads($start, ...) and
# FROM filtered_spend($start, $end, $channel, $campaign) (spend has no region or owner). A macro finds
# tables through the caller's search path, so each schema ({s}) gets its own pair over its own tables.
FILTERED_LEADS_MACRO = """
CREATE OR REPLACE MACRO {s}.filtered_leads(p_start, p_end, p_channel, p_region, p_owner, p_campaign) AS TABLE
SELECT * FROM {s}.lead_facts
WHERE (p_start IS NULL OR created_at >= CAST(p_start AS TIMESTAMP))
  AND (p_end IS NULL OR created_at < CAST(p_end AS TIMESTAMP) + INTERVAL 1 DAY)
  AND (p_channel IS NULL OR channel = p_channel)
  AND (p_region IS NULL OR region = p_region)
  AND (p_owner IS NULL OR owner = p_owner)
  AND (p_campaign IS NULL OR campaign = p_campaign);

CREATE OR REPLACE MACRO {s}.filtered_spend(p_start, p_end, p_channel, p_campaign) AS TABLE
SELECT channel, coalesce(campaign, '') AS campaign, cost FROM {s}.marketing_spend
WHERE (p_start IS NULL OR spend_date >= CAST(p_start AS TIMESTAMP))
  AND (p_end IS NULL OR spend_date < CAST(p_end AS TIMESTAMP) + INTERVAL 1 DAY)
  AND (p_channel IS NULL OR channel = p_channel)
  AND (p_campaign IS NULL OR coalesce(campaign, '') = p_campaign);
"""


def relations() -> dict[str, dict[str, str]]:
    """Every relation the query layer serves, and its columns: the entities, then the derived tables."""
    return {**{e: entity_columns(e) for e in ENTITIES}, **DERIVED_TABLES}


def attach_views(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    manifest: Manifest,
    in_memory: frozenset[str] | None = None,
    schema: str = "main",
) -> None:
    """Views over the manifest's files in ``schema``; ``in_memory`` tables (default: the page summaries)
    are loaded."""
    in_memory = IN_MEMORY if in_memory is None else in_memory
    con.execute("SET enable_progress_bar = false")  # a server and a CLI, not an interactive shell
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f"USE {schema}")
    try:
        for entity in ENTITIES:
            files = [
                store.abs(info["entities"][entity]["file"])
                for info in manifest["sources"].values()
                if entity in info.get("entities", {})
            ]
            con.execute(view_sql(entity, files, entity_columns(entity)))
        derived = (manifest.get("derived") or {}).get("tables") or {}
        con.execute(MASK_MACROS)  # COMPUTED_IF_ABSENT masks with them
        for table, columns in DERIVED_TABLES.items():
            rel = derived.get(READ_FROM.get(table, table))
            files = [store.abs(rel)] if rel else []
            drop_relation(con, table, schema)
            # The page summaries are read on every view: held in memory, not re-decompressed.
            con.execute(view_sql(table, files, columns, "TABLE" if table in in_memory else "VIEW"))
            if table in in_memory and ENUM_COLUMNS.get(table):
                _as_enums(con, schema, table, ENUM_COLUMNS[table])
        con.execute(FILTERED_LEADS_MACRO.format(s=schema))
    finally:
        con.execute("USE main")


def attach_role_views(con: duckdb.DuckDBPyConnection, base: str = "base") -> None:
    """Each role's schema: a view per relation it may read, carrying its row filter and masking
    (dashboard/security.py), and its own filter macros. A relation a role may not read has no view
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
            attach_views(self._con, self.store, manifest, schema=BASE)
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
