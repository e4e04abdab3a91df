"""``cockpit refresh``: extract → standardize → validate → publish (or quarantine) → derive.

Each source is its own snapshot: a bad source is quarantined and keeps serving its last good
snapshot, and the other sources publish as usual.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from dashboard.core.config import Settings, SourceConfig
from dashboard.core.dictionary import for_settings
from dashboard.core.duck import process_rss, size_bytes
from dashboard.core.errors import ConfigError, SourceError
from dashboard.core.store import Manifest, Store, crash_point, new_id, now_utc, write_json
from dashboard.derived.quality.profile import Aggregate, SnapshotProfile
from dashboard.pipeline import fingerprint
from dashboard.pipeline.derive_child import build_in_child, builds_here
from dashboard.pipeline.guidance import way_forward
from dashboard.pipeline.progress import RefreshProgress, Tracker
from dashboard.pipeline.source_child import Teller, run_apart, serve
from dashboard.pipeline.spark_sources import StagedEntity, on_executors, remove_parts, standardize_entity
from dashboard.pipeline.standardize import (
    RECORD_ORDER,
    REJECT_COL,
    STAGED_ZSTD,
    RowIssue,
    Standardized,
    release_engine,
    sort_staged,
    standardize,
    start_engine,
)
from dashboard.pipeline.validate import Outcome, validate, warm_up
from dashboard.sources import DATABASE_KINDS, PULLED_KINDS, read_table, settle, table_files
from dashboard.sources.columns import FILE_COL, ROW_COL, DuplicateHeader, collect_duplicates
from dashboard.sources.incremental import EXTRACT_DIR, ExtractContext

Progress = Callable[[str], None]
# Published files are sorted by their date so date filters can skip row groups; those Customer 360 looks up
# by record are written in record order instead (standardize.RECORD_ORDER).
SORT_BY = {
    "leads": "created_at",
    "orders": "ordered_at",
    "marketing_spend": "spend_date",
    "customers": "source_record_id",
}


@dataclass
class SourceResult:
    source: str
    snapshot_id: str
    status: str  # published | quarantined
    reasons: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    rejected_rows: int = 0
    warnings: list[str] = field(default_factory=list)
    samples: dict[str, list[str]] = field(default_factory=dict)
    steps: dict[str, dict[str, float]] = field(default_factory=dict)
    failed_step: str | None = None  # "extract": the input could not be read (worth a retry; a quarantine is not)
    unchanged: bool = False  # its inputs are those of its current snapshot: not read again, that snapshot stays
    way_forward: list[str] = field(default_factory=list)  # a quarantine: the one-off publish and the setting
    way_forward_zh: list[str] = field(default_factory=list)  # the same in Chinese (the data-quality page)

    @property
    def published(self) -> bool:
        return self.status == "published"


@dataclass
class RefreshResult:
    sources: list[SourceResult]
    derived_build: str | None = None
    steps: dict[str, dict[str, float]] = field(default_factory=dict)
    reused: list[str] = field(default_factory=list)  # derived steps whose inputs had not changed: not made again

    @property
    def exit_code(self) -> int:
        return 0 if all(s.published for s in self.sources) else 3


class _Clock:
    """Wall time, CPU time (a step this process did) and the process's peak memory at the end of each step."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}
        self._t = time.perf_counter()
        self._cpu = time.process_time()

    def lap(self, step: str, peak_rss_mb: float | None = None) -> None:
        """``peak_rss_mb``: of the process that did the step when it is not this one (the derived build's)."""
        now, cpu = time.perf_counter(), time.process_time()
        entry = self.steps.setdefault(step, {"seconds": 0.0, "peak_rss_mb": 0.0})
        entry["seconds"] += now - self._t
        if peak_rss_mb is None:  # user + system seconds of all this process's threads (wall waits for a core)
            entry["cpu_seconds"] = entry.get("cpu_seconds", 0.0) + cpu - self._cpu
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        entry["peak_rss_mb"] = own if peak_rss_mb is None else peak_rss_mb
        self._t, self._cpu = now, cpu


