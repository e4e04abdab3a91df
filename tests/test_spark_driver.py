"""With engine spark the derived build's driver holds counts and summaries, not identity's links (issue 23): Spark
writes identity_links.parquet (its parts joined as they are) and counts its rows and keys, reads the current
build's keys for the vote, and makes the redirects (REDIRECTS_SQL, pinned here to derived.identity.redirects). The
build is run with every read of a links file by Polars on the driver made to fail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from dashboard.core.config import EngineConfig, Settings
from dashboard.core.store import Store
from dashboard.derived.identity import REDIRECT_SCHEMA, redirects
from dashboard.derived.spark import identity as spark_identity
from dashboard.derived.spark import jobs
from dashboard.derived.spark.session import build_session, stop_session
from dashboard.pipeline.derive import build_derived
from tests.sparkcluster import spark_home

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]

NOW = datetime(2026, 12, 5, 16, 0, 0, 123456)
_KEYED = {"source_system": pl.String, "source_record_id": pl.String, "customer_key": pl.String}


@pytest.fixture(scope="module")
def on_spark(small_demo: Settings) -> Settings:
    spark_home()  # skips (fails in CI) without pyspark or Java
    engine = EngineConfig.model_validate({"kind": "spark", "master": "local[2]"})
    return small_demo.model_copy(update={"engine": engine})


@pytest.fixture(scope="module")
def spark(on_spark: Settings) -> Iterator[Any]:
    session = build_session(on_spark)
    yield session
    stop_session(session)


@pytest.fixture
def no_links_on_the_driver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
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


def test_the_build_on_spark_never_reads_the_links_on_the_driver(
    on_spark: Settings, monkeypatch: pytest.MonkeyPatch, no_links_on_the_driver: list[str]
) -> None:
    """(First in the module: the build stops the session it starts, the process's only one.) A whole derived build
    with engine spark, every step made again over the small demo's current build: Spark
    writes identity_links.parquet and counts its rows and keys, reads the current build's keys for the vote and
    makes the redirects, while the driver's Polars cannot read a links file. The links are the current build's
    (the DuckDB engine's: the same keys, voted from its links), the redirects none (no key went)."""
    made: list[spark_identity.SparkGraph] = []

    class Kept(spark_identity.SparkGraph):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(spark_identity, "SparkGraph", Kept)
    store = Store(on_spark.data_path)
    current = store.read_manifest()
    laps: dict[str, int | None] = {}
    manifest = build_derived(on_spark, store, current, lap=lambda step, rows=None: laps.update({step: rows}), full=True)
    monkeypatch.undo()  # the tables read here
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
    with duckdb.connect() as con:
        spark_identity.write_redirects(spark, con, settings, stage, files[0], files[1], NOW)
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
