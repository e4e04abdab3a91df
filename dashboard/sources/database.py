"""``postgres`` and ``mysql`` sources: a table or a query pulled in Arrow batches straight into Parquet.

PostgreSQL goes through ADBC (libpq's binary COPY into Arrow, in C; measured against psycopg's COPY
and server-side cursors in benchmarks/extract.py); MySQL/MariaDB through PyMySQL's unbuffered
cursor. With a ``watermark`` only rows at or past the stored watermark are pulled, and added to the
current snapshot's extract as a delta file (extract.py). The connection URL comes from the environment or
the secrets file and never appears in a message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import pyarrow as pa

from dashboard.core.config import SourceConfig, TableConfig
from dashboard.core.errors import SourceError
from dashboard.sources import access, extract
from dashboard.sources.incremental import (
    BatchWriter,
    ExtractContext,
    dump_value,
    fingerprint,
    load_value,
    remove,
)

Batches = Iterator[pa.RecordBatch]


def read(source: SourceConfig, table: TableConfig, ctx: ExtractContext) -> tuple[extract.Extract, str]:
    """Extract one table into ``ctx.out_dir``: the whole table, or (with a watermark and a current extract) the
    rows changed since, added to the current extract's files as a delta. Returns it and a label for messages."""
    assert source.connection is not None  # config validation requires it
    url = access.resolve(source.connection, ctx.base_dir, f"{source.name}: connection")
    secrets = access.secret_parts(url)
    label = f"{source.name}.{table.table or f'tables[{ctx.index}]'}"
    where = f"{source.name} ({source.kind} at {access.safe_url(url)})"
    fp = fingerprint(table)
    prev = ctx.previous(fp) if table.watermark and not ctx.full else None
    before = extract.kept(ctx.previous_dir, ctx.index, prev[1], table, label) if prev and ctx.previous_dir else None
    since = load_value(prev[1].get("watermark")) if prev else None
    sql, params = build_sql(source.kind, table, since)
    target = ctx.out_dir / extract.delta_name(ctx.index, _next_seq(before)) if before else ctx.out_file
    pull = postgres_batches if source.kind == "postgres" else mysql_batches
    started = time.perf_counter()
    try:
        with BatchWriter(target, table.watermark, table.delete_column, drop_deleted=before is None) as w:
            for batch in pull(url, sql, params, source):
                w.write(batch)
    except SourceError:
        raise
    except Exception as e:  # the drivers' errors, socket errors, Arrow errors: all named, none leaking
        raise _driver_error(where, e, secrets) from None
    if before is None and not w.rows:
        remove(target)
        raise SourceError(f"{label}: the query returned no rows (an empty table is not published over the last one)")
    state: dict[str, Any] = {
        "fingerprint": fp,
        "mode": "incremental" if before else "full",
        "extracted_at": datetime.now(UTC).isoformat(),
        "pulled_rows": w.rows,
        "deleted_rows": w.deleted,
        "watermark": dump_value(w.high if w.high is not None else since),
        "pull_seconds": round(time.perf_counter() - started, 3),
    }
    started = time.perf_counter()
    if before is None:
        result = extract.Extract(table, target, (), w.rows, (), label)
        state["rows"] = w.rows
        if not table.watermark:  # pulled whole each time: nothing new when the rows are the current extract's
            state["rows_digest"] = extract.rows_digest(target)
            current = None if ctx.full else ctx.previous(fp)
            state["unchanged"] = bool(
                current
                and not current[1].get("deltas")
                and state["rows_digest"]
                and current[1].get("rows_digest") == state["rows_digest"]
                and extract.same_table(current[0], target)
            )
    else:
        result = _add(before, int(prev[1].get("rows") or 0) if prev else 0, target if w.rows else None, w.rows,
                      ctx, label, state)
    state.update(result.state(), merge_seconds=round(time.perf_counter() - started, 3))
    ctx.write_state(state)
    return result, label


