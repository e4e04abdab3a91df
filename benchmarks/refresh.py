"""Measure `cockpit refresh` on the demo company against the floor: DuckDB alone reading the same raw
files and writing the same Parquet. Writes docs/benchmarks.md.

    python benchmarks/refresh.py --sizes medium large

Each measurement runs in a fresh child process so peak memory (max RSS) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# the derived build's own steps are lapped as derive.<step>; "derive" is what follows them (the swap)
STEPS = (
    "extract",
    "standardize",
    "validate",
    "publish",
    "derive.identity",
    "derive.quality",
    "derive.analytics",
    "derive.golden",
    "derive.churn",
    "derive",
)


def _child(code: str, *args: str) -> dict[str, Any]:
    """Run code in a new interpreter; return its JSON result plus wall time and peak RSS."""
    t = time.perf_counter()
    code += "\nimport resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 3):
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    *_, result, rss_kb = proc.stdout.strip().splitlines()
    out: dict[str, Any] = json.loads(result)
    out["wall_seconds"] = wall
    out["peak_rss_mb"] = int(rss_kb) / 1024
    return out


GENERATE = """
import json, sys
from pathlib import Path
from dashboard.demo import generate
r = generate(Path(sys.argv[1]), sys.argv[2], 42)
print(json.dumps({"counts": r.counts}))
"""

REFRESH = """
import json, sys, time
from dashboard.core.config import load_settings
from dashboard.pipeline.refresh import refresh
settings = load_settings(sys.argv[1])
t = time.perf_counter()
res = refresh(settings)
steps = {}
for s in res.sources:
    for step, v in s.steps.items():
        e = steps.setdefault(step, {"seconds": 0.0, "peak_rss_mb": 0.0})
        e["seconds"] += v["seconds"]; e["peak_rss_mb"] = max(e["peak_rss_mb"], v["peak_rss_mb"])
for step, v in res.steps.items():
    steps[step] = v
rows = sum(sum(s.rows.values()) + s.rejected_rows for s in res.sources)
print(json.dumps({"seconds": time.perf_counter() - t, "steps": steps, "rows": rows,
                  "status": {s.source: s.status for s in res.sources}}))
"""

FLOOR = """
import glob, json, sys, time
from pathlib import Path
import duckdb, polars as pl
from dashboard.core.config import load_settings
from dashboard.sources.csv import detect_encoding
settings = load_settings(sys.argv[1])
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
con = duckdb.connect()
t = time.perf_counter()
n = 0
for src in settings.sources:
    for i, table in enumerate(src.tables):
        files = sorted(glob.glob(str(settings.base_dir / table.path)))
        target = str(out / f"{src.name}_{i}_{table.entity}.parquet")
        if src.kind == "csv":
            enc = detect_encoding(Path(files[0]).read_bytes()[:65536])
            if enc == "gb18030":  # DuckDB reads no GBK without an extension: convert first (counted)
                conv = []
                for f in files:
                    p = out / (Path(f).name + ".utf8.csv")
                    p.write_text(Path(f).read_bytes().decode("gb18030"), encoding="utf-8")
                    conv.append(str(p))
                files = conv
            rel = con.read_csv(files, all_varchar=True)
        elif src.kind == "excel":  # DuckDB's excel extension cannot be installed offline
            rel = con.from_arrow(pl.concat([pl.read_excel(f, engine="calamine") for f in files]).to_arrow())
        elif src.kind == "json":
            rel = con.read_json(files)
        else:
            rel = con.read_parquet(files)
        rel.write_parquet(target, compression="zstd")
        n += con.sql("SELECT count(*) FROM read_parquet($f)", params={"f": target}).fetchall()[0][0]
print(json.dumps({"seconds": time.perf_counter() - t, "rows": n}))
"""


def measure(size: str, work: Path) -> dict[str, Any]:
    data = work / size / "data"
    print(f"[{size}] generating…", file=sys.stderr)
    gen = _child(GENERATE, str(data), size)
    # the demo config reads data/raw/demo and writes data/ under its own folder: a copy beside the data
    cfg = work / size / "cockpit.toml"
    shutil.copy(ROOT / "cockpit.toml", cfg)
    print(f"[{size}] floor (DuckDB read raw → Parquet)…", file=sys.stderr)
    floor = _child(FLOOR, str(cfg), str(work / size / "floor"))
    print(f"[{size}] cockpit refresh…", file=sys.stderr)
    ref = _child(REFRESH, str(cfg))
    return {"size": size, "generate": gen, "floor": floor, "refresh": ref}


def render(results: list[dict[str, Any]], command: str) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Command: `{command}`",
        "",
        "Goal: the whole refresh within 3× the floor (DuckDB alone reading the same raw files and writing",
        "the same Parquet), peak memory under 6 GB at large.",
        "",
        "| size | input rows | floor s | refresh s | × floor | rows/s | peak RSS refresh | peak RSS floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        f, x = r["floor"], r["refresh"]
        lines.append(
            f"| {r['size']} | {x['rows']:,} | {f['seconds']:.1f} | {x['seconds']:.1f} | "
            f"{x['seconds'] / f['seconds']:.1f}× | {x['rows'] / x['seconds']:,.0f} | "
            f"{x['peak_rss_mb'] / 1024:.2f} GB | {f['peak_rss_mb'] / 1024:.2f} GB |"
        )
    lines += ["", "Per step (seconds summed over sources; peak RSS of the refresh process at the end of the step):", ""]
    lines += ["| size | " + " | ".join(s.replace("derive.", "derive: ") for s in STEPS) + " |"]
    lines += ["|---" * (len(STEPS) + 1) + "|"]
    for r in results:
        steps = r["refresh"]["steps"]
        cells = [
            f"{steps[s]['seconds']:.1f} s / {steps[s]['peak_rss_mb'] / 1024:.2f} GB" if s in steps else "–"
            for s in STEPS
        ]
        lines.append(f"| {r['size']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Notes:",
        "- The floor reads each source's raw files with DuckDB and writes one zstd Parquet per table. DuckDB",
        "  cannot read GBK or Excel offline (no extensions), so the floor converts the GBK CSV with Python and",
        "  reads Excel with Polars/calamine, the same as the refresh does.",
        "- The refresh does more than the floor: typing and normalizing every column, the GX gate, sorting",
        "  by date for row-group skipping, and the derived build (quality metrics, identity links). The",
        "  GX import and context setup alone is ~4 s, which dominates `validate` at medium.",
        "- Peak RSS per step is the refresh process's maximum so far at the end of that step (ru_maxrss).",
        "- The derived build's steps: identity (exact rules + Splink), quality tables, channel analytics,",
        "  golden customer records, churn scores; `derive` alone is the manifest swap after them.",
    ]
    lines += ["", "Outcome per source:", ""]
    for r in results:
        lines.append(f"- {r['size']}: " + ", ".join(f"{k} {v}" for k, v in r["refresh"]["status"].items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", nargs="+", default=["medium", "large"])
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cockpit-bench-") as tmp:
        results = [measure(size, Path(tmp)) for size in args.sizes]
    command = "python benchmarks/refresh.py --sizes " + " ".join(args.sizes)
    text = render(results, command)
    out = Path(args.out)
    # the file's hand-written history and the other benchmarks' sections (from "History:" on) are kept
    old = out.read_text(encoding="utf-8") if out.exists() else ""
    kept = old[old.index("\nHistory:") :] if "\nHistory:" in old else ""
    out.write_text(text + kept, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
