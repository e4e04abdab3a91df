"""Measure identity resolution on a refreshed demo: exact rules alone and the full resolution
(exact + Splink), side by side, timed and scored against ``<data_dir>/demo_truth/identity.csv``;
and the Customer 360 search and profile queries. Prints a Markdown section for docs/benchmarks.md.

    python benchmarks/identity.py --config $BENCH/identity_medium/cockpit.toml
    python benchmarks/identity.py --config $BENCH/identity_medium/cockpit.toml --incremental 0.01

``--incremental SHARE``: the identity step for SHARE of the records new, changed or removed, resolved against
the kept resolution (kept pairs and parameters), beside a full resolution with the same parameters and a
full re-resolution that trains them again, in the same run (issue 22, point 1).

Reads the demo's snapshots only; writes nothing into its data folder.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.derived.identity import Kept, Model, evaluate, read_records, resolve, write_state
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
    parser.add_argument("--incremental", type=float, metavar="SHARE", help="only the incremental identity step")
    args = parser.parse_args()
    settings = load_settings(args.config)
    if args.incremental:
        _incremental(settings, args.incremental)
        return
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


def _changed(records: pl.DataFrame, share: float) -> pl.DataFrame:
    """``share`` of the records touched, a third each: removed; changed (the phone's last digit, the name's
    last character); new (a copy of a known record under a new id, its phone a digit short)."""
    n = max(int(records.height * share / 3), 1)
    step = records.height // (3 * n)
    pos = pl.int_range(pl.len())
    picked = (pos % step == 0) & (pos // step < 3 * n)
    kind = (pos // step) % 3
    changed = pl.col("phone").str.replace(r"\d$", "7")
    out = records.filter(~(picked & (kind == 0))).with_columns(
        pl.when(picked & (kind == 1)).then(changed).otherwise(pl.col("phone")).alias("phone"),
        pl.when(picked & (kind == 1)).then(pl.col("name").str.replace(r".$", "华")).otherwise("name").alias("name"),
    )
    new = records.filter(picked & (kind == 2)).with_columns(
        ("N" + pl.col("source_record_id")).alias("source_record_id"),
        pl.col("phone").str.slice(0, 10).alias("phone_invalid"),
        pl.lit(None, pl.String).alias("phone"),
    )
    return pl.concat([out, new])


def _timed(fn: Any) -> tuple[Any, float, float]:
    t, cpu = time.perf_counter(), _cpu()
    out = fn()
    return out, time.perf_counter() - t, _cpu() - cpu


def _incremental(settings: Settings, share: float) -> None:
    store = Store(settings.data_path)
    with duckdb.connect() as con:
        attach_views(con, store, store.read_manifest(), in_memory=frozenset())
        records = read_records(con)
    after = _changed(records, share)

    def model(**kw: Any) -> Model:
        return Model(
            threshold=settings.identity.match_threshold,
            memory_limit=settings.memory_limit,
            spill_root=settings.spill_path,
            **kw,
        )

    first = model()
    links0, t0, c0 = _timed(lambda: resolve(records, first))
    folder = Path(tempfile.mkdtemp(prefix="identity_bench_"))
    write_state(first, None, folder, datetime.now())

    stats: dict[str, Any] = {}

    def incremental() -> pl.DataFrame:  # as the derived build runs it: read the kept files, resolve, write
        kept = Kept(
            first.trained,
            first.tf_total,
            datetime.now(),
            pl.read_parquet(folder / "identity_state.parquet"),
            pl.read_parquet(folder / "identity_pairs.parquet"),
            max_share=1.0,
        )
        m = model(trained=kept.trained, tf_total=kept.tf_total, kept=kept)
        out = resolve(after, m, previous=links0)
        write_state(m, kept, folder, datetime.now())
        stats.update(m.stats)
        return out

    same = model(trained=first.trained, tf_total=first.tf_total)
    retrained = model()
    ours, t1, c1 = _timed(incremental)
    full, t2, c2 = _timed(lambda: resolve(after, same, previous=links0))
    anew, t3, c3 = _timed(lambda: resolve(after, retrained, previous=links0))

    def members(links: pl.DataFrame) -> set[str]:
        ref = pl.concat_str("source_system", "source_record_id", separator=":")
        return set(links.group_by("customer_key").agg(ref.sort().str.join("|").alias("m"))["m"].to_list())

    truth_path = settings.data_path / "demo_truth" / "identity.csv"
    truth = pl.read_csv(truth_path, schema_overrides={"source_record_id": pl.String}) if truth_path.is_file() else None

    def f1(links: pl.DataFrame) -> str:
        return f"{evaluate(links, truth).f1:.4f}" if truth is not None else ""

    changed = stats.get("records_changed", 0)
    print(
        f"records {records.height:,} → {after.height:,}; {changed:,} new, changed or gone "
        f"({changed / after.height:.2%}); load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print("| identity step | wall (s) | CPU (s) | records scored | pairs linked | F1 | links |")
    print("|---|---|---|---|---|---|---|")
    differ = len(members(anew) ^ members(ours))
    rows = (
        ("first build (trains)", t0, c0, records.height, first.stats.get("pairs_linked"), f1(links0), ""),
        (
            "incremental (kept pairs and parameters)",
            t1,
            c1,
            stats.get("records_scored"),
            stats.get("pairs_linked"),
            f1(ours),
            "= full with the same parameters" if ours.equals(full) else "**differ from full, same parameters**",
        ),
        ("full, same parameters", t2, c2, after.height, same.stats.get("pairs_linked"), f1(full), ""),
        (
            "full re-resolution (trains again)",
            t3,
            c3,
            after.height,
            retrained.stats.get("pairs_linked"),
            f1(anew),
            f"{differ:,} clusters not in both (vs incremental)",
        ),
    )
    for label, wall, cpu, scored, pairs, score, note in rows:
        print(f"| {label} | {wall:.1f} | {cpu:.1f} | {scored or 0:,} | {pairs or 0:,} | {score} | {note} |")
    print(f"incremental steps: {stats}")
    print(f"ratio incremental / full re-resolution: wall {t1 / t3:.0%}, CPU {c1 / c3:.0%}")


if __name__ == "__main__":
    main()
