"""The Spark jobs identity's step runs with engine spark (issue 23): each costs Spark's fixed price, so what the
build already knows or a job already reads is not asked of another one. The fingerprint of identity's records is
observed by the job that writes them; the snapshots' schemas are read from their footers on the driver rather
than by a Spark job per file; pass 1 counts no records on Spark; and the fresh keys' clashes are counted by the
job that writes them, so none is pulled when there is none; Splink's connected components run once (pass 1: the
pairs join whole pass-1 clusters, found on the driver) and Splink's tables are read back in their schema. What
each gives is checked against Spark's own way of getting it (an aggregate over the written records, Spark's schema
inference, the links DuckDB makes, Splink's own SparkAPI, the components over every record)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.core.config import Settings
from dashboard.core.store import Store
from dashboard.derived.identity import Model, resolve
from dashboard.derived.spark import identity as spark_identity
from dashboard.derived.spark import jobs
from tests.test_spark_identity import _parameters

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("spark")]


def _jobs(spark: Any) -> int:
    """The Spark jobs the session has started so far."""
    return int(spark.sparkContext._jsc.sc().dagScheduler().numTotalJobs())


def _stage(settings: Settings, name: str) -> Path:
    stage = settings.data_path / name
    stage.mkdir()
    return stage


def test_the_fingerprint_is_observed_by_the_job_that_writes_the_records(on_spark: Settings, spark: Any) -> None:
    """The digest the build keys identity by comes with the records' write, no Spark job of its own, and is what an
    aggregate over the written records gives (every partition counted once)."""
    from pyspark.sql import functions as F

    store = Store(on_spark.data_path)
    made = spark_identity.SparkInput(spark, on_spark, store, store.read_manifest(), _stage(on_spark, "fingerprint"))
    try:
        before = _jobs(spark)
        made.path()
        writing = _jobs(spark) - before
        digest = made.digest()
        assert _jobs(spark) - before == writing > 0  # the digest started no job
        rows = spark.read.parquet(jobs.shared_uri(on_spark, made.folder)).drop("snapshot_id")  # Spark's own read
        cells = [x for c in rows.columns for x in (F.isnull(c), F.col(c))]
        h1, h2 = F.xxhash64(*cells), F.xxhash64(F.lit("identity"), *cells)
        want = rows.agg(
            F.count(F.lit(1)),
            F.sum(h1.cast("decimal(38,0)")).cast("string"),
            F.sum(h2.cast("decimal(38,0)")).cast("string"),
            F.bit_xor(h1),
        ).first()
        assert digest == (tuple(map(tuple, rows.dtypes)), *want)
        assert digest[1] == made.frame().count() > 6_000  # the small demo's records
        again = _jobs(spark)
        assert made.digest() == digest and _jobs(spark) == again  # asked again: neither written nor hashed again
    finally:
        made.close()


def test_the_snapshots_are_registered_without_a_spark_job_and_read_as_spark_reads_them(
    on_spark: Settings, spark: Any
) -> None:
    from dashboard.core.duck import entity_columns
    from dashboard.core.entities import ENTITIES

    store = Store(on_spark.data_path)
    manifest = store.read_manifest()
    before = _jobs(spark)
    jobs.register_entities(spark, on_spark, store, manifest)
    assert _jobs(spark) == before  # the schemas were read here, from the files' footers
    for entity in ENTITIES:
        paths = [store.abs(i["entities"][entity]["file"]) for i in manifest["sources"].values()
                 if entity in i.get("entities", {})]  # fmt: skip
        inferred = jobs.frame(spark, [jobs.shared_uri(on_spark, p) for p in paths], entity_columns(entity))
        got = spark.table(entity)
        assert got.schema == inferred.schema
        assert got.exceptAll(inferred).count() == 0 and inferred.exceptAll(got).count() == 0
        assert got.count() == sum(pl.scan_parquet(p).select(pl.len()).collect().item() for p in paths)


def test_a_file_spark_must_read_itself_is_still_read(on_spark: Settings, spark: Any) -> None:
    """A Parquet file whose footer is not readable here, or holds a type the driver would not name as Spark reads
    it (an unsigned integer), is read by Spark as before: the same rows and types as Spark's own read."""
    folder = _stage(on_spark, "fallback")
    plain, unsigned = folder / "plain.parquet", folder / "unsigned.parquet"
    frame = pl.DataFrame({"node": [1, 2, 3], "day": pl.Series([None, None, None], dtype=pl.Date)})
    frame.write_parquet(plain)
    frame.with_columns(pl.col("node").cast(pl.UInt32)).write_parquet(unsigned)
    try:
        assert jobs.parquet_schema(plain) is not None and jobs.parquet_schema(folder / "missing.parquet") is None
        assert jobs.parquet_schema(unsigned) is None
        for path in (plain, unsigned):
            got = jobs.read_parquet(spark, on_spark, path)
            want = spark.read.parquet(jobs.shared_uri(on_spark, path))
            assert got.schema == want.schema and sorted(got.collect()) == sorted(want.collect())
            assert [r.node for r in got.orderBy("node").collect()] == [1, 2, 3]
    finally:
        shutil.rmtree(folder)