def _next_seq(before: extract.Extract) -> int:
    """Delta files are numbered in their chain; a compaction starts the numbering again."""
    seqs = [int(p.name.split("-")[-1].split(".")[0]) for p in before.deltas if "-" in p.name]
    return max(seqs, default=0) + 1


def _add(
    before: extract.Extract,
    prior_rows: int,
    delta: Path | None,
    pulled: int,
    ctx: ExtractContext,
    label: str,
    state: dict[str, Any],
) -> extract.Extract:
    """The current extract with the pulled delta added (or compacted with it); its counts go into ``state``."""
    try:
        if delta is None:  # nothing at or past the watermark
            state["rows"], state["replaced_rows"], state["deleted_rows"] = prior_rows, 0, 0
        else:
            extract.check_key_types(before, delta, label)
            state["rows"], state["replaced_rows"], state["deleted_rows"] = extract.counts(before, prior_rows, delta)
        # nothing new: the refresh keeps the current snapshot when the source's other tables have nothing either
        state["unchanged"] = delta is None or extract.same_rows(before, delta)
        result = extract.extend(before, delta, pulled, ctx.out_dir, ctx.index)
    except BaseException:
        remove(*(p for p in ctx.out_dir.glob(f"{ctx.index}.*") if p.suffix != ".json"))
        raise
    state["compacted"] = not result.deltas and bool(before.deltas or delta)
    return result


SQL_ERRORS = ("ProgrammingError", "NotSupportedError", "DataError", "IntegrityError")


def _driver_error(where: str, e: Exception, secrets: list[str]) -> SourceError:
    text = " ".join(str(e).split())
    if type(e).__name__ in SQL_ERRORS and "connection" not in text.lower():
        # the SQL itself is wrong (unknown table or column, syntax): the source's definition, not the network
        return SourceError(f"{where}: the query failed: {access.redact(text, secrets)}")
    return access.unavailable(where, e, secrets)


# -- SQL ---------------------------------------------------------------------------------------------
def quote_ident(kind: str, name: str) -> str:
    q = '"' if kind == "postgres" else "`"
    return ".".join(q + part.replace(q, q + q) + q for part in name.split("."))


def build_sql(kind: str, table: TableConfig, since: Any) -> tuple[str, tuple[Any, ...]]:
    """The statement and its bound parameters; only our own identifiers are formatted in, quoted."""
    base = f"SELECT * FROM {quote_ident(kind, table.table)}" if table.table else (table.query or "").strip().rstrip(";")
    if since is None or not table.watermark:
        return base, ()
    mark = "$1" if kind == "postgres" else "%s"
    if kind == "mysql":
        base = base.replace("%", "%%")  # PyMySQL formats its placeholders with %
    wm = quote_ident(kind, table.watermark)
    return f"SELECT * FROM ({base}) AS src WHERE {wm} >= {mark}", (since,)


