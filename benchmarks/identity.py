"""Measure identity resolution on a refreshed demo: exact rules alone and the full resolution
(exact + Splink), side by side, timed and scored against ``<data_dir>/demo_truth/identity.csv``;
and the Customer 360 search and profile queries. Prints a Markdown section for docs/benchmarks.md.

    python benchmarks/identity.py --config /tmp/identity_medium/cockpit.toml

Reads the demo's snapshots only; writes nothing into its data folder.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import duckdb
import polars as pl

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.derived.identity import Model, evaluate, read_records, resolve
from dashboard.derived.tables import attach_views
from dashboard.query.search import search_params
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse

SEARCHES = ("王伟", "wangwei", "+86 138-0013-8000", "8000", "qq.com", "科技有限公司")


def _cpu() -> float:
    """CPU seconds (user + system) this process has used: on a shared machine, what the work costs."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--runs", type=int, default=5, help="runs per search query")
    parser.add_argument("--search-only", action="store_true", help="only the Customer 360 queries")
    args = parser.parse_args()
    settings = load_settings(args.config)
    if not args.search_only:
        _resolution(settings)
    _searches(settings, args.runs)


def _resolution(settings: Settings) -> None:
    store = Store(settings.data_path)
    with duckdb.connect() as con:
        attach_views(con, store, store.read_manifest(), in_memory=frozenset())
        t, cpu = time.perf_counter(), _cpu()
        records = read_records(con)
        t_records, cpu_records = time.perf_counter() - t, _cpu() - cpu
    # the full resolution first, so that the peak memory it reports is reading plus resolving
    # as the derived build runs it: Splink's DuckDB held to the configured memory limit, spilling past it
    model = Model(
        threshold=settings.identity.match_threshold,
        memory_limit=settings.memory_limit,
        spill_root=settings.spill_path,
    )
    t, cpu = time.perf_counter(), _cpu()
    full = resolve(records, model)
    t_full, cpu_full = time.perf_counter() - t, _cpu() - cpu
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    truth = pl.read_csv(
        settings.data_path / "demo_truth" / "identity.csv", schema_overrides={"source_record_id": pl.String}
    )
    t, cpu = time.perf_counter(), _cpu()
    exact = resolve(records)
    t_exact, cpu_exact = time.perf_counter() - t, _cpu() - cpu
    print(
        f"records {records.height:,}; read {t_records:.1f} s (CPU {cpu_records:.1f} s); "
        f"load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print("| method | wall (s) | CPU (s) | linked pairs | precision | recall | F1 |")
    print("|---|---|---|---|---|---|---|")
    for label, links, secs, cpu in (
        ("exact rules only", exact, t_exact, cpu_exact),
        ("exact + Splink", full, t_full, cpu_full),
    ):
        s = evaluate(links, truth)
        print(
            f"| {label} | {secs:.1f} | {cpu:.1f} | {s.predicted_pairs:,} | {s.precision:.4f} | {s.recall:.4f} "
            f"| {s.f1:.4f} |"
        )
    print(
        f"steps: {model.stats}; peak RSS after reading and the full resolution {rss:.2f} GiB "
        f"(memory_limit {settings.memory_limit})"
    )


def _searches(settings: Settings, runs: int) -> None:
    w = Warehouse(settings)
    w.run_query("customer_search", search_params("x"), user=SYSTEM)  # the first query loads the in-memory tables
    times = []
    for text in SEARCHES:
        for _ in range(runs):
            t = time.perf_counter()
            w.run_query("customer_search", search_params(text), user=SYSTEM)
            times.append(time.perf_counter() - t)
    key = w.run_query("customer_profile", user=SYSTEM)["customer_key"][0]
    prof = []
    for _ in range(runs):
        t = time.perf_counter()
        for q in ("customer_profile", "customer_attributes", "identity_links", "customer_timeline"):
            w.run_query(q, {"customer_key": key}, user=SYSTEM)
        prof.append(time.perf_counter() - t)
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"customer_search: median {statistics.median(times) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    print(f"profile page queries (4): median {statistics.median(prof) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
