"""Excel workbooks (.xlsx/.xls), read with calamine; every cell comes back as text."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dashboard.core.config import TableConfig


def read(path: Path, table: TableConfig) -> pl.DataFrame:
    if table.sheet:
        df = pl.read_excel(path, sheet_name=table.sheet, engine="calamine", infer_schema_length=0)
    else:
        df = pl.read_excel(path, sheet_id=1, engine="calamine", infer_schema_length=0)
    return df.rename({c: str(c).strip() for c in df.columns})
