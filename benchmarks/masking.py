"""What masking by content costs (issue 18, Speed: "classification masking adds <= 10 % to page query p95"):
the page queries of the cockpit, channels and Customer 360 pages, uncached, as a manager with the
content-profiled masking of the refresh (personal keys as keyed pseudonyms, personal text scrubbed), as a
manager with name-only masking (the `personal_columns` profile ignored: what the cockpit did before), and
as an admin (nothing masked); the three in the same run, interleaved query by query. Replaces the
"Masking by content" section of docs/benchmarks.md (--no-write: print only).

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
Row = tuple[str, str, float, float, float]  # page, query, p95 profiled, name-only, admin


class NameOnly(Warehouse):
    """The warehouse as before the profile: personal data masked by column name only."""

    def _attach_roles(self, con: duckdb.DuckDBPyConnection) -> None:
        attach_role_views(con, BASE, personal={})


def page_queries(wh: Warehouse) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    key = wh.sql(
        "SELECT l.customer_key FROM identity_links AS l JOIN interactions AS i ON i.source_system = l.source_system "
        "AND i.customer_ref = l.source_record_id GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
        user=SYSTEM,
    ).item()
    one = {"customer_key": key}
    return {
        **PAGES,
        "customer 360 (the busiest caller)": [
            ("customer_profile", one),
            ("customer_attributes", one),
            ("customer_timeline", one),
            ("customer_churn", one),
        ],
    }


def measure(settings: Settings, runs: int) -> tuple[list[Row], float, float]:
    ways = {"profiled": (Warehouse(settings), MANAGER), "name_only": (NameOnly(settings), MANAGER)}
    ways["admin"] = (Warehouse(settings), ADMIN)
    rows = []
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for page, queries in page_queries(ways["profiled"][0]).items():
        for name, params in queries:
            xs: dict[str, list[float]] = {w: [] for w in ways}
            for wh, user in ways.values():
                wh.run_query(name, params, user=user)  # warm
            for _ in range(runs):
                for way, (wh, user) in ways.items():  # interleaved: the machine's noise hits all three
                    t = time.perf_counter()
                    wh.run_query(name, params, user=user)
                    xs[way].append(time.perf_counter() - t)
            rows.append((page, name, p95(xs["profiled"]), p95(xs["name_only"]), p95(xs["admin"])))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    return rows, cpu, time.perf_counter() - wall0


def markdown(
    settings: Settings,
    rows: list[tuple[str, str, float, float, float]],
    cpu: float,
    wall: float,
    command: str,
    runs: int,
) -> str:
    wh = Warehouse(settings)
    personal = wh.sql(
        "SELECT relation, column_name, kind FROM personal_columns WHERE kind <> 'key' ORDER BY 1, 2", user=SYSTEM
    )
    keys = wh.sql("SELECT count(*) FROM personal_columns WHERE kind = 'key'", user=SYSTEM).item()
    total_p, total_n = sum(r[2] for r in rows), sum(r[3] for r in rows)
    worst = max(rows, key=lambda r: r[2] / r[3] if r[3] else 0)
    lines = [
        SECTION,
        "",
        f"Command: `{command}` ({runs} runs of each query per way, the three ways interleaved query by query; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end; "
        f"{wall:.0f} s wall, {cpu:.0f} s CPU).",
        "",
        f"The refresh's profile found {personal.height} personal columns by content (plus {keys} derived key columns "
        "by lineage). p95 in ms of each page query as a manager with that masking (profiled), as a manager with "
        "name-only masking (before), and as an admin (nothing masked):",
        "",
        "| page | query | profiled p95 | name-only p95 | admin p95 | profiled / name-only |",
        "|---|---|---|---|---|---|",
    ]
    for page, name, a, b, c in rows:
        lines.append(f"| {page} | {name} | {a * 1000:.1f} | {b * 1000:.1f} | {c * 1000:.1f} | {a / b:.2f} |")
    lines += [
        f"| **all** | **sum of p95s** | **{total_p * 1000:.0f}** | **{total_n * 1000:.0f}** | "
        f"**{sum(r[4] for r in rows) * 1000:.0f}** | **{total_p / total_n:.2f}** |",
        "",
        f"Goal: the profiled masking adds at most 10 % to page query p95. Summed over the page queries it adds "
        f"{(total_p / total_n - 1) * 100:+.1f} %; the worst single query is {worst[1]} at {worst[2] / worst[3]:.2f}×.",
        "",
    ]
    return "\n".join(lines)


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
