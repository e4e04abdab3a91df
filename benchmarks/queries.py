"""Latency of the queries behind the cockpit and channels pages, uncached, on a refreshed demo; and
the same metrics computed the way a typical Streamlit app does (pandas on the loaded canonical
tables) and with Polars lazy scans, in the same run. Appends a section to docs/benchmarks.md.

    python benchmarks/queries.py --config /path/to/refreshed/cockpit.toml [--runs 30]
    python benchmarks/queries.py --size large          # generates and refreshes a demo first (minutes)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse, list_queries

ROOT = Path(__file__).resolve().parents[1]
# What each page runs on a view, as the page runs it (dashboard/pages/cockpit.py, channels.py): the
# channels page without a channel chosen, and drilled into one (its campaigns and leads appear).
ONE = {"channel": "paid_search"}
PAGES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "cockpit": [
        ("channel_summary", {}),
        ("sales_leaderboard", {}),
        ("new_leads", {}),
        ("receivables_overdue", {}),
        ("data_health", {}),
        ("churn_model_card", {}),
        ("churn_bands", {}),
    ],
    "channels": [
        ("filter_options", {}),
        ("channel_economics", {}),
        ("lead_volume", {"grain": "month"}),
        ("funnel", {}),
        ("sales_leaderboard", {}),
        ("attribution", {}),
    ],
    "channels, one channel chosen": [
        ("filter_options", ONE),
        ("channel_economics", ONE),
        ("lead_volume", {**ONE, "grain": "month"}),
        ("funnel", ONE),
        ("sales_leaderboard", {}),
        ("attribution", {}),
        ("campaign_summary", ONE),
        ("channel_leads", {**ONE, "limit": 500}),
    ],
}


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm: file metadata, first-use imports
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, round(0.95 * len(xs)) - 1)]


def files(settings: Settings, entity: str) -> list[str]:
    m = Store(settings.data_path).read_manifest()
    return [
        str(settings.data_path / e["entities"][entity]["file"])
        for e in m["sources"].values()
        if entity in e["entities"]
    ]


# -- the same four metrics, from the canonical tables --------------------------------------------
def pandas_metrics(t: dict[str, pd.DataFrame]) -> None:
    leads, ev, spend = t["leads"], t["lead_events"], t["marketing_spend"]
    won = ev[ev["stage"] == "won"].groupby("lead_id", as_index=False)["amount"].max()
    lw = leads.merge(won, on="lead_id", how="left")
    econ = lw.groupby("channel").agg(leads=("lead_id", "size"), won=("amount", "count"), revenue=("amount", "sum"))
    econ = econ.join(spend.groupby("channel")["cost"].sum(), how="outer")
    first = ev.pivot_table(index="lead_id", columns="stage", values="occurred_at", aggfunc="min")
    funnel = leads.merge(first, left_on="lead_id", right_index=True, how="left").groupby("channel").count()
    volume = leads.groupby([leads["created_at"].dt.to_period("M"), "channel"]).size()
    board = lw[lw["amount"].notna()].groupby("owner")["amount"].agg(["size", "sum"])
    assert len(econ) and len(funnel) and len(volume) and len(board) >= 0


def polars_metrics(settings: Settings) -> None:
    leads = pl.scan_parquet(files(settings, "leads"))
    ev = pl.scan_parquet(files(settings, "lead_events"))
    spend = pl.scan_parquet(files(settings, "marketing_spend"))
    won = ev.filter(pl.col("stage") == "won").group_by("lead_id").agg(pl.col("amount").max())
    lw = leads.join(won, on="lead_id", how="left")
    econ = (
        lw.group_by("channel")
        .agg(pl.len().alias("leads"), pl.col("amount").count().alias("won"), pl.col("amount").sum().alias("revenue"))
        .join(spend.group_by("channel").agg(pl.col("cost").sum()), on="channel", how="full")
    )
    first = ev.group_by("lead_id", "stage").agg(pl.col("occurred_at").min())
    funnel = leads.join(first, on="lead_id", how="left").group_by("channel", "stage").len()
    volume = leads.group_by(pl.col("created_at").dt.truncate("1mo"), "channel").len()
    board = (
        lw.filter(pl.col("amount").is_not_null()).group_by("owner").agg(pl.len().alias("deals"), pl.col("amount").sum())
    )
    for frame in (econ, funnel, volume, board):
        frame.collect()


def duckdb_metrics(w: Warehouse) -> None:
    for name, params in (("channel_economics", {}), ("funnel", {}), ("lead_volume", {}), ("sales_leaderboard", {})):
        w.run_query(name, params, user=SYSTEM)


def run(settings: Settings, runs: int) -> str:
    w = Warehouse(settings)
    available = set(list_queries())
    lines = [
        "",
        f"## Page queries ({settings.data_path.parent.name} demo, {runs} runs each, uncached)",
        "",
        "Command: `python benchmarks/queries.py --size large` (or `--config` of a refreshed demo).",
        "",
        "| page | query | median ms | p95 ms |",
        "|---|---|---|---|",
    ]
    for page, queries in PAGES.items():
        present = [(n, p) for n, p in queries if n in available]
        for name, params in present:
            xs = timed(lambda n=name, p=params: w.run_query(n, p, user=SYSTEM), runs)
            lines.append(f"| {page} | {name} | {statistics.median(xs) * 1000:.0f} | {p95(xs) * 1000:.0f} |")
        whole = timed(lambda qs=present: [w.run_query(n, p, user=SYSTEM) for n, p in qs], runs)
        lines.append(
            f"| **{page}** | **all {len(present)} together** | **{statistics.median(whole) * 1000:.0f}** | "
            f"**{p95(whole) * 1000:.0f}** |"
        )
    t = time.perf_counter()
    tables = {
        e: pd.concat([pd.read_parquet(f) for f in files(settings, e)])
        for e in ("leads", "lead_events", "marketing_spend")
    }
    load = time.perf_counter() - t
    cmp_runs = max(3, runs // 5)
    pandas_s = statistics.median(timed(lambda: pandas_metrics(tables), cmp_runs))
    polars_s = statistics.median(timed(lambda: polars_metrics(settings), cmp_runs))
    duck_s = statistics.median(timed(lambda: duckdb_metrics(w), cmp_runs))
    lines += [
        "",
        "Four metrics (channel economics, funnel, monthly lead volume, leaderboard), medians:",
        "",
        "| engine | seconds | vs cockpit queries |",
        "|---|---|---|",
        f"| cockpit: DuckDB over the summary tables built at refresh | {duck_s:.3f} | 1× |",
        f"| Polars lazy scan of the canonical Parquet | {polars_s:.3f} | {polars_s / duck_s:.1f}× slower |",
        f"| pandas on loaded canonical tables (+{load:.1f} s to load them once) | {pandas_s:.3f} | "
        f"{pandas_s / duck_s:.1f}× slower |",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config")
    ap.add_argument("--size", default="large")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    if args.config:
        text = run(load_settings(args.config), args.runs)
    else:
        from dashboard.demo import generate
        from dashboard.pipeline.refresh import refresh

        with tempfile.TemporaryDirectory(prefix="cockpit-qbench-") as tmp:
            cfg = Path(tmp) / "cockpit.toml"
            shutil.copy(ROOT / "cockpit.toml", cfg)
            generate(Path(tmp) / "data", args.size, 42)
            settings = load_settings(cfg)
            refresh(settings)
            text = run(settings, args.runs)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
