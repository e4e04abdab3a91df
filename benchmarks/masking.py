"""What masking by content costs (issue 18, Speed: "classification masking adds <= 10 % to page query p95"):
the page queries of the cockpit, channels and Customer 360 pages, uncached, as a manager with the
content-profiled masking of the refresh (personal keys as keyed pseudonyms, personal text scrubbed), as a
manager with name-only masking (the `personal_columns` profile ignored: what the cockpit did before), and
as an admin (nothing masked); the three in the same run, interleaved query by query, each with its p95 wall
time and its CPU time per run. Customer 360 is measured for the customer with the most interactions and for
the one with the most interactions from a source keyed by phone (the rows masked roles read as precomputed
tokens). Replaces the "Masking by content" section of docs/benchmarks.md (--no-write: print only).

    python benchmarks/masking.py --size medium        # generates and refreshes a demo first (~1 min)
    python benchmarks/masking.py --config <refreshed demo>/cockpit.toml
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.queries import PAGES, p95  # noqa: E402
from dashboard.core.config import Settings, load_settings  # noqa: E402
from dashboard.query.security import SYSTEM, Principal  # noqa: E402
from dashboard.query.warehouse import BASE, Warehouse, attach_role_views  # noqa: E402

SECTION = "## Masking by content (issue 18)"
MANAGER = Principal("manager", "manager")
ADMIN = Principal("admin", "admin")
# page, query, then p95 wall seconds and mean CPU seconds per run: profiled, name-only, admin
Row = tuple[str, str, float, float, float, float, float, float]


class NameOnly(Warehouse):
    """The warehouse as before the profile: personal data masked by column name only."""

    def _attach_roles(self, con: duckdb.DuckDBPyConnection) -> None:
        attach_role_views(con, BASE, personal={})


def page_queries(wh: Warehouse) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """The cockpit and channels pages' queries, and Customer 360's for two customers: the one with the most
    interactions, and the one with the most from sources whose customer keys are personal (the demo's call
    center keys callers by phone: masked roles read those rows with the keys' precomputed tokens)."""
    busiest = (
        "SELECT l.customer_key FROM identity_links AS l JOIN interactions AS i ON i.source_system = l.source_system "
        "AND i.customer_ref = l.source_record_id{where} GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1"
    )
    keyed = wh.sql(
        "SELECT DISTINCT source_system FROM personal_columns WHERE relation = 'interactions' "
        "AND column_name = 'customer_ref' AND source_system IS NOT NULL ORDER BY 1",
        user=SYSTEM,
    )["source_system"].to_list()
    top = wh.sql(busiest.format(where=""), user=SYSTEM).item()
    caller = top
    if keyed:
        caller = wh.sql(busiest.format(where=" WHERE l.source_system IN $keyed"), {"keyed": keyed}, user=SYSTEM).item()
    keyed_by = f"of {', '.join(keyed)}, keyed by personal data"
    label = f"the busiest caller, also {keyed_by}" if keyed and caller == top else "the busiest caller"
    pages = {**PAGES, f"customer 360 ({label})": _customer_360(top)}
    if caller != top:
        pages[f"customer 360 (the busiest caller {keyed_by})"] = _customer_360(caller)
    return pages


def _customer_360(key: str) -> list[tuple[str, dict[str, Any]]]:
    one = {"customer_key": key}
    return [(name, one) for name in ("customer_profile", "customer_attributes", "customer_timeline", "customer_churn")]


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process: DuckDB's workers too
    return usage.ru_utime + usage.ru_stime


def measure(settings: Settings, runs: int) -> tuple[list[Row], float, float]:
    ways = {"profiled": (Warehouse(settings), MANAGER), "name_only": (NameOnly(settings), MANAGER)}
    ways["admin"] = (Warehouse(settings), ADMIN)
    rows = []
    cpu0, wall0 = _cpu(), time.perf_counter()
    for page, queries in page_queries(ways["profiled"][0]).items():
        for name, params in queries:
            xs: dict[str, list[float]] = {w: [] for w in ways}
            cpu: dict[str, float] = dict.fromkeys(ways, 0.0)
            for wh, user in ways.values():
                wh.run_query(name, params, user=user)  # warm
            for _ in range(runs):
                for way, (wh, user) in ways.items():  # interleaved: the machine's noise hits all three
                    c0, t0 = _cpu(), time.perf_counter()
                    wh.run_query(name, params, user=user)
                    xs[way].append(time.perf_counter() - t0)
                    cpu[way] += _cpu() - c0
            a, b, c = (p95(xs[w]) for w in ways)
            rows.append((page, name, a, b, c, cpu["profiled"] / runs, cpu["name_only"] / runs, cpu["admin"] / runs))
    return rows, _cpu() - cpu0, time.perf_counter() - wall0


def markdown(settings: Settings, rows: list[Row], cpu: float, wall: float, command: str, runs: int) -> str:
    wh = Warehouse(settings)
    personal = wh.sql(
        "SELECT relation, column_name, kind FROM personal_columns WHERE kind <> 'key' ORDER BY 1, 2", user=SYSTEM
    )
    keys = wh.sql("SELECT count(*) FROM personal_columns WHERE kind = 'key'", user=SYSTEM).item()
    total = [sum(column) for column in zip(*(r[2:] for r in rows), strict=True)]
    worst = max(rows, key=lambda r: r[5] / r[7] if r[7] else 0)
    lines = [
        SECTION,
        "",
        f"Command: `{command}` ({runs} runs of each query per way, the three ways interleaved query by query; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; "
        f"{wall:.0f} s wall, {cpu:.0f} s CPU).",
        "",
        f"The refresh's profile found {personal.height} personal columns by content (plus {keys} derived key columns "
        "by lineage). Each page query as a manager with that masking (profiled), as a manager with name-only "
        "masking (before the profile), and as an admin (nothing masked): p95 wall in ms, and CPU in ms per run "
        "(the process's user + system time over the runs ÷ runs, every DuckDB thread; the steadier figure on a "
        "shared machine):",
        "",
        "| page | query | p95 profiled | p95 name-only | p95 admin | CPU profiled | CPU name-only | CPU admin "
        "| profiled ÷ admin: p95 | CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for page, name, *x in rows:
        ms = " | ".join(f"{v * 1000:.1f}" for v in x)
        lines.append(f"| {page} | {name} | {ms} | {_ratio(x[0], x[2])} | {_ratio(x[3], x[5])} |")
    ms = " | ".join(f"**{v * 1000:.0f}**" for v in total)
    lines += [
        f"| **all** | **sums** | {ms} | **{_ratio(total[0], total[2])}** | **{_ratio(total[3], total[5])}** |",
        "",
        f"Goal: masking adds at most 10 % to page query p95. Summed over the page queries the profiled masking "
        f"adds {_pct(total[0], total[2])} to p95 and {_pct(total[3], total[5])} to CPU over the admin's "
        f"({_pct(total[0], total[1])} and {_pct(total[3], total[4])} over name-only masking); the single query "
        f"with the highest CPU ratio to the admin's is {worst[1]} ({worst[0]}) at {_ratio(worst[5], worst[7])}.",
        "",
    ]
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "–"


def _pct(a: float, b: float) -> str:
    return f"{(a / b - 1) * 100:+.1f} %" if b else "–"


def write_section(path: Path, text: str) -> None:
    doc = path.read_text(encoding="utf-8") if path.exists() else ""
    start = doc.find(SECTION)
    if start >= 0:
        end = doc.find("\n## ", start + len(SECTION))
        doc = doc[:start] + text + (doc[end + 1 :] if end >= 0 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    path.write_text(doc, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config")
    ap.add_argument("--size", default="medium")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    command = "python benchmarks/masking.py " + (
        "--config <demo>/cockpit.toml" if args.config else f"--size {args.size}"
    )
    if args.config:
        settings = load_settings(Path(args.config))
        text = markdown(settings, *measure(settings, args.runs), command, args.runs)
    else:
        from dashboard.demo import generate
        from dashboard.pipeline.refresh import refresh

        with tempfile.TemporaryDirectory(prefix="cockpit-mask-") as tmp:
            cfg = Path(tmp) / "cockpit.toml"
            shutil.copy(ROOT / "cockpit.toml", cfg)
            settings = load_settings(cfg)
            generate(settings.data_path, args.size, 42)
            assert refresh(settings).exit_code == 0
            text = markdown(settings, *measure(settings, args.runs), command, args.runs)
    print(text)
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks.md", text)


if __name__ == "__main__":
    main()
