"""What the semantic layer costs the pages: the cockpit's and the channels page's queries as they ran
before it (the named queries channel_summary / channel_economics) against as they run now (the layer's
requests, dashboard/query/metrics.py), uncached, on a refreshed demo, as a manager and as a sales rep.
Wall time (median, p95) and the process's CPU time per page load; appends a section to docs/benchmarks.md.

    python benchmarks/metrics.py --config /path/to/refreshed/cockpit.toml [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dashboard.core.config import load_settings
from dashboard.core.errors import AccessDenied
from dashboard.query.metrics import Request, ask, forget_company_rows
from dashboard.query.security import Principal
from dashboard.query.warehouse import Warehouse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from queries import PAGES  # benchmarks/queries.py: the pages' queries

ROOT = Path(__file__).resolve().parents[1]
# the page's other queries are the same before and after: only what the layer replaced is timed
COCKPIT = ("leads", "won_deals", "conversion_rate", "won_amount", "spend", "roi", "cost_per_lead")
TILES = ("leads", "conversion_rate", "won_amount", "roi")
ECONOMICS = ("won_amount", "spend", "leads", "cost_per_lead", "won_deals", "cac", "roi", "conversion_rate")
# the page's other queries, unchanged by the layer: benchmarks/queries.py's lists without what it replaced
REPLACED = ("channel_summary", "channel_economics")
OTHERS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    page: [(name, params) for name, params in queries if name not in REPLACED] for page, queries in PAGES.items()
}


def before(w: Warehouse, page: str, user: Principal) -> None:
    if page == "cockpit":
        w.run_query("channel_summary", {}, user=user)
    else:
        w.run_query("channel_economics", {}, user=user)


def after(w: Warehouse, page: str, user: Principal) -> None:
    names = COCKPIT if page == "cockpit" else ECONOMICS
    split = ask(w, Request.of(names, ["channel"], with_total=True), user)
    hidden = [n for n in TILES if split.scopes[n] != "rows"]
    if hidden:  # a sales rep's company-wide ROI: one more question
        ask(w, Request.of(hidden), user)


def after_cold(w: Warehouse, page: str, user: Principal) -> None:
    """As ``after``, for the first user after a publish: the company's figures not kept yet."""
    forget_company_rows()
    after(w, page, user)


def readable(w: Warehouse, page: str, user: Principal) -> list[tuple[str, dict[str, Any]]]:
    """The page's other queries this user may run (a sales rep's cockpit has no data-health tile)."""
    out = []
    for name, params in OTHERS[page]:
        try:
            w.run_query(name, params, user=user)
        except AccessDenied:
            continue
        out.append((name, params))
    return out


def whole(w: Warehouse, page: str, user: Principal, layer: bool, others: list[tuple[str, dict[str, Any]]]) -> None:
    (after if layer else before)(w, page, user)
    for name, params in others:
        w.run_query(name, params, user=user)


def timed(fn: Callable[[], Any], runs: int) -> tuple[list[float], float]:
    fn()
    out, cpu = [], time.process_time()
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out, (time.process_time() - cpu) / runs


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]


def run(config: str, runs: int, owner: str) -> str:
    settings = load_settings(config)
    w = Warehouse(settings)
    lines = [
        "",
        f"## Semantic layer: page metric queries before and after ({settings.data_path.parent.name}, {runs} runs)",
        "",
        "Command: `python benchmarks/metrics.py --config <refreshed demo>/cockpit.toml`. Before: the named query",
        "the page ran (channel_summary, channel_economics); after: the layer's request by channel with its total",
        "row (and, for a sales rep, the company-wide ROI asked apart). Uncached by the pages, one process, 2",
        "shared cores; the layer keeps the company's figures per manifest (the same for every rep), so a sales",
        "rep's rows come with a cold line: the first rep after a publish, when they are read over every row.",
        "",
        "| page | role | what | before median / p95 ms | after median / p95 ms | p95 ratio | CPU ms per load |",
        "|---|---|---|---|---|---|---|",
    ]
    for page in ("cockpit", "channels"):
        for user in (Principal("bench", "manager"), Principal("bench", "sales", owner)):
            others = readable(w, page, user)
            cold = (lambda p=page, u=user: before(w, p, u), lambda p=page, u=user: after_cold(w, p, u))
            for what, fns in (
                ("the metrics alone", (lambda p=page, u=user: before(w, p, u), lambda p=page, u=user: after(w, p, u))),
                *([("the metrics alone, first rep after a publish", cold)] if user.role == "sales" else []),
                (
                    f"the whole page ({len(others) + 1} queries)",
                    (
                        lambda p=page, u=user, o=others: whole(w, p, u, False, o),
                        lambda p=page, u=user, o=others: whole(w, p, u, True, o),
                    ),
                ),
            ):
                a, cpu_a = timed(fns[0], runs)
                b, cpu_b = timed(fns[1], runs)
                lines.append(
                    f"| {page} | {user.role} | {what} | {statistics.median(a) * 1000:.1f} / {p95(a) * 1000:.1f} | "
                    f"{statistics.median(b) * 1000:.1f} / {p95(b) * 1000:.1f} | {p95(b) / p95(a):.2f}× | "
                    f"{cpu_a * 1000:.1f} → {cpu_b * 1000:.1f} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config", required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--owner", default="张伟", help="a sales owner name of the demo")
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    text = run(args.config, args.runs, args.owner)
    if args.out != "-":
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(text)
    print(text)


if __name__ == "__main__":
    main()