def refresh(
    settings: Settings,
    sources: list[str] | None = None,
    progress: Progress | None = None,
    *,
    watch: Callable[[RefreshProgress], None] | None = None,
    wait: float = 0,
    publish_wait: float | None = None,
    holder: str = "cockpit refresh",
    full: bool = False,
) -> RefreshResult:
    """``progress`` hears plain lines (each step with its rows, time and an estimate), ``watch`` the whole
    progress at each step (dashboard/pipeline/progress.py); ``wait``: seconds to wait for a source another
    process is refreshing (then ``Busy``); ``publish_wait``: for the publish lock once the sources are read
    (default: ``wait``). A source whose input files are those its current snapshot was made from keeps that
    snapshot, and a derived step whose inputs did not change keeps its tables; ``full`` reads and makes
    everything again (identity resolved anew, churn refitted)."""
    names = sources or settings.source_names
    if not names:
        raise ConfigError("no [[sources]] in the config: nothing to refresh")
    chosen = [settings.source(n) for n in names]  # raises ConfigError naming an unknown source
    store = Store(settings.data_path)
    plan = plan_sources(settings, chosen)
    with contextlib.ExitStack() as held:
        held.enter_context(store.source_locks([s.name for s in chosen], wait, holder))
        tracker = held.enter_context(Tracker(store, [s.name for s in chosen], progress, watch, lanes=plan.lanes))
        store.clean_staging()
        if plan.apart:
            job = {"settings": settings, "names": names, "plan": plan, "full": full, "owner": os.getpid()}
            read = run_apart(f"{__name__}:serve_sources", job, tracker)
        else:
            read = _read_sources(settings, store, chosen, tracker, plan, full)
        results = [res for res, _pending in read]  # in the config's order, however they were read
        published = [pending for _res, pending in read if pending]
        release_engine(settings)  # engine spark: the sources' session, stopped before the derived build's starts
        out = RefreshResult(results)
        held.enter_context(store.lock(wait if publish_wait is None else publish_wait))  # one swap at a time
        # Every refresh rebuilds, a quarantine too: validation history and health scores are derived
        # tables, and the new manifest version tells every reader's cache about a rejection at once.
        if results:
            clock = _Clock()
            manifest = store.read_manifest()
            for entry, _attempt in published:
                old = manifest["sources"].get(entry["source"])
                entry["previous"] = ([old["snapshot_id"], *old.get("previous", [])] if old else [])[:20]
                manifest["sources"][entry.pop("source")] = entry
            for res in results:  # checked and found the same: as fresh as a republish (freshness, staleness)
                kept = manifest["sources"].get(res.source) if res.unchanged else None
                if kept and kept["snapshot_id"] == res.snapshot_id:
                    kept.setdefault("snapshot_published_at", kept["published_at"])
                    kept["published_at"] = now_utc().isoformat()
            # The history is part of the derived build, so attempts are written first; a crash before
            # the swap leaves an attempt marked published whose snapshot the next refresh replaces.
            for _entry, attempt in published:
                store.record_attempt(attempt["source"], attempt)

            manifest = _derive(settings, store, manifest, tracker, clock, full)
            tracker.publishing()
            store.write_manifest(manifest)  # snapshots and their derived build become current together
            crash_point("published")
            for _entry, attempt in published:  # a drop folder moves the files its snapshot took
                settle(settings.source(attempt["source"]), settings.base_dir, store.abs(attempt["location"]), True, [])
            out.derived_build = manifest["derived"]["build_id"]
            out.reused = list(manifest["derived"].get("reused", []))
            clock.lap("derive")
            out.steps = clock.steps
            if settings.quality.data_docs:  # a human-readable view of the latest validations
                from dashboard.pipeline.data_docs import build_data_docs

                build_data_docs(settings, store)
        store.prune(store.read_manifest(), settings.retention)
        store.clean_staging()
        tracker.finish()
    return out


