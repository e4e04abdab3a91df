"""The DuckDB build toolkit every layer uses: connections held to a memory limit, views over Parquet
files (the canonical entities of a manifest, or any table's files), quoting and relation helpers."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from dashboard.core.config import Settings
from dashboard.core.entities import ENTITIES, LINEAGE_COLUMNS, VALIDITY_FLAGS
from dashboard.core.store import Manifest, Store

_SQL_TYPES = {"str": "VARCHAR", "datetime": "TIMESTAMP", "float": "DOUBLE", "int": "BIGINT", "bool": "BOOLEAN"}


@contextmanager
def work_connection(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB for a build's heavy work, held to ``settings.memory_limit``."""
    with bounded_connection(settings.memory_limit, settings.spill_path) as con:
        yield con


_UNITS = {"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
MIN_DUCKDB_MEMORY = 512 * 2**20  # what a bounded connection gets at least, however full the process is
MIN_STEP_MEMORY = 2**30  # what step_memory leaves a step's DuckDB at least
# what a step holds past its DuckDB's limit (results on their way to Python, the Parquet writer's row groups):
# golden records at large went 0.5 GiB past what the process held plus the limit when run alone, 1.1 GiB in the build
# (with 768 MiB of headroom: 5.75 GB against a 6 GB budget)
STEP_HEADROOM = 1280 * 2**20
# churn's Python work beside its DuckDB: each cutoff's features (0.4 GB per cutoff for 1.3M customers at large,
# three cutoffs held through the backtest) and the scoring's arrays (0.7 GB more at its peak); what its DuckDB
# does not get of [build_memory] it spills (the per-day tables to its temporary folder, read back per cutoff)
CHURN_HEADROOM = 2560 * 2**20


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


def process_share(memory_limit: str, floor: int = MIN_DUCKDB_MEMORY) -> str:
    """What DuckDB may use when ``memory_limit`` is the whole process's: the limit less what the process
    holds now, at least ``floor`` bytes (512 MiB) and never more than the limit."""
    limit = size_bytes(memory_limit)
    left = max(floor, limit - process_rss())
    return f"{min(left, limit) // 2**20}MiB"


def trim_heap() -> bool:
    """Ask glibc to give the operating system back the free memory it keeps (``malloc_trim(0)``); False where
    there is no glibc (not Linux, or another C library). In the derived build at large glibc held 0.43 GB free
    when golden records started, counted in what the process holds."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # no such library, or a C library without malloc_trim (musl)
        return False
    return True


def step_share(budget: int, held: int, limit: int, headroom: int = STEP_HEADROOM) -> int:
    """Bytes a heavy step's DuckDB may use: what ``budget`` (the whole process's) leaves of ``held`` (what the
    process holds) and ``headroom`` (what the step holds beside its DuckDB), at most ``limit`` and at least
    MIN_STEP_MEMORY."""
    return min(limit, max(MIN_STEP_MEMORY, budget - held - headroom))


@contextmanager
def step_memory(
    con: duckdb.DuckDBPyConnection, budget: str, limit: str, headroom: int = STEP_HEADROOM
) -> Iterator[str]:
    """One heavy step on ``con`` (a bounded connection at ``limit``): DuckDB held to ``step_share`` of what the
    process holds once glibc has given back the free memory it kept (``trim_heap``); ``limit`` again after the
    step. Yields the limit set. (gc and Arrow's pool freed under 0.1 GB before golden at large: what the process
    holds then is golden's own inputs, not leftovers of identity.) ``headroom``: STEP_HEADROOM for golden records,
    CHURN_HEADROOM for churn, whose Python frames grow beside its DuckDB."""
    trim_heap()
    share = step_share(size_bytes(budget), process_rss(), size_bytes(limit), headroom)
    held = f"{share // 2**20}MiB"
    con.execute("SET memory_limit = $limit", {"limit": held})
    try:
        yield held
    finally:
        con.execute("SET memory_limit = $limit", {"limit": limit.replace(" ", "")})


@contextmanager
def bounded_connection(
    memory_limit: str | None, spill_root: Path | None, shared: bool = False, floor: int = MIN_DUCKDB_MEMORY
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB held to ``memory_limit``: past it, DuckDB spills to a folder of its own under
    ``spill_root`` (removed on close) instead of growing to 80 % of the machine's memory, its default.
    Measured at large: the golden records alone took 16 GB without a limit. ``shared``: the limit is the
    whole process's, so DuckDB gets what the process does not already hold (at least ``floor``, 512 MiB)."""
    config: dict[str, Any] = {}
    spill: Path | None = None
    if memory_limit:
        config["memory_limit"] = process_share(memory_limit, floor) if shared else memory_limit.replace(" ", "")
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


def serving_connection(memory_limit: str, spill_root: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that serves queries, held to ``memory_limit`` (not DuckDB's default of 80 % of
    the machine): past it, DuckDB spills to a folder of its own under ``spill_root``, which it makes when
    it first spills and removes when the connection closes."""
    try:
        spill_root.mkdir(parents=True, exist_ok=True)
    except OSError:  # a data folder this process may not write: spill under the system's temporary folder
        spill_root = Path(tempfile.gettempdir())
    folder = spill_root / f"serve-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    config: dict[str, Any] = {"memory_limit": memory_limit.replace(" ", ""), "temp_directory": str(folder)}
    return duckdb.connect(":memory:", config=config)


def quote_literal(text: str) -> str:
    """``text`` as a SQL string literal, for our own names and paths where a parameter cannot stand (a view's body,
    a table function's argument)."""
    return "'" + text.replace("'", "''") + "'"


def quote_path(p: Path) -> str:
    return quote_literal(str(p))


def empty_select(columns: dict[str, str]) -> str:
    cols = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in columns.items())
    return f"SELECT {cols} WHERE false"


def entity_columns(entity: str) -> dict[str, str]:
    e = ENTITIES[entity]
    cols = {c.name: _SQL_TYPES[c.type] for c in e.columns}
    cols.update({flag: "BOOLEAN" for col, flag in VALIDITY_FLAGS.items() if col in cols})
    cols.update({c: "VARCHAR" for c in LINEAGE_COLUMNS})
    return cols


# Derived tables that are columns of another's file, read from it when the warehouse loads.
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


def view_sql(name: str, files: list[Path], columns: dict[str, str], kind: str = "VIEW", rows: str = "") -> str:
    """The view (or in-memory table) over a set of Parquet files (paths from our manifest, not a user), or over
    the statement ``rows`` that reads them (ours: a derived table stored as several files)."""
    if not files:
        return f"CREATE OR REPLACE {kind} {name} AS {empty_select(columns)}"
    file_list = ", ".join(quote_path(f) for f in files)
    # A snapshot written before a column existed still serves: the column reads as NULL, or as what
    # COMPUTED_IF_ABSENT computes it from.
    present = {c for f in files for c in pq.read_schema(f).names}
    cols = ", ".join(
        f"CAST({c if c in present else COMPUTED_IF_ABSENT.get(c, 'NULL')} AS {t}) AS {c}" for c, t in columns.items()
    )
    read = f"({rows})" if rows else f"read_parquet([{file_list}], union_by_name = true)"
    return f"CREATE OR REPLACE {kind} {name} AS SELECT {cols} FROM {read}"


def as_enums(con: duckdb.DuckDBPyConnection, schema: str, table: str, columns: tuple[str, ...]) -> None:
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


def attach_entities(con: duckdb.DuckDBPyConnection, store: Store, manifest: Manifest, schema: str = "main") -> None:
    """A view per canonical entity in ``schema``: the union of every source's current snapshot file."""
    con.execute("SET enable_progress_bar = false")  # a server and a CLI, not an interactive shell
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")  # our own schema name
    con.execute(f"USE {schema}")
    try:
        for entity in ENTITIES:
            files = [
                store.abs(info["entities"][entity]["file"])
                for info in manifest["sources"].values()
                if entity in info.get("entities", {})
            ]
            con.execute(view_sql(entity, files, entity_columns(entity)))
    finally:
        con.execute("USE main")


def attach_table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    files: list[Path],
    columns: Mapping[str, str],
    schema: str = "main",
    in_memory: bool = False,
    enums: tuple[str, ...] = (),
    rows: str = "",
) -> None:
    """``schema.name`` over ``files`` (or ``rows``, the statement reading them) with ``columns``: a view, or a
    table loaded into memory whose ``enums`` columns become ENUMs of the values they hold."""
    con.execute(f"USE {schema}")  # our own schema name
    try:
        drop_relation(con, name, schema)
        con.execute(view_sql(name, files, dict(columns), "TABLE" if in_memory else "VIEW", rows))
        if in_memory and enums:
            as_enums(con, schema, name, enums)
    finally:
        con.execute("USE main")
