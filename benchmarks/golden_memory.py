"""Golden records alone on a refreshed demo's inputs (its published snapshots, identity links and lead facts):
wall, CPU and peak resident memory of each statement of ``write_golden``, at a DuckDB memory limit, in a process
that holds only what golden reads. Answers "what does golden itself need" without a whole refresh.

    cp -al $BENCH/large $BENCH/golden_copy        # the refreshed demo, hard-linked: it is only read
    nice .venv/bin/python benchmarks/golden_memory.py --config $BENCH/golden_copy/cockpit.toml --limit 2GB

It writes the three golden files into a scratch folder under the copy's data folder (and spills under its
``.spill``) and, with ``--compare``, checks them against the published build's files row for row.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard.core.config import load_settings
from dashboard.core.duck import bounded_connection, drop_relation, process_rss, quote_path
from dashboard.core.store import Store
from dashboard.derived.analytics import ANALYTICS_TABLES
from dashboard.derived.golden import GOLDEN_TABLES, write_golden
from dashboard.derived.identity import read_records
from dashboard.derived.tables import attach_views


def _peak_reset() -> None:
    """Start the process's peak RSS (VmHWM) again from its current RSS (Linux)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _peak_gb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 2**20


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Traced:
    """A DuckDB connection whose every execute and sql() is timed and its peak RSS noted (reset before it)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con, self.laps = con, list[dict[str, Any]]()

    def _timed(self, fn: Any, sql: str, *args: Any) -> Any:
        _peak_reset()
        t, c = time.perf_counter(), _cpu()
        out = fn(sql, *args)
        if isinstance(out, duckdb.DuckDBPyRelation):  # what write_golden does with it: to Polars
            out = out.pl()
        head = " ".join(sql.split())[:70]
        self.laps.append({"sql": head, "s": time.perf_counter() - t, "cpu": _cpu() - c, "peak_gb": _peak_gb()})
        return _Result(out) if not isinstance(out, duckdb.DuckDBPyConnection) else out

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed(self.con.execute, sql, *args)

    def sql(self, sql: str, *args: Any) -> Any:
        return self._timed(self.con.sql, sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.con, name)


class _Result:
    """A relation already made into a Polars frame (``.pl()`` returns it)."""

    def __init__(self, frame: Any) -> None:
        self.frame = frame

    def pl(self) -> Any:
        return self.frame


def run(config: Path, limit: str, compare: bool) -> dict[str, Any]:
    settings = load_settings(config)
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    tables = manifest["derived"]["tables"]
    out = settings.data_path / "golden_memory"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with bounded_connection(limit, settings.spill_path) as con:
        attach_views(con, store, manifest)
        for table in ANALYTICS_TABLES:  # as the derived build holds them when golden starts
            drop_relation(con, table)
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet({quote_path(store.abs(tables[table]))})")
        links = pl.read_parquet(store.abs(tables["identity_links"]))
        records = read_records(con)
        before = process_rss() / 2**30
        traced = Traced(con)
        t, c = time.perf_counter(), _cpu()
        made = write_golden(traced, settings, records, links, out)  # type: ignore[arg-type]
        result = {
            "limit": limit,
            "records": made,
            "rss_before_gb": round(before, 2),
            "wall_s": round(time.perf_counter() - t, 1),
            "cpu_s": round(_cpu() - c, 1),
            "peak_gb": round(max(lap["peak_gb"] for lap in traced.laps), 2),
            "laps": [
                {k: round(v, 2) if isinstance(v, float) else v for k, v in lap.items()}
                for lap in traced.laps
                if lap["s"] > 0.5
            ],
        }
    if compare:
        result["identical"] = {t: _same(out / f"{t}.parquet", store.abs(tables[t])) for t in GOLDEN_TABLES}
    shutil.rmtree(out, ignore_errors=True)
    return result


def _same(made: Path, published: Path) -> bool:
    a, b = pl.read_parquet(made), pl.read_parquet(published)
    return a.columns == b.columns and a.height == b.height and a.sort(a.columns).equals(b.sort(b.columns))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, required=True, help="a refreshed demo's cockpit.toml (a hard-linked copy)")
    ap.add_argument("--limit", default="4GB", help="DuckDB's memory_limit for golden (default: the build's 4GB)")
    ap.add_argument("--compare", action="store_true", help="check the files against the published build's")
    args = ap.parse_args()
    print(json.dumps(run(args.config, args.limit, args.compare), indent=1))


if __name__ == "__main__":
    main()