Pending = tuple[dict[str, Any], dict[str, Any]]  # (manifest entry, attempt) of a snapshot moved into place
# What a source holds per byte of its input files, by kind, at its peak while it is read and standardized
# (measured at large: the CSV sources 3.5-4x, the JSON ones 2.3x in session 20; in session 22, the process's RSS
# above the source's start with jemalloc's freed pages returned at once, CRM 3.2-3.8x, POS 4.0-4.3x, WeChat
# 2.8-3.0x, web forms 2.7x; Parquet and Excel are compressed), and once its rows are read, while they are checked,
# staged and profiled (validate and publish: its standardized frames less those staged, and one entity's sorted
# copy: CRM 2.4x, POS 3.3x, the call center's 2.0x, WeChat 2.4x). A source of unknown size (a database, an API, a
# drop folder) is read with no other beside it.
HELD_PER_BYTE = {"csv": 4.0, "json": 3.0, "parquet": 10.0, "excel": 10.0}
CHECKED_PER_BYTE = {"csv": 3.4, "json": 2.5, "parquet": 10.0, "excel": 10.0}
# What the process reading the sources keeps besides the sources being read: the refresh's own process, its
# imports and what its allocators keep of those read before (1.2-1.5 GB at large); a process of the sources' own
# (SourcePlan.apart), its interpreter, polars, DuckDB and GX (0.3-0.35 GiB at large, session 22) and a margin for
# what its allocators keep
KEPT_BESIDE = 3 * 2**30 // 2
KEPT_APART = 3 * 2**30 // 4


@dataclass(frozen=True)
class SourcePlan:
    """How a refresh reads its sources (``plan_sources``)."""

    lanes: int  # at most this many at once
    held: dict[str, float]  # what each source is estimated to hold at its peak while read (bytes; inf: not known)
    checked: dict[str, float]  # ... and once its rows are read, while checked and staged (at most ``held``)
    room: float  # what the sources being read at once may hold together
    apart: bool  # in a process of their own (pipeline/source_child.py)


def plan_sources(settings: Settings, chosen: list[SourceConfig]) -> SourcePlan:
    """Two lanes with engine duckdb (most of a source's steps run on one core, and polars and DuckDB release the
    GIL, so a second source fills the other); one with engine spark (its session's executors are the ones the
    sources share) or on a single core. A source starts beside another only when what both hold fits in ``room``:
    ``[build_memory]`` less what this process holds less what the reading process keeps (``KEPT_BESIDE``, or
    ``KEPT_APART`` in a process of their own); the new one counts what it holds while read, the one running what it
    holds in its step (``held_estimate``: read, or checked once its rows are read). ``apart``: the sources are read
    in a process that exits (engine duckdb, ``[engine] derive_in_child``) when one is estimated to hold more than
    ``derive_in_process_below``, the most the derived build starts beside in this process; the memory their frames
    leave then goes back before the build, which runs here with its whole budget. Measured at large (session 20, in
    this process): two lanes read the sources in 23.4 s instead of 32, but the last large source's freed memory was
    still in the process when the derived build started (1.9 GB against 0.7), which sent the build to a child with
    1 GB less."""
    estimates = {src.name: held_estimate(settings, src) for src in chosen}
    held = {name: read for name, (read, _checked) in estimates.items()}
    checked = {name: min(read, checking) for name, (read, checking) in estimates.items()}
    engine = settings.engine
    one = engine.kind != "duckdb" or len(chosen) < 2 or (os.cpu_count() or 1) < 2
    known = [h for h in held.values() if h != float("inf")]
    above = size_bytes(engine.derive_in_process_below)
    apart = engine.kind == "duckdb" and engine.derive_in_child and max(known, default=0.0) > above
    room = size_bytes(settings.build_memory) - process_rss() - (KEPT_APART if apart else KEPT_BESIDE)
    return SourcePlan(1 if one else 2, held, checked, room, apart)


