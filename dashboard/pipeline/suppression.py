"""The privacy suppression list: keyed hashes of the people erased on request (``cockpit privacy forget``),
so a source that sends them again has their rows dropped at standardize, counted, never published.

Only HMAC-SHA256 digests are kept (key: ``runs/.privacy_secret``, made once beside the session secret);
the list alone does not say who was erased. Losing the key makes the list useless: back it up with it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from dashboard.core.keys import own_key

SECRET_FILE = Path("runs") / ".privacy_secret"
LIST_FILE = Path("runs") / "privacy" / "suppression.parquet"
IDENTIFIERS = ("phone", "email", "id_number")  # columns whose (normalized) value names a person
# columns holding a source record's id, and the kind of record they name ("customer" or "lead")
RECORD_COLUMNS = {
    "customers": {"source_record_id": "customer"},
    "leads": {"lead_id": "lead", "customer_ref": "customer"},
    "lead_events": {"lead_id": "lead"},
    "orders": {"customer_ref": "customer"},
    "contracts": {"customer_ref": "customer"},
    "interactions": {"customer_ref": "customer", "lead_id": "lead"},
}
_SCHEMA = pa.schema([("hash", pa.string()), ("kind", pa.string()), ("added_at", pa.timestamp("us", tz="UTC"))])
_cache: dict[Path, tuple[float, frozenset[str]]] = {}


def secret(data_dir: Path) -> bytes:
    """The key of every privacy hash (and audit pseudonym); made once, never rotated (the list depends on it)."""
    return own_key(data_dir, SECRET_FILE.name).encode()


def digest(key: bytes, kind: str, value: str) -> str:
    return hmac.digest(key, f"{kind}:{value}".encode(), hashlib.sha256).hex()[:32]


def record_value(source: str, kind: str, record_id: str) -> str:
    """What is hashed for a source record: ``crm/lead/L-17``."""
    return f"{source}/{kind}/{record_id}"


def load(data_dir: Path) -> frozenset[str]:
    """Every hash on the list (empty when nobody was erased); re-read only when the file changed."""
    path = data_dir / LIST_FILE
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return frozenset()
    cached = _cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    hashes = frozenset(pq.read_table(path, columns=["hash"]).column("hash").to_pylist())
    _cache[path] = (mtime, hashes)
    return hashes


def add(data_dir: Path, entries: dict[str, str]) -> int:
    """Add ``hash → kind`` entries (write a temp file, fsync, rename); returns how many were new."""
    path = data_dir / LIST_FILE
    have = load(data_dir)
    new = {h: k for h, k in entries.items() if h not in have}
    if not new:
        return 0
    old = pq.read_table(path) if path.exists() else _SCHEMA.empty_table()
    added = pa.Table.from_pylist(
        [{"hash": h, "kind": k, "added_at": dt.datetime.now(dt.UTC)} for h, k in sorted(new.items())], schema=_SCHEMA
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(pa.concat_tables([old.cast(_SCHEMA), added]), tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return len(new)


def suppressed_rows(frame: pl.DataFrame, entity: str, source: str, data_dir: Path) -> pl.Series | None:
    """A mask of the rows that name an erased person (by phone, e-mail, ID number or source record id);
    None when the list is empty. Hashes are computed over the distinct values only, as a plain list."""
    hashes = load(data_dir)
    if not hashes:
        return None
    key = secret(data_dir)
    mask = pl.repeat(False, frame.height, eager=True)
    columns: list[tuple[str, str, str | None]] = [(c, c, None) for c in IDENTIFIERS if c in frame.columns]
    columns += [(c, kind, kind) for c, kind in RECORD_COLUMNS.get(entity, {}).items() if c in frame.columns]
    for column, kind, record_kind in columns:
        values = frame.get_column(column).cast(pl.String)
        distinct = values.drop_nulls().unique().to_list()
        if record_kind:
            hit = [v for v in distinct if digest(key, "record", record_value(source, record_kind, v)) in hashes]
        else:
            hit = [v for v in distinct if digest(key, kind, v) in hashes]
        if hit:
            mask = mask | values.is_in(hit).fill_null(False)
    return mask
