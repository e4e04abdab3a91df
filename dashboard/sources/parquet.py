"""Parquet extracts: types are kept as written."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from dashboard.core.config import TableConfig
from dashboard.sources.columns import Span


def read(path: Path, table: TableConfig, span: Span | None = None) -> pl.DataFrame:
    """The file's rows; ``span``: only those rows (whole row groups: the others are not read)."""
    if span is None:
        return pl.read_parquet(path)
    return pl.scan_parquet(path).slice(span.start, span.stop - span.start).collect()


def spans(path: Path, size: int) -> list[Span] | None:
    """The file's row groups gathered into spans of about ``size`` bytes (uncompressed) each; None: one span."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    out: list[Span] = []
    start = rows = held = 0
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        rows, held = rows + group.num_rows, held + group.total_byte_size
        if held >= size or i == meta.num_row_groups - 1:
            out.append(Span(start, start + rows, start + 1, rows))
            start, rows, held = start + rows, 0, 0
    return out if len(out) > 1 else None
