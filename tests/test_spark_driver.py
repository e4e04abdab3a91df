"""With engine spark the derived build's driver holds counts and summaries, not identity's links (issue 23): Spark
writes identity_links.parquet (its parts joined as they are) and counts its rows and keys, reads the current
build's keys for the vote, and makes the redirects (REDIRECTS_SQL, pinned here to derived.identity.redirects);
an incremental build's touched customers are one Spark statement (TOUCHED_SQL, pinned here to
derived.golden.touched_customers) and only their links come to the driver; churn's owners and each customer's first
record are Spark jobs. A whole build and an incremental one are run with every read of a links file by Polars on
the driver made to fail."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.core.store import Manifest, Store
from dashboard.derived.golden import touched_customers
from dashboard.derived.identity import REDIRECT_SCHEMA, redirects
from dashboard.derived.spark import identity as spark_identity
from dashboard.derived.spark import jobs
from dashboard.derived.spark import session as spark_session
from dashboard.derived.spark import steps as spark_steps
from dashboard.derived.tables import attach_views
from dashboard.pipeline import fingerprint
from dashboard.pipeline.derive import STEP_ENTITIES, UNKNOWN_REFS_SQL, build_derived
from dashboard.pipeline.refresh import refresh
from tests.test_incremental import _orders

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]

NOW = datetime(2026, 12, 5, 16, 0, 0, 123456)
_KEYED = {"source_system": pl.String, "source_record_id": pl.String, "customer_key": pl.String}


PINNED = "churn_fit.pkl"  # the small demo's own churn fit, which the builds here score with


@pytest.fixture(scope="module")
def on_spark(on_spark: Settings) -> Settings:
    """tests/conftest.py's, churn scored with the small demo's own fit (the DuckDB engine's build's), pinned
    ([churn] model, as `cockpit churn export-fit` writes it): these builds test where identity's links and churn's
    owners and first records are read, not churn's fit on Spark (its backtest and final fit: test_spark_churn's
    `both` compares them with DuckDB's), which cost the module 16-41 CPU-s a run."""
    from dashboard.derived.churn.build import export_fit

    export_fit(Store(on_spark.data_path), on_spark.base_dir / PINNED)
    return on_spark.model_copy(update={"churn": on_spark.churn.model_copy(update={"model": PINNED})})


@contextmanager
def _keeping_the_jvm(settings: Settings) -> Iterator[Any]:
    """The build's session (session.spark_session: started, checked by a test job, stopped however the build
    ends) with the process's JVM kept when it stops, as the modules' own sessions keep it (tests/sparkcluster.py
    stop_keeping_jvm), instead of ended. The JVM's end is the product's (a refresh gives its memory back;
    test_spark_session checks it); here it would make the next build and the module's session start a JVM and
    compile Spark's first jobs again: ~11 CPU-s each, against ~1 for a new context on a running JVM."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spark_session, "stop_session", lambda spark: spark.stop())
        with spark_session.spark_session(settings) as spark:
            yield spark


@pytest.fixture(scope="module", autouse=True)
def _one_jvm() -> Iterator[None]:
    """Both builds' sessions and the module's (tests/conftest.py spark) on one JVM (_keeping_the_jvm)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jobs, "spark_session", _keeping_the_jvm)
        yield


