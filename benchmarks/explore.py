"""Latency of Explore's generated queries on a refreshed demo, uncached, as an analyst sees the data
(through the role's masked views): the typical two-dimension group-by with a filter, and heavier
views (distinct customers through identity links, ROI against spend, a pivot, orders, interactions).
Prints a Markdown table for docs/benchmarks.md. Reads the data only.

    python benchmarks/explore.py --config /path/to/refreshed/large/cockpit.toml [--runs 30]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from datetime import date

from dashboard.core.config import load_settings
from dashboard.query.explore.models import Dim, Filter, Spec, build_query, shape
from dashboard.query.security import SYSTEM, Principal
from dashboard.query.warehouse import Warehouse

ANALYST = Principal("bench", "analyst")
VIEWS: list[tuple[str, Spec]] = [
    (
        "leads: month × channel, created in a year (typical)",
        Spec(
            "leads",
            (Dim("created_at", "month"), Dim("channel")),
            ("count", "conversion_rate"),
            (Filter("created_at", "between", (date(2025, 1, 1), date(2025, 12, 31))),),
        ),
    ),
    (
        "leads: region × owner, two channels",
        Spec(
            "leads",
            (Dim("region"), Dim("owner")),
            ("count", "revenue"),
            (Filter("channel", "in", ("paid_search", "trade_show")),),
        ),
    ),
    (
        "leads: channel × stage, pivot on stage",
        Spec("leads", (Dim("channel"), Dim("stage")), ("count",), pivot="stage"),
    ),
    ("leads: channel × campaign, ROI against spend", Spec("leads", (Dim("channel"), Dim("campaign")), ("roi",))),
    (
        "leads: channel, distinct customers (identity links)",
        Spec("leads", (Dim("channel"),), ("customers",)),
    ),
    (
        "orders: month × source, amount ≥ 100",
        Spec(
            "orders",
            (Dim("ordered_at", "month"), Dim("source_system")),
            ("count", "sum_amount"),
            (Filter("amount", "between", (100, None)),),
        ),
    ),
    (
        "interactions: channel × kind, one quarter",
        Spec(
            "interactions",
            (Dim("channel"), Dim("kind")),
            ("count",),
            (Filter("occurred_at", "between", (date(2025, 7, 1), date(2025, 9, 30))),),
        ),
    ),
]


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a refreshed demo's cockpit.toml (read only)")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    wh = Warehouse(load_settings(args.config))
    start, cpu = time.perf_counter(), _cpu()
    leads = wh.sql("SELECT count(*) FROM lead_facts", user=SYSTEM).item()
    print(
        f"warehouse opened in {time.perf_counter() - start:.1f} s ({_cpu() - cpu:.1f} s CPU); "
        f"lead_facts {leads:,} rows; load {os.getloadavg()[0]:.2f}"
    )
    print("\n| view (as an analyst) | groups | median ms | p95 ms | CPU ms per run |\n|---|---:|---:|---:|---:|")
    for name, spec in VIEWS:
        query = build_query(spec)
        frame = wh.sql(query.sql, query.params, user=ANALYST)  # warm: first-use of the files
        times = []
        cpu0 = _cpu()
        for _ in range(args.runs):
            t = time.perf_counter()
            frame = wh.sql(query.sql, query.params, user=ANALYST)
            times.append(time.perf_counter() - t)
        cpu = (_cpu() - cpu0) / args.runs
        groups = shape(spec, query, frame).rows.height
        print(
            f"| {name} | {groups:,} | {statistics.median(times) * 1000:.0f} | {p95(times) * 1000:.0f} | "
            f"{cpu * 1000:.0f} |"
        )
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


def _cpu() -> float:
    """User + system CPU seconds of this process (every DuckDB thread)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


if __name__ == "__main__":
    main()
