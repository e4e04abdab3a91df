"""What writing the current derived build's tables costs with no work before them: each table is loaded into DuckDB
(memory), then only its COPY to Parquet is timed (zstd, row groups of 100,000, as the build writes them). Beside
the I/O floor (``benchmarks/refresh.py``'s FLOOR, which writes the sources' Parquet and none of the derived tables)
it says how much of a full refresh's CPU is the derived tables' writing alone (issue 22, point 2):

    .venv/bin/python benchmarks/derived_writes.py --config $BENCH/large/cockpit.toml

It reads the manifest's derived tables and writes only into a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from dashboard.core.config import load_settings
from dashboard.core.duck import quote_path
from dashboard.core.store import Store

COPY_OPTIONS = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000"


def _cpu() -> float:
    times = os.times()
    return times.user + times.system


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True, help="cockpit.toml of a refreshed company")
    ap.add_argument("--threads", type=int, default=2, help="DuckDB's threads (default 2)")
    args = ap.parse_args()
    settings = load_settings(args.config)
    store = Store(settings.data_path)
    tables: dict[str, str] = store.read_manifest()["derived"]["tables"]
    files = sorted({store.abs(rel) for rel in tables.values() if str(rel).endswith(".parquet")})
    con = duckdb.connect()
    con.execute(f"SET threads = {int(args.threads)}")
    cpu = wall = 0.0
    rows = size = 0
    with tempfile.TemporaryDirectory(prefix="derived_writes") as tmp:
        target = Path(tmp) / "table.parquet"
        for path in files:
            count = pq.read_metadata(path).num_rows
            if count == 0:
                continue
            con.execute(f"CREATE OR REPLACE TEMP TABLE written AS SELECT * FROM read_parquet({quote_path(path)})")
            t, c = time.perf_counter(), _cpu()
            con.execute(f"COPY written TO {quote_path(target)} ({COPY_OPTIONS}, OVERWRITE)")
            dc, dw = _cpu() - c, time.perf_counter() - t
            cpu, wall, rows, size = cpu + dc, wall + dw, rows + count, size + target.stat().st_size
            print(f"{path.name:36} {count:>12,} rows {dc:8.2f} CPU-s {dw:8.2f} s", flush=True)
    print(
        f"all: {len(files)} files, {rows:,} rows, {size / 1e6:,.0f} MB written, {cpu:.1f} CPU-s, {wall:.1f} s wall, "
        f"load {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
