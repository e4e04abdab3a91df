"""JSON exports: an array of records, or one record per line (JSON Lines)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dashboard.config import TableConfig
from dashboard.errors import SourceError


def read(path: Path, table: TableConfig) -> pl.DataFrame:
    with path.open("rb") as f:
        head = f.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise SourceError(f"{path.name}: the file is empty")
    if head[:1] == b"[":
        df = pl.read_json(path, infer_schema_length=None)
    elif head[:1] == b"{":
        df = pl.read_ndjson(path, infer_schema_length=None)
    else:
        raise SourceError(f"{path.name}: not JSON (expected an array of records or one record per line)")
    nested = [c for c, t in df.schema.items() if isinstance(t, pl.Struct | pl.List)]
    if nested:  # keep nested values as their JSON text rather than dropping them
        df = df.with_columns(
            [
                pl.col(c).struct.json_encode() if isinstance(df.schema[c], pl.Struct) else pl.col(c).cast(pl.String)
                for c in nested
            ]
        )
    return df
