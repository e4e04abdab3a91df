"""Measure `cockpit source add --yes` on a ~1 GB CSV (issue 21: profile it in at most 30 s, by sampling).

Writes a leads export of about 1 GB (lead id, date, channel, name, phone, e-mail, company, region, owner)
into a temporary folder with a minimal cockpit.toml, then runs the command in a child process and reports
its wall time and CPU time (user + system of the child), and whether the block was appended.

    python benchmarks/source_add.py [--gb 1.0] [--keep DIR]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
CHUNK_ROWS = 1_000_000


def chunk(rng: np.random.Generator, start: int, rows: int) -> pl.DataFrame:
    ids = np.arange(start, start + rows)
    days = rng.integers(0, 1000, rows)
    return pl.DataFrame(
        {
            "线索编号": [f"L{i:010d}" for i in ids],
            "创建时间": (np.datetime64("2023-01-01") + days).astype(str),
            "线索来源": rng.choice(["百度推广", "抖音信息流", "官网自然流量", "展会", "转介绍"], rows),
            "姓名": rng.choice(["王伟", "李娜", "张敏", "刘洋", "陈静"], rows),
            "手机": [f"138{n:08d}" for n in rng.integers(0, 10**8, rows)],
            "邮箱": [f"user{i}@example.com" for i in ids],
            "公司名称": rng.choice(["上海数聚科技有限公司", "北京客源宝信息技术有限公司", "杭州拓客云"], rows),
            "所属区域": rng.choice(["华东", "华北", "华南", "西南"], rows),
            "负责人": rng.choice(["张三", "李四", "王五"], rows),
        }
    )


def write_csv(path: Path, gb: float) -> int:
    """About ``gb`` GiB of CSV, written in 1M-row chunks; returns the rows written."""
    rng = np.random.default_rng(21)
    rows = 0
    with path.open("wb") as f:
        while f.tell() < gb * 1024**3:
            f.write(chunk(rng, rows, CHUNK_ROWS).write_csv(include_header=rows == 0).encode("utf-8"))
            rows += CHUNK_ROWS
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--keep", type=Path, help="write into this folder and keep it (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="source-add-bench-") as tmp:
        root = args.keep or Path(tmp)
        (root / "imports").mkdir(parents=True, exist_ok=True)
        (root / "cockpit.toml").write_text('data_dir = "data"\n', encoding="utf-8")
        path = root / "imports" / "leads_export.csv"
        t = time.perf_counter()
        rows = write_csv(path, args.gb)
        print(f"wrote {path.stat().st_size / 1024**3:.2f} GiB, {rows:,} rows in {time.perf_counter() - t:.0f} s")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "dashboard.cli", "--config", str(root / "cockpit.toml"), "source", "add"]
        out = subprocess.run([*cmd, str(path), "--yes"], capture_output=True, text=True, cwd=ROOT, check=False)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        added = "✔ added source 'leads_export'" in out.stdout
        print(out.stdout if not added else "\n".join(out.stdout.splitlines()[:16]))
        print(out.stderr, end="")
        print(f"source add --yes: exit {out.returncode}, wall {wall:.1f} s, CPU {cpu:.1f} s, appended: {added}")
        print(f"peak RSS of the child: {after.ru_maxrss / 1024:.0f} MB")
        print("goal ≤ 30 s: " + ("met" if wall <= 30 and added else "MISSED"))


if __name__ == "__main__":
    main()
