"""Measure an incremental refresh (issue 22): one source with about 1 % new and changed rows, refreshed
alone, against a full refresh of the same demo company. Prints a Markdown table for docs/benchmarks.md.

    python benchmarks/incremental.py --size medium
    python benchmarks/incremental.py --size large --from /path/to/a/generated/large/folder   # copied, not changed
    python benchmarks/incremental.py --size medium --one-process   # every refresh in this process

Each refresh runs in a fresh child process: wall time, CPU time (user + system) and peak RSS are its own.
With --one-process every refresh runs in the benchmark's own process instead, one after the other, as
`cockpit schedule` runs them: the interpreter and the libraries (Great Expectations' import, which the gate
needs) are loaded once, by the first refresh, and a refresh's CPU is this process's and its children's (the
derived build's process) during the call.
Each change is made in a copy of the refreshed folder whose published files (snapshots, derived builds) are hard
links to the base's, as the next refresh of one folder finds them: the same files, which steps that know a file by
its identity (the personal-data profile) keep. A plain copy made every published file a new one (before session 11).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl

ROOT = Path(__file__).resolve().parents[1]

REFRESH = """
import json, sys
from dashboard.core.config import load_settings
from dashboard.pipeline.refresh import refresh
res = refresh(load_settings(sys.argv[1]), sys.argv[3:] or None, full=sys.argv[2] == "full")
print(json.dumps({"exit": res.exit_code, "reused": res.reused,
                  "read": [s.source for s in res.sources if not s.unchanged],
                  "source_steps": {s.source: {k: round(v["seconds"], 2) for k, v in s.steps.items()}
                                   for s in res.sources if not s.unchanged},
                  "steps": {k: round(v["seconds"], 2) for k, v in res.steps.items()}}))
"""


def _child(cfg: Path, mode: str, *sources: str) -> dict[str, Any]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", REFRESH, str(cfg), mode, *sources], capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"refresh failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall"] = wall
    out["cpu"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out


def _in_process(cfg: Path, mode: str, *sources: str) -> dict[str, Any]:
    """The refresh called in this process (--one-process); the same figures as _child's."""
    if str(ROOT) not in sys.path[:1]:
        sys.path.insert(0, str(ROOT))  # this checkout's package, as the children's working folder gives them
    from dashboard.core.config import load_settings
    from dashboard.pipeline.refresh import refresh

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    lines: list[tuple[float, str]] = []  # each progress line with this process's CPU when it came
    stamp = lines.append
    res = refresh(
        load_settings(str(cfg)),
        list(sources) or None,
        full=mode == "full",
        progress=lambda line: stamp((time.process_time(), line)),
    )
    wall = time.perf_counter() - t
    cpu = sum(
        (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        for before, after in (
            (own, resource.getrusage(resource.RUSAGE_SELF)),
            (children, resource.getrusage(resource.RUSAGE_CHILDREN)),
        )
    )
    if res.exit_code != 0:
        raise SystemExit(f"refresh failed ({res.exit_code})")
    return {
        "exit": res.exit_code,
        "reused": res.reused,
        "source_steps": {s.source: {k: round(v["seconds"], 2) for k, v in s.steps.items()}
                         for s in res.sources if not s.unchanged},
        "steps": {k: round(v["seconds"], 2) for k, v in res.steps.items()},
        "wall": wall,
        "cpu": cpu,
        "step_cpu": _step_cpu(lines),
    }  # fmt: skip


def _step_cpu(lines: list[tuple[float, str]]) -> dict[str, float]:
    """CPU s of this process per derived step, from its "deriving: <step>" line to the step's own "    <step>: …"
    line (--one-process: the derived build runs in the refresh's process when it read little; else ~0)."""
    out: dict[str, float] = {}
    for i, (start, line) in enumerate(lines):
        if line.startswith("deriving: "):
            step = line.removeprefix("deriving: ")
            end = next((t for t, later in lines[i + 1 :] if later.startswith(f"    {step}: ")), start)
            out[step] = round(end - start, 2)
    return out


def _erp_orders(raw: Path) -> str:
    """1 % of the ERP's orders changed (amount doubled) and 1 % new ones for existing customers."""
    path = raw / "erp" / "vbak_orders.parquet"
    orders = pl.read_parquet(path)
    n = max(orders.height // 100, 1)
    amount = pl.when(pl.int_range(pl.len()) < n).then(pl.col("NETWR") * 2).otherwise(pl.col("NETWR"))
    new = orders.tail(n).with_columns(("9" + pl.col("VBELN").str.slice(1)).alias("VBELN"))
    pl.concat([orders.with_columns(amount.alias("NETWR")), new]).write_parquet(path)
    return "erp"


def _web_forms(raw: Path) -> str:
    """1 % new web form submissions: new leads, resolved against the existing customers."""
    path = raw / "web_forms" / "form_submissions.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    n = max(len(lines) // 100, 1)
    new = [json.dumps({**json.loads(x), "id": f"WEB-9{i:07d}"}, ensure_ascii=False) for i, x in enumerate(lines[-n:])]
    path.write_text("\n".join(lines + new) + "\n", encoding="utf-8")
    return "web_forms"


def _marketing(raw: Path) -> str:
    """The marketing spend with its last day's row taken back."""
    path = raw / "marketing" / "spend_daily.csv"
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:-1]))
    return "marketing"


