"""Measure what data quality costs on an already generated demo (e.g. the large one):

1. one `cockpit refresh` in a child process: total time, and the profiling step (quality metrics of
   every snapshot, computed once at publish);
2. the quality part of the derived build (history, retained profiles, identity consistency) and the
   GX Data Docs build, each timed on its own against the published data;
3. the data the data-quality and catalog pages read: every call, warm, p50 / p95 over N runs.

    python benchmarks/quality.py --config $BENCH/large/cockpit.toml [--runs 20] [--no-refresh]

Profiling overhead = (profile + quality tables + Data Docs) ÷ (refresh time without them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

REFRESH = """
import json, sys, time
from dashboard.core.config import load_settings
from dashboard.pipeline.refresh import refresh
settings = load_settings(sys.argv[1])
t = time.perf_counter()
res = refresh(settings)
steps = {}
for s in res.sources:
    for step, v in s.steps.items():
        steps[step] = steps.get(step, 0.0) + v["seconds"]
steps["derive"] = res.steps.get("derive", {}).get("seconds", 0.0)
rows = sum(sum(s.rows.values()) for s in res.sources)
print(json.dumps({"seconds": time.perf_counter() - t, "steps": steps, "rows": rows,
                  "status": {s.source: s.status for s in res.sources}}))
"""


def _refresh(config: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", REFRESH, config], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"refresh failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def _timed(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    fn()  # warm
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def _derive_parts(config: str) -> dict[str, float]:
    import duckdb

    from dashboard.core.config import load_settings
    from dashboard.core.store import Store
    from dashboard.derived.identity import RECORDS_SQL, link_exact
    from dashboard.derived.quality.tables import write_quality_tables
    from dashboard.derived.tables import attach_views
    from dashboard.pipeline.data_docs import build_data_docs

    settings = load_settings(config)
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    con = duckdb.connect()
    attach_views(con, store, manifest)
    links = link_exact(con.sql(RECORDS_SQL).pl())
    out = Path(tempfile.mkdtemp(prefix="cockpit-quality-bench-"))
    t = time.perf_counter()
    write_quality_tables(settings, store, manifest, con, links, out)
    tables = time.perf_counter() - t
    shutil.rmtree(out, ignore_errors=True)
    import great_expectations  # noqa: F401  (refresh has imported it already when the docs are built)

    t = time.perf_counter()
    build_data_docs(settings, store)
    return {"quality_tables": tables, "data_docs": time.perf_counter() - t}


def _pages(config: str, runs: int) -> dict[str, tuple[float, float]]:
    from dashboard.core.config import load_settings
    from dashboard.ops.catalog import build_inventory
    from dashboard.ops.status import source_status
    from dashboard.pipeline.review import list_quarantined
    from dashboard.query.security import SYSTEM
    from dashboard.query.warehouse import Warehouse

    settings = load_settings(config)
    wh = Warehouse(settings)
    first = wh.run_query("quality_heatmap", user=SYSTEM)["source_system"][0]
    calls: dict[str, Callable[[], object]] = {
        "quality_heatmap": lambda: wh.run_query("quality_heatmap", user=SYSTEM),
        "data_health": lambda: wh.run_query("data_health", user=SYSTEM),
        "quality_trend (one source)": lambda: wh.run_query("quality_trend", {"source": first}, user=SYSTEM),
        "validation_history": lambda: wh.run_query("validation_history", user=SYSTEM),
        "expectation_results (failed)": lambda: wh.run_query("expectation_results", {"failed_only": 1}, user=SYSTEM),
        "identity_consistency": lambda: wh.run_query("identity_consistency", user=SYSTEM),
        "identity_conflicts (100)": lambda: wh.run_query(
            "identity_conflicts", {"conflicts_only": 1, "limit": 100}, user=SYSTEM
        ),
        "source_status (freshness)": lambda: source_status(settings),
        "list_quarantined": lambda: list_quarantined(settings),
        "field_profile": lambda: wh.run_query("field_profile", user=SYSTEM),
        "catalog inventory (from field_profile)": lambda: build_inventory(
            settings, wh.run_query("field_profile", user=SYSTEM), source_status(settings)
        ),
    }
    return {name: _timed(fn, runs) for name, fn in calls.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-refresh", action="store_true", help="measure the parts and pages on the data as it is")
    args = ap.parse_args()
    if not args.no_refresh:
        ref = _refresh(args.config)
        print(f"refresh: {ref['seconds']:.1f} s, {ref['rows']:,} rows; steps (s): "
              + ", ".join(f"{k} {v:.1f}" for k, v in ref["steps"].items()))  # fmt: skip
    parts = _derive_parts(args.config)
    print("derive parts (s): " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()))
    if not args.no_refresh:
        cost = ref["steps"].get("profile", 0.0) + parts["quality_tables"] + parts["data_docs"]
        print(f"quality overhead: {cost:.1f} s = {100 * cost / (ref['seconds'] - cost):.1f}% of the refresh without it")
    print(f"page data, warm, {args.runs} runs: p50 / p95 ms")
    for name, (p50, p95) in _pages(args.config, args.runs).items():
        print(f"  {name}: {1000 * p50:.0f} / {1000 * p95:.0f}")


if __name__ == "__main__":
    main()