def test_files_of_one_entity_are_read_in_one_scan_where_their_types_agree(on_spark: Settings, spark: Any) -> None:
    """Snapshot files of one entity read as one (a column a file lacks is NULL) when their columns' types agree,
    each on its own when they do not: the same rows either way."""
    folder = _stage(on_spark, "merged")
    a, b, c = folder / "a.parquet", folder / "b.parquet", folder / "c.parquet"
    pl.DataFrame({"id": ["1", "2"], "amount": [1.5, 2.5]}).write_parquet(a)
    pl.DataFrame({"id": ["3"], "note": ["x"]}).write_parquet(b)
    pl.DataFrame({"id": ["4"], "amount": ["7"]}).write_parquet(c)  # amount as text here
    columns = {"id": "VARCHAR", "amount": "DOUBLE", "note": "VARCHAR"}
    try:
        schemas = [jobs.parquet_schema(p) for p in (a, b, c)]
        assert jobs.merged(schemas[:2]) is not None and jobs.merged(schemas) is None
        for files in ((a, b), (a, b, c)):
            uris = [jobs.shared_uri(on_spark, p) for p in files]
            got = jobs.frame(spark, uris, columns, [jobs.parquet_schema(p) for p in files])
            want = jobs.frame(spark, uris, columns)  # one scan per file, their schemas read by Spark
            assert sorted(got.collect()) == sorted(want.collect())
        rows = {r.id: r for r in got.collect()}
        assert rows["1"].amount == 1.5 and rows["3"].amount is None and rows["3"].note == "x" and rows["4"].amount == 7
    finally:
        shutil.rmtree(folder)


