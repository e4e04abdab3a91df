"""The derived build of a refresh: identity links, quality tables, channel analytics. It is built from
the pending manifest (snapshots moved into place but not yet named) and published by the same
atomic manifest swap as those snapshots, so readers never see new snapshots with old summaries.
A step whose inputs did not change since the current build shares that build's files (issue 22)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from datetime import date
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb
import polars as pl
import pyarrow as pa

from dashboard.core.config import Settings, today
from dashboard.core.duck import CHURN_HEADROOM, drop_relation, quote_path, step_memory, work_connection
from dashboard.core.store import Manifest, Store, crash_point, link_file, new_id, now_utc
from dashboard.derived import analytics, personal
from dashboard.derived.analytics import ANALYTICS_TABLES
from dashboard.derived.churn import TABLES as CHURN_SCHEMAS
from dashboard.derived.golden import GOLDEN_TABLES, Parts, Previous, touched_customers, write_golden
from dashboard.derived.identity import (
    RECORD_FILE_OPTIONS,
    STATE_TABLES,
    Graph,
    Records,
    build_links,
    kept_resolution,
    known_readings,
    previous_table,
    record_table,
    redirects,
    write_state,
)
from dashboard.derived.quality.tables import (
    QUALITY_TABLES,
    KeptHistory,
    history_keys,
    history_sources,
    write_quality_tables,
)
from dashboard.derived.spark import identity as spark_identity
from dashboard.derived.spark import jobs as spark_jobs
from dashboard.derived.spark import personal as spark_personal
from dashboard.derived.spark import steps as spark_steps
from dashboard.derived.tables import DERIVED_TABLES, READ_FROM, attach_views, stored_parts
from dashboard.pipeline import fingerprint
from dashboard.pipeline.progress import BESIDE, DERIVED_STEPS, DERIVING, Lap

if TYPE_CHECKING:
    import numpy as np

    from dashboard.derived.churn import build as churn

CHURN_TABLES = tuple(CHURN_SCHEMAS)  # the tables churn's build writes

# The canonical entities each reusable step reads (besides the steps before it); a step is made again when
# one of their files, its upstream steps, the settings, the code or (golden, churn: "now") the day changed.
STEP_ENTITIES: dict[str, tuple[str, ...]] = {
    "identity_files": ("customers", "leads", "orders", "interactions", "contracts"),  # what its records are read from
    "analytics": ("leads", "lead_events", "marketing_spend", "interactions"),  # a won lead's journey: touches
    "golden": ("customers", "leads", "lead_events", "orders", "contracts", "interactions"),  # lead_facts too
    "churn": ("customers", "leads", "orders", "contracts", "interactions"),
    "identity_consistency": ("customers", "leads"),  # their phones, mails and names, per golden customer
}
STEP_TABLES: dict[str, tuple[str, ...]] = {
    "identity": ("identity_links", "customer_redirects", *STATE_TABLES),  # + what the next build resolves against
    "analytics": ANALYTICS_TABLES,
    "golden": GOLDEN_TABLES,
    "churn": CHURN_TABLES,
    "field_quality": ("field_quality",),
    "validation_history": ("validation_runs", "validation_results"),
    "identity_consistency": ("identity_consistency",),
}
PERSONAL = "personal-data profile"  # the personal step's line (not one of DERIVED_STEPS: no time of its own before)
T = TypeVar("T")
U = TypeVar("U")
HISTORY = "history/"  # + a source: the key of its validation history rows (its attempts and the decisions)


class _Steps:
    """Each reusable step's key, and the current build's files when its key is the same (then linked)."""

    def __init__(self, settings: Settings, store: Store, manifest: Manifest, stage: Path, full: bool) -> None:
        current = manifest.get("derived") or {}
        self.store, self.manifest, self.stage, self.current, self.full = store, manifest, stage, current, full
        self.before: dict[str, str] = {} if full else (current.get("steps") or {})
        self.tables: dict[str, str] = current.get("tables") or {}
        self.base = fingerprint.digest(fingerprint.code_version(), fingerprint.settings_version(settings))
        self.today = today(settings.timezone).isoformat()  # golden's and churn's day (COCKPIT_AS_OF when set)
        self.keys: dict[str, str] = {}
        self.memo: dict[str, Any] = {}  # what two steps ask for, read once (the rows that changed)
        self.reused: list[str] = []

    def key(self, step: str, *parts: object) -> str:
        files = fingerprint.entity_files(self.manifest, STEP_ENTITIES.get(step, ()))
        self.keys[step] = fingerprint.digest(self.base, step, files, *parts)
        return self.keys[step]

    def reuse(self, step: str) -> bool:
        """Link the current build's files of ``step`` into the new build when they were made from the same."""
        old = [self.tables.get(t) for t in STEP_TABLES[step]]
        if self.before.get(step) != self.keys[step] or not all(o and self.store.abs(o).is_file() for o in old):
            return False
        for table, rel in zip(STEP_TABLES[step], old, strict=True):
            link_file(self.store.abs(str(rel)), self.stage / f"{table}.parquet")
        crash_point("derived_reused")
        self.reused.append(step)
        return True


LINKS_FILE = "identity_links.parquet"
# what hands the keys on, and tells the records that moved (Graph.moved: golden's touched customers)
_PREVIOUS_COLUMNS = ["source_system", "source_record_id", "record_kind", "customer_key", "confidence"]


