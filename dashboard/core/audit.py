"""The append-only audit log: one Parquet file per event under ``runs/audit/<day>/``, never rewritten.

Sign-ins (and failures), page views, refusals, exports, quarantine decisions, user changes and queries
run as a user: each with the user, role, time, client address and what was done. Written by a rename
of a finished file, so a crash leaves either the whole event or nothing. This is the one audit log:
the quarantine decisions an older version appended to ``runs/audit.jsonl`` are imported once, by the
first read or write that finds that file (see ``_import_legacy``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from dashboard.core.config import Settings
from dashboard.core.store import Store

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)

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
    "privacy_forget",
    "privacy_retention",
    "privacy_export",
)
# a quarantine decision ("publish_anyway" / "discard", as pipeline/review.py names them) → its audit action
DECISIONS = {"publish_anyway": "quarantine_publish", "discard": "quarantine_discard"}
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
LEGACY_FILE = "audit.jsonl"  # runs/audit.jsonl: quarantine decisions before this log held them
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Where = Settings | Store  # the data directory, named by the config or by a Store over it


def _root(where: Where) -> Path:
    return where.root if isinstance(where, Store) else where.data_path


def audit_dir(where: Where) -> Path:
    return _root(where) / "runs" / "audit"


def _file_name(at: dt.datetime, action: str, event_id: str) -> str:
    # the action in the name lets a reader of one kind of event (quarantine decisions, read by every
    # derived build) skip the files of the others without opening them
    return f"{at.strftime('%H%M%S%f')}-{action}-{event_id}.parquet"


def _write(folder: Path, name: str, table: pa.Table, durable: bool = False) -> Path:
    """Write to a temporary name, then rename: a reader sees the whole file or none of it."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    pq.write_table(table, tmp)
    if durable:
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
    os.replace(tmp, final)
    if durable:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return final