def test_the_small_demo_resolved_on_spark_links_what_duckdb_links_with_the_fewer_jobs(
    on_spark: Settings, spark: Any
) -> None:
    """The whole identity step as a build runs it with engine spark, its fingerprint first, the records and their
    features made on Spark (the driver holds their keys only): the links DuckDB makes from the driver's records,
    Splink trained on the same sample (the same parameters and pairs linked), and no clash pulled to the driver
    where none was counted (the demo's first build has none)."""
    from dashboard.core.duck import attach_entities
    from dashboard.derived.identity import read_records

    store = Store(on_spark.data_path)
    stage = _stage(on_spark, "resolved")
    made = spark_identity.SparkInput(spark, on_spark, store, store.read_manifest(), stage)
    spark_model, duck_model = Model(threshold=0.95), Model(threshold=0.95)
    pulled: list[str] = []
    graph = spark_identity.SparkGraph(spark, on_spark, stage)
    real, components, clusters = graph._pulled, graph._components, graph._clusters
    splink_components: list[str] = []  # the tables Splink's connected components made
    clustering_jobs: list[int] = []  # the Spark jobs the clusters after scoring started

    def counted(sql: str, args: dict[str, Any] | None = None) -> pl.DataFrame:
        pulled.append(sql)
        return real(sql, args)

    def connected(edges_sql: str, out: str, rows: int) -> None:
        splink_components.append(out)
        components(edges_sql, out, rows)

    def clustered(*args: Any) -> None:
        before = _jobs(spark)
        clusters(*args)
        clustering_jobs.append(_jobs(spark) - before)

    graph._pulled = counted  # type: ignore[method-assign]
    graph._components = connected  # type: ignore[method-assign]
    graph._clusters = clustered  # type: ignore[method-assign]
    try:
        made.digest()
        records = spark_identity.SparkRecords(spark, on_spark, store, store.read_manifest(), stage, made)
        assert "name" not in records.recs.columns and "phone" not in records.recs.columns  # keys only on the driver
        got = resolve(records, spark_model, score=spark_identity.scorer(spark, on_spark, stage), graph=graph)
    finally:
        made.close()
    import duckdb

    with duckdb.connect() as con:
        attach_entities(con, store, store.read_manifest())
        on_the_driver = read_records(con)
    want = resolve(on_the_driver, duck_model)
    assert got.height == want.height == on_the_driver.height > 6_000
    assert got.drop("confidence").equals(want.drop("confidence"))  # keys, records, rules
    assert (got["confidence"] - want["confidence"]).abs().max() <= 1.0001e-4
    assert spark_model.stats["pairs_linked"] == duck_model.stats["pairs_linked"] > 0
    # trained on the same sample: the same parameters (DuckDB's threads may add them up in another order)
    assert _parameters(spark_model) == pytest.approx(_parameters(duck_model), rel=1e-9)
    assert spark_model.tf_total == duck_model.tf_total
    assert not [sql for sql in pulled if "clash" in sql]  # no fresh key clashed: none brought here
    # Splink's connected components did not run: pass 1's clusters by label propagation (a table per round), and
    # the accepted pairs join whole pass-1 clusters, found without a Spark job (no record is detached)
    assert splink_components == [] and graph.rounds >= 1 and clustering_jobs == [0]
    assert got["match_rule"].eq("probabilistic").sum() > 0  # pairs joined pass-1 clusters
    assert not (stage / jobs.PARTS).exists()