def held_estimate(settings: Settings, src: SourceConfig) -> tuple[float, float]:
    """What reading ``src`` holds at its peak, and once its rows are read (bytes), from its input files' size;
    infinite: not known."""
    factor = HELD_PER_BYTE.get(src.kind)
    if factor is None or src.kind in DATABASE_KINDS or src.kind in PULLED_KINDS:
        return float("inf"), float("inf")
    try:
        size = sum(f.stat().st_size for t in src.tables for f in table_files(t, settings.base_dir))
    except OSError:  # a file gone meanwhile: its read says so
        return float("inf"), float("inf")
    return factor * size, CHECKED_PER_BYTE[src.kind] * size


def serve_sources() -> None:
    """The sources' process (``SourcePlan.apart``): reads them as ``refresh`` would here, and exits."""

    def work(job: dict[str, Any], teller: Teller) -> list[tuple[SourceResult, Pending | None]]:
        settings: Settings = job["settings"]
        chosen = [settings.source(n) for n in job["names"]]
        store = Store(settings.data_path)
        return _read_sources(settings, store, chosen, teller, job["plan"], job["full"], job["owner"])

    serve(work)


def _read_sources(
    settings: Settings,
    store: Store,
    chosen: list[SourceConfig],
    tracker: Tracker | Teller,
    plan: SourcePlan,
    full: bool,
    owner: int | None = None,
) -> list[tuple[SourceResult, Pending | None]]:
    """Each source read, checked and staged (or kept when its inputs are those of its snapshot), up to
    ``plan.lanes`` at a time, the largest first, each beside those running only when their estimates fit in
    ``plan.room`` together (a source alone always starts; a running one whose rows are read counts what it holds
    while checked and staged, and the waiting ones are looked at again then); the results in the config's order.
    Each source's result is its own: one that fails still fails alone. An error that stops the refresh lets the
    sources being read end, starts no other, and is raised. ``owner``: the refresh's process, named in the running
    attempts."""
    if plan.lanes == 1:
        return [_read_source(settings, store, src, tracker, full, owner) for src in chosen]
    done: dict[str, tuple[SourceResult, Pending | None]] = {}
    waiting = sorted(chosen, key=lambda s: -plan.held[s.name])  # stable: ties in the config's order
    running: dict[Future[tuple[SourceResult, Pending | None]], SourceConfig] = {}
    told = _Phases(tracker)  # a source whose rows are read holds less: another may start beside it then
    with ThreadPoolExecutor(plan.lanes, thread_name_prefix="cockpit-source") as pool:
        while waiting or running:
            while len(running) < plan.lanes and (src := _next(waiting, running.values(), plan, told.read)) is not None:
                waiting.remove(src)
                future = pool.submit(_read_source, settings, store, src, told, full, owner)
                future.add_done_callback(lambda _f: told.changed.set())
                running[future] = src
            told.changed.wait()
            told.changed.clear()  # before what changed is looked at: a later change wakes the next wait
            for future in [f for f in running if f.done()]:
                done[running.pop(future).name] = future.result()  # an error: the one running ends first
    return [done[src.name] for src in chosen]


def _next(
    waiting: list[SourceConfig], running: Iterable[SourceConfig], plan: SourcePlan, read: Iterable[str] = ()
) -> SourceConfig | None:
    """The largest waiting source that fits beside those running (any, when none is running); a running source
    whose rows are read (``read``) counts what it holds while checked and staged."""
    done_reading = set(read)
    beside = sum(plan.checked[s.name] if s.name in done_reading else plan.held[s.name] for s in running)
    return next((s for s in waiting if not beside or beside + plan.held[s.name] <= plan.room), None)