CHANGES = {"erp": _erp_orders, "web_forms": _web_forms, "marketing": _marketing}


def _copy(base: Path, work: Path) -> None:
    """``base`` copied to ``work``, its published files linked (they are never written in place)."""
    published = [base / "data" / "snapshots", base / "data" / "derived"]

    def copy(src: str, dst: str) -> object:
        if any(Path(src).is_relative_to(p) for p in published):
            return os.link(src, dst)
        return shutil.copy2(src, dst)

    shutil.copytree(base, work, symlinks=True, copy_function=copy)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--from", dest="source", help="an already generated demo folder (cockpit.toml + data/raw)")
    ap.add_argument("--changes", nargs="+", default=list(CHANGES))
    ap.add_argument("--one-process", action="store_true", help="every refresh in this process, one after the other")
    args = ap.parse_args()
    run = _in_process if args.one_process else _child
    with tempfile.TemporaryDirectory(prefix="cockpit-incr-") as tmp:
        base = Path(tmp) / "base"
        base.mkdir()
        shutil.copy(ROOT / "cockpit.toml", base / "cockpit.toml")
        if args.source:
            shutil.copytree(Path(args.source) / "data" / "raw", base / "data" / "raw")
        else:
            subprocess.run(
                [sys.executable, "-c", "import sys; from pathlib import Path; from dashboard.demo import generate; "
                 "generate(Path(sys.argv[1]), sys.argv[2], 42)", str(base / "data"), args.size],
                check=True, cwd=ROOT,
            )  # fmt: skip
        print("full refresh (from empty)…", file=sys.stderr)
        full = run(base / "cockpit.toml", "full")
        rows = []
        for name in args.changes:
            work = Path(tmp) / name
            _copy(base, work)
            CHANGES[name](work / "data" / "raw" / "demo")
            print(f"{name}: incremental…", file=sys.stderr)
            one = run(work / "cockpit.toml", "incremental", name)
            print(f"{name}: all sources, nothing changed…", file=sys.stderr)
            idle = run(work / "cockpit.toml", "incremental")
            print(f"{name}: full again…", file=sys.stderr)
            again = run(work / "cockpit.toml", "full")
            rows.append((name, one, idle, again))
            shutil.rmtree(work)
    where = "every refresh in this one process" if args.one_process else "each refresh in its own process"
    print(f"\nFull refresh from empty ({args.size}, {where}): {full['wall']:.1f} s wall, {full['cpu']:.1f} s CPU\n")
    print("| source changed | incremental: wall s (CPU s) | × full, wall (CPU) | derived steps kept | "
          "nothing changed: wall s (CPU s) | full refresh: wall s (CPU s) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, one, idle, again in rows:
        print(
            f"| {name} | {one['wall']:.1f} ({one['cpu']:.1f}) | "
            f"{one['wall'] / again['wall']:.0%} ({one['cpu'] / again['cpu']:.0%}) | "
            f"{', '.join(one['reused']) or 'none'} | {idle['wall']:.1f} ({idle['cpu']:.1f}) | "
            f"{again['wall']:.1f} ({again['cpu']:.1f}) |"
        )
    print("\nSteps (s, wall) of each incremental run, the source read then the derived build:")
    for name, one, _idle, _again in rows:
        read = [f"{k} {v}" for steps in one["source_steps"].values() for k, v in steps.items()]
        print(f"- {name}: " + ", ".join(read + [f"{k.removeprefix('derive.')} {v}" for k, v in one["steps"].items()]))
    if args.one_process:
        print("\nCPU s of each derived step (this process) of each incremental run:")
        for name, one, _idle, _again in rows:
            print(f"- {name}: " + ", ".join(f"{k} {v}" for k, v in one["step_cpu"].items()))
    print("\nSteps (s, wall) of each nothing-changed run:")
    for name, _one, idle, _again in rows:
        print(f"- {name}: " + ", ".join(f"{k.removeprefix('derive.')} {v}" for k, v in idle["steps"].items()))


if __name__ == "__main__":
    main()
