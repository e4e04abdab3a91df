"""The small demo refreshed with engine spark on a real standalone cluster (a master and one worker on
127.0.0.1) and with engine duckdb: the cockpit and channel pages show the same numbers, identity links
the same records, churn ranks the same customers. The derived build on ``local[2]`` writes the same files.
A cluster that cannot take the build fails the refresh cleanly: exit 3, the last good state kept."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.core.config import EngineConfig, Settings, load_settings
from dashboard.core.store import Store
from dashboard.derived.analytics import ANALYTICS_TABLES
from dashboard.derived.golden import GOLDEN_TABLES
from dashboard.derived.spark.session import LOCAL_JAVA_OPTIONS, EngineError
from dashboard.pipeline import fingerprint
from dashboard.pipeline.derive import build_derived
from dashboard.pipeline.refresh import RefreshResult, refresh
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.sparkcluster import Cluster, spark_home, standalone, stop_keeping_jvm

# A group of its own with test_spark_faults (the standalone clusters): under make test's -n 2 --dist loadgroup
# it runs on one worker while the "spark" group (local sessions) and the browser tests run on the other.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark_cluster")]
REPO = Path(__file__).resolve().parents[1]
# every named query the cockpit and channel pages show, read from the pages themselves
PAGES = [(REPO / "dashboard" / "pages" / page).read_text(encoding="utf-8") for page in ("cockpit.py", "channels.py")]
PAGE_QUERIES = sorted({name for text in PAGES for name in re.findall(r'query(?:_if_allowed)?\(\s*"([a-z_]+)"', text)})
# The cluster's driver and executor JVMs with the JIT's quick tier only, as the engine starts a local[...] JVM
# (derived/spark/session.py): a build is many short jobs over small tables, and compiling Spark's code with the
# second tier cost more CPU than it saved. [engine.conf] as a company would give it; no number depends on it.
QUICK_JVM = {f"spark.{side}.extraJavaOptions": LOCAL_JAVA_OPTIONS for side in ("driver", "executor")}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    spark_home()  # skips (fails in CI) without pyspark or Java
    with standalone() as c:
        yield c


@pytest.fixture(scope="module")
def demo(small_demo: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small demo's inputs (the repository's config, seed 42): the raw files of the test process's
    refreshed small demo (tests/conftest.py), whose copy is ``on_duckdb``. Each run refreshes a copy."""
    root = tmp_path_factory.mktemp("spark_demo") / "template"
    for made in ("raw", "demo_truth"):  # what `generate` wrote; the refresh's snapshots and builds are not copied
        folder = small_demo.data_path / made
        shutil.copytree(folder, root / folder.relative_to(small_demo.base_dir))
    shutil.copy(small_demo.base_dir / "cockpit.toml", root / "cockpit.toml")
    assert (root / "cockpit.toml").read_bytes() == (REPO / "cockpit.toml").read_bytes()
    return root


def _copy(demo: Path, name: str, engine: str = "") -> Settings:
    root = demo.parent / name
    shutil.copytree(demo, root)
    if engine:
        with (root / "cockpit.toml").open("a", encoding="utf-8") as f:
            f.write(f"\n[engine]\n{engine}\n")
    return load_settings(root / "cockpit.toml")


def _refreshed(settings: Settings) -> Settings:
    result = refresh(settings)
    assert result.exit_code == 0, [(r.source, r.reasons) for r in result.sources]
    return settings


@pytest.fixture(scope="module")
def on_duckdb(small_demo: Settings) -> Settings:
    """``demo``'s inputs refreshed with engine duckdb: this module's copy of the process's small demo, made
    with the same config from the same raw files (refreshing them again here cost a minute under load)."""
    manifest = json.loads((small_demo.data_path / "manifest.json").read_text(encoding="utf-8"))
    assert small_demo.engine.kind == "duckdb" and set(manifest["sources"]) == {s.name for s in small_demo.sources}
    return small_demo