class _Links:
    """The build's identity links (``path``): their frame (engine duckdb), or with engine spark the file Spark
    wrote (or the current build's, linked in) and the rows and keys its jobs counted (``written``), asked about
    on Spark (``on_spark``: the keys when not counted, an incremental build's touched customers and their links):
    the driver then reads no links file."""

    def __init__(
        self,
        path: Path,
        frame: pl.DataFrame | None = None,
        written: spark_identity.Written | None = None,
        on_spark: spark_steps.LinksOnSpark | None = None,
        moved: pl.Series | None = None,
    ) -> None:
        self.path, self._frame, self.written, self.on_spark = path, frame, written, on_spark
        self.moved = moved  # the keys of the records that moved since the current build, when identity told them

    def frame(self) -> pl.DataFrame:
        """Every link (read from the file once, when Spark wrote it)."""
        if self._frame is None:
            self._frame = pl.read_parquet(self.path)
        return self._frame

    def unread(self) -> pl.DataFrame:
        """No link, in the links' columns: for a call that reads the links elsewhere (engine spark: on Spark)."""
        return pl.DataFrame(schema=pl.read_parquet_schema(self.path))

    def touched(self, old: Path | None, changes: dict[str, pl.DataFrame]) -> pl.DataFrame:
        """derived.golden.touched_customers against the current build's links file ``old`` (None: identity kept,
        these are its links): on Spark with engine spark, the driver getting the touched customers' keys only; the
        links not compared when identity told which records moved (``moved``)."""
        if self.on_spark is not None:
            return self.on_spark.touched(old, changes)
        if old is not None and self.moved is not None:
            return touched_customers(None, self.frame(), changes, self.moved)
        return touched_customers(pl.read_parquet(old) if old is not None else None, self.frame(), changes)

    def of(self, touched: pl.DataFrame) -> pl.DataFrame:
        """The links a step about the ``touched`` customers (customer_key) reads: every link, or with engine spark
        only those customers', gathered from Spark."""
        return self.on_spark.of(touched) if self.on_spark is not None else self.frame()

    @property
    def rows(self) -> int:
        """The records linked (from the file's footer when Spark wrote it and did not count, or it was kept)."""
        if self._frame is None:
            return self.written.rows if self.written else _rows(self.path)
        return self._frame.height

    def keys(self) -> int:
        """The customers (distinct keys): counted by Spark's jobs (or by Spark when the links were kept), or read."""
        if self.written and self._frame is None:
            return self.written.keys
        if self.on_spark is not None and self._frame is None:
            return self.on_spark.keys()
        return self.frame()["customer_key"].n_unique()