class _Phases:
    """The lanes' stand-in for the refresh's tracker (or the sources' process's teller): each call passed on;
    a source's rows read (``rows_read``: its checks and staging begin) noted in ``read``, and ``changed`` set."""

    def __init__(self, tracker: Tracker | Teller) -> None:
        self._tracker = tracker
        self.read: set[str] = set()
        self.changed = threading.Event()

    def source_started(self, name: str) -> None:
        self._tracker.source_started(name)

    def reading(self, name: str, rows: int) -> None:
        self._tracker.reading(name, rows)

    def rows_read(self, name: str, rows: int, entities: list[str]) -> None:
        self._tracker.rows_read(name, rows, entities)
        self.read.add(name)
        self.changed.set()

    def source_ended(self, name: str, outcome: str, rows: int) -> None:
        self._tracker.source_ended(name, outcome, rows)


Told = Tracker | Teller | _Phases  # where a source tells its progress: the refresh's tracker, the sources' process's


def _read_source(
    settings: Settings, store: Store, src: SourceConfig, tracker: Told, full: bool, owner: int | None = None
) -> tuple[SourceResult, Pending | None]:
    """One source: kept when its input files are those its current snapshot was made from, else read. When
    nothing could be kept (``full``, or no snapshot made from known inputs), the files' digests are made beside
    the read, not in a pass of their own before it (at large, from an empty cache: 1.3 s for wechat's 1.3 GB)."""
    tracker.source_started(src.name)
    current = store.read_manifest()
    if (full or "inputs" not in current["sources"].get(src.name, {})) and src.kind not in PULLED_KINDS:
        with ThreadPoolExecutor(1, thread_name_prefix="cockpit-digest") as beside:
            digests = beside.submit(fingerprint.source_inputs, settings, src)  # recorded for the next refresh
            res, pending = refresh_source(settings, store, src, tracker, digests, full=full, owner=owner)
        return _read(settings, store, src, tracker, res, pending)
    inputs = fingerprint.source_inputs(settings, src)
    kept = None if full else fingerprint.unchanged(store, current, src, inputs)
    if kept is not None:
        res = SourceResult(src.name, kept["snapshot_id"], "published", unchanged=True)
        res.rows = {e: int(info.get("rows", 0)) for e, info in kept["entities"].items()}
        tracker.source_ended(src.name, res.status, sum(res.rows.values()))
        return res, None
    res, pending = refresh_source(settings, store, src, tracker, inputs, full=full, owner=owner)
    return _read(settings, store, src, tracker, res, pending)


def _read(
    settings: Settings, store: Store, src: SourceConfig, tracker: Told, res: SourceResult, pending: Pending | None
) -> tuple[SourceResult, Pending | None]:
    """A source read: a quarantined drop folder's files returned, its end told."""
    if not res.published:  # a drop folder returns the files it took, with the reasons
        settle(src, settings.base_dir, store.quarantine / src.name / res.snapshot_id, False, res.reasons)
    tracker.source_ended(src.name, res.status, sum(res.rows.values()))
    return res, pending


def _derive(
    settings: Settings, store: Store, manifest: Manifest, tracker: Tracker, clock: _Clock, full: bool
) -> Manifest:
    """The derived build of ``manifest`` (pending), by default in a process of its own that starts without
    the memory the sources left in this one (``[engine] derive_in_child``; pipeline/derive_child.py), here when
    this process holds little (``derive_in_process_below``: no interpreter to start, no imports again)."""
    if not builds_here(settings):

        def child_lap(step: str, rows: int | None, peak_rss_mb: float) -> None:
            clock.lap(f"derive.{step}", peak_rss_mb)
            tracker.lap(step, rows)

        return build_in_child(settings, manifest, tracker.say, child_lap, full=full)
    from dashboard.pipeline.derive import build_derived

    def lap(step: str, rows: int | None = None) -> None:
        clock.lap(f"derive.{step}")
        tracker.lap(step, rows)

    return build_derived(settings, store, manifest, tracker.say, lap, full=full)


