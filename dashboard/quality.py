"""Data-quality metrics per source, entity and column: fill rate, validity and uniqueness."""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from dashboard.entities import ENTITIES, VALIDITY_FLAGS

# Dates outside this window are not plausible for CRM data.
MIN_DATE = "2000-01-01"


def column_metrics(
    con: duckdb.DuckDBPyConnection, file: Path, source: str, snapshot_id: str, entity: str
) -> pl.DataFrame:
    """One aggregate pass over one published entity file."""
    ent = ENTITIES[entity]
    present = set(con.sql("SELECT name FROM parquet_schema($f)", params={"f": str(file)}).pl().get_column("name"))
    cols = [c for c in ent.columns if c.name in present]
    parts = ["count(*) AS n"]
    for c in cols:
        q = f'"{c.name}"'  # canonical names only: checked identifiers
        parts.append(f"count({q}) AS f_{c.name}")
        parts.append(f"approx_count_distinct({q}) AS d_{c.name}")
        flag = VALIDITY_FLAGS.get(c.name)
        if flag and flag in present:
            parts.append(f'avg(CASE WHEN "{flag}" THEN 1.0 ELSE 0.0 END) FILTER ({q} IS NOT NULL) AS v_{c.name}')
        elif c.type == "datetime":
            parts.append(
                f"avg(CASE WHEN {q} BETWEEN TIMESTAMP '{MIN_DATE}' AND now()::TIMESTAMP + INTERVAL 1 DAY "
                f"THEN 1.0 ELSE 0.0 END) FILTER ({q} IS NOT NULL) AS v_{c.name}"
            )
        elif c.type == "float":
            parts.append(f"avg(CASE WHEN {q} >= 0 THEN 1.0 ELSE 0.0 END) FILTER ({q} IS NOT NULL) AS v_{c.name}")
    row = con.sql(f"SELECT {', '.join(parts)} FROM read_parquet($f)", params={"f": str(file)}).pl().row(0, named=True)
    n = int(row["n"])
    records = []
    for c in cols:
        filled = int(row[f"f_{c.name}"])
        distinct = min(int(row[f"d_{c.name}"]), filled)
        records.append(
            {
                "source_system": source,
                "snapshot_id": snapshot_id,
                "entity": entity,
                "column_name": c.name,
                "rows": n,
                "filled": filled,
                "fill_rate": filled / n if n else None,
                "valid_rate": row.get(f"v_{c.name}"),
                "distinct_values": distinct,
                "uniqueness": distinct / filled if filled else None,
            }
        )
    return pl.DataFrame(
        records, schema_overrides={"valid_rate": pl.Float64, "fill_rate": pl.Float64, "uniqueness": pl.Float64}
    )