def _no_links_on_the_driver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Polars' reads of an identity_links file or of the links' part files fail (the driver must not read them);
    the other reads go on, each named in the list returned."""
    read, scan = pl.read_parquet, pl.scan_parquet

    def links(source: Any) -> bool:
        names = [str(s) for s in (source if isinstance(source, list | tuple) else [source])]
        return any("identity_links" in n or "identity_graph/links" in n for n in names)

    def guarded(real: Any, what: list[str]) -> Any:
        def call(source: Any, *args: Any, **kwargs: Any) -> Any:
            if links(source):
                raise AssertionError(f"the driver read the links: {source}")
            what.append(str(source))
            return real(source, *args, **kwargs)

        return call

    seen: list[str] = []
    monkeypatch.setattr(pl, "read_parquet", guarded(read, seen))
    monkeypatch.setattr(pl, "scan_parquet", guarded(scan, seen))
    return seen


@pytest.fixture(scope="module")
def built_on_spark(on_spark: Settings) -> tuple[Manifest, Manifest, dict[str, int | None], list[Any]]:
    """A whole derived build with engine spark, every step made again over the small demo's current build (the
    DuckDB engine's), with every Polars read of a links file on the driver made to fail; not published. The
    manifest it was made from, the one it returns, each step's rows and the SparkGraph it made. (Made by the
    module's first test: a build stops the session it starts, the process's only one; its JVM is kept, _one_jvm.)"""
    made: list[spark_identity.SparkGraph] = []

    class Kept(spark_identity.SparkGraph):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)

    store = Store(on_spark.data_path)
    current = store.read_manifest()
    laps: dict[str, int | None] = {}
    with pytest.MonkeyPatch.context() as mp:
        _no_links_on_the_driver(mp)
        mp.setattr(spark_identity, "SparkGraph", Kept)
        manifest = build_derived(
            on_spark, store, current, lap=lambda step, rows=None: laps.update({step: rows}), full=True
        )
    return current, manifest, laps, made


def test_the_build_on_spark_never_reads_the_links_on_the_driver(
    on_spark: Settings, built_on_spark: tuple[Manifest, Manifest, dict[str, int | None], list[Any]]
) -> None:
    """A whole derived build with engine spark (built_on_spark): Spark writes identity_links.parquet and counts its
    rows and keys, reads the current build's keys for the vote and makes the redirects, and churn's owners and first
    records are Spark jobs, while the driver's Polars cannot read a links file. The links are the current build's
    (the DuckDB engine's: the same keys, voted from its links), the redirects none (no key went), each customer's
    owner and region the current build's."""
    store = Store(on_spark.data_path)
    current, manifest, laps, made = built_on_spark
    tables = manifest["derived"]["tables"]
    got = pl.read_parquet(store.abs(tables["identity_links"]))
    want = pl.read_parquet(store.abs(current["derived"]["tables"]["identity_links"]))
    order = ["customer_key", "source_system", "source_record_id"]
    assert got.schema == want.schema
    assert got.equals(got.sort(order))  # written in key order, as the DuckDB engine writes them
    assert got.drop("confidence").equals(want.drop("confidence").sort(order))  # the keys handed on by Spark's vote
    assert (got["confidence"] - want.sort(order)["confidence"]).abs().max() <= 1.0001e-4
    [graph] = made
    assert graph.written == spark_identity.Written(got.height, got["customer_key"].n_unique())
    assert laps["identity"] == got.height > 6_000  # the build's step count: Spark's
    redirected = pl.read_parquet(store.abs(tables["customer_redirects"]))
    assert redirected.height == 0 and redirected.schema == pl.Schema(REDIRECT_SCHEMA)
    assert laps["golden"] == pl.read_parquet(store.abs(tables["customer_golden"])).height > 0
    assert not (store.staging / "derived").exists() or not any((store.staging / "derived").iterdir())
    owners = [
        pl.read_parquet(
            store.abs(m["derived"]["tables"]["churn_scores"]), columns=["customer_key", "owner", "region"]
        ).sort("customer_key")
        for m in (manifest, current)
    ]  # on Spark (ATTRIBUTES_SQL over the links there) and by DuckDB
    assert owners[0]["owner"].drop_nulls().len() > 0
    assert owners[0].equals(owners[1])
    assert manifest["derived"]["churn_fit"]["pinned"]  # scored with the pinned fit: none made on Spark


def test_an_incremental_build_on_spark_reads_only_the_touched_customers_links(
    on_spark: Settings,
    built_on_spark: tuple[Manifest, Manifest, dict[str, int | None], list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ERP's 1 % new and changed orders published (by a refresh with engine duckdb), then a derived build with
    engine spark against the whole Spark build before (built_on_spark): identity kept, golden records made again by
    DuckDB for the touched customers only (Spark found them and handed over their links), churn rescored for them;
    the driver's Polars cannot read a links file meanwhile. The touched customers are those
    derived.golden.touched_customers finds; the golden records and the churn scores (each customer's risk, rank,
    reasons, owner and region) are those the DuckDB engine's build of the same snapshots holds: both scored with
    the small demo's fit (pinned here; kept by the DuckDB engine's refresh)."""
    store = Store(on_spark.data_path)
    _, spark_build, _, _ = built_on_spark
    duck = load_settings(on_spark.base_dir / "cockpit.toml")  # the same company with engine duckdb
    assert refresh(duck, _orders(on_spark.data_path / "raw" / "demo")).exit_code == 0
    published = store.read_manifest()  # ERP's new snapshot, and the DuckDB engine's build of it
    pending = {**published, "derived": spark_build["derived"]}  # the Spark build is the one this build replaces
    found: list[pl.DataFrame] = []
    touched = spark_steps.LinksOnSpark.touched

    def recorded(self: spark_steps.LinksOnSpark, *args: Any) -> pl.DataFrame:
        found.append(touched(self, *args))
        return found[-1]

    lines: list[str] = []
    asked = _fingerprint_asked(monkeypatch)
    _no_links_on_the_driver(monkeypatch)
    monkeypatch.setattr(spark_steps.LinksOnSpark, "touched", recorded)
    monkeypatch.setattr(spark_steps, "DRIVER_SHARE", 0.5)  # golden records on the driver for a few customers
    manifest = build_derived(on_spark, store, pending, progress=lines.append)
    monkeypatch.undo()
    derived = manifest["derived"]
    assert "identity" in derived["reused"]
    # kept by looking the changed orders' customers up on Spark, not by fingerprinting every record there
    assert asked == ["unknown: 0"]
    assert derived["steps"]["identity"] == spark_build["derived"]["steps"]["identity"]
    [said] = [line for line in lines if line.startswith("golden records: ")]
    assert [line for line in lines if line.startswith("churn: ") and " customers touched at " in line]
    links = pl.read_parquet(store.abs(derived["tables"]["identity_links"]))
    with duckdb.connect() as con:
        changes = fingerprint.entity_changes(con, store, pending, STEP_ENTITIES["golden"])
    assert changes is not None
    [got] = found  # once: golden's, which churn's rescore takes too
    want = touched_customers(None, links, changes)
    assert 0 < got.height < links["customer_key"].n_unique() // 10
    assert int(said.split()[2]) == got.height
    assert got.equals(want.sort("customer_key"))
    for table, order in (("customer_golden", "customer_key"), ("churn_scores", "customer_key")):
        ours = pl.read_parquet(store.abs(derived["tables"][table])).sort(order)
        theirs = pl.read_parquet(store.abs(published["derived"]["tables"][table])).sort(order)
        assert ours.columns == theirs.columns and ours.height == theirs.height
        for column in ours.columns:
            a, b = ours[column], theirs[column]
            if a.dtype.is_float():
                assert ((a - b).abs() <= 1e-6).all() or a.equals(b), (table, column)
            else:
                assert a.equals(b), (table, column)


def _fingerprint_asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the build asks SparkInput to tell identity's records by: their digest (every record made and hashed on
    Spark), or how many changed rows' references name no customer record (derive._same_records on Spark)."""
    asked: list[str] = []
    digest, unknown = spark_identity.SparkInput.digest, spark_identity.SparkInput.unknown

    def digested(self: spark_identity.SparkInput) -> tuple[object, ...]:
        asked.append("digest")
        return digest(self)

    def looked_up(self: spark_identity.SparkInput, sql: str, refs: pl.DataFrame) -> int:
        asked.append(f"unknown: {(n := unknown(self, sql, refs))}")
        return n

    monkeypatch.setattr(spark_identity.SparkInput, "digest", digested)
    monkeypatch.setattr(spark_identity.SparkInput, "unknown", looked_up)
    return asked


def _keyed(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=_KEYED, orient="row")


# the build before: A's three records, B's two, C's one, D's two, E's one
PREVIOUS = _keyed(
    [("crm", "1", "A"), ("crm", "2", "A"), ("erp", "1", "A"), ("crm", "3", "B"), ("erp", "2", "B"),
     ("crm", "4", "C"), ("crm", "5", "D"), ("erp", "5", "D"), ("web", "9", "E")]
)  # fmt: skip
# now: A's records went two to X and one to Y (A → X, most of them); B's one each to X and Z (a tie: the smaller key,
# X); C kept; D's records to C and W (a tie: C); E's record is gone (E: no target)
LINKS = _keyed(
    [("crm", "1", "X"), ("crm", "2", "X"), ("erp", "1", "Y"), ("crm", "3", "Z"), ("erp", "2", "X"),
     ("crm", "4", "C"), ("crm", "5", "W"), ("erp", "5", "C"), ("new", "1", "Q")]
)  # fmt: skip
# earlier redirects: to A (re-pointed to X), to C (kept), to Q's key (kept: Q is a customer), from Q (dropped:
# a customer again), to E (dropped: E went nowhere), and from A (dropped: A is redirected now)
EARLIER = pl.DataFrame(
    [("O1", "A", datetime(2026, 1, 1)), ("O2", "C", datetime(2026, 2, 1)), ("O3", "Q", datetime(2026, 3, 1)),
     ("Q", "C", datetime(2026, 4, 1)), ("O4", "E", datetime(2026, 5, 1)), ("A", "C", datetime(2026, 6, 1))],
    schema=REDIRECT_SCHEMA, orient="row",
)  # fmt: skip


def _on_duckdb(links: pl.DataFrame, previous: pl.DataFrame | None, earlier: pl.DataFrame | None) -> pl.DataFrame:
    with duckdb.connect() as con:
        con.register("redirect_links", links)
        con.register("redirect_previous", previous if previous is not None else pl.DataFrame(schema=_KEYED))
        con.register("redirect_earlier", earlier if earlier is not None else pl.DataFrame(schema=REDIRECT_SCHEMA))
        return con.sql(spark_identity.REDIRECTS_SQL, params={"now": NOW}).pl().cast(REDIRECT_SCHEMA)  # type: ignore[arg-type]


def _on_spark(
    spark: Any, settings: Settings, name: str, links: pl.DataFrame, previous: pl.DataFrame | None,
    earlier: pl.DataFrame | None,
) -> pl.DataFrame:  # fmt: skip
    stage = settings.data_path / name
    stage.mkdir()
    links.write_parquet(stage / "identity_links.parquet")
    files: list[Path | None] = []
    for frame, file in ((previous, "previous_links.parquet"), (earlier, "earlier_redirects.parquet")):
        if frame is not None:
            frame.write_parquet(stage / file)
        files.append(stage / file if frame is not None else None)
    first = previous is None and earlier is None  # no build before: no Spark job (not even the session asked)
    with duckdb.connect() as con:
        spark_identity.write_redirects(None if first else spark, con, settings, stage, files[0], files[1], NOW)
    assert not (stage / jobs.PARTS).exists()
    return pl.read_parquet(stage / "customer_redirects.parquet")


@pytest.mark.parametrize(
    ("previous", "earlier"), [(PREVIOUS, EARLIER), (PREVIOUS, None), (None, EARLIER), (None, None)]
)
def test_the_redirects_statement_makes_what_derived_identity_makes(
    on_spark: Settings, spark: Any, previous: pl.DataFrame | None, earlier: pl.DataFrame | None
) -> None:
    """REDIRECTS_SQL on Spark (as a build writes it) and on DuckDB: derived.identity.redirects' rows."""
    want = redirects(previous, LINKS, earlier, NOW)
    name = f"redirects_{previous is not None}_{earlier is not None}"
    got = _on_spark(spark, on_spark, name, LINKS, previous, earlier)
    assert got.schema == pl.Schema(REDIRECT_SCHEMA)
    assert got.equals(want), (got, want)
    assert _on_duckdb(LINKS, previous, earlier).equals(want)
    if previous is not None and earlier is not None:  # the cases above, all there
        assert want.rows() == [
            ("A", "X", NOW), ("B", "X", NOW), ("D", "C", NOW), ("O1", "X", datetime(2026, 1, 1)),
            ("O2", "C", datetime(2026, 2, 1)), ("O3", "Q", datetime(2026, 3, 1)),
        ]  # fmt: skip


def test_random_redirects_on_spark_are_derived_identitys(on_spark: Settings, spark: Any) -> None:
    """Random builds: 400 records moving between 60 keys, earlier redirects among them."""
    import random

    rng = random.Random(23)
    records = [(rng.choice(["crm", "erp"]), str(i)) for i in range(400)]
    before = _keyed([(s, r, f"K{rng.randrange(60):02d}") for s, r in records])
    now = _keyed([(s, r, f"K{rng.randrange(45):02d}") for s, r in records if rng.random() < 0.9])
    earlier = pl.DataFrame(
        [(f"O{i}", f"K{rng.randrange(60):02d}", datetime(2026, 1, 1 + i % 28)) for i in range(40)],
        schema=REDIRECT_SCHEMA, orient="row",
    )  # fmt: skip
    want = redirects(before.unique(["source_system", "source_record_id"]), now, earlier, NOW)
    assert want.height > 20
    got = _on_spark(spark, on_spark, "redirects_random", now, before.unique(["source_system", "source_record_id"]),
                    earlier)  # fmt: skip
    assert got.equals(want)


def _links_frame(rows: list[tuple[str, str, str, str, float]]) -> pl.DataFrame:
    schema = {"source_system": pl.String, "source_record_id": pl.String, "record_kind": pl.String,
              "customer_key": pl.String, "confidence": pl.Float64}  # fmt: skip
    return pl.DataFrame(rows, schema=schema, orient="row")


def _touched_on_spark(
    spark: Any, settings: Settings, name: str, old: pl.DataFrame | None, links: pl.DataFrame,
    changes: dict[str, pl.DataFrame],
) -> pl.DataFrame:  # fmt: skip
    stage = settings.data_path / name
    stage.mkdir()
    links.write_parquet(stage / "identity_links.parquet")
    if old is not None:
        old.write_parquet(stage / "old_links.parquet")
    on_spark = spark_steps.LinksOnSpark(spark, settings, stage / "identity_links.parquet", stage)
    got = on_spark.touched(stage / "old_links.parquet" if old is not None else None, changes)
    assert on_spark.keys() == links["customer_key"].n_unique()
    some = got.head(2)
    want_links = links.filter(pl.col("customer_key").is_in(some["customer_key"].implode()))
    assert on_spark.of(some).equals(want_links.sort("customer_key", "source_system", "source_record_id"))
    assert not (stage / f"{jobs.PARTS}_touched").exists()  # Spark's files removed
    return got


def test_the_touched_customers_statement_finds_what_derived_golden_finds(on_spark: Settings, spark: Any) -> None:
    """TOUCHED_SQL on Spark (LinksOnSpark.touched) against derived.golden.touched_customers: records that moved,
    joined, left or changed confidence between two builds, the customers of changed customer and lead records and
    of changed orders' references, every lead record of a lead whose stage events changed; and with the links
    kept (no old links). The touched customers' links gathered are theirs."""
    old = _links_frame(
        [("crm", "1", "customer", "A", 1.0), ("crm", "2", "customer", "A", 0.9), ("erp", "1", "customer", "B", 1.0),
         ("crm", "L1", "lead", "C", 1.0), ("web", "L1", "lead", "D", 1.0), ("erp", "9", "customer", "E", 1.0),
         ("crm", "3", "customer", "F", 1.0), ("crm", "4", "customer", "G", 1.0)]
    )  # fmt: skip
    links = _links_frame(
        [("crm", "1", "customer", "A", 1.0), ("crm", "2", "customer", "A", 0.8), ("erp", "1", "customer", "H", 1.0),
         ("crm", "L1", "lead", "C", 1.0), ("web", "L1", "lead", "D", 1.0), ("new", "1", "customer", "I", 1.0),
         ("crm", "3", "customer", "F", 1.0), ("crm", "4", "customer", "G", 1.0)]
    )  # fmt: skip
    changes = {
        "customers": pl.DataFrame({"source_system": ["crm"], "source_record_id": ["3"]}),
        "leads": pl.DataFrame({"source_system": ["x"], "lead_id": ["L9"]}),  # no such lead linked
        "lead_events": pl.DataFrame({"source_system": ["crm"], "lead_id": ["L1"]}),
        "orders": pl.DataFrame({"source_system": ["crm", "erp"], "customer_ref": ["4", None]}),
        "contracts": pl.DataFrame(schema={"source_system": pl.String, "customer_ref": pl.String}),
    }
    got = _touched_on_spark(spark, on_spark, "touched_crafted", old, links, changes)
    want = touched_customers(old, links, changes)
    # A: crm:2's confidence; B, H: erp:1 moved; E: gone; I: joined; F: changed record; G: changed order's
    # reference; C and D: lead L1's events (a lead of that id in any source)
    assert got["customer_key"].to_list() == ["A", "B", "C", "D", "E", "F", "G", "H", "I"]
    assert got.equals(want.sort("customer_key"))
    kept = _touched_on_spark(spark, on_spark, "touched_kept", None, links, changes)
    assert kept.equals(touched_customers(None, links, changes).sort("customer_key"))
    assert kept["customer_key"].to_list() == ["C", "D", "F", "G"]


def test_random_touched_customers_on_spark_are_derived_goldens(on_spark: Settings, spark: Any) -> None:
    """Random builds: 500 records moving between 80 keys, some confidences changed, random changed rows."""
    import random

    rng = random.Random(22)
    kinds = ["customer", "lead"]
    records = [(rng.choice(["crm", "erp"]), str(i), rng.choice(kinds)) for i in range(500)]
    before = [(s, r, k, f"K{rng.randrange(80):02d}", rng.choice([1.0, 0.9])) for s, r, k in records]
    old = _links_frame(before)
    # 5 % of the records gone, 10 % on another key, some confidences changed, 20 records new
    now = [(s, r, k, f"K{rng.randrange(80):02d}" if rng.random() < 0.1 else key, rng.choice([c, c, c, 0.8]))
           for s, r, k, key, c in before if rng.random() < 0.95]  # fmt: skip
    now += [("new", str(i), rng.choice(kinds), f"K{rng.randrange(90):02d}", 1.0) for i in range(20)]
    links = _links_frame(now)
    refs = [(rng.choice(["crm", "erp"]), str(rng.randrange(600))) for _ in range(40)]
    changes = {
        "customers": pl.DataFrame(refs[:10], schema=["source_system", "source_record_id"], orient="row"),
        "leads": pl.DataFrame(refs[10:20], schema=["source_system", "lead_id"], orient="row"),
        "orders": pl.DataFrame(refs[20:30], schema=["source_system", "customer_ref"], orient="row"),
        "interactions": pl.DataFrame(refs[30:], schema=["source_system", "customer_ref"], orient="row"),
        "lead_events": pl.DataFrame({"lead_id": [str(rng.randrange(600)) for _ in range(8)]}),
    }
    want = touched_customers(old, links, changes)
    assert want.height > 20
    got = _touched_on_spark(spark, on_spark, "touched_random", old, links, changes)
    assert got.equals(want.sort("customer_key"))


_KNOWN_SQL = "SELECT source_system, source_record_id AS customer_ref FROM customers ORDER BY ALL LIMIT 3"
_ELSEWHERE_SQL = """SELECT t.source_system, c.source_record_id AS customer_ref FROM customers AS c
JOIN (SELECT DISTINCT source_system FROM customers) AS t ON t.source_system <> c.source_system
ANTI JOIN customers AS x ON x.source_system = t.source_system AND x.source_record_id = c.source_record_id
ORDER BY ALL LIMIT 1"""


def test_the_changed_references_are_looked_up_on_spark_as_on_duckdb(on_spark: Settings, spark: Any) -> None:
    """derive._same_records' statement (UNKNOWN_REFS_SQL) on Spark (SparkInput.unknown, over the snapshots'
    customers) and on DuckDB: references to customer records of their source are known; an id of no record, and a
    record's id in another source, are not. Spark's files are removed after."""
    store = Store(on_spark.data_path)
    manifest = store.read_manifest()
    with duckdb.connect() as con:
        attach_views(con, store, manifest, in_memory=frozenset())
        known = con.sql(_KNOWN_SQL).pl()
        elsewhere = con.sql(_ELSEWHERE_SQL).pl()  # a customer's id in a source with no record of that id
        nothing = pl.DataFrame({"source_system": [known["source_system"][0]], "customer_ref": ["no-such-record"]})
        refs = pl.concat([known, elsewhere, nothing])
        con.register("identity_changed_refs", refs)
        on_duckdb = con.sql(UNKNOWN_REFS_SQL).fetchall()[0][0]
    stage = on_spark.data_path / "changed_refs"
    made = spark_identity.SparkInput(spark, on_spark, store, manifest, stage)
    assert made.unknown(UNKNOWN_REFS_SQL, refs) == on_duckdb == 2
    assert made.unknown(UNKNOWN_REFS_SQL, known) == 0
    assert not (stage / f"{jobs.PARTS}_changed_refs").exists()
