"""Customer 360's timeline at large (issue 22, point 3: <= 300 ms p95 for every role), before and after the
refresh writes interactions, contracts and stage changes in record order (pipeline/standardize.py
RECORD_ORDER), in the same run: the same demo twice, once as published before (date order) and once with
those files written as the refresh writes them now. For the busiest customer and the call center's busiest
caller (whose keys masked roles read as tokens), as an admin and as a manager, interleaved query by query:
p95 wall and CPU per run. `--rewrite DIR` first writes DIR's (a hard-linked copy's) snapshot files in the new
order, by rename so the linked originals stay as they were, and prints what the sort and write cost against
the date order.

    python benchmarks/timeline.py --rewrite <copy of a refreshed large demo>/data
    python benchmarks/timeline.py --before <demo>/cockpit.toml --after <copy>/cockpit.toml --runs 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.queries import p95  # noqa: E402
from dashboard.core.config import load_settings  # noqa: E402
from dashboard.pipeline.standardize import RECORD_ORDER, record_order  # noqa: E402
from dashboard.query.security import SYSTEM, Principal  # noqa: E402
from dashboard.query.warehouse import Warehouse  # noqa: E402

DATE_ORDER = {"interactions": "occurred_at", "contracts": "signed_at", "lead_events": "occurred_at"}  # before
USERS = (Principal("admin", "admin"), Principal("manager", "manager"))
BUSIEST = (
    "SELECT l.customer_key FROM identity_links AS l JOIN interactions AS i ON i.source_system = l.source_system "
    "AND i.customer_ref = l.source_record_id{where} GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process: DuckDB's workers too
    return usage.ru_utime + usage.ru_stime


def rewrite(data: Path) -> None:
    """Write ``data``'s current snapshot files of the RECORD_ORDER entities as refresh now does; print the
    CPU of the sort + write against the date order, both from the rows in an arrival order (shuffled)."""
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    spent = {"date order": 0.0, "record order": 0.0}
    for entry in manifest["sources"].values():
        for entity, info in (entry.get("entities") or {}).items():
            if entity not in RECORD_ORDER:
                continue
            path = data / info["file"]
            rows = pl.read_parquet(path).sample(fraction=1.0, shuffle=True, seed=1)
            for way in spent:
                c0 = _cpu()
                if way == "date order":
                    out = rows.sort(DATE_ORDER[entity], nulls_last=True)
                else:
                    out = rows.sort(record_order(rows, RECORD_ORDER[entity]))
                out.write_parquet(path.with_suffix(".tmp"), compression="zstd")
                spent[way] += _cpu() - c0
            os.replace(path.with_suffix(".tmp"), path)
            print(f"{info['file']}: {rows.height} rows, {path.stat().st_size / 1e6:.1f} MB")
    print("sort + write, CPU s: " + ", ".join(f"{way} {s:.2f}" for way, s in spent.items()))


def measure(before: Path, after: Path, runs: int) -> None:
    houses = {"before": Warehouse(load_settings(before)), "after": Warehouse(load_settings(after))}
    wh = houses["after"]
    top = wh.sql(BUSIEST.format(where=""), user=SYSTEM).item()
    caller = wh.sql(BUSIEST.format(where=" WHERE l.source_system = 'call_center'"), user=SYSTEM).item()
    cpu0, wall0 = _cpu(), time.perf_counter()
    print("| customer | role | rows | p95 before | p95 after | CPU before | CPU after | CPU after ÷ before |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, key in (("busiest", top), ("call center's busiest caller", caller)):
        for user in USERS:
            params = {"customer_key": key}
            shown = {w: h.run_query("customer_timeline", params, user=user) for w, h in houses.items()}  # warm
            assert shown["before"].equals(shown["after"]), (key, user.role)  # the same rows on screen
            xs: dict[str, list[float]] = {w: [] for w in houses}
            cpu = dict.fromkeys(houses, 0.0)
            for _ in range(runs):
                for way, house in houses.items():  # interleaved: the machine's noise hits both
                    c0, t0 = _cpu(), time.perf_counter()
                    house.run_query("customer_timeline", params, user=user)
                    xs[way].append(time.perf_counter() - t0)
                    cpu[way] += _cpu() - c0
            b, a = (cpu[w] / runs * 1000 for w in houses)
            print(
                f"| {label} | {user.role} | {shown['after'].height} | {p95(xs['before']) * 1000:.0f} ms "
                f"| {p95(xs['after']) * 1000:.0f} ms | {b:.0f} ms | {a:.0f} ms | {a / b:.2f} |"
            )
    print(
        f"\n{runs} runs per way; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; "
        f"{time.perf_counter() - wall0:.0f} s wall, {_cpu() - cpu0:.0f} s CPU"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rewrite", type=Path, help="a hard-linked copy's data folder to write in record order")
    ap.add_argument("--before", type=Path)
    ap.add_argument("--after", type=Path)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    if args.rewrite:
        rewrite(args.rewrite)
    if args.before and args.after:
        measure(args.before, args.after, args.runs)


if __name__ == "__main__":
    main()
