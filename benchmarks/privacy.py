"""Erase one person (`cockpit privacy forget`) on a refreshed demo with N retained snapshots per source:
wall and CPU time, peak RSS, files and rows, then the idempotent rerun, and a scan of every Parquet file
for the person's phone. Prints a Markdown section for docs/benchmarks.md.

    mkdir -p $BENCH/privacy_medium && cp cockpit.toml $BENCH/privacy_medium/
    .venv/bin/cockpit --config $BENCH/privacy_medium/cockpit.toml demo --size medium --no-serve
    .venv/bin/python benchmarks/privacy.py --config $BENCH/privacy_medium/cockpit.toml --retained 5

It rewrites the company's data folder (that is what it measures): run it on a throwaway demo. With
``--retained N``, a source with fewer than N snapshots on disk gets copies of its current one as older
retained snapshots (named in the manifest, as a refresh would keep them): the same files a scheduler's
five refreshes would leave, without running them.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import time
from datetime import UTC, datetime

import polars as pl

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Store
from dashboard.ops import privacy
from dashboard.pipeline.review import Who


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _retain(settings: Settings, n: int) -> int:
    """Copies of each source's current snapshot as older retained ones, up to ``n`` on disk; returns the copies."""
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    made = 0
    for source, entry in manifest["sources"].items():
        folder = store.snapshots / source
        previous = list(entry.get("previous", []))
        on_disk = [p.name for p in folder.iterdir() if p.is_dir()]
        for k in range(max(0, n - len(on_disk))):
            sid = f"{entry['snapshot_id'][:8]}T000000000Z-old{k}"
            shutil.copytree(folder / entry["snapshot_id"], folder / sid)
            previous.append(sid)
            made += 1
        entry["previous"] = previous
    store.write_manifest(manifest)
    return made


def _person(settings: Settings) -> str:
    """The phone of a golden customer whose records come from the most sources (first by key)."""
    tables = Store(settings.data_path).read_manifest()["derived"]["tables"]
    golden = pl.read_parquet(
        settings.data_path / tables["customer_golden"], columns=["customer_key", "phone", "sources"]
    )
    picked = (
        golden.filter(pl.col("phone").str.contains(r"^1[3-9]\d{9}$"))
        .sort(pl.col("sources").list.len(), "customer_key", descending=[True, False])
        .row(0, named=True)
    )
    return str(picked["phone"])


def _scan(settings: Settings, phone: str) -> tuple[int, int]:
    """(Parquet files, rows naming the phone in a text or list-of-text column) under the data folder, but for
    the demo's raw inputs (which an erasure leaves alone: they stand for the source systems)."""
    raw = settings.data_path / "raw"
    files = sorted(p for p in settings.data_path.rglob("*.parquet") if not p.is_relative_to(raw))
    rows = 0
    for path in files:
        schema = pl.read_parquet_schema(path)
        hits = [pl.col(c).str.contains(phone, literal=True) for c, t in schema.items() if t == pl.String]
        hits += [
            pl.col(c).list.join(" ").str.contains(phone, literal=True)
            for c, t in schema.items()
            if t == pl.List(pl.String)
        ]
        if hits:
            rows += int(pl.scan_parquet(path).select(pl.any_horizontal(hits).fill_null(False).sum()).collect().item())
    return len(files), rows


def _timed(settings: Settings, phone: str) -> tuple[privacy.Proof, float, float]:
    wall, cpu = time.perf_counter(), _cpu()
    proof = privacy.forget(settings, privacy.parse_identifier("phone", phone), "benchmark", Who("benchmark"))
    return proof, time.perf_counter() - wall, _cpu() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="cockpit.toml of a refreshed (throwaway) demo")
    parser.add_argument("--retained", type=int, default=5, help="snapshots per source on disk")
    parser.add_argument("--phone", help="the person (default: one found in the most sources)")
    args = parser.parse_args()
    settings = load_settings(args.config)
    copies = _retain(settings, args.retained)
    phone = args.phone or _person(settings)
    wall0, cpu0 = time.perf_counter(), _cpu()
    files, before = _scan(settings, phone)
    scan_wall, scan_cpu = time.perf_counter() - wall0, _cpu() - cpu0
    size = sum(p.stat().st_size for p in settings.data_path.rglob("*.parquet"))
    proof, wall, cpu = _timed(settings, phone)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    again, wall2, cpu2 = _timed(settings, phone)
    _, after = _scan(settings, phone)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"## Privacy: forget one person\n\nMeasured {now} on {platform.machine()}, {os.cpu_count()} cores, Python")
    print(f"{sys.version.split()[0]}. Command: `python benchmarks/privacy.py --config ... --retained {args.retained}`")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"({copies} retained snapshots made by copying current ones); load average at the end {load}.")
    print("Goal: ≤ 60 s at large. On a shared machine CPU seconds, and the ratios to the scan measured in the same run")
    print("(every text column of every Parquet file read and searched once), say more than wall seconds.\n")
    print("| Parquet files | size | rows naming the phone before | files rewritten | rows removed | values erased |")
    print("|---|---|---|---|---|---|")
    print(f"| {files} | {size / 1e9:.2f} GB | {before} | {len(proof.changes)} | {proof.rows} | {proof.values} |\n")
    print("| run | wall s | CPU s | peak RSS | wall ÷ scan | CPU ÷ scan |")
    print("|---|---|---|---|---|---|")
    print(f"| scan (every text column of every file, once) | {scan_wall:.1f} | {scan_cpu:.1f} | | 1 | 1 |")
    print(f"| forget | {wall:.1f} | {cpu:.1f} | {peak:.2f} GB | {wall / scan_wall:.2f} | {cpu / scan_cpu:.2f} |")
    print(
        f"| rerun (idempotent: {again.rows} rows removed) | {wall2:.1f} | {cpu2:.1f} | | {wall2 / scan_wall:.2f} "
        f"| {cpu2 / scan_cpu:.2f} |\n"
    )
    print(f"After: {after} rows in any Parquet file under the data folder (but data/raw/) name the phone.")


if __name__ == "__main__":
    main()