def build_derived(
    settings: Settings,
    store: Store,
    manifest: Manifest,
    progress: Callable[[str], None] | None = None,
    lap: Lap | None = None,
    *,
    full: bool = False,
) -> Manifest:
    """Build from ``manifest`` (pending); return it with its new "derived" entry. Writes no manifest.
    ``progress`` hears each step as it starts, ``lap`` is called with each step's name (and the rows of
    the table it is about) when it ends. A step whose inputs are those of the current build's step is not
    made again, its files are shared (``full``: every step is made again)."""
    telling = threading.Lock()  # steps beside each other tell their lines and laps one at a time
    say = _one_at_a_time(progress or (lambda _m: None), telling)
    done = _one_at_a_time(lap or _no_lap, telling)
    build_id = new_id("b")
    stage = store.staging / "derived" / build_id
    stage.mkdir(parents=True)
    steps = _Steps(settings, store, manifest, stage, full)
    pinned_fit = _pinned_fit(settings)  # [churn] model, read before any work: a bad file stops the build here
    # DuckDB held to settings.memory_limit, spilling past it; with [engine] kind = "spark" also a Spark
    # session, started and checked before any work (None otherwise)
    with work_connection(settings) as con, spark_jobs.engine(settings) as spark:
        attach_views(con, store, manifest, in_memory=frozenset())  # the old summaries are rebuilt, not read
        say("deriving: identity resolution")
        overrides = settings.base_dir / settings.identity.overrides if settings.identity.overrides else None
        inputs = [fingerprint.file_digest(overrides) if overrides and overrides.is_file() else None]
        # with engine spark identity's records are made, fingerprinted and read (identity, golden) on Spark
        inputs_on_spark = None if spark is None else spark_identity.SparkInput(spark, settings, store, manifest, stage)
        inputs += _pinned_model(settings)
        # records None: not read (yet); record_frame: their frame, made once for the key and for resolution
        records, record_frame = _identity_key(con, steps, inputs, inputs_on_spark)
        # engine spark: what a step asks of the links (their keys, the touched customers) is asked on Spark
        on_spark = spark_steps.LinksOnSpark(spark, settings, stage / LINKS_FILE, stage) if spark else None
        record_links: np.ndarray | None = None  # each record's row in the links, when identity made them here
        if steps.reuse("identity"):  # engine spark: its rows not read here
            record_frame = None
            links = _Links(stage / LINKS_FILE, None if spark else pl.read_parquet(stage / LINKS_FILE), None, on_spark)
        else:
            # engine spark: Spark reads the current build's keys for the vote, the driver none of its links
            previous = None if spark else previous_table(store, manifest, "identity_links", _PREVIOUS_COLUMNS)
            # exact, Splink (its pairs scored by Splink's Spark linker with engine spark); overrides win
            score = spark_identity.scorer(spark, settings, stage) if spark is not None else None
            # only new and changed records scored against the kept pairs and parameters, unless re-resolved
            kept = kept_resolution(settings, store, manifest, full=full, now=now_utc())
            known_readings(store, manifest)  # names' pinyin seen before: pypinyin loaded only for new characters
            records = record_table(con) if records is None and spark is None else records
            # engine spark: pass 1, the clusters and the keys there (the current build's, ``was``, read there too),
            # the links written there
            was = spark_identity.current_file(store, manifest, "identity_links") if spark is not None else None
            graph = spark_identity.SparkGraph(spark, settings, stage, was, stage / LINKS_FILE) if spark else None
            here = Graph() if graph is None else None  # it tells the records that moved since the current build
            # with engine spark the records and their features are made on Spark too: the driver gets their keys
            made: Records | None = None
            if inputs_on_spark is not None:
                made = spark_identity.SparkRecords(spark, settings, store, manifest, stage, inputs_on_spark)
            elif record_frame is not None:  # the frame the key was made from, not made again from the Arrow
                made = Records(record_frame)
            record_frame = None  # Records holds identity's columns in its own order: the whole frame is let go
            records, resolved, model = build_links(
                settings, con, previous, records, score, kept=kept, graph=graph or here, made=made
            )
            write_state(model, kept, stage, now_utc())
            written = graph.written if graph is not None else None  # engine spark: Spark wrote them, counted them
            if written is None:
                resolved.write_parquet(stage / LINKS_FILE, **RECORD_FILE_OPTIONS)
            told = here.moved if here is not None else None
            links = _Links(stage / LINKS_FILE, None if written else resolved, written, on_spark, told)
            if spark is not None:  # keys that disappeared (merged) → where their records are now, on Spark
                earlier = spark_identity.current_file(store, manifest, "customer_redirects")
                now = now_utc().replace(tzinfo=None)
                spark_identity.write_redirects(spark, con, settings, stage, was, earlier, now)
            else:
                moved = redirects(  # keys that disappeared (merged) → where their records are now
                    previous,
                    resolved,
                    previous_table(store, manifest, "customer_redirects", ["old_key", "customer_key", "merged_at"]),
                    now_utc().replace(tzinfo=None),
                    here.merged if here is not None else None,  # the keys that went, told by the keys' vote
                )
                moved.write_parquet(stage / "customer_redirects.parquet")
            record_links = here.record_links if here is not None else None  # golden records join by it
            del previous, resolved, here, made  # the graph holds pass 1's values
        done("identity", links.rows)
        if spark is not None:  # engine spark: the quality tables in the build's order
            say(f"{DERIVING}{DERIVED_STEPS['quality']}")
        # engine duckdb: written beside churn's step (no later step reads them), keyed here
        quality = _quality(settings, store, manifest, steps, con, links, stage, spark)
        if spark is not None:
            quality(con)
            done("quality")
        say("deriving: channel analytics")
        steps.key("analytics", steps.keys["identity"])
        kept_analytics = steps.reuse("analytics")  # loaded into ``con`` only if golden records read lead_facts
        if not kept_analytics and spark is not None:  # the same SQL as Spark jobs, the same files (derived/spark)
            spark_jobs.analytics_tables(spark, con, settings, store, manifest, stage)
        elif not kept_analytics:
            analytics.build(  # attribution follows each won lead's customer through the links
                con,
                links.frame(),
                settings.analytics.attribution_half_life_days,
                settings.analytics.attribution_exclude_channels,
                _analytics_previous(con, store, steps, links),  # only the leads touched, when known
            )
            for table in ANALYTICS_TABLES:
                target = quote_path(stage / f"{table}.parquet")  # our staging path, quoted
                con.execute(f"COPY {table} TO {target} (FORMAT parquet, COMPRESSION zstd)")
        done("analytics", _rows(stage / "lead_facts.parquet"))
        say("deriving: golden customer records")
        steps.key("golden", steps.keys["identity"], steps.today)  # lead_facts: leads, lead_events and links
        if steps.reuse("golden"):  # a reused step's files are linked in as it answers; its parts too
            _link_parts(store, steps, stage)
        else:
            if kept_analytics:  # golden records read lead_facts
                _load(con, stage, ANALYTICS_TABLES)
            # only the customers whose records, links or facts changed, when known (engine spark: when few)
            copied = _golden_previous(con, store, manifest, steps, links)
            if inputs_on_spark is not None and not spark_steps.on_driver(copied, links.keys):  # as Spark jobs
                records_path = inputs_on_spark.path()  # the records Spark made, as Parquet: never on the driver
                spark_steps.golden_tables(spark, con, settings, store, manifest, records_path, stage)
            else:  # records not read yet: write_golden reads the touched customers' only (all: a full build)
                # the build's peak: DuckDB gets what [build_memory] leaves of what the process holds by then
                # engine spark: only the touched customers' links, gathered from Spark (write_golden reads no other)
                golden_links = links.frame() if copied is None else links.of(copied.touched)
                with step_memory(con, settings.build_memory, settings.memory_limit):
                    # reads lead_facts; the records' links by identity's numbers (a full build's)
                    made_from = write_golden(con, settings, records, golden_links, stage, copied, record_links)
                del golden_links
                if copied is not None:
                    touched = copied.touched.height
                    say(f"golden records: {touched} customers made again from their {made_from} records "
                        "(records, links or facts changed)")  # fmt: skip
        del records, record_links
        if inputs_on_spark is not None:
            inputs_on_spark.close()
        done("golden", _rows(stage / "customer_golden.parquet"))
        say(f"{DERIVING}{DERIVED_STEPS['churn']}")
        steps.key("churn", steps.keys["identity"], steps.today, *(pinned_fit[1:] if pinned_fit else ()))
        reused_churn = steps.reuse("churn")
        personal_files = _PersonalFiles(settings, store, manifest, steps, stage, spark)

        loaded = threading.Event()  # churn's events read: its first line (or its end)

        def churn_says(line: str) -> None:
            loaded.set()
            say(line)

        def beside() -> personal.Companions:  # the quality tables and the personal step but churn's files
            loaded.wait()  # not beside churn's read of the events (DuckDB's, on both cores): beside its models
            with con.cursor() as cur:  # a connection of its own to the build's database
                say(f"{BESIDE}{DERIVED_STEPS['quality']}")
                quality(cur)
                done("quality")
                say(f"{BESIDE}{PERSONAL}")
                return personal_files.companions(cur)

        def churn_step() -> dict[str, str] | None:
            try:
                return made_churn()
            finally:
                loaded.set()

        def made_churn() -> dict[str, str] | None:
            if reused_churn:
                return _link_fit(store, steps, stage)
            # scored with the kept fit until it is refit_every_days old (or --full, or new code or settings)
            fit = _kept_fit(settings, store, steps, pinned_fit)
            # the same day and the fit that scored the current build: only the touched customers scored again
            rows = (
                _churn_rows(con, store, steps, links) if fit is not None and _scored_with(steps, pinned_fit) else None
            )
            # engine spark: the keys, per-day tables and every cutoff's features as Spark jobs, the fit here
            # DuckDB gets what [build_memory] leaves of what the process holds and of churn's frames (CHURN_HEADROOM)
            from dashboard.derived.spark import served as spark_served  # imports churn's model libraries

            with (
                spark_served.churn_on(spark, settings, store, manifest, stage),
                step_memory(con, settings.build_memory, settings.memory_limit, CHURN_HEADROOM),
            ):
                # engine spark: Spark reads the links' file for the keys, owners and each customer's first record;
                # the driver holds a rescore's touched customers' links (gathered from Spark), or none
                churn_links = links.frame() if spark is None else _churn_links_on_spark(links, rows)
                _churn().build(con, settings, churn_links, stage, churn_says, fit, rows)  # scores, card, calibration
            entry = _fit_entry(steps, stage, fit, pinned_fit[1] if pinned_fit else None)
            done("churn", _rows(stage / "churn_scores.parquet"))
            return entry

        # churn's step runs on one core for about half its wall at large (its model's and numpy's work): the quality
        # tables and the personal step's samples and companions (DuckDB's) run beside it, then churn's files' samples
        if spark is None:
            companions, churn_fit = _beside(beside, churn_step)
        else:  # engine spark: one after the other, in the build's order (the personal step's samples on Spark)
            companions, churn_fit = None, churn_step()
            say(f"{DERIVING}{PERSONAL}")
        personal_tables, personal_state = personal_files.tables(con, companions)
        done("personal")
    crash_point("derived_staged")
    dest = store.derived / build_id
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.rename(stage, dest)
    derived = {
        "build_id": build_id,
        "built_at": now_utc().isoformat(),
        "snapshots": {s: e["snapshot_id"] for s, e in manifest["sources"].items()},
        "tables": {
            **{t: store.rel(dest / f"{t}.parquet") for t in QUALITY_TABLES},
            "identity_links": store.rel(dest / "identity_links.parquet"),
            "customer_redirects": store.rel(dest / "customer_redirects.parquet"),
            **{t: store.rel(dest / f"{t}.parquet") for t in STATE_TABLES},
            **{t: store.rel(dest / f"{t}.parquet") for t in GOLDEN_TABLES},
            **{t: store.rel(dest / f"{t}.parquet") for t in ANALYTICS_TABLES},
            **{t: store.rel(dest / f"{t}.parquet") for t in CHURN_TABLES},
            **{t: store.rel(dest / f.name) for t, f in personal_tables.items()},  # with the keys' tokens
        },
        **_parts_entry(store, dest),
        "steps": steps.keys,  # what each step was made from: the next build reuses a step made from the same
        "base": steps.base,  # the code and settings it was made with: the next build may copy rows of it
        "reused": steps.reused,
        "personal": personal_state,  # the files the personal step profiled, its companions' keys: kept next time
        # the churn fit that scored this build (file, what it was fitted with, when): later builds rescore with it
        **({"churn_fit": _fit_paths(store, dest, churn_fit)} if churn_fit else {}),
    }
    return {**manifest, "derived": derived}


