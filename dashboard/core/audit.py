"""The append-only audit log: one Parquet file per event under ``runs/audit/<day>/``, never rewritten.

Sign-ins (and failures), page views, refusals, exports, quarantine actions, user changes and queries
run as a user: each with the user, role, time, client address and what was done. Written by a rename
of a finished file, so a crash leaves either the whole event or nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dashboard.core.config import Settings

ACTIONS = (
    "sign_in",
    "sign_in_failed",
    "sign_out",
    "session_rejected",
    "page_view",
    "page_refused",
    "export",
    "query",
    "quarantine_publish",
    "quarantine_discard",
    "user_add",
    "user_remove",
    "user_passwd",
)
_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("action", pa.string()),
        ("user", pa.string()),
        ("role", pa.string()),
        ("client", pa.string()),
        ("target", pa.string()),
        ("rows", pa.int64()),
        ("detail", pa.string()),
    ]
)
COLUMNS = tuple(_SCHEMA.names)


def audit_dir(settings: Settings) -> Path:
    return settings.data_path / "runs" / "audit"


def record(
    settings: Settings,
    action: str,
    user: str | None,
    role: str | None,
    client: str | None = None,
    target: str | None = None,
    rows: int | None = None,
    **detail: Any,
) -> None:
    """Append one event. ``target`` is what was acted on (a page, a query, a user, a snapshot)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action '{action}'")
    now = dt.datetime.now(dt.UTC)
    event_id = uuid.uuid4().hex
    row = {
        "event_id": [event_id],
        "at": [now],
        "action": [action],
        "user": [user],
        "role": [role],
        "client": [client],
        "target": [target],
        "rows": [rows],
        "detail": [json.dumps(detail, ensure_ascii=False, default=str) if detail else None],
    }
    folder = audit_dir(settings) / now.strftime("%Y-%m-%d")
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{now.strftime('%H%M%S%f')}-{event_id}.parquet"
    tmp = folder / f".{final.name}.tmp"
    pq.write_table(pa.Table.from_pydict(row, schema=_SCHEMA), tmp)
    os.replace(tmp, final)


def read(
    settings: Settings,
    since: dt.datetime | None = None,
    user: str | None = None,
    action: str | None = None,
    contains: str | None = None,
    limit: int = 1000,
) -> pl.DataFrame:
    """Events newest first; every filter is a bound parameter."""
    files = sorted(str(p) for p in audit_dir(settings).glob("*/*.parquet"))
    if not files:
        empty = pl.from_arrow(_SCHEMA.empty_table())
        assert isinstance(empty, pl.DataFrame)
        return empty
    sql = """
        SELECT * FROM read_parquet($files, union_by_name = true)
        WHERE ($since IS NULL OR "at" >= $since)
          AND ($user IS NULL OR "user" = $user)
          AND ($action IS NULL OR action = $action)
          AND ($contains IS NULL OR contains(lower(concat_ws(' ', target, detail, client)), lower($contains)))
        ORDER BY "at" DESC LIMIT $limit
    """
    params = {"files": files, "since": since, "user": user, "action": action, "contains": contains, "limit": limit}
    with duckdb.connect() as con:
        return con.sql(sql, params=params).pl()