# what Splink's Spark linker scored in the cluster's refresh: (records, pairs linked at the threshold)
SCORED: list[tuple[int, int]] = []
# the records whose clusters Splink's connected components found on the cluster and whose keys it made, per build
CLUSTERED: list[int] = []


def _counted(scorer: Any, into: Path) -> Any:
    def make(*args: Any) -> Any:
        score = scorer(*args)

        def counted(feats: pl.DataFrame, trained: dict[str, Any], model: Any) -> pl.DataFrame:
            pairs = score(feats, trained, model)
            _count(into, "scored", [feats.height, pairs.height])
            return pairs

        return counted

    return make


def _counted_graph(graph: Any, into: Path) -> Any:
    class Counted(graph):
        def links(self, *args: Any) -> Any:
            links = super().links(*args)
            _count(into, "clustered", self.written.rows if self.written else links.height)  # a build's: by Spark
            return links

    return Counted


def _count(into: Path, what: str, value: object) -> None:
    with into.open("a", encoding="utf-8") as f:  # as it happens: the build's process ends with os._exit
        f.write(json.dumps([what, value]) + "\n")


def count_into(into: str) -> None:
    """Run first in the derived build's own process (``_counting_boot``): identity's Spark scorer and graph
    counted into the file ``into``, a line per call, which the refresh's process (this module's) reads back."""
    from dashboard.derived.spark import identity

    identity.scorer = _counted(identity.scorer, Path(into))
    identity.SparkGraph = _counted_graph(identity.SparkGraph, Path(into))  # type: ignore[misc]


def _counting_boot(into: Path) -> str:
    """derive_child's boot, with identity's counters installed in the child before it builds."""
    from dashboard.pipeline import derive_child

    return (
        f"import sys; sys.path[:0] = [{derive_child._ROOT!r}, {str(REPO)!r}]; "
        f"from tests.test_spark_cluster import count_into; count_into({str(into)!r}); "
        "from dashboard.pipeline.derive_child import serve; serve()"
    )


@dataclass(frozen=True)
class ClusterRun:
    settings: Settings
    result: RefreshResult
    events: Path  # the Spark event logs of the refresh's applications