def _quality(
    settings: Settings,
    store: Store,
    manifest: Manifest,
    steps: _Steps,
    con: duckdb.DuckDBPyConnection,
    links: _Links,
    stage: Path,
    spark: Any,
) -> Callable[[duckdb.DuckDBPyConnection], None]:
    """Keys the quality tables (those made from the same as the current build's are linked: _quality_keys) and
    returns what writes the others, on the connection it is given."""
    remake = _quality_keys(settings, store, steps, con)
    kept_history = _kept_history(store, steps) if "validation_runs" in remake else None

    def write(on: duckdb.DuckDBPyConnection) -> None:
        # profiles were made at publish; with engine spark the identity consistency is a Spark job
        quality_links = links.frame() if spark is None else links.unread()
        write_quality_tables(settings, store, manifest, on, quality_links, stage, spark is None, remake, kept_history)
        if spark is not None and "identity_consistency" in remake:
            spark_steps.identity_consistency(spark, on, settings, store, manifest, stage)

    return write


class _PersonalFiles:
    """The personal step's files: the sources' entity files and the build's derived files, profiled (sampled)
    beside churn's step but churn's files (companions), which carry no source keys: the companion tables are
    written then too; churn's files and ``personal_columns`` at the end (tables)."""

    def __init__(
        self, settings: Settings, store: Store, manifest: Manifest, steps: _Steps, stage: Path, spark: Any
    ) -> None:
        self.data_path, self.stage = settings.data_path, stage
        self.entity_files = {
            (entity, source): store.abs(info["file"])
            for source, entry in manifest["sources"].items()
            for entity, info in (entry.get("entities") or {}).items()
        }
        self.kept = _personal_kept(store, steps)
        # engine spark: a file's sample is read and hashed on Spark (the same rows), the driver holding the sample only
        self.sample = spark_personal.sampler(spark, settings) if spark is not None else None

    def derived(self, but: tuple[str, ...] = ()) -> dict[str, personal.Stored]:
        files: dict[str, personal.Stored] = {
            t: self.stage / f"{t}.parquet" for t in DERIVED_TABLES if t not in READ_FROM and t not in but
        }
        if (parts := Parts.of(self.stage)) is not None:  # customer_attributes: its base and part read together
            files["customer_attributes"] = personal.Union(parts.sql(), parts.files)
        return files

    def companions(self, con: duckdb.DuckDBPyConnection) -> personal.Companions:
        derived = self.derived(CHURN_TABLES)
        return personal.write_companions(
            con, self.data_path, self.entity_files, derived, self.stage, self.kept, link_file, self.sample
        )

    def tables(
        self, con: duckdb.DuckDBPyConnection, made: personal.Companions | None
    ) -> tuple[dict[str, Path], dict[str, Any]]:
        return personal.write_tables(
            con, self.data_path, self.entity_files, self.derived(), self.stage, self.kept, link_file, self.sample, made
        )