def record(
    settings: Where,
    action: str,
    user: str | None,
    role: str | None,
    client: str | None = None,
    target: str | None = None,
    rows: int | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """Append one event and return it. ``target`` is what was acted on (a page, a query, a user, a snapshot)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action '{action}'")
    _import_legacy(_root(settings))
    now = dt.datetime.now(dt.UTC)
    event_id = uuid.uuid4().hex
    event: dict[str, Any] = {
        "event_id": event_id,
        "at": now,
        "action": action,
        "user": user,
        "role": role,
        "client": client,
        "target": target,
        "rows": rows,
        "detail": json.dumps(detail, ensure_ascii=False, default=str) if detail else None,
    }
    table = pa.Table.from_pylist([event], schema=_SCHEMA)
    _write(audit_dir(settings) / now.strftime("%Y-%m-%d"), _file_name(now, action, event_id), table)
    return event


def read(
    settings: Where,
    since: dt.datetime | None = None,
    user: str | None = None,
    action: str | None = None,
    contains: str | None = None,
    limit: int = 1000,
) -> pl.DataFrame:
    """Events newest first; every filter is a bound parameter."""
    import duckdb  # DuckDB and polars read the log; a command that only records an event does not import them
    import polars as pl

    _import_legacy(_root(settings))
    files = sorted(str(p) for p in audit_dir(settings).glob("*/*.parquet"))
    if not files:
        empty = pl.from_arrow(_SCHEMA.empty_table())
        assert isinstance(empty, pl.DataFrame)
        return empty
    sql = """
        SELECT * EXCLUDE (filename, file_row_number)
        FROM read_parquet($files, union_by_name = true, filename = true, file_row_number = true)
        WHERE ($since IS NULL OR "at" >= $since)
          AND ($user IS NULL OR "user" = $user)
          AND ($action IS NULL OR action = $action)
          AND ($contains IS NULL OR contains(lower(concat_ws(' ', target, detail, client)), lower($contains)))
        ORDER BY "at" DESC NULLS LAST, filename DESC, file_row_number DESC LIMIT $limit
    """
    params = {"files": files, "since": since, "user": user, "action": action, "contains": contains, "limit": limit}
    with duckdb.connect() as con:
        return con.sql(sql, params=params).pl()


# -- quarantine decisions ----------------------------------------------------------------------------
def record_decision(
    where: Where,
    decision: str,
    who: str,
    role: str | None,
    client: str | None,
    *,
    source: str,
    snapshot_id: str,
    reason: str,
    status: str,
    manifest_version: int,
) -> dict[str, Any]:
    """Record a person's decision about a quarantined snapshot; returns it as ``decisions()`` reads it back."""
    if decision not in DECISIONS:
        raise ValueError(f"unknown quarantine decision '{decision}' (expected one of: {', '.join(DECISIONS)})")
    event = record(
        where,
        DECISIONS[decision],
        who,
        role,
        client,
        target=f"{source}/{snapshot_id}",
        decision=decision,
        status=status,
        source=source,
        snapshot_id=snapshot_id,
        reason=reason,
        manifest_version=manifest_version,
    )
    return _decision(event["at"], event["user"], event["detail"])


def decisions(where: Where) -> list[dict[str, Any]]:
    """Every quarantine decision, oldest first: at (ISO text), who, action ("publish_anyway" or "discard"),
    status, source, snapshot_id, reason, manifest_version."""
    root = _root(where)
    _import_legacy(root)
    files = sorted(str(p) for p in (root / "runs" / "audit").glob("*/*-quarantine_*.parquet"))
    if not files:
        return []
    sql = """
        SELECT epoch_us("at") AS at_us, "user", detail
        FROM read_parquet($files, union_by_name = true, filename = true, file_row_number = true)
        WHERE list_contains($actions, action)
        ORDER BY "at" NULLS FIRST, filename, file_row_number
    """
    import duckdb

    with duckdb.connect() as con:
        rows = con.execute(sql, {"files": files, "actions": list(DECISIONS.values())}).fetchall()
    out = []
    for at_us, who, detail in rows:
        at = None if at_us is None else _EPOCH + dt.timedelta(microseconds=int(at_us))
        entry = _decision(at, who, detail)
        if entry["action"] is not None:  # an event from before decisions were recorded here: no decision in it
            out.append(entry)
    return out


def _decision(at: dt.datetime | None, who: str | None, detail: str | None) -> dict[str, Any]:
    d = json.loads(detail) if detail else {}
    return {
        "at": at.astimezone(dt.UTC).isoformat() if at else None,
        "who": who,
        "action": d.get("decision"),
        "status": d.get("status"),
        "source": d.get("source"),
        "snapshot_id": d.get("snapshot_id"),
        "reason": d.get("reason"),
        "manifest_version": d.get("manifest_version"),
    }


# -- the old runs/audit.jsonl, imported once ------------------------------------------------------------
def _import_legacy(root: Path) -> None:
    """Import the decisions of ``runs/audit.jsonl`` into this log, then rename it ``audit.jsonl.migrated``.

    Idempotent and safe to interrupt: the imported entries go into one file whose name is the hash of
    the JSONL's content, written whole by a rename and synced before the JSONL is renamed. A crash
    before that file exists leaves the JSONL to import again; a crash after it leaves a JSONL whose file
    already exists, so it is only renamed. Two processes importing at once write the same file.
    """
    legacy = root / "runs" / LEGACY_FILE
    try:
        data = legacy.read_bytes()
    except FileNotFoundError:
        return
    digest = hashlib.sha256(data).hexdigest()[:16]
    folder = root / "runs" / "audit" / "legacy"
    name = f"000000000000-quarantine_imported-{digest}.parquet"
    if not (folder / name).is_file():
        rows = _legacy_events(root, data, digest)
        if rows:
            _write(folder, name, pa.Table.from_pylist(rows, schema=_SCHEMA), durable=True)
    done = legacy.with_name(f"{LEGACY_FILE}.migrated")
    if done.exists():  # an earlier import: keep its file as it is
        done = legacy.with_name(f"{LEGACY_FILE}.{digest}.migrated")
    try:
        os.rename(legacy, done)
    except FileNotFoundError:  # another process imported it at the same moment
        return
    log.info("imported %s into the audit log (%s); the old file is kept as %s", legacy, folder / name, done)


def _legacy_events(root: Path, data: bytes, digest: str) -> list[dict[str, Any]]:
    """The JSONL's decisions as events; a damaged line is skipped with a warning (the renamed file keeps it)."""
    seen = _earlier_events(root)
    out: list[dict[str, Any]] = []
    skipped = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            skipped.append(number)
            continue
        if not isinstance(entry, dict) or entry.get("action") not in DECISIONS:
            skipped.append(number)
            continue
        at = _parse_time(entry.get("at"))
        source, snapshot = entry.get("source"), entry.get("snapshot_id")
        target = f"{source}/{snapshot}" if source and snapshot else None
        action = DECISIONS[entry["action"]]
        detail = {k: v for k, v in entry.items() if k not in ("at", "who", "action")}
        detail = {"decision": entry["action"], **detail, "imported_from": f"runs/{LEGACY_FILE}, line {number}"}
        same = _same_event(seen, action, entry.get("who"), target, at)
        if same:  # the page and the CLI also recorded the decision here, without its reason and outcome
            detail["same_as"] = same
        out.append(
            {
                "event_id": f"jsonl-{digest}-{number}",
                "at": at,
                "action": action,
                "user": entry.get("who"),
                "role": None,
                "client": None,
                "target": target,
                "rows": None,
                "detail": json.dumps(detail, ensure_ascii=False, default=str),
            }
        )
    if skipped:
        log.warning(
            "runs/%s: lines %s are not quarantine decisions and were not imported (kept in the renamed file)",
            LEGACY_FILE,
            ", ".join(map(str, skipped)),
        )
    return out


def _parse_time(value: Any) -> dt.datetime | None:
    try:
        at = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return at if at is None or at.tzinfo else at.replace(tzinfo=dt.UTC)


def _earlier_events(root: Path) -> list[tuple[str, str | None, str | None, dt.datetime | None, str]]:
    """The quarantine events this log already holds (action, user, target, at, event_id)."""
    files = sorted(str(p) for p in (root / "runs" / "audit").glob("*/*.parquet"))
    if not files:
        return []
    sql = """
        SELECT action, "user", target, epoch_us("at"), event_id FROM read_parquet($files, union_by_name = true)
        WHERE list_contains($actions, action)
    """
    import duckdb

    with duckdb.connect() as con:
        rows = con.execute(sql, {"files": files, "actions": list(DECISIONS.values())}).fetchall()
    return [
        (a, u, t, None if us is None else _EPOCH + dt.timedelta(microseconds=int(us)), e) for a, u, t, us, e in rows
    ]


def _same_event(
    seen: list[tuple[str, str | None, str | None, dt.datetime | None, str]],
    action: str,
    who: str | None,
    target: str | None,
    at: dt.datetime | None,
) -> str | None:
    """The event recorded (by the page or the CLI, right after the decision) for the same decision, if any."""
    for a, u, t, when, event_id in seen:
        if (a, u, t) == (action, who, target) and at and when and abs((when - at).total_seconds()) < 60:
            return event_id
    return None
