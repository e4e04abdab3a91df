"""Churn on a refreshed company: the whole churn step of a refresh (features at three cutoffs, BG/NBD,
the backtest of model vs recency vs BG/NBD, the refit, scoring, reasons) timed (wall and CPU), with the
backtest figures and why the served method serves. Reads the company's snapshots and writes nothing, unless
``--out DIR`` asks for the tables it made (to compare two versions' output).

    .venv/bin/python benchmarks/churn.py --config $BENCH/large/cockpit.toml

``--touched N``: the incremental path instead (what a refresh the same day runs): the current build's kept fit
rescores its churn_rows with N random customers of them as touched (their features made again, the others' kept),
as an incremental build after a change to N customers does. The tables it writes are the whole population's.

    .venv/bin/python benchmarks/churn.py --config $BENCH/large/cockpit.toml --touched 12000

A demo company to run it on (medium ≈ 60k customers, ~20 s to generate and refresh; small ≈ 2.5k;
large ≈ 1.3M):

    mkdir -p $BENCH/churn_medium && cp cockpit.toml $BENCH/churn_medium/
    .venv/bin/cockpit --config $BENCH/churn_medium/cockpit.toml demo --size medium --no-serve
    /usr/bin/time -f "wall %e user %U sys %S maxrss %MkB" \
        .venv/bin/python benchmarks/churn.py --config $BENCH/churn_medium/cockpit.toml
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import polars as pl

from dashboard.core.config import load_settings
from dashboard.core.duck import work_connection
from dashboard.core.store import Store
from dashboard.derived.churn import build as churn
from dashboard.derived.tables import attach_views


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="cockpit.toml of a refreshed company")
    parser.add_argument("--horizon-days", type=int, default=None)
    parser.add_argument("--out", type=Path, help="write churn_scores.parquet and churn_model.parquet here (to compare)")
    parser.add_argument("--touched", type=int, help="rescore with the kept fit, this many random customers touched")
    args = parser.parse_args()
    settings = load_settings(args.config)
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    kept, rows = _kept(store, manifest, args.touched) if args.touched is not None else (None, None)
    with work_connection(settings) as con:  # held to memory_limit, as the refresh holds it
        attach_views(con, store, manifest, in_memory=frozenset())
        links = con.sql("SELECT * FROM identity_links").pl()
        start, cpu = time.perf_counter(), time.process_time()
        steps: list[tuple[float, str]] = []
        result = churn.run(
            con,
            settings,
            links,
            horizon_days=args.horizon_days,
            progress=lambda m: steps.append((time.perf_counter() - start, m)),
            kept=kept,
            rows=rows,
        )
        total, cpu = time.perf_counter() - start, time.process_time() - cpu
        for at, message in steps:
            print(f"{at:7.1f} s  {message}")
        print(
            f"churn step: {total:.1f} s ({cpu:.1f} s CPU) for {result.scores.height:,} customers "
            f"(peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB, {os.cpu_count()} cores, "
            f"load {os.getloadavg()[0]:.1f})"
        )
        print(
            f"serving: {result.method} ({result.status}, {result.reason}); as of {result.as_of}, "
            f"horizon {result.horizon_days} days, trained on {result.train_horizon_days}-day windows"
        )
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            result.scores.write_parquet(args.out / "churn_scores.parquet")
            result.card.write_parquet(args.out / "churn_model.parquet")
        shape = {"tbl_hide_dataframe_shape": True, "tbl_hide_column_data_types": True, "tbl_cols": -1}
        with pl.Config(tbl_width_chars=200, **shape):
            print(
                result.card.select(
                    "method",
                    "auc",
                    "precision_top10",
                    "brier",
                    "chosen",
                    "backtest_customers",
                    "backtest_churn_rate",
                    "backtest_windows",
                    "backtest_windows_needed",
                    "train_horizon_days",
                )
            )
        print(result.scores.group_by("risk_band").agg(pl.len().alias("customers")).sort("risk_band"))


def _kept(store: Store, manifest: dict, touched: int) -> tuple[churn.KeptFit, churn.KeptRows]:
    """The current build's churn fit, and its rows and scores with ``touched`` random customers to score again."""
    derived = manifest.get("derived") or {}
    info = derived.get("churn_fit") or {}
    if not info.get("file") or not info.get("rows"):
        raise SystemExit("--touched: the current build kept no churn fit and rows (refresh the company first)")
    kept = churn.load_fit(store.abs(info["file"]))
    if kept is None:
        raise SystemExit(f"--touched: {info['file']} cannot be read by this code")
    rows_file = store.abs(info["rows"])
    keys = pl.read_parquet(rows_file, columns=["customer_key"])
    picked = keys.sample(min(touched, keys.height), seed=0)
    scores = store.abs(derived["tables"]["churn_scores"])
    return kept, churn.KeptRows(rows_file, scores, picked)


if __name__ == "__main__":
    main()