def _beside(side: Callable[[], T], here: Callable[[], U]) -> tuple[T, U]:
    """``side`` in a thread of its own (the build's context copied into it) while ``here`` runs in this one; both
    results. An error in ``here`` waits for ``side`` first, so no thread outlives the build."""
    with ThreadPoolExecutor(1, thread_name_prefix="cockpit-derive") as pool:
        made = pool.submit(copy_context().run, side)
        mine = here()
        return made.result(), mine


def _one_at_a_time(tell: Callable[..., None], lock: threading.Lock) -> Callable[..., None]:
    def told(*args: Any) -> None:
        with lock:
            tell(*args)

    return told


# Past this share of the customers touched, making every golden record again is cheaper than copying.
GOLDEN_COPY_SHARE = 0.5


def _golden_previous(
    con: duckdb.DuckDBPyConnection, store: Store, manifest: Manifest, steps: _Steps, links: _Links
) -> Previous | None:
    """The current build's golden files and the customers to make again: those whose records, links or
    facts (orders, contracts, interactions, lead stages) changed since it was made. None: make them all
    (``--full``, other code or settings, a file or an old snapshot missing, or most customers touched)."""
    paths = _previous_files(store, steps, ("customer_golden", "customer_attributes", "identity_links"))
    changes = _changes(con, steps) if paths else None
    if paths is None or changes is None:
        return None
    touched = links.touched(_old_links(steps, paths["identity_links"]), changes)
    steps.memo["touched"] = touched  # churn rescores them too
    if touched.height > GOLDEN_COPY_SHARE * links.keys():
        return None
    lookup = _previous_files(store, steps, ("customer_lookup",))  # its kept customers' rows copied too
    parts = stored_parts(store, steps.manifest, "customer_attributes")  # its part, when it wrote one
    if parts is not None and not all(f.is_file() for f in parts.files):
        return None
    return Previous(
        paths["customer_golden"],
        paths["customer_attributes"],
        touched,
        lookup["customer_lookup"] if lookup else None,
        parts,
    )


def _link_parts(store: Store, steps: _Steps, stage: Path) -> None:
    """A reused golden step's customer_attributes part, linked in beside its base."""
    entry = (steps.current.get("parts") or {}).get("customer_attributes")
    if entry:
        for rel in (entry["rows"], entry["keys"]):
            link_file(store.abs(rel), stage / Path(rel).name)
        Parts.mark(stage, entry["snapshots"])