def refresh_source(
    settings: Settings,
    store: Store,
    src: SourceConfig,
    tracker: Told,
    inputs: str | Future[str | None] | None = None,
    *,
    full: bool = False,
    owner: int | None = None,
) -> tuple[SourceResult, Pending | None]:
    """``inputs``: the fingerprint of the source's input files (pipeline/fingerprint.py; or its future, being
    made beside), kept in its manifest entry so that the next refresh of the same files keeps this snapshot.
    ``full``: database tables are pulled whole again (a new base extract), not from their watermark. ``owner``:
    the refresh's process (this one by default), named in the running attempt."""
    sid = new_id()
    stage_dir = store.staging / src.name / sid
    stage_dir.mkdir(parents=True)
    clock = _Clock()
    attempt: dict[str, Any] = {"source": src.name, "snapshot_id": sid, "started_at": now_utc().isoformat()}
    # Recorded as running until it ends (the same file is written again then): a refresh killed midway
    # leaves this record, which `cockpit status` reports as interrupted once its process is gone. Engine
    # spark: its session is started first, so an unreachable master fails the refresh before this record.
    start_engine(settings)
    store.record_attempt(src.name, {**attempt, "status": "running", "pid": owner or os.getpid()})
    result = SourceResult(src.name, sid, "quarantined")
    entities: dict[str, Standardized] = {}
    staged: dict[str, StagedEntity] = {}  # engine spark, a file source: its rows in the staging folder, not here
    if settings.engine.kind != "spark":  # the gate's GX imported while the source is read
        warm_up()
    try:
        ctx = _extract_context(settings, store, src, stage_dir, full)
        with collect_duplicates() as headers:
            if on_executors(settings, src):
                staged = _standardize_on_executors(settings, src, sid, stage_dir, clock, headers, tracker)
            else:
                entities = _extract_and_standardize(settings, src, sid, clock, ctx, headers, tracker)
    except SourceError as e:
        remove_parts(stage_dir)
        result.reasons, result.failed_step = [e.message], "extract"
        attempt["error"] = getattr(e, "kind", "source")  # connection | timeout | auth | rate_limited | source
        return result, _finish(store, src, result, stage_dir, attempt, [], [], clock, _made(inputs))
    kept = None if full else fingerprint.unchanged_pull(store, src, _made(inputs), stage_dir)
    if kept is not None:  # a database pull that brought nothing new: its current snapshot stays, like same files
        rows = {e: int(info.get("rows", 0)) for e, info in kept["entities"].items()}
        return SourceResult(src.name, kept["snapshot_id"], "published", rows=rows, unchanged=True), None

    heights = [std.frame.height for std in entities.values()] + [s.kept + s.rejected for s in staged.values()]
    tracker.rows_read(src.name, sum(heights), [*entities, *staged])
    outcomes: list[Outcome] = []
    now = datetime.now(ZoneInfo(settings.timezone)).replace(tzinfo=None)  # dates are naive local times
    for entity, std in entities.items():
        outcomes += validate(std.frame, entity, src.name, src.quality, now, settings)
    for entity, on_disk in staged.items():  # the gate reads its rows where the executors left them
        outcomes += validate(on_disk.checked, entity, src.name, src.quality, now, settings)
    clock.lap("validate")
    failed = [o for o in outcomes if o.blocking and not o.success]
    result.reasons = [o.describe() for o in failed]
    result.warnings = [h.describe() for h in headers]
    result.warnings += [o.describe() for o in outcomes if not o.blocking and not o.success]
    result.way_forward = way_forward(settings, src, sid, failed)
    result.way_forward_zh = way_forward(settings, src, sid, failed, lang="zh")
    result.samples = {o.describe(): o.samples for o in failed}
    issues = [i for std in entities.values() for i in std.issues] + [i for s in staged.values() for i in s.issues]
    profile = SnapshotProfile(  # once per snapshot, here
        src, sid, for_settings(settings), _profile_engine(settings), settings.quality.applies
    )
    for entity in list(entities):
        std = entities.pop(entity)  # its rows leave memory once staged: the next entity's sorted copy beside fewer
        set_aside = std.frame.get_column(REJECT_COL).is_not_null()
        rejected = int(set_aside.sum())
        # the kept rows copied once, by the sort, and only the published columns (most snapshots set none aside)
        keep = (std.frame.filter(~set_aside) if rejected else std.frame).drop(FILE_COL, ROW_COL, REJECT_COL)
        result.rows[entity] = keep.height
        result.rejected_rows += rejected
        # ties in the rows' order, as the Spark engine sorts (derived/spark/standardize)
        keep = sort_staged(keep, RECORD_ORDER.get(entity) or SORT_BY.get(entity))
        keep.write_parquet(stage_dir / f"{entity}.parquet", compression="zstd", compression_level=STAGED_ZSTD)
        if rejected:
            std.frame.filter(set_aside).write_parquet(stage_dir / f"{entity}.rejected.parquet")
        clock.lap("publish")
        profile.add(keep, entity, stage_dir / f"{entity}.parquet")
        clock.lap("profile")
    for entity, on_disk in staged.items():  # staged by the Spark job that removed the duplicates
        result.rows[entity] = on_disk.kept
        result.rejected_rows += on_disk.rejected
        profile.add(pl.scan_parquet(stage_dir / f"{entity}.parquet"), entity, stage_dir / f"{entity}.parquet")
        clock.lap("profile")
    remove_parts(stage_dir)
    profile.write(stage_dir)
    result.status = "quarantined" if failed else "published"
    clock.lap("publish")
    return result, _finish(store, src, result, stage_dir, attempt, outcomes, issues, clock, _made(inputs))


