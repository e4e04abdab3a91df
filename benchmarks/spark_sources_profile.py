"""Where a file source's standardize on Spark spends its time (engine spark, the executors' path): each entity
of ``--source`` staged by ``standardize_entity`` (no gate, no profile), with wall and CPU (this process, the
local JVM and its Python workers) per entity and per call of the finishing steps (the span tasks, duplicates,
the sort, the joined files), then Spark's own event log per stage: tasks, their run time, the executors' CPU
(the JVM's: the Python workers' is not in it), garbage collection and shuffle bytes.

    flock <lock> choom -n 500 -- nice .venv/bin/python benchmarks/spark_sources_profile.py \\
        --config $BENCH/large_crm/cockpit.toml --source crm [--one-task-rows 0]

``--one-task-rows 0`` sends every entity through Spark's jobs (at the small and medium demos each entity is
otherwise finished by one task). The staged files go to ``<data>/profile_stage``, the event log to
``<data>/.spark/events``, both replaced at each run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.spark import Peaks, tree_cpu  # noqa: E402
from dashboard.core.config import EngineConfig, load_settings  # noqa: E402
from dashboard.derived.spark import standardize as on_spark  # noqa: E402
from dashboard.pipeline import spark_sources  # noqa: E402
from dashboard.pipeline.refresh import SORT_BY  # noqa: E402
from dashboard.pipeline.standardize import RECORD_ORDER  # noqa: E402

CALLS: list[tuple[str, float, float, float]] = []  # (what, start, wall, CPU)


def timed(module: Any, name: str) -> None:
    """``module.name`` timed at each call (map_parts labelled with its job and task count)."""
    real: Callable[..., Any] = getattr(module, name)

    def call(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.time(), tree_cpu()
        try:
            return real(*args, **kwargs)
        finally:
            label = f"{name} [{args[1]}] {len(args[2])} tasks" if name == "map_parts" else name
            CALLS.append((label, wall, time.time() - wall, tree_cpu() - cpu))

    setattr(module, name, call)


def stages(events: Path) -> dict[int, dict[str, Any]]:
    """Per stage of the event log: its name, start, wall, tasks and their summed metrics."""
    out: dict[int, dict[str, Any]] = {}
    for path in (p for p in events.rglob("events_*") if p.is_file()):
        for line in path.open(encoding="utf-8"):
            event = json.loads(line)
            kind = event["Event"]
            if kind == "SparkListenerTaskEnd":
                m = event.get("Task Metrics") or {}
                s = out.setdefault(event["Stage ID"], {"tasks": 0, "run": 0.0, "cpu": 0.0, "gc": 0.0, "w": 0, "r": 0})
                read = m.get("Shuffle Read Metrics") or {}
                s["tasks"] += 1
                s["run"] += m.get("Executor Run Time", 0) / 1e3
                s["cpu"] += m.get("Executor CPU Time", 0) / 1e9
                s["gc"] += m.get("JVM GC Time", 0) / 1e3
                s["w"] += (m.get("Shuffle Write Metrics") or {}).get("Shuffle Bytes Written", 0)
                s["r"] += read.get("Remote Bytes Read", 0) + read.get("Local Bytes Read", 0)
            elif kind == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                s = out.setdefault(info["Stage ID"], {"tasks": 0, "run": 0.0, "cpu": 0.0, "gc": 0.0, "w": 0, "r": 0})
                s["name"] = info["Stage Name"].split(" at ")[0]
                s["start"] = info.get("Submission Time", 0) / 1e3
                s["wall"] = (info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--source", default="crm")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--one-task-rows", type=int, default=None, help="spark_sources.ONE_TASK_ROWS for this run")
    parser.add_argument("--conf", action="append", default=[], help="spark.key=value (repeatable)")
    args = parser.parse_args()
    if args.one_task_rows is not None:
        spark_sources.ONE_TASK_ROWS = args.one_task_rows
    for name in ("map_parts", "_duplicates", "_sort", "join_files"):
        timed(on_spark, name)
    settings = load_settings(args.config)
    events, stage = settings.data_path / ".spark" / "events", settings.data_path / "profile_stage"
    for folder in (events, stage):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    conf = {"spark.eventLog.enabled": "true", "spark.eventLog.compress": "false", "spark.eventLog.dir": events.as_uri()}
    conf |= dict(c.split("=", 1) for c in args.conf)
    engine = EngineConfig.model_validate({"kind": "spark", "master": args.master, "conf": conf})
    settings = settings.model_copy(update={"engine": engine})
    peaks = Peaks()
    wall, cpu = time.time(), tree_cpu()
    on_spark.session(settings)
    print(f"load {os.getloadavg()[0]:.1f}; session start wall {time.time() - wall:.1f} s, cpu {tree_cpu() - cpu:.1f} s")
    source = settings.source(args.source)
    wall, cpu = time.time(), tree_cpu()
    try:
        for entity in dict.fromkeys(t.entity for t in source.tables):
            w, c = time.time(), tree_cpu()
            order = RECORD_ORDER.get(entity) or SORT_BY.get(entity)
            got = spark_sources.standardize_entity(settings, source, entity, "profile", stage, order, [])
            print(f"  {entity}: {got.input_rows:,} rows in, {got.kept:,} kept, wall {time.time() - w:.1f} s, "
                  f"cpu {tree_cpu() - c:.1f} s", flush=True)  # fmt: skip
        print(f"standardize wall {time.time() - wall:.1f} s, cpu {tree_cpu() - cpu:.1f} s, "
              f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    finally:
        on_spark.release()
    print(f"  {peaks.report()}")
    for label, start, w, c in CALLS:
        print(f"  {time.strftime('%H:%M:%S', time.gmtime(start))} wall {w:7.1f} s  cpu {c:6.1f} s  {label}")
    print("stage  wall-s tasks  run-s  JVM-cpu-s  gc-s  shuffle-write-MB  shuffle-read-MB  name")
    for sid, s in sorted(stages(events).items()):
        print(f"{sid:5d} {s.get('wall', 0):7.1f} {s['tasks']:5d} {s['run']:6.1f} {s['cpu']:9.1f} {s['gc']:5.1f} "
              f"{s['w'] / 1e6:16.0f} {s['r'] / 1e6:16.0f}  {s.get('name', '')}")  # fmt: skip


if __name__ == "__main__":
    main()