def _parts_entry(store: Store, dest: Path) -> dict[str, Any]:
    """The manifest's "parts" of a build in ``dest``: customer_attributes' part and keys and the base rows' renamed
    snapshot ids, when its golden step wrote (or linked) a part."""
    parts = Parts.of(dest)
    if parts is None:
        return {}
    files = {"rows": store.rel(parts.rows), "keys": store.rel(parts.keys)}
    return {"parts": {"customer_attributes": {**files, "snapshots": parts.snapshots}}}


def _old_links(steps: _Steps, path: Path) -> Path | None:
    """The current build's identity links file, for touched_customers; None when identity was kept (its files
    linked): they are this build's links."""
    return None if "identity" in steps.reused else path


def _previous_files(store: Store, steps: _Steps, tables: tuple[str, ...]) -> dict[str, Path] | None:
    """The current build's files of ``tables`` when the new build may copy rows of them: same code and
    settings, not ``--full``, all there."""
    rels = {t: steps.tables.get(t) for t in tables}
    if steps.full or steps.current.get("base") != steps.base or not all(rels.values()):
        return None
    paths = {t: store.abs(str(rel)) for t, rel in rels.items()}
    return paths if all(p.is_file() for p in paths.values()) else None


def _changes(con: duckdb.DuckDBPyConnection, steps: _Steps) -> dict[str, pl.DataFrame] | None:
    """The rows of the golden step's entities that differ from the current build's snapshots (read once)."""
    if "changes" not in steps.memo:
        steps.memo["changes"] = fingerprint.entity_changes(con, steps.store, steps.manifest, STEP_ENTITIES["golden"])
    return steps.memo["changes"]


def _analytics_previous(
    con: duckdb.DuckDBPyConnection, store: Store, steps: _Steps, links: _Links
) -> analytics.Previous | None:
    """The current build's lead facts and attribution, and which leads, stage events, interactions and
    customers' records changed since (None: make them all)."""
    paths = _previous_files(store, steps, ("lead_facts", "attribution", "identity_links"))
    changes = _changes(con, steps) if paths else None
    if paths is None or changes is None:
        return None

    def strings(frame: pl.DataFrame, *cols: str) -> pl.DataFrame:
        return frame.select(pl.col(c).cast(pl.String) for c in cols).unique()

    return analytics.Previous(
        paths["lead_facts"],
        paths["attribution"],
        strings(changes["leads"], "source_system", "lead_id"),
        strings(changes["lead_events"], "lead_id"),
        strings(changes["interactions"], "source_system", "customer_ref", "lead_id"),
        links.touched(_old_links(steps, paths["identity_links"]), {}),  # records that joined, left or moved
    )


def _personal_kept(store: Store, steps: _Steps) -> personal.Kept | None:
    """The current build's personal step, when made by this code with these settings (not ``--full``)."""
    state = steps.current.get("personal")
    paths = _previous_files(store, steps, ("personal_columns",)) if state else None
    if paths is None or state is None:
        return None
    files = {t: store.abs(str(steps.tables[t])) for t in state.get("companions", {}) if steps.tables.get(t)}
    return personal.Kept(paths["personal_columns"], pl.read_parquet(paths["personal_columns"]), state, files)


def _quality_keys(settings: Settings, store: Store, steps: _Steps, con: duckdb.DuckDBPyConnection) -> list[str]:
    """Keys the quality tables, links those made from the same as the current build's, returns the others:
    the field profiles of the same retained and quarantined snapshots, the validation history of the same
    attempts (and each source's rows of it: _kept_history), the consistency table of the same records and links."""
    retained = {
        s: [e["snapshot_id"], *e.get("previous", [])][: settings.retention]
        for s, e in sorted(steps.manifest["sources"].items())
    }
    quarantined = sorted(p.relative_to(store.quarantine).as_posix() for p in store.quarantine.glob("*/*"))
    steps.key("field_quality", retained, quarantined, settings.quality.applies_when)  # not in the settings' key
    history = history_keys(store, history_sources(settings, store))
    steps.keys.update({f"{HISTORY}{s}": k for s, k in history.items()})
    steps.key("validation_history", history)
    steps.key("identity_consistency", steps.keys["identity"])
    _same_rows(con, steps, "identity_consistency")
    return [t for step in ("field_quality", "validation_history", "identity_consistency") if not steps.reuse(step)
            for t in STEP_TABLES[step]]  # fmt: skip


def _same_rows(con: duckdb.DuckDBPyConnection, steps: _Steps, step: str) -> None:
    """A step of the same identity whose entities' files are new snapshots of the same rows (another source's
    entity changed) keeps the current build's key: what it reads is the same."""
    before = steps.before.get(step)
    if before in (None, steps.keys[step]) or steps.before.get("identity") != steps.keys["identity"]:
        return
    changes = _changes(con, steps)  # read once, golden records and lead facts ask for them too
    if changes is not None and all(changes[e].is_empty() for e in STEP_ENTITIES[step]):
        steps.keys[step] = str(before)


def _kept_history(store: Store, steps: _Steps) -> KeptHistory | None:
    """The current build's validation history, with the sources whose attempts and decisions are the same."""
    same = {
        k.removeprefix(HISTORY) for k, v in steps.keys.items() if k.startswith(HISTORY) and steps.before.get(k) == v
    }
    paths = _previous_files(store, steps, STEP_TABLES["validation_history"]) if same else None
    if paths is None:
        return None
    runs, results = (pl.read_parquet(paths[t]) for t in STEP_TABLES["validation_history"])
    return KeptHistory(runs, results, frozenset(same))