def _made(inputs: str | Future[str | None] | None) -> str | None:
    return inputs.result() if isinstance(inputs, Future) else inputs


def _profile_engine(settings: Settings) -> Callable[[str, Path], Aggregate] | None:
    """Where a snapshot's quality profile measures its rows: with engine spark, Spark jobs over the staged
    files (derived/spark/quality.py); otherwise polars on this process's frames."""
    if settings.engine.kind != "spark":
        return None
    from dashboard.derived.spark.quality import aggregator

    return aggregator(settings)


def _extract_context(
    settings: Settings, store: Store, src: SourceConfig, stage_dir: Path, full: bool = False
) -> ExtractContext:
    """Where a database/API/drop-folder table's extract goes, and the current snapshot's to merge into."""
    current = store.read_manifest()["sources"].get(src.name)
    previous = store.snapshots / src.name / current["snapshot_id"] / EXTRACT_DIR if current else None
    return ExtractContext(settings.base_dir, stage_dir / EXTRACT_DIR, previous, full=full)


def _extract_and_standardize(
    settings: Settings,
    src: SourceConfig,
    sid: str,
    clock: _Clock,
    ctx: ExtractContext,
    headers: list[DuplicateHeader],
    tracker: Told,
) -> dict[str, Standardized]:
    """``headers``: where the readers report repeated headers (``collect_duplicates``)."""
    out: dict[str, Standardized] = {}
    read = 0
    for i, table in enumerate(src.tables):
        seen = len(headers)
        raw, missing = read_table(src, table, settings.base_dir, ctx.at(i))
        clock.lap("extract")
        read += raw.height
        tracker.reading(src.name, read)
        std = standardize(raw, table, src, settings, sid, missing)
        std.issues += [_header_issue(h, table.entity, _file_rows(raw, h.file)) for h in headers[seen:]]
        clock.lap("standardize")
        if table.entity in out:  # several inputs feeding one entity: one table in the snapshot
            prev = out[table.entity]
            frame = pl.concat([prev.frame, std.frame], how="diagonal_relaxed")
            out[table.entity] = Standardized(
                table.entity, frame, prev.input_rows + std.input_rows, prev.issues + std.issues
            )
        else:
            out[table.entity] = std
    return out


