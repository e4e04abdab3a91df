"""The Spark engine against the DuckDB engine on one machine: the steps that run as Spark jobs (lead facts,
attribution, filter values: derived.spark.jobs; identity, whose pass-2 pairs Splink's Spark linker scores:
derived.spark.identity) timed on both, on a refreshed company's snapshots, with wall time, CPU time and
input rows per CPU-second (the per-core throughput the README's sizing uses).
Reads the company's snapshots; writes only into a temporary folder under its data folder, removed after.

    mkdir -p $BENCH/spark_medium && cp cockpit.toml $BENCH/spark_medium/
    .venv/bin/cockpit --config $BENCH/spark_medium/cockpit.toml demo --size medium --no-serve
    .venv/bin/python benchmarks/spark.py --config $BENCH/spark_medium/cockpit.toml --master 'local[2]'
    .venv/bin/python benchmarks/spark.py --config $BENCH/spark_medium/cockpit.toml --steps identity
    .venv/bin/python benchmarks/spark.py --config $BENCH/spark_medium/cockpit.toml --steps derived

``--steps derived`` makes a whole derived build (identity, quality, analytics, golden records, churn, the
personal-data profile) with engine spark, as a refresh's does: it is written into the company's data folder as
an unpublished build and removed after (the manifest is not written). Each step's Spark jobs and CPU, and the
driver's memory at its end: its resident set, its peak sampled during the step and its high-water mark so far (the
step where that rose made the driver's peak).

``--steps incremental`` (issue 23): the incremental Spark path. In a copy of the company (its published files
linked, removed after): a whole derived build with each engine, then ``--change`` (benchmarks/incremental.py's:
erp's 1 % changed and 1 % new orders, by default) refreshed with engine duckdb, which publishes the source's
snapshot (and a DuckDB build of it); then, in this process, the DuckDB engine's incremental derived build of that
change against its whole build before, and the Spark engine's against the Spark build. Each
build's wall time, CPU of the driver and of the local JVM with its Python workers apart, Spark jobs and the
driver's peak (its high-water mark reset before each build), per step; whether the two incremental builds hold
the same golden records.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from incremental import CHANGES
from incremental import _copy as linked_copy

from dashboard.core.config import EngineConfig, Settings, load_settings
from dashboard.core.duck import quote_path, work_connection
from dashboard.core.store import Manifest, Store
from dashboard.derived import analytics
from dashboard.derived.identity import Model, build_links, read_records
from dashboard.derived.spark import identity as spark_identity
from dashboard.derived.spark import jobs
from dashboard.derived.spark.session import build_session
from dashboard.derived.tables import attach_views
from dashboard.pipeline import fingerprint
from dashboard.pipeline.derive import build_derived
from dashboard.pipeline.refresh import refresh

INPUTS = ("leads", "lead_events", "interactions")
# the local Spark JVM's threads, by what their names begin with (/proc shows the first 15 characters)
THREADS = {"JIT": ("C1 CompilerThre", "C2 CompilerThre"), "GC": ("GC Thread", "G1 ", "VM Thread")}


def _cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_of(pid: int) -> float:
    """User + system seconds of another process of ours (the local Spark JVM), from /proc."""
    return _ticks(Path(f"/proc/{pid}/stat")) / os.sysconf("SC_CLK_TCK")


def _ticks(stat: Path) -> int:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, user + system ticks of the process and its reaped children), or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), sum(int(f) for f in fields[11:15])


def _tree(root: int) -> dict[int, int]:
    """``root`` and every process descending from it (the local JVM, its Python workers): pid → its ticks. Walked
    down from ``root`` by parent, not in pid order: once the pids wrap (pid_max, 32,768 on many machines) a child
    has a lower pid than its parent, and a walk in pid order left it out with everything below it."""
    stats = {int(p): s for p in os.listdir("/proc") if p.isdigit() and (s := _stat(int(p)))}
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    ours: dict[int, int] = {}
    todo = [root] if root in stats else []
    while todo:
        pid = todo.pop()
        ours[pid] = stats[pid][1]
        todo.extend(children.get(pid, []))
    return ours


def tree_cpu(root: int | None = None) -> float:
    """CPU seconds of this process (or ``root``) and every process descending from it, with the Python workers
    of ours that have ended (_Workers)."""
    if root is not None and root != os.getpid():
        return sum(_tree(root).values()) / os.sysconf("SC_CLK_TCK")
    return _WORKERS.ticks() / os.sysconf("SC_CLK_TCK")


class _Workers:
    """pyspark's Python workers end without their CPU reaching a parent's: the daemon that forks them ignores
    SIGCHLD, so the kernel discards their usage, and a sum over the process tree falls when one ends (an idle
    worker is stopped after a minute; a DuckDB build after a Spark one read -2.8 CPU-s). Each worker's CPU is
    sampled every ``every`` seconds on a thread and, once it has ended, counted here: what a worker did after its
    last sample is missed (an idle one's: nothing)."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.gone = every, 0
        self.seen: dict[tuple[int, str], int] = {}  # (pid, start time) → ticks when last sampled
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def ticks(self) -> int:
        """This process's tree's ticks now, with the workers that have left it."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        return self._sample()

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            self._sample()

    def _sample(self) -> int:
        ticks = _tree(os.getpid())
        workers = {}
        for pid, used in ticks.items():
            parent, started = _parent_and_start(pid)
            if parent is not None and "pyspark.daemon" in _cmdline(parent):
                workers[(pid, started)] = used
        with self.lock:
            self.gone += sum(used for key, used in self.seen.items() if key not in workers)
            self.seen = workers
            return sum(ticks.values()) + self.gone


def _parent_and_start(pid: int) -> tuple[int | None, str]:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None, ""
    return int(fields[1]), fields[19]  # the parent, and the start time (a reused pid is another process)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


_WORKERS = _Workers()


def _kib(pid: int, key: str) -> int:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in lines if line.startswith(key + ":")), 0)


class Peaks:
    """Peak resident memory while a benchmark runs, sampled every ``every`` seconds on a thread: of this
    process (the driver), of the local Spark JVM, of its Python workers together, and of all of them at once
    (the figure the machine has to hold). The driver's and the JVM's own high-water marks (VmHWM) are read at
    the end, so a peak between two samples is not missed for them."""

    def __init__(self, every: float = 1.0) -> None:
        self.every, self.jvm = every, 0
        self.peak = {"driver": 0, "JVM": 0, "Python workers": 0, "all together": 0}
        self.step = 0  # the driver's sampled peak since the last step (step_peak)
        self.since = dict.fromkeys(self.peak, 0)  # each peak since the last step (step_peak), in KiB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me, stopped = os.getpid(), False
        while not stopped:  # a sample every ``every`` seconds, and one when stopped (a run shorter than ``every``)
            stopped = self._stop.wait(self.every)
            rss = {pid: _kib(pid, "VmRSS") for pid in _tree(me)}
            # the largest java process: spark-submit first runs a short-lived one (the launcher) to build the command
            self.jvm = max((p for p in rss if p != me and _comm(p) == "java"), key=rss.__getitem__, default=self.jvm)
            now = {"driver": rss.get(me, 0), "JVM": rss.get(self.jvm, 0)}
            now["Python workers"] = sum(v for p, v in rss.items() if p not in (me, self.jvm))
            now["all together"] = sum(rss.values())
            self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}
            self.since = {k: max(v, now[k]) for k, v in self.since.items()}
            self.step = max(self.step, now["driver"])

    def step_peak(self) -> tuple[int, int, int, dict[str, int]]:
        """The driver's memory at the end of a step (KiB): its resident set now, its sampled peak since the last
        call, and its high-water mark so far (VmHWM: a step that raised it made the driver's peak); and the
        sampled peaks since the last call of the JVM, its Python workers and all together (the step's own)."""
        me = os.getpid()
        now, hwm = _kib(me, "VmRSS"), _kib(me, "VmHWM")
        peak, self.step = max(self.step, now), 0
        since, self.since = self.since, dict.fromkeys(self.peak, 0)
        return now, peak, hwm, since

    def report(self, hwm: bool = True) -> str:
        """Stop sampling; the peaks in GB, one line (``hwm``: the driver's and JVM's high-water marks over
        their whole lives too, for a figure over the whole benchmark rather than one run)."""
        self._stop.set()
        self._thread.join()
        if hwm:
            self.peak["driver"] = max(self.peak["driver"], _kib(os.getpid(), "VmHWM"), _HWM[0])
            self.peak["JVM"] = max(self.peak["JVM"], _kib(self.jvm, "VmHWM") if self.jvm else 0)
        return "peak RSS: " + ", ".join(f"{k} {v / 2**20:.2f} GB" for k, v in self.peak.items())


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def jvm_threads(pid: int) -> dict[str, float]:
    """CPU seconds so far of the JVM's JIT compiler and garbage collector threads (THREADS), which live as
    long as the JVM; the rest of its CPU is Spark's own work (and threads that have ended)."""
    out = dict.fromkeys(THREADS, 0.0)
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name, ticks = (task / "comm").read_text().strip(), _ticks(task / "stat")
        except OSError:  # the thread ended meanwhile
            continue
        for group, prefixes in THREADS.items():
            if name.startswith(prefixes):
                out[group] += ticks / os.sysconf("SC_CLK_TCK")
    return out


def _timed(run: Callable[[], None], cpu: Callable[[], float]) -> tuple[float, float]:
    wall, used = time.perf_counter(), cpu()
    run()
    return time.perf_counter() - wall, cpu() - used


def spark_jobs(spark: Any) -> int:
    """The Spark jobs this session has started so far (its scheduler's count): the jobs a step runs are the
    difference before and after it, each with Spark's fixed cost (a schema read, an adaptive plan's stage)."""
    return int(spark.sparkContext._jsc.sc().dagScheduler().numTotalJobs())


def _line(label: str, wall: float, cpu: float, rows: int) -> str:
    return f"{label:34s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  {rows / cpu / 1e3:8.0f}k input rows per CPU-second"


def parse_conf(pairs: list[str]) -> dict[str, str]:
    """--conf KEY=VALUE arguments as Spark settings over the session's defaults (e.g. the defaults of an
    earlier commit, to measure before and after in one machine state)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.startswith("spark."):
            raise SystemExit(f"--conf {pair!r}: expected spark.KEY=VALUE")
        out[key] = value
    return out


@dataclass
class Bench:
    """A refreshed company opened for timing: its settings with engine spark on ``master``, its current
    snapshots and build as DuckDB views on ``con``, a scratch folder under its data folder (removed after),
    and, once ``spark_started``, the Spark session and its local JVM's pid."""

    settings: Settings
    store: Store
    manifest: Manifest
    con: duckdb.DuckDBPyConnection
    folder: Path
    conf: dict[str, str]
    spark: Any = None
    jvm: int = 0

    def cpu(self) -> float:
        """This process's CPU seconds, plus the local Spark JVM's and its Python workers' once they run."""
        return tree_cpu()

    def spark_runs(self, label: str, runs: int, rows: int, make: Callable[[int], Callable[[], None]]) -> None:
        """``runs`` timed runs on Spark of the work ``make(run)`` returns (run 1 is cold: the JVM's JIT and
        Spark's planning caches), each printed with its wall time, CPU, input rows per CPU-second, and the
        CPU the JVM's JIT compiler and garbage collector took of it."""
        master = self.settings.engine.master
        for run in range(1, runs + 1):
            work = make(run)
            before, peaks = jvm_threads(self.jvm), Peaks()
            wall, cpu = _timed(work, self.cpu)
            of = ", ".join(f"{k} {v - before[k]:.1f} s" for k, v in jvm_threads(self.jvm).items())
            print(_line(f"spark {master}: {label} (run {run})", wall, cpu, rows) + f"  [of which {of}]")
            print(f"  {peaks.report(hwm=False)} (sampled during the run)")


@contextmanager
def opened(config: str, master: str, conf: dict[str, str], name: str) -> Iterator[Bench]:
    """The company of ``config`` opened for timing (Bench), its scratch folder named after ``name``."""
    engine = EngineConfig.model_validate({"kind": "spark", "master": master})
    settings: Settings = load_settings(config).model_copy(update={"engine": engine})
    store = Store(settings.data_path)
    folder = settings.data_path / ".spark" / f"{name}-{os.getpid()}"
    try:
        with work_connection(settings) as con:
            manifest = store.read_manifest()
            attach_views(con, store, manifest, in_memory=frozenset())
            yield Bench(settings, store, manifest, con, folder, conf)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def spark_started(bench: Bench) -> Iterator[Any]:
    """The engine's session (with ``bench.conf`` over its defaults), its start-up time printed, stopped on
    leaving after printing what the JVM's JIT and garbage collector took of its CPU in all."""
    started = time.perf_counter()
    bench.spark = build_session(bench.settings, bench.conf)
    bench.jvm = int(bench.spark.sparkContext._jvm.ProcessHandle.current().pid())
    conf = bench.spark.sparkContext.getConf()
    shown = {k: conf.get(k, "(Spark's default)") for k in ("spark.driver.memory", "spark.sql.shuffle.partitions")}
    options = conf.get("spark.driver.extraJavaOptions", "").split()
    shown["JVM options"] = " ".join(o for o in options if o.startswith("-XX:") and "Ignore" not in o) or "(its own)"
    took = time.perf_counter() - started
    print(
        f"spark session ({bench.settings.engine.master}): {took:.1f} s to start; "
        + ", ".join(f"{k} {v}" for k, v in shown.items())
    )
    try:
        yield bench.spark
        total, threads = _cpu_of(bench.jvm), jvm_threads(bench.jvm)
        print(f"JVM CPU in all {total:.1f} s, of which " + ", ".join(f"{k} {v:.1f} s" for k, v in threads.items()))
    finally:
        bench.spark.stop()


IDENTITY_WAYS = ("duckdb", "spark-driver", "spark")


def identity(bench: Bench, folder: Path, ways: list[str]) -> None:
    """The identity step on DuckDB (duckdb); with pass 1, the clusters and the candidate pairs' scoring on Spark and
    the records and features made on the driver (spark-driver, before issue 23's point 2); with the records and
    features made on Spark too (spark): each model's laps (wall s), the Spark scoring's own wall and CPU time, and
    the driver's sampled peak memory. Run one way per process to compare the driver's high-water marks. Before
    them, the fingerprint a build keys identity by, on each engine asked for (duckdb: the records read and hashed
    on the driver; spark: made and hashed on Spark, then read by the spark way); after them, each way's key count
    and whether its links are the current build's (a demo refreshed once: its keys were all made fresh too)."""
    settings, con, spark = bench.settings, bench.con, bench.spark
    records = read_records(con) if {"duckdb", "spark-driver"} & set(ways) else None
    n = records.height if records is not None else int(con.sql("SELECT count(*) FROM identity_links").fetchall()[0][0])
    scoring: dict[str, tuple[float, float]] = {}
    on_spark = spark_identity.scorer(spark, settings, folder)

    def timed_score(feats: pl.DataFrame, trained: dict[str, Any], model: Model) -> pl.DataFrame:
        out: list[pl.DataFrame] = []
        scoring["score"] = _timed(lambda: out.append(on_spark(feats, trained, model)), tree_cpu)
        return out[0]

    if "duckdb" in ways:  # a build keys identity by its records (derive.py): read and hashed on the driver
        wall, used = _timed(lambda: print(fingerprint.frame_digest(read_records(con).drop("snapshot_id"))), _cpu_self)
        print(_line("fingerprint, duckdb (records read, hashed)", wall, used, n))
    made_input = None  # with engine spark: made and hashed there, then read by identity as in a build
    if "spark" in ways:
        made_input = spark_identity.SparkInput(spark, settings, bench.store, bench.manifest, folder)
        jobs = spark_jobs(spark)
        wall, used = _timed(lambda: print(made_input.digest() if made_input else None), tree_cpu)
        print(
            _line("fingerprint, spark (records made, hashed)", wall, used, n)
            + f"  [{spark_jobs(spark) - jobs} Spark jobs]"
        )
    made: dict[str, pl.DataFrame] = {}
    stats: dict[str, Any] = {}
    for way in ways:

        def run(way: str = way) -> None:  # with Spark: pass 1 and the clusters there too, as a refresh does
            graph, source, score = None, None, None
            if way != "duckdb":
                graph, score = spark_identity.SparkGraph(spark, settings, folder), timed_score
            if way == "spark":  # records and features made on Spark: the driver gets their keys back
                source = spark_identity.SparkRecords(spark, settings, bench.store, bench.manifest, folder, made_input)
            _, made[way], model = build_links(settings, con, None, records, score, graph=graph, made=source)
            stats.update(model.stats if model else {})

        peaks, jobs = Peaks(), spark_jobs(spark)
        wall, used = _timed(run, _cpu_self if way == "duckdb" else tree_cpu)
        print(f"  {peaks.report(hwm=False)} (sampled during the run)")
        laps = ", ".join(f"{k.removeprefix('seconds_')} {v:.1f}" for k, v in stats.items() if k.startswith("seconds_"))
        print(_line(f"identity, {way}", wall, used, n)
              + f"  [{laps}; {stats.get('pairs_linked')} pairs; {spark_jobs(spark) - jobs} Spark jobs]")  # fmt: skip
        stats.clear()
        if "score" in scoring:
            print(_line("  of which Splink scoring on Spark", *scoring.pop("score"), n))
    if made_input is not None:
        made_input.close()
    if len(made) > 1:
        first, *others = made
        for other in others:
            same = made[other].drop("confidence").equals(made[first].drop("confidence"))
            print(f"the same links, {first} and {other} (keys, records, rules): {same}")
    built = con.sql("SELECT * FROM identity_links").pl().sort("customer_key", "source_system", "source_record_id")
    for way, links in made.items():  # a demo refreshed once from nothing: the build's keys are all fresh too
        same = links.drop("confidence").equals(built.select(links.columns).drop("confidence"))
        print(f"identity, {way}: {links['customer_key'].n_unique():,} keys; the current build "
              f"{built['customer_key'].n_unique():,}; the same links as the current build: {same}")  # fmt: skip


_HWM = [0]  # the driver's high-water mark before it was last reset (KiB)


def _reset_peak() -> None:
    """The driver's high-water mark (VmHWM) set back to its resident set now, so that the next build's is its own
    (the mark before is kept in _HWM for the whole benchmark's figure)."""
    _HWM[0] = max(_HWM[0], _kib(os.getpid(), "VmHWM"))
    Path("/proc/self/clear_refs").write_text("5")


@contextmanager
def on_session(spark: Any) -> Iterator[None]:
    """Inside: a build with engine spark takes ``spark`` (the benchmark's session) instead of starting its own."""

    @contextmanager
    def this_session(_settings: Settings) -> Iterator[Any]:
        yield spark

    engine, jobs.engine = jobs.engine, this_session  # derive.py asks jobs.engine for its session
    try:
        yield
    finally:
        jobs.engine = engine


def timed_build(
    bench: Bench, settings: Settings, manifest: Manifest, label: str, *, full: bool = False
) -> tuple[Manifest, list[str]]:
    """derive.build_derived from ``manifest`` (pending: its "derived" entry is the build this one replaces) on
    ``settings``' engine, in this process: its wall time, CPU (the driver's; the local JVM's and its Python workers'),
    Spark jobs, the peaks of memory sampled during it and the driver's high-water mark, and each step's share, printed.
    Returns the manifest it made (the build in the store's derived folder, not published) and its progress lines."""
    spark, lines = bench.spark, []
    made: list[Manifest] = []
    # each step as it ends: its name, Spark jobs, the driver's CPU, the tree's CPU, the time, the load, memory
    laps: list[tuple[str, int, float, float, float, float, tuple[int, int, int, dict[str, int]]]] = []

    def lap(step: str, rows: int | None = None) -> None:
        now = (spark_jobs(spark), _cpu_driver(), tree_cpu(), time.perf_counter(), os.getloadavg()[0])
        laps.append((step, *now, peaks.step_peak()))
        # told as it happens too: a build that fails later still shows its steps so far
        print(f"  ({step} done at {now[3] - began:.0f} s: {now[2] - cpu:.1f} CPU-s, {now[0] - started} jobs so far)",
              flush=True)  # fmt: skip

    def build() -> None:
        made.append(build_derived(settings, bench.store, manifest, progress=lines.append, lap=lap, full=full))

    _reset_peak()
    peaks, started, driver, cpu = Peaks(), spark_jobs(spark), _cpu_driver(), tree_cpu()
    at_start, began = peaks.step_peak(), time.perf_counter()
    wall, used = _timed(build, tree_cpu)
    own = _cpu_driver() - driver
    jvm, load = used - own, os.getloadavg()[0]
    print(f"{label}: wall {wall:.2f} s  cpu {used:.2f} s (driver {own:.2f} s, JVM and its Python workers "
          f"{jvm:.2f} s)  [{spark_jobs(spark) - started} Spark jobs]; load {load:.1f}")  # fmt: skip
    gb = 2**20
    print(f"  {peaks.report(hwm=False)} (sampled during the build); driver's high-water mark in the build "
          f"{_kib(os.getpid(), 'VmHWM') / gb:.2f} GB (RSS at its start {at_start[0] / gb:.2f} GB)")  # fmt: skip
    before = (started, driver, cpu, began)
    for step, at, own_at, spent, ended, load_at, (rss, peak, hwm, since) in laps:
        memory = f"RSS at its end {rss / gb:.2f} GB, sampled peak in it {peak / gb:.2f} GB, "
        memory += f"high-water mark {hwm / gb:.2f} GB"
        others = ", ".join(f"{k} {since[k] / gb:.2f} GB" for k in ("JVM", "Python workers", "all together"))
        print(f"  {step}: wall {ended - before[3]:.1f} s (load {load_at:.1f} at its end), {at - before[0]} Spark jobs, "
              f"{spent - before[2]:.1f} CPU-s "
              f"(driver {own_at - before[1]:.1f}); driver {memory}; sampled in it: {others}")  # fmt: skip
        before = (at, own_at, spent, ended)
    return made[0], lines


def _cpu_driver() -> float:
    """This process's CPU seconds and its reaped children's (a build's helpers; not the JVM, which runs on), from
    /proc as tree_cpu counts them."""
    stat = _stat(os.getpid())
    return (stat[1] if stat else 0) / os.sysconf("SC_CLK_TCK")


def derived(bench: Bench) -> None:
    """A whole derived build with engine spark (derive.build_derived, every step made again) in the benchmark's
    session: its wall time, CPU (this process, the local JVM and its Python workers), Spark jobs, the peaks of
    memory sampled during it, and whether its links, golden records and churn tables have the current build's rows
    (churn_model's trained_at is when each trained; its AUC, Brier score and calibration means are Spark's sums)."""
    with on_session(bench.spark):
        made, _ = timed_build(bench, bench.settings, bench.manifest, "derived build, spark", full=True)
    result = made["derived"]
    try:
        for table, order in (("identity_links", ["customer_key", "source_system", "source_record_id"]),
                             ("customer_golden", ["customer_key"]), ("churn_scores", ["rank"]),
                             ("churn_model", ["method"])):  # fmt: skip
            new = pl.read_parquet(bench.store.abs(result["tables"][table])).sort(order)
            old = bench.con.sql(f"SELECT * FROM {table}").pl().select(new.columns).sort(order)
            print(f"  {table}: {new.height:,} rows; columns unlike the current build's: {_unlike(new, old) or 'none'}")
            if table == "churn_model":
                for col in ("auc", "brier"):
                    gap = (new[col] - old[col]).abs().max()
                    print(f"    {col}: {new[col].round(3).to_list()}, the current build's to 3 places: "
                          f"{new[col].round(3).equals(old[col].round(3))}, largest difference {gap}")  # fmt: skip
    finally:
        shutil.rmtree(bench.store.derived / result["build_id"], ignore_errors=True)


def _unlike(new: pl.DataFrame, old: pl.DataFrame) -> list[str]:
    """The columns of ``new`` whose values differ from ``old``'s (the same rows in the same order; floats exactly)."""
    same = new.height == old.height and new.schema == old.select(new.columns).schema
    return [c for c in new.columns if not (same and new[c].equals(old[c]))]


def incremental(config: str, master: str, conf: dict[str, str], change: str) -> None:
    """The incremental Spark path against the DuckDB engine's, on a copy of the company (module docstring)."""
    company = Path(config).resolve().parent
    work = company.parent / f".{company.name}-spark-incremental-{os.getpid()}"
    try:
        linked_copy(company, work)
        cfg = str(work / Path(config).name)
        with opened(cfg, master, conf, "incremental") as bench, spark_started(bench) as spark:
            duck = load_settings(cfg).model_copy(update={"engine": EngineConfig()})
            # each engine's whole build by this code first: the build its incremental one replaces (a step whose
            # inputs and code are that build's is kept)
            duck_full, _ = timed_build(bench, duck, bench.manifest, "full build, duckdb", full=True)
            with on_session(spark):
                spark_full, _ = timed_build(bench, bench.settings, bench.manifest, "full build, spark", full=True)
            CHANGES[change](work / "data" / "raw" / "demo")
            wall, used = _timed(lambda: _refreshed(duck, change), _cpu_driver)
            published = bench.store.read_manifest()
            print(f"{change} changed, refreshed with engine duckdb (its snapshot, and a DuckDB build of it "
                  f"made by the refresh): wall {wall:.2f} s  cpu {used:.2f} s (driver)")  # fmt: skip
            kept = {**published, "derived": duck_full["derived"]}
            on_duck, _ = timed_build(bench, duck, kept, f"incremental build of the {change} change, duckdb")
            with on_session(spark):
                replaced = {**published, "derived": spark_full["derived"]}
                on_spark, lines = timed_build(
                    bench, bench.settings, replaced, "the same, spark (against the Spark build)"
                )
            print("  " + "; ".join(line for line in lines if "touched" in line))
            print(f"  steps kept: duckdb {on_duck['derived'].get('reused')}, spark {on_spark['derived'].get('reused')}")
            ours, theirs = (
                pl.read_parquet(bench.store.abs(m["derived"]["tables"]["customer_golden"])).sort("customer_key")
                for m in (on_spark, on_duck)
            )
            print(f"  customer_golden: {ours.height:,} rows; columns unlike the DuckDB engine's: "
                  f"{_unlike(ours, theirs.select(ours.columns)) or 'none'}")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _refreshed(settings: Settings, source: str) -> None:
    result = refresh(settings, [source])
    if result.exit_code != 0:
        raise SystemExit(f"the refresh of {source} failed ({result.exit_code})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="cockpit.toml of a refreshed company")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument(
        "--steps",
        default="analytics,identity",
        help="steps to time, comma-separated: analytics, identity, derived, incremental",
    )
    parser.add_argument("--runs", type=int, default=2, help="Spark runs of the analytics steps (the first is cold)")
    parser.add_argument("--conf", action="append", default=[], help="spark.KEY=VALUE over the session's defaults")
    parser.add_argument(
        "--identity-on", default=",".join(IDENTITY_WAYS), help=f"identity's ways, comma-separated: {IDENTITY_WAYS}"
    )
    parser.add_argument(
        "--change", default="erp", choices=sorted(CHANGES), help="the source --steps incremental changes"
    )
    args = parser.parse_args()
    steps, peaks = set(args.steps.split(",")), Peaks()
    if "incremental" in steps:  # on a copy of the company, in a session of its own
        incremental(args.config, args.master, parse_conf(args.conf), args.change)
        steps.discard("incremental")
        if not steps:
            print(f"whole benchmark: {peaks.report()}")
            return
    with opened(args.config, args.master, parse_conf(args.conf), "bench") as bench:
        con, settings = bench.con, bench.settings
        rows = sum(int(con.sql(f"SELECT count(*) FROM {t}").fetchall()[0][0]) for t in INPUTS)
        # the links on this process only for the analytics steps (the derived build's driver peak is its own)
        links = con.sql("SELECT * FROM identity_links").pl() if "analytics" in steps else pl.DataFrame()
        linked = int(con.sql("SELECT count(*) FROM identity_links").fetchall()[0][0])
        print(f"{rows:,} input rows ({', '.join(INPUTS)}); {linked:,} identity links; "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")  # fmt: skip
        duck_dir = bench.folder / "duckdb"
        duck_dir.mkdir(parents=True)

        def on_duckdb() -> None:
            analytics.build(
                con, links, settings.analytics.attribution_half_life_days,
                settings.analytics.attribution_exclude_channels,
            )  # fmt: skip
            for table in analytics.ANALYTICS_TABLES:
                con.execute(f"COPY {table} TO {quote_path(duck_dir / f'{table}.parquet')} (FORMAT parquet)")

        if "analytics" in steps:
            wall, cpu = _timed(on_duckdb, _cpu_self)
            print(_line("duckdb: lead facts + attribution", wall, cpu, rows))
        with spark_started(bench) as spark:

            def on_spark(run: int) -> Callable[[], None]:
                stage = bench.folder / f"spark-{run}"
                stage.mkdir(parents=True)
                links.write_parquet(stage / "identity_links.parquet")
                return lambda: jobs.analytics_tables(spark, con, settings, bench.store, bench.manifest, stage)

            if "analytics" in steps:
                bench.spark_runs("lead facts + attribution", args.runs, rows, on_spark)
            if "identity" in steps:
                identity(bench, bench.folder / "identity", args.identity_on.split(","))
            if "derived" in steps:
                derived(bench)
            print(f"whole benchmark: {peaks.report()}")


if __name__ == "__main__":
    main()