def _identity_key(
    con: duckdb.DuckDBPyConnection,
    steps: _Steps,
    inputs: list[str | None],
    made: spark_identity.SparkInput | None = None,
) -> tuple[pa.Table | None, pl.DataFrame | None]:
    """Keys the identity step by its records without their snapshot ids (what resolution reads); returns them
    (record_table: Arrow, held until golden records read them) and the frame the key was made from, which
    resolution reads (derived.identity.Records): the Arrow's strings made Polars' once, not twice (at large
    3.46M records, ~0.7 CPU-s each time).
    When they would be read from the files the current build read them from, its key is taken and nothing is
    read (None: read when a step needs them). ``made``: the records are made on Spark, fingerprinted there by a
    Spark job (their digest of any order; never read here)."""
    files = steps.key("identity_files", *inputs)
    if steps.before.get("identity_files") == files and steps.before.get("identity"):
        steps.keys["identity"] = steps.before["identity"]
        return None, None
    if _same_records(con, steps, inputs, made):
        steps.keys["identity"] = str(steps.before["identity"])
        return None, None
    if made is not None:
        steps.key("identity", "spark", *made.digest(), *inputs)
        return None, None
    records = record_table(con)
    rows = pl.DataFrame(pl.from_arrow(records.drop_columns(["snapshot_id"])))  # the frame read_records gives
    steps.key("identity", fingerprint.frame_digest(rows), *inputs)
    return records, rows


# how many of the changed rows' references (source_system, customer_ref) name no customer record of their source
# (_same_records; with engine spark the same statement is a Spark job, SparkInput.unknown)
UNKNOWN_REFS_SQL = """SELECT count(*) AS n FROM identity_changed_refs AS r
ANTI JOIN customers AS c ON c.source_system = r.source_system AND c.source_record_id = r.customer_ref"""


def _same_records(
    con: duckdb.DuckDBPyConnection,
    steps: _Steps,
    inputs: list[str | None],
    made: spark_identity.SparkInput | None = None,
) -> bool:
    """Whether identity's records are those the current build resolved, told without reading them (3.5M at
    large: ~5 CPU-s read and digested): its records came from the files of its snapshots with these inputs (its
    identity_files key made again from them), and the rows changed since (read once, the later steps ask for
    them too) are no customer or lead row, only orders, interactions and contracts whose customer_ref is a
    customer record of their source, which RECORDS_SQL's customers known by reference leave out either way.
    ``made`` (engine spark): the customer records are looked up on Spark, not fingerprinted there in full."""
    before = steps.current.get("snapshots")
    if steps.full or not steps.before.get("identity") or not isinstance(before, dict):
        return False
    if set(before) != set(steps.manifest["sources"]):
        return False
    entities = STEP_ENTITIES["identity_files"]
    sources: dict[str, Any] = {}
    for source, entry in steps.manifest["sources"].items():
        if entry["snapshot_id"] == before[source]:
            sources[source] = entry
            continue
        old = steps.store.snapshots / source / str(before[source])
        files = {
            e: {"file": steps.store.rel(old / f"{e}.parquet")} for e in entities if (old / f"{e}.parquet").is_file()
        }
        sources[source] = {"entities": files}
    was = fingerprint.digest(
        steps.base, "identity_files", fingerprint.entity_files({"sources": sources}, entities), *inputs
    )
    if steps.before.get("identity_files") != was:
        return False
    changes = _changes(con, steps)
    if changes is None or not changes["customers"].is_empty() or not changes["leads"].is_empty():
        return False
    refs = (
        pl.concat(
            [
                changes[e].select(pl.col("source_system", "customer_ref").cast(pl.String))
                for e in ("orders", "interactions", "contracts")
            ]
        )
        .drop_nulls()
        .unique()
    )
    if refs.is_empty():
        return True
    if made is not None:
        return made.unknown(UNKNOWN_REFS_SQL, refs) == 0
    con.register("identity_changed_refs", refs)
    try:
        unknown = con.sql(UNKNOWN_REFS_SQL).fetchall()[0][0]
    finally:
        con.unregister("identity_changed_refs")
    return int(unknown) == 0


def _pinned_fit(settings: Settings) -> tuple[churn.KeptFit, str] | None:
    """The pinned churn fit ([churn] model) and its file's digest (an input of the churn step), or None."""
    if settings.churn.model is None:
        return None
    fit: churn.KeptFit | None = _churn().read_pinned(settings)
    assert fit is not None  # read_pinned raises on a missing or bad file
    return fit, fingerprint.file_digest(settings.base_dir / settings.churn.model)


def _kept_fit(
    settings: Settings, store: Store, steps: _Steps, pinned: tuple[churn.KeptFit, str] | None = None
) -> churn.KeptFit | None:
    """The pinned fit ([churn] model: always, --full too), else the current build's churn fit when made by this
    code with these settings, less than ``[churn] refit_every_days`` ago (``--full``: none, fitted again)."""
    if pinned is not None:
        return pinned[0]
    info = steps.current.get("churn_fit") or {}
    if steps.full or info.get("key") != steps.base or not info.get("file"):
        return None
    age = (date.fromisoformat(steps.today) - date.fromisoformat(info["trained_on"])).days
    if not 0 <= age < settings.churn.refit_every_days:
        return None
    fit: churn.KeptFit | None = _churn().load_fit(store.abs(info["file"]))
    return fit