def test_the_pairs_join_pass_one_clusters_as_connected_components_over_every_record_do() -> None:
    """SparkGraph's clusters after scoring (no record detached): pass 1's clusters joined by the accepted pairs and
    the merges, named by their smallest record, are the components of the records' own graph (each record to its
    pass-1 cluster's first record, every pair, every merge) with the names Splink gives them."""
    import numpy as np

    from dashboard.derived.identity import _components

    rng = np.random.default_rng(7)
    for n, k in ((1, 0), (50, 0), (400, 60), (3_000, 900)):
        labels = _components(n, [(rng.integers(0, n, n // 2), rng.integers(0, n, n // 2))])
        first = np.full(n, n)
        np.minimum.at(first, labels, np.arange(n))
        exact = first[labels]  # pass 1's clusters, each named by its smallest record (as Splink names them)
        pairs = pl.DataFrame({"node_l": rng.integers(0, n, k), "node_r": rng.integers(0, n, k)})
        merge = [(int(a), int(b)) for a, b in rng.integers(0, n, (k // 10, 2))]
        joined = spark_identity._joined(exact, pairs, merge)
        assert joined["ex"].is_unique().all()
        to = dict(zip(joined["ex"].to_list(), joined["cluster"].to_list(), strict=True))
        got = np.array([to.get(int(e), int(e)) for e in exact])  # the view identity_clusters, record by record
        m = np.array(merge, dtype=np.int64).reshape(-1, 2)
        whole = _components(n, [(np.arange(n), exact), (pairs["node_l"].to_numpy(), pairs["node_r"].to_numpy()),
                                (m[:, 0], m[:, 1])])  # fmt: skip
        smallest = np.full(n, n)
        np.minimum.at(smallest, whole, np.arange(n))
        assert (got == smallest[whole]).all()
        assert len(set(got)) < len(set(exact)) or k == 0  # the pairs joined clusters


def test_pass_one_on_spark_names_each_cluster_by_its_smallest_record(on_spark: Settings, spark: Any) -> None:
    """SparkGraph.exact's label propagation over the shared values, on random records sharing phones, e-mails, ID
    numbers and customer references (values chaining records across rounds): the clusters scipy's components over
    the same stars make (derived.identity.Graph), each named by its smallest record, as Splink's components name
    them; a record sharing nothing is its own cluster."""
    import numpy as np

    from dashboard.derived.identity import Graph

    rng = np.random.default_rng(23)
    rounds = []
    for n, pool in ((1, 3), (40, 30), (900, 500)):

        def values(prefix: str, share: float, n: int = n, pool: int = pool) -> list[str | None]:
            return [f"{prefix}{v}" if rng.random() < share else None for v in rng.integers(0, pool, n)]

        nodes = pl.DataFrame(
            {
                "node": np.arange(n, dtype=np.int64),
                "source_system": [["crm", "erp"][i % 2] for i in range(n)],
                "source_record_id": [f"R{i}" for i in range(n)],
                "record_kind": "lead",
                "phone": values("1390000", 0.6),
                "email": values("m", 0.5),
                "id_number": values("id", 0.3),
                "customer_ref": values("R", 0.3),
            }
        )
        stage = _stage(on_spark, f"propagated_{n}")
        graph = spark_identity.SparkGraph(spark, on_spark, stage)
        try:
            got = graph.exact(nodes)
            rounds.append(graph.rounds)
        finally:
            graph.close()
        labels = Graph().exact(nodes)
        smallest = np.full(n, n)
        np.minimum.at(smallest, labels, np.arange(n))
        assert (got == smallest[labels]).all(), n
        assert not (stage / jobs.PARTS).exists()
    assert rounds[-1] >= 3  # values chained records beyond one round (and the last round changed nothing)


def test_splinks_tables_are_read_back_in_their_schema_with_fewer_jobs(on_spark: Settings, spark: Any) -> None:
    """Splink's connected components through splink_api: the clusters Splink's own SparkAPI makes, each table it
    writes to break its lineage read back without a Spark job to read its footer, in partitions sized to the rows
    (Splink's own: half of spark.sql.shuffle.partitions whatever the rows)."""
    from splink import SparkAPI
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    folder = _stage(on_spark, "splink_api")
    spark.sparkContext.setCheckpointDir(jobs.shared_uri(on_spark, folder))
    chain = [(i, i + 1) for i in range(0, 40) if i % 10 != 9]  # four chains of ten records
    spark.createDataFrame([(i,) for i in range(45)], "node bigint").createOrReplaceTempView("api_nodes")
    spark.createDataFrame(chain, "node_l bigint, node_r bigint").createOrReplaceTempView("api_edges")
    made, started = {}, {}
    try:
        for name, db in (("splink", SparkAPI(spark_session=spark)), ("ours", spark_identity.splink_api(spark, 45))):
            before = _jobs(spark)
            clusters = cluster_pairwise_predictions_at_threshold(
                db.register("api_nodes"), db.register("api_edges"), db, "node", "node_l", "node_r"
            )
            made[name] = {(r.node, r.cluster_id) for r in clusters.as_spark_dataframe().collect()}
            started[name] = _jobs(spark) - before
        assert made["ours"] == made["splink"] and len({c for _, c in made["ours"]}) == 4 + 5
        assert started["ours"] < started["splink"]
        shuffle = int(spark.conf.get("spark.sql.shuffle.partitions"))
        assert spark_identity.splink_api(spark, 45).num_partitions_on_repartition == 1 < -(-shuffle // 2)
        assert spark_identity.splink_api(spark, 10**8).num_partitions_on_repartition > 100  # a cluster's default
    finally:
        shutil.rmtree(folder)
