"""Excel workbooks (.xlsx/.xls), read with calamine; every cell comes back as text.

The header row is read as a row of its own, so a header that names two columns is seen as written
(calamine would rename it) and both columns are kept: ``name`` and ``name_2``, reported.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dashboard.core.config import TableConfig
from dashboard.sources.columns import unique_headers


def read(path: Path, table: TableConfig) -> pl.DataFrame:
    where = {"sheet_name": table.sheet} if table.sheet else {"sheet_id": 1}
    df = pl.read_excel(path, **where, engine="calamine", infer_schema_length=0, has_header=False)
    if df.height == 0:
        return df
    header = [None if v is None else str(v) for v in df.row(0)]
    body = df.slice(1)
    names = unique_headers(path.name, header)
    # a column with neither a header nor a value is only the sheet's used range, not data
    keep = {
        c: names[i]
        for i, c in enumerate(df.columns)
        if header[i] is not None or body.get_column(c).null_count() < body.height
    }
    return body.select(list(keep)).rename(keep)