_FIT_FILES = ("file", "rows")  # the churn_fit entry's files: the fit, the features it scored (churn.ROWS_FILE)


def _scored_with(steps: _Steps, pinned: tuple[churn.KeptFit, str] | None) -> bool:
    """Whether the current build was scored with the fit this build scores with: a kept fit is the current
    build's own; a pinned one only when the current build's entry names the same file's digest."""
    return pinned is None or (steps.current.get("churn_fit") or {}).get("pinned") == pinned[1]


def _fit_entry(
    steps: _Steps, stage: Path, kept: churn.KeptFit | None, pinned: str | None = None
) -> dict[str, str] | None:
    """The fit a build's churn step made or kept (``file``: its name in the build's folder; ``rows``: the
    features it scored; ``pinned``: the digest of the [churn] model file it scored with)."""
    name: str = _churn().FIT_FILE
    if not (stage / name).is_file():
        return None  # nothing to score: no fit
    trained_on = kept.trained_on.isoformat() if kept is not None else steps.today
    rows: str = _churn().ROWS_FILE
    entry = {"key": steps.base, "trained_on": trained_on, "file": name, **({"pinned": pinned} if pinned else {})}
    return {**entry, "rows": rows} if (stage / rows).is_file() else entry


def _fit_paths(store: Store, dest: Path, entry: dict[str, str]) -> dict[str, str]:
    """The churn_fit entry with its files' paths in the published build ``dest``."""
    return {**entry, **{k: store.rel(dest / entry[k]) for k in _FIT_FILES if k in entry}}


def _link_fit(store: Store, steps: _Steps, stage: Path) -> dict[str, str] | None:
    """A reused churn step keeps the fit its scores came from, and the features it scored."""
    info = dict(steps.current.get("churn_fit") or {})
    src = store.abs(info["file"]) if info.get("file") else None
    if src is None or not src.is_file():
        return None
    for k in _FIT_FILES:
        path = store.abs(info[k]) if info.get(k) else None
        if path is not None and path.is_file():
            link_file(path, stage / path.name)
            info[k] = path.name
        else:
            info.pop(k, None)
    return info


def _churn_rows(con: duckdb.DuckDBPyConnection, store: Store, steps: _Steps, links: _Links) -> churn.KeptRows | None:
    """The current build's churn features and scores, and the customers to score again: those whose records,
    links or facts changed since (golden's touched customers: read once) and the own keys of changed rows'
    refs. None: score everyone (``--full``, other code or settings, a file missing, changes not known)."""
    info = steps.current.get("churn_fit") or {}
    paths = _previous_files(store, steps, ("churn_scores", "identity_links"))
    rows = store.abs(str(info["rows"])) if info.get("rows") else None
    changes = _changes(con, steps) if paths is not None and rows is not None and rows.is_file() else None
    if paths is None or rows is None or changes is None:
        return None
    touched = steps.memo.get("touched")
    if touched is None:  # golden records kept, or made for everyone
        touched = links.touched(_old_links(steps, paths["identity_links"]), changes)
    build = _churn()
    keys = pl.concat([touched["customer_key"].cast(pl.String), build.churn_features.own_keys(changes)])
    kept: churn.KeptRows = build.KeptRows(rows, paths["churn_scores"], keys.unique().to_frame())
    return kept


def _churn_links_on_spark(links: _Links, rows: churn.KeptRows | None) -> pl.DataFrame:
    """The links churn's DuckDB statements read on the driver with engine spark: a rescore's touched customers'
    (their keys and, through their customer records, their refs' own keys: TOUCHED_KEYS_SQL, and their owners),
    gathered from Spark; none for a whole build (its keys, owners and first records are made on Spark). A rescore
    that scores everyone after all makes them on Spark too (churn.features' DayTables)."""
    return links.of(rows.touched) if rows is not None else links.unread()


def _churn() -> ModuleType:
    """Churn's build, imported when churn is made again: its model libraries (scipy, scikit-learn) take about a
    second of CPU to import, which a build that keeps churn's tables does not pay."""
    from dashboard.derived.churn import build

    return build


def _pinned_model(settings: Settings) -> list[str]:
    """A pinned identity model ([identity] model) is an input of the identity step: by its bytes."""
    path = settings.base_dir / settings.identity.model if settings.identity.model else None
    return [fingerprint.file_digest(path)] if path is not None and path.is_file() else []


def _load(con: duckdb.DuckDBPyConnection, stage: Path, tables: tuple[str, ...]) -> None:
    for table in tables:
        drop_relation(con, table)
        con.execute(f"CREATE TABLE {table} AS SELECT * FROM read_parquet({quote_path(stage / f'{table}.parquet')})")


def _no_lap(step: str, rows: int | None = None) -> None:
    return None


def _rows(path: Path) -> int:
    """A Parquet file's rows, from its footer (by pyarrow: the Spark tests fail every polars read of a links file)."""
    import pyarrow.parquet as pq

    return int(pq.read_metadata(path).num_rows)
