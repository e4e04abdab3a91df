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

from dashboard.config import load_settings
from dashboard.customer360 import search_params
from dashboard.identity import Model, evaluate, read_records, resolve
from dashboard.pipeline.store import Store
from dashboard.warehouse import Warehouse, attach_views

SEARCHES = ("王伟", "wangwei", "+86 138-0013-8000", "8000", "qq.com", "科技有限公司")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True)
    parser.add_argument("--runs", type=int, default=5, help="runs per search query")
    args = parser.parse_args()
    settings = load_settings(args.config)
    store = Store(settings.data_path)
    truth = pl.read_csv(
        settings.data_path / "demo_truth" / "identity.csv", schema_overrides={"source_record_id": pl.String}
    )
    with duckdb.connect() as con:
        attach_views(con, store, store.read_manifest(), in_memory=frozenset())
        t = time.perf_counter()
        records = read_records(con)
        t_records = time.perf_counter() - t
    t = time.perf_counter()
    exact = resolve(records)
    t_exact = time.perf_counter() - t
    model = Model(threshold=settings.identity.match_threshold)
    t = time.perf_counter()
    full = resolve(records, model)
    t_full = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"records {records.height:,}; read {t_records:.1f} s; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print("| method | time (s) | linked pairs | precision | recall | F1 |")
    print("|---|---|---|---|---|---|")
    for label, links, secs in (("exact rules only", exact, t_exact), ("exact + Splink", full, t_full)):
        s = evaluate(links, truth)
        print(f"| {label} | {secs:.1f} | {s.predicted_pairs:,} | {s.precision:.4f} | {s.recall:.4f} | {s.f1:.4f} |")
    print(f"steps: {model.stats}; peak RSS {rss:.2f} GB")
    w = Warehouse(settings)
    times = []
    for text in SEARCHES:
        for _ in range(args.runs):
            t = time.perf_counter()
            w.run_query("customer_search", search_params(text))
            times.append(time.perf_counter() - t)
    key = w.run_query("customer_profile")["customer_key"][0]
    prof = []
    for _ in range(args.runs):
        t = time.perf_counter()
        for q in ("customer_profile", "customer_attributes", "identity_links", "customer_timeline"):
            w.run_query(q, {"customer_key": key})
        prof.append(time.perf_counter() - t)
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"customer_search: median {statistics.median(times) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    print(f"profile page queries (4): median {statistics.median(prof) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
