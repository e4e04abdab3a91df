"""Parquet extracts: types are kept as written."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dashboard.core.config import TableConfig


def read(path: Path, table: TableConfig) -> pl.DataFrame:
    return pl.read_parquet(path)