def _standardize_on_executors(
    settings: Settings,
    src: SourceConfig,
    sid: str,
    stage_dir: Path,
    clock: _Clock,
    headers: list[DuplicateHeader],
    tracker: Told,
) -> dict[str, StagedEntity]:
    """Engine spark, a file source: each entity's files read and standardized by the executors and staged by
    Spark jobs (pipeline/spark_sources.py); reading is part of the "standardize" step here."""
    out: dict[str, StagedEntity] = {}
    read = 0
    for entity in dict.fromkeys(t.entity for t in src.tables):
        seen = len(headers)
        order = RECORD_ORDER.get(entity) or SORT_BY.get(entity)
        on_disk = standardize_entity(settings, src, entity, sid, stage_dir, order, headers)
        on_disk.issues += [_header_issue(h, entity, on_disk.file_rows.get(h.file, 0)) for h in headers[seen:]]
        read += on_disk.input_rows
        tracker.reading(src.name, read)
        clock.lap("standardize")
        out[entity] = on_disk
    return out


def _file_rows(raw: pl.DataFrame, file: str) -> int:
    return int((raw.get_column(FILE_COL) == file).sum()) if FILE_COL in raw.columns else raw.height


def _header_issue(h: DuplicateHeader, entity: str, rows: int) -> RowIssue:
    """A repeated header as a row-level report: the file, both positions, and what each column is read as."""
    where = f"{h.where} {', '.join(str(p) for p in h.positions)}" + (f" of {h.record}" if h.record else "")
    return RowIssue(
        entity,
        h.header,
        f"{'key' if h.where == 'keys' else 'header'} '{h.header}' repeated in {h.file} ({where})",
        "kept as " + ", ".join(f"'{n}'" for n in h.names),
        rows,
        [
            {"file": h.file, "row": None, "value": f"{h.where.removesuffix('s')} {p}: read as '{n}'"}
            for p, n in zip(h.positions, h.names, strict=True)
        ],
    )


def _finish(
    store: Store,
    src: SourceConfig,
    result: SourceResult,
    stage_dir: Path,
    attempt: dict[str, Any],
    outcomes: list[Outcome],
    issues: list[RowIssue],
    clock: _Clock,
    inputs: str | None = None,
) -> Pending | None:
    attempt.update(
        status=result.status,
        finished_at=now_utc().isoformat(),
        reasons=result.reasons,
        warnings=result.warnings,
        rows=result.rows,
        rejected_rows=result.rejected_rows,
        expectations=[o.__dict__ for o in outcomes],
        issues=[i.to_dict() for i in issues],
        way_forward=result.way_forward,
        way_forward_zh=result.way_forward_zh,
    )
    write_json(stage_dir / "validation.json", attempt)
    crash_point("staged")
    if result.published:
        dest = store.snapshots / src.name / result.snapshot_id
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(stage_dir, dest)  # not served until the manifest names it
        crash_point("moved")
    else:
        dest = store.quarantine / src.name / result.snapshot_id
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(stage_dir, dest)
    clock.lap("publish")
    result.steps = clock.steps
    attempt["steps"] = clock.steps
    attempt["location"] = store.rel(dest)
    if not result.published:
        store.record_attempt(src.name, attempt)
        return None
    entry = {
        "source": src.name,
        "snapshot_id": result.snapshot_id,
        "published_at": attempt["finished_at"],
        "entities": {e: {"file": store.rel(dest / f"{e}.parquet"), "rows": n} for e, n in result.rows.items()},
        **({"inputs": inputs} if inputs else {}),
    }
    return entry, attempt  # recorded once the manifest swap has made it current