# -- PostgreSQL through ADBC ----------------------------------------------------------------------------
def postgres_url(url: str, timeout: float) -> str:
    """The URL with libpq's connect and TCP time-outs added unless it sets them itself."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.setdefault("connect_timeout", str(max(1, round(timeout))))
    query.setdefault("tcp_user_timeout", str(round(timeout * 1000)))
    query.setdefault("application_name", "crm-cockpit")
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def postgres_batches(url: str, sql: str, params: tuple[Any, ...], source: SourceConfig) -> Batches:
    import adbc_driver_postgresql.dbapi as adbc

    with adbc.connect(postgres_url(url, source.timeout_seconds)) as conn, conn.cursor() as cur:
        cur.execute("SELECT set_config('statement_timeout', $1, false)", parameters=(
            str(round(source.timeout_seconds * 1000)),
        ))
        cur.fetchall()
        cur.execute(f"SELECT * FROM ({sql}) AS src LIMIT 0", parameters=params or None)
        sql = as_text_on_server(sql, cur.fetch_arrow_table().schema)
        # ~rows per batch × a modest row width: bounds memory whatever the table's size
        cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(source.batch_rows * 200)})
        cur.execute(sql, parameters=params or None)
        yield from cur.fetch_record_batch()


def as_text_on_server(sql: str, schema: pa.Schema) -> str:
    """Types Arrow has no match for (numeric, uuid, json ...) cast to text by PostgreSQL: decoding numeric's
    binary form in the client halved the extract's speed (benchmarks/extract.py)."""
    opaque = [f.name for f in schema if isinstance(f.type, pa.BaseExtensionType)]
    if not opaque:
        return sql
    def q(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    cols = ", ".join(f"{q(n)}::text AS {q(n)}" if n in opaque else q(n) for n in schema.names)
    return f"SELECT {cols} FROM ({sql}) AS src"


# -- MySQL / MariaDB through PyMySQL ------------------------------------------------------------------------
_INT = {1, 2, 3, 8, 9, 13}  # TINY SHORT LONG LONGLONG INT24 YEAR
_FLOAT = {4, 5}  # FLOAT DOUBLE
_TIMESTAMP = {7, 12}  # TIMESTAMP DATETIME
_DATE = {10, 14}
_BOOL_BIT = {16}


def _arrow_type(type_code: int) -> pa.DataType:
    if type_code in _INT:
        return pa.int64()
    if type_code in _FLOAT:
        return pa.float64()
    if type_code in _TIMESTAMP:
        return pa.timestamp("us")
    if type_code in _DATE:
        return pa.date32()
    return pa.string()  # text, DECIMAL as exact text, TIME, JSON, ENUM ...


def _text(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    if isinstance(v, Decimal):
        return format(v, "f")
    return str(v)


def _column(values: list[Any], typ: pa.DataType) -> pa.Array:
    if pa.types.is_string(typ):
        return pa.array([_text(v) for v in values], type=typ)
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        # MySQL's zero date ('0000-00-00') arrives as text: it is no date
        values = [v if isinstance(v, datetime | date) else None for v in values]
    return pa.array(values, type=typ)


def mysql_connect_args(url: str, timeout: float) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme not in ("mysql", "mariadb", "mysql+pymysql"):
        raise SourceError(f"the connection URL must start with mysql:// (it starts with {parts.scheme}://)")
    options = dict(parse_qsl(parts.query))
    return {
        "host": parts.hostname or "localhost",
        "port": parts.port or 3306,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": parts.path.lstrip("/") or None,
        "charset": options.get("charset", "utf8mb4"),
        "connect_timeout": max(1, round(timeout)),
        "read_timeout": max(1, round(timeout)),
        "write_timeout": max(1, round(timeout)),
    }


def mysql_batches(url: str, sql: str, params: tuple[Any, ...], source: SourceConfig) -> Batches:
    import pymysql
    import pymysql.cursors

    con = pymysql.connect(**mysql_connect_args(url, source.timeout_seconds), cursorclass=pymysql.cursors.SSCursor)
    try:
        with con.cursor() as cur:
            # the server stops the statement too (a client time-out alone leaves it running, holding locks)
            try:
                cur.execute("SET SESSION max_statement_time = %s", (source.timeout_seconds,))  # MariaDB: seconds
            except pymysql.err.MySQLError:
                cur.execute("SET SESSION max_execution_time = %s", (round(source.timeout_seconds * 1000),))  # MySQL
            cur.execute(sql, params or None)
            names = [d[0] for d in cur.description]
            schema = pa.schema([(n, _arrow_type(d[1])) for n, d in zip(names, cur.description, strict=True)])
            while rows := cur.fetchmany(source.batch_rows):
                cols = list(zip(*rows, strict=True))
                yield pa.RecordBatch.from_arrays(
                    [_column(list(c), f.type) for c, f in zip(cols, schema, strict=True)], schema=schema
                )
    finally:
        con.close()