@pytest.fixture(scope="module")
def cluster_run(demo: Path, cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> ClusterRun:
    """The small demo refreshed with engine spark on the cluster: its sources read in this process, its derived
    build in a process of its own (``derive_in_child``, the default), with Spark's event log and identity's
    counters (SCORED, CLUSTERED) installed in that process (derive_child's boot patched). One refresh for the
    module's comparisons and for test_the_derived_build_in_its_own_process_runs_on_the_cluster: a second full
    derived build on the cluster proved nothing the first did not (four minutes in CI)."""
    from dashboard.derived.spark import jobs
    from dashboard.pipeline import derive_child

    def not_here(settings: Settings) -> Any:
        raise AssertionError("the derived build started Spark in the refresh's own process")

    folder = tmp_path_factory.mktemp("cluster_run")
    events, counts = folder / "events", folder / "counts.jsonl"
    events.mkdir()
    conf = {**QUICK_JVM, "spark.eventLog.enabled": "true", "spark.eventLog.dir": events.as_uri()}
    conf["spark.eventLog.compress"] = "false"
    engine = f'kind = "spark"\nmaster = "{cluster.master}"\n[engine.conf]\n'
    engine += "".join(f'"{key}" = "{value}"\n' for key, value in conf.items())
    settings = _copy(demo, "cluster", engine)
    assert settings.engine.derive_in_child
    with pytest.MonkeyPatch.context() as patch:  # during this refresh only
        patch.setattr(jobs, "spark_session", not_here)  # the child does not see this patch ...
        patch.setattr(derive_child, "_BOOT", _counting_boot(counts))  # ... and counts what it scores
        result = refresh(settings)
    assert result.exit_code == 0, [(r.source, r.reasons) for r in result.sources]
    lines = counts.read_text(encoding="utf-8").splitlines() if counts.exists() else []  # none: asserted below
    for what, value in map(json.loads, lines):
        if what == "scored":
            SCORED.append((value[0], value[1]))
        else:
            CLUSTERED.append(value)
    return ClusterRun(settings, result, events)


@pytest.fixture(scope="module")
def on_cluster(cluster_run: ClusterRun) -> Settings:
    return cluster_run.settings


# when a refresh ran (the last validation, the churn model's training): two refreshes differ there
RUN_TIMES = ("last_attempt_at", "trained_at")


def _frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in a fixed order, floats to 9 significant places (sums may add in another order: the churn card's
    calibration means, lists of floats, are Spark's aggregates), without the columns saying when the refresh ran."""
    frame = frame.drop([c for c in RUN_TIMES if c in frame.columns])
    out = frame.with_columns(
        [pl.col(c).map_elements(lambda v: float(f"{v:.9g}"), return_dtype=pl.Float64) for c, t in frame.schema.items()
         if t.is_float()]
        + [pl.col(c).map_elements(lambda vs: [float(f"{v:.9g}") for v in vs], return_dtype=pl.List(pl.Float64))
           for c, t in frame.schema.items() if t == pl.List(pl.Float64)]
    )  # fmt: skip
    return out.sort(out.columns, nulls_last=True)


def test_the_build_ran_on_the_cluster(on_cluster: Settings, cluster: Cluster) -> None:
    apps = cluster.status()["completedapps"]
    # the refresh's applications: its sources' (standardize, the gate), then its derived build's (in a process
    # of its own: test_the_derived_build_in_its_own_process_runs_on_the_cluster)
    assert isinstance(apps, list) and [a["name"] for a in apps if a["name"] == "cockpit"] == ["cockpit", "cockpit"]
    manifest = json.loads((on_cluster.data_path / "manifest.json").read_text(encoding="utf-8"))
    for table in ANALYTICS_TABLES:  # the same layout: one file per table in the build's folder
        assert (on_cluster.data_path / manifest["derived"]["tables"][table]).is_file()
    assert not list(on_cluster.data_path.rglob("_spark"))  # Spark's part files were gathered and removed


@pytest.fixture(scope="module")
def served(on_duckdb: Settings, on_cluster: Settings) -> Iterator[tuple[Warehouse, Warehouse]]:
    """The duckdb engine's refresh and the cluster's, each served by one Warehouse for the module's comparisons
    (a Warehouse makes its views when first asked: ~0.5 s a time on the small demo)."""
    pair = (Warehouse(on_duckdb), Warehouse(on_cluster))
    yield pair
    for warehouse in pair:
        warehouse.close()


@pytest.mark.parametrize("name", PAGE_QUERIES)
def test_the_pages_named_queries_match(name: str, served: tuple[Warehouse, Warehouse]) -> None:
    want, got = (warehouse.run_query(name, {}, user=SYSTEM) for warehouse in served)
    assert want.height > 0, name
    assert _frame(got).equals(_frame(want)), (name, got, want)


def test_every_metric_the_pages_ask_for_matches(served: tuple[Warehouse, Warehouse]) -> None:
    """The semantic layer's figures (the pages' tiles and channel tables): each metric split by channel
    with its total, and as the company's figure."""
    from dashboard.query.metrics import MetricError, Request, ask, layer

    duck, on_cluster = served
    compared = []
    for name in layer().metrics:
        for by in (("channel",), ()):
            request = Request.of((name,), by, with_total=bool(by))
            try:
                want = ask(duck, request, SYSTEM).frame
            except MetricError:  # a metric that cannot be split by channel
                continue
            got = ask(on_cluster, request, SYSTEM).frame
            assert _frame(got).equals(_frame(want)), (name, by, got, want)
            compared.append((name, by))
    assert ("won_amount", ("channel",)) in compared and ("leads", ("channel",)) in compared
    assert len(compared) > len(layer().metrics)


def _on_spark(settings: Settings, **engine: object) -> Settings:
    return settings.model_copy(update={"engine": EngineConfig.model_validate({"kind": "spark", **engine})})


def _table(settings: Settings, table: str) -> pl.DataFrame:
    manifest = json.loads((settings.data_path / "manifest.json").read_text(encoding="utf-8"))
    return pl.read_parquet(settings.data_path / manifest["derived"]["tables"][table])


def _groups(links: pl.DataFrame) -> dict[str, frozenset[tuple[str, str]]]:
    """customer_key → the records it holds."""
    return {
        key: frozenset(zip(g["source_system"], g["source_record_id"], strict=True))
        for (key,), g in links.group_by("customer_key")
    }


def test_identity_links_the_same_records(on_duckdb: Settings, on_cluster: Settings) -> None:
    want, got = _groups(_table(on_duckdb, "identity_links")), _groups(_table(on_cluster, "identity_links"))
    assert len(want) > 100
    [(records, linked)] = SCORED  # pass 2's pairs were scored on the cluster, once
    assert records > 1000 and linked > 0
    assert [records] == CLUSTERED  # and every record's cluster found there
    assert set(got.values()) == set(want.values())  # the same customers, whatever their keys are called


def test_churn_ranks_the_same_customers(on_duckdb: Settings, on_cluster: Settings) -> None:
    def ranked(settings: Settings) -> list[tuple[int, frozenset[tuple[str, str]], float]]:
        members = _groups(_table(settings, "identity_links"))
        scores = _table(settings, "churn_scores").sort("rank")
        return [(r, members[k], round(risk, 9)) for r, k, risk in scores.select("rank", "customer_key", "risk").rows()]

    want = ranked(on_duckdb)
    assert len(want) > 100
    assert ranked(on_cluster) == want


# the tables golden records and the quality step make on Spark too; compared customer by customer
SPARK_STEP_TABLES = (*GOLDEN_TABLES, "identity_consistency")


def _by_members(settings: Settings, table: str) -> pl.DataFrame:
    """``table`` with each customer_key replaced by the records it holds (keys may be named differently),
    without the snapshot ids (each refresh names its own)."""
    members = {
        k: ";".join(sorted(f"{s}:{r}" for s, r in m)) for k, m in _groups(_table(settings, "identity_links")).items()
    }
    frame = _table(settings, table)
    frame = frame.drop([c for c in ("snapshot_id",) if c in frame.columns])
    return frame.with_columns(pl.col("customer_key").replace_strict(members, default=None))


@pytest.mark.parametrize("table", SPARK_STEP_TABLES)
def test_golden_and_quality_tables_match(table: str, on_duckdb: Settings, on_cluster: Settings) -> None:
    """Golden records (every surviving value, conflict, tier and lifecycle) and the cross-source consistency
    made as Spark jobs on the cluster are the DuckDB engine's."""
    want, got = _by_members(on_duckdb, table), _by_members(on_cluster, table)
    assert want.height > 0 and want["customer_key"].null_count() == 0, table
    assert _frame(got).equals(_frame(want)), (table, got, want)


PINNED = "churn_fit.pkl"  # a churn fit a build scores with ([churn] model), as `cockpit churn export-fit` writes it


def _pin_churn(fitted: Settings, root: Path) -> None:
    """``root``'s cockpit.toml scores churn with the fit that scored ``fitted``'s build ([churn] model)."""
    from dashboard.derived.churn.build import export_fit

    export_fit(Store(fitted.data_path), root / PINNED)
    config = root / "cockpit.toml"
    text = config.read_text(encoding="utf-8")
    assert text.count("\n[churn]\n") == 1
    config.write_text(text.replace("\n[churn]\n", f'\n[churn]\nmodel = "{PINNED}"\n'), encoding="utf-8")


_STOPPED: list[Any] = []  # the last session one_jvm stopped


def _stop_keeping(spark: Any) -> None:
    spark.stop()  # its context only: the next session in this process starts on the same JVM
    _STOPPED[:] = [spark]


@pytest.fixture(scope="module")
def one_jvm() -> Iterator[None]:
    """The local[2] build's sessions and the ones this module starts in its own process after it (the failing
    build's, the worker-less cluster's) on one JVM: a session's end stops its context and keeps the JVM (as the
    Spark modules' own sessions keep it, tests/sparkcluster.py stop_keeping_jvm) instead of ending it, which
    would make each next session start a JVM and compile Spark's first jobs again (~11 CPU-s a time). The JVM's
    end is the product's (a refresh gives its memory back; test_spark_session checks it). The cluster refresh's
    sources ran before on a JVM of their own (ended), started for the cluster's driver."""
    from dashboard.derived.spark import session, standardize

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(session, "stop_session", _stop_keeping)
        patch.setattr(standardize, "stop_session", _stop_keeping)
        yield
    stop_keeping_jvm(_STOPPED[-1] if _STOPPED else None)  # kept for the next module while small, else ended


@pytest.fixture(scope="module")
def on_local(on_duckdb: Settings, demo: Path, one_jvm: None) -> Settings:
    """The derived build again on local[2], from the duckdb run's published snapshots, every step made on Spark,
    and published (its steps shared with test_a_failing_spark_job_publishes_nothing). Churn scores with the
    duckdb build's own fit, pinned ([churn] model): no assertion here reads churn's tables, and churn's fit on
    Spark against DuckDB's is the cluster refresh's (test_churn_ranks_the_same_customers, churn_model_card,
    churn_bands) and test_spark_churn's; churn's served pass (features, scores, card) is still made on Spark."""
    root = demo.parent / "local"
    shutil.copytree(on_duckdb.base_dir, root)
    _pin_churn(on_duckdb, root)
    settings = load_settings(root / "cockpit.toml")
    local = _on_spark(settings, master="local[2]")
    store = Store(local.data_path)
    published = store.read_manifest()
    published.pop("derived")  # no build to share steps with: every step is made on Spark
    store.write_manifest(build_derived(local, store, published))  # published, to compare customer by customer
    return local


def test_the_build_on_local_spark_writes_the_same_tables(on_duckdb: Settings, on_local: Settings) -> None:
    local = on_local
    store = Store(local.data_path)
    manifest = store.read_manifest()
    assert manifest["derived"]["churn_fit"]["pinned"]  # churn scored with the duckdb build's fit, none made
    for table in ANALYTICS_TABLES:
        got = pl.read_parquet(store.abs(manifest["derived"]["tables"][table]))
        want = _table(on_duckdb, table)
        assert got.height == want.height > 0
        assert _frame(got).equals(_frame(want)), table
    for table in SPARK_STEP_TABLES:
        assert _frame(_by_members(local, table)).equals(_frame(_by_members(on_duckdb, table))), table
    # the personal-data profile, its samples of the larger files made on Spark: the snapshots' rows the same, and
    # the same personal columns of every table
    found, want = _table(local, "personal_columns"), _table(on_duckdb, "personal_columns")
    entities = pl.col("source_system").is_not_null()
    assert found.filter(entities).equals(want.filter(entities)) and want.filter(entities).height > 0
    assert found.select("relation", "column_name", "source_system", "kind").equals(
        want.select("relation", "column_name", "source_system", "kind")
    )


def _made_before_reuse(settings: Settings, *kept: str) -> None:
    """The current build as one made before steps were shared (issue 22): the next makes every step (but
    ``kept``, whose files it shares)."""
    path = settings.data_path / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    steps = manifest["derived"].pop("steps", {})
    if kept:
        manifest["derived"]["steps"] = {step: key for step, key in steps.items() if step in kept}
    path.write_text(json.dumps(manifest), encoding="utf-8")


def _state(settings: Settings) -> tuple[bytes, list[str]]:
    data = settings.data_path
    return (data / "manifest.json").read_bytes(), sorted(p.name for p in (data / "derived").iterdir())


def _read_with(settings: Settings, *but: str) -> None:
    """The current snapshots as if read with ``settings`` (their inputs' fingerprints name the engine and the
    folders): the next refresh keeps them and makes only the derived build (and reads the sources ``but``)."""
    path = settings.data_path / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    for name, entry in manifest["sources"].items():
        if name not in but:
            entry["inputs"] = fingerprint.source_inputs(settings, settings.source(name))
    path.write_text(json.dumps(manifest), encoding="utf-8")


def _event_kinds(log: Path) -> list[str]:
    return [json.loads(line)["Event"] for line in log.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_derived_build_in_its_own_process_runs_on_the_cluster(cluster_run: ClusterRun, cluster: Cluster) -> None:
    """The default, ``derive_in_child``: the derived build runs in a process of its own, its Spark application
    on the cluster. The refresh's process could not start a build's session (patched to fail; the child does not
    see the patch), yet the build published (the tests above compare its numbers and tables with the duckdb
    engine's), its laps came back, and the cluster's last application, the build's, has an event log holding the
    build's jobs."""
    assert {"derive.identity", "derive.analytics", "derive.golden"} <= set(cluster_run.result.steps)
    apps = cluster.status()["completedapps"]
    assert isinstance(apps, list) and apps
    # Spark 4 writes an application's event log as a folder of rolled files named by its id
    kinds = [k for f in sorted(cluster_run.events.rglob(f"events_*_{apps[-1]['id']}")) for k in _event_kinds(f)]
    assert kinds.count("SparkListenerJobEnd") > 10 and kinds.count("SparkListenerTaskEnd") > 10


def test_a_failing_spark_job_publishes_nothing(on_local: Settings, demo: Path, one_jvm: None, monkeypatch: Any) -> None:
    """A Spark job of the derived build fails (lead facts) while a new snapshot of marketing waits to be
    published: the refresh exits 3 and publishes nothing. It starts from the local[2] build (on_local) with the
    same engine settings, the other sources' snapshots counting as read with them and identity's steps shared:
    the refresh standardizes one small source on Spark and fails at lead facts, not after standardizing every
    source and resolving identity on Spark again (which proved nothing more, for two minutes)."""
    from dashboard.derived import analytics

    root = demo.parent / "failing"
    shutil.copytree(on_local.base_dir, root)
    settings = load_settings(root / "cockpit.toml")
    settings = _on_spark(settings, master="local[2]", derive_in_child=False)  # the patch below is this process's
    _made_before_reuse(settings, "identity", "field_quality", "validation_history", "identity_consistency")
    _read_with(settings, "marketing")  # the other sources count as unchanged: marketing alone is read on Spark
    before = _state(settings)
    monkeypatch.setattr(analytics, "LEAD_FACTS_SQL", "SELECT no_such_column FROM leads")  # fails on Spark
    with pytest.raises(EngineError, match="the Spark job for lead_facts failed") as e:
        refresh(settings)
    assert e.value.exit_code == 3
    assert _state(settings) == before  # the manifest and the builds it names, byte for byte


def test_a_cluster_without_workers_fails_the_refresh_cleanly(on_duckdb: Settings, demo: Path, one_jvm: None) -> None:
    root = demo.parent / "no_worker"
    shutil.copytree(on_duckdb.base_dir, root)
    with standalone(workers=0) as empty:
        settings = _on_spark(load_settings(root / "cockpit.toml"), master=empty.master, connect_timeout_seconds=20)
        before = _state(settings)
        with pytest.raises(EngineError, match="ran no job within 20 s"):
            refresh(settings)
    assert _state(settings) == before
