"""What every reader's rows carry and must have: the file and row columns of row-level error reports,
and the check that a file holds the columns its table maps."""

from __future__ import annotations

import polars as pl

from dashboard.core.config import TableConfig
from dashboard.core.entities import ENTITIES
from dashboard.core.errors import SourceError

# Columns every reader's output gains, for row-level error reports.
FILE_COL = "__file"
ROW_COL = "__row"


def check_columns(raw: pl.DataFrame, table: TableConfig, file: str) -> list[str]:
    """Mapped columns missing from one file; raises when a required canonical column cannot be had."""
    entity = ENTITIES[table.entity]
    missing = [src for src in table.columns.values() if src not in raw.columns]
    for col in entity.required:
        src = table.columns.get(col)
        if col == entity.key and entity.key not in entity.required:
            continue
        if src is not None and src not in raw.columns:
            raise SourceError(
                f"{file}: required column '{src}' (mapped to {table.entity}.{col}) is missing; "
                f"the file has: {', '.join(raw.columns[:30])}"
            )
        if src is None and col not in table.constants and col not in raw.columns:
            raise SourceError(
                f"{file}: no column for required {table.entity}.{col}: map it in "
                f'[[sources.tables]] columns = {{ {col} = "..." }} or give a constant'
            )
    return missing
