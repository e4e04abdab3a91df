"""Identity resolution with [engine] kind = "spark": pass 1's shared values grouped and the clusters found on Spark
(SparkGraph), and pass 2's candidate pairs scored by Splink's Spark linker (scorer), with the comparisons, blocking
rules and threshold of derived.identity (their DuckDB SQL transpiled by .sql), the parameters derived.identity
trains or keeps, and the term frequencies it would use.

What runs where, and why: the candidate pairs grow with the data (the part a cluster is for), so they are
blocked and scored on Spark. Training stays where the DuckDB engine does it, on a sample bounded by
``Model.train_records`` whatever the data's size: Splink estimates u from *random* pairs, and the two engines
draw different ones (DEPENDENCY_NOTES: 23,160 against 23,189 clusters at 50k records), so a model trained on each
would link differently; one model, scored on both, links the same records. Pass 1 (derived.identity.VALUES_SQL, the
records sharing a phone, an email, an ID number or a customer) and its clusters run on Spark: label propagation over
the shared values, a written table per round (SparkGraph._propagated), names each cluster by its smallest record as
Splink's connected components (``cluster_pairwise_predictions_at_threshold``) do, derived.identity by scipy's
numbering, and only who is in a cluster makes its key. The accepted pairs and the merge
overrides then join whole pass-1 clusters: their components over those few clusters are found on the driver, which
holds the pairs and one pass-1 cluster per record already (SparkGraph._clusters; Splink's components again only
where a record is detached from its pass-1 cluster). Still on the driver: the per-record arrays the links are made
from, and a split override's re-clustering of the few clusters it cuts.

Splink's SparkAPI needs a classic SparkSession (it registers its Java functions through the JVM gateway and
checkpoints through the SparkContext): the engine's session (.session) is one; the Spark Connect packages of
the spark extra are only installed, not used.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from dashboard.core.config import Settings
from dashboard.core.duck import empty_select, quote_path
from dashboard.core.store import Manifest, Store
from dashboard.derived.identity import (
    _CUSTOMERS_SQL,
    _LEADS_SQL,
    _REFS_SQL,
    CANDIDATES,
    DETACHED_HUBS_SQL,
    FEATURE_COLUMNS,
    LINK_COLUMNS,
    NODE_COLUMNS,
    RULE_NAMES,
    RULES_SQL,
    VALUES_SQL,
    Graph,
    Model,
    Overrides,
    Records,
    Scorer,
    _components,
    prepare_part,
    recluster,
    row_features,
    salted_keys,
    settle_clashes,
    state_hashes,
    undetached,
)
from dashboard.derived.spark.jobs import (
    PARTS,
    gathered,
    join_parts,
    read_parquet,
    register_entities,
    run_job,
    run_to_parquet,
    shared_uri,
    spark_query,
)
from dashboard.derived.spark.session import run_within
from dashboard.derived.spark.sql import to_spark, to_spark_condition

# as derived.identity's DuckDB scoring makes it (_predict_with)
_TF_SQL = (
    "SELECT name, CAST(count(*) AS DOUBLE) / :total AS tf_name FROM identity_records "
    "WHERE name IS NOT NULL GROUP BY name"
)
PAIRS = pl.Schema({"node_l": pl.Int64, "node_r": pl.Int64, "match_probability": pl.Float64})
# the rows of one partition of Splink's tables (splink_api): its predictions' (the pairs scored), each
# rule's blocked pairs a sixth and the records with their term frequencies a quarter as many partitions
ROWS_PER_PARTITION = 250_000


class _KnownSchema:
    """The session as Splink's lineage breaking sees it (splink_api): the Parquet it writes is read back in the
    schema of the frame written, where Splink's own read has Spark run a job to read a footer, one per table."""

    def __init__(self, spark: Any, schema: Any) -> None:
        self._spark, self._schema = spark, schema

    def __getattr__(self, name: str) -> Any:
        return getattr(self._spark, name)

    @property
    def read(self) -> Any:
        return self._spark.read.schema(self._schema)


@functools.cache
def _splink_api() -> type:
    from splink import SparkAPI

    class KnownSchemaAPI(SparkAPI):
        def _break_lineage_and_repartition(self, spark_df: Any, templated_name: str, physical_name: str) -> Any:
            spark, self.spark = self.spark, _KnownSchema(self.spark, spark_df.schema)
            try:
                return super()._break_lineage_and_repartition(spark_df, templated_name, physical_name)
            finally:
                self.spark = spark

    return KnownSchemaAPI


def splink_api(spark: Any, rows: int) -> Any:
    """Splink's SparkAPI (splink 5.0.0) for tables of about ``rows`` records. Its intermediate tables break their
    lineage as Splink's default does off Databricks, written as Parquet into the checkpoint folder (on the shared
    storage: a lost executor loses none of them; "persist" and "checkpoint" each started more jobs on the small
    demo, a cached table or a checkpoint's write being a job of its own), and are read back in the schema they
    were written with (_KnownSchema). They are repartitioned into ``rows`` / ROWS_PER_PARTITION partitions (at
    least one) rather than Splink's half of spark.sql.shuffle.partitions: on a cluster's default of 200 that is
    100 tasks and files for each of the demo's few thousand predictions, and too few for 100M records."""
    parts = max(1, math.ceil(rows / ROWS_PER_PARTITION))
    return _splink_api()(spark_session=spark, num_partitions_on_repartition=parts)


# what the executors make of each record (_record_part): pass 1's columns, the features each record makes alone,
# its state hashes (UInt64 in Polars, their bits as Spark's signed BIGINT)
_PART_COLUMNS: dict[str, str] = {
    **{c: "bigint" if c == "node" else "string" for c in NODE_COLUMNS},
    "uid": "string",
    "ref": "string",
    **{c: "string" for c in ("name", "phone10", "email_key", "company", "city", "region", "name_py", "phone7")},
    "name_bucket": "bigint",
    "digest": "bigint",
    "name_hash": "bigint",
}
# what a record's part needs of RECORDS_SQL's columns (the others are the golden record's)
_RECORD_INPUTS = (
    "source_system", "source_record_id", "record_kind", "phone", "email", "id_number", "customer_ref",
    "phone_invalid", "email_invalid", "name", "company", "city", "region",
)  # fmt: skip
# the driver keeps of each record what its state is made from (its key is made on Spark: SparkGraph.links)
_KEY_COLUMNS = ("node", "source_system", "source_record_id", "record_kind", "digest", "name_hash")


def record_part(records: pl.DataFrame) -> pl.DataFrame:
    """Numbered records (``node`` and _RECORD_INPUTS) → _PART_COLUMNS: derived.identity's own functions, record by
    record (prepare_part, row_features, state_hashes), so a part gives what the whole frame gives on the driver."""
    recs = prepare_part(records)
    feats = row_features(recs)
    hashes = state_hashes(feats).select(pl.all().reinterpret(signed=True))
    out = pl.concat([recs.select(*NODE_COLUMNS, "uid", "ref"), feats.drop("unique_id", "phone", "email"), hashes],
                    how="horizontal")  # fmt: skip
    return out.select(list(_PART_COLUMNS))


def _record_batches(offsets: dict[int, int], batches: Iterator[Any]) -> Iterator[Any]:
    """On an executor (mapInArrow): a partition of the records in uid order, numbered from its offset."""
    import pyarrow as pa
    from pyspark import TaskContext

    context = TaskContext.get()
    start = offsets.get(context.partitionId(), 0) if context is not None else 0
    schema = pa.schema([(c, pa.int64() if t == "bigint" else pa.string()) for c, t in _PART_COLUMNS.items()])
    for batch in batches:
        part = pl.from_arrow(batch)
        assert isinstance(part, pl.DataFrame)
        numbered = part.with_columns(pl.int_range(start, start + part.height, dtype=pl.Int64).alias("node"))
        start += part.height
        yield from record_part(numbered).to_arrow().cast(schema).to_batches()


_DIGEST = ("rows", "h1_sum", "h2_sum", "h1_xor")  # SparkInput.digest's figures after the columns and types


def _digest_figures(columns: list[str]) -> list[Any]:
    """SparkInput.digest's figures (_DIGEST) of rows with ``columns``, as aggregates Spark can observe."""
    from pyspark.sql import functions as F

    cells = [x for c in columns for x in (F.isnull(c), F.col(c))]
    h1, h2 = F.xxhash64(*cells), F.xxhash64(F.lit("identity"), *cells)
    made = (
        F.count(F.lit(1)),
        F.sum(h1.cast("decimal(38,0)")).cast("string"),
        F.sum(h2.cast("decimal(38,0)")).cast("string"),
        F.bit_xor(h1),
    )
    return [m.alias(name) for m, name in zip(made, _DIGEST, strict=True)]


class SparkInput:
    """Identity's records (RECORDS_SQL's rows: each customer and lead record's latest row, and the customers known
    only by reference) made by Spark from the snapshots' Parquet (its statements transpiled) and written once per
    build as Parquet beside ``stage``'s Spark folder (which the steps between identity and golden records empty),
    when first asked for: what the build fingerprints identity by (digest), SparkRecords makes the features of,
    and golden records read (derived.spark.steps), none of them on the driver. Removed on close."""

    def __init__(self, spark: Any, settings: Settings, store: Store, manifest: Manifest, stage: Path) -> None:
        self.spark, self.settings, self.store, self.manifest, self.stage = spark, settings, store, manifest, stage
        self.folder = stage / f"{PARTS}_identity_input"
        self.written = False
        self.schema: Any = None  # the records' Spark schema, as written
        self.made: tuple[object, ...] = ()  # their digest, observed while they were written

    def path(self) -> Path:
        """The records' Parquet folder (written the first time, or again if it was removed meanwhile), and their
        digest made by the same Spark job (an observation of the rows it writes)."""
        if not (self.written and self.folder.is_dir()):

            def work() -> None:
                from pyspark.sql import Observation

                register_entities(self.spark, self.settings, self.store, self.manifest)
                records, seen = self._records(), Observation("identity_input")
                hashed = records.drop("snapshot_id")
                figures = _digest_figures(hashed.columns)
                records.observe(seen, *figures).write.mode("overwrite").parquet(shared_uri(self.settings, self.folder))
                got = seen.get
                self.schema, self.made = records.schema, (tuple(map(tuple, hashed.dtypes)), *(got[f] for f in _DIGEST))

            run_job(self.spark, self.settings, "identity_links", work)
            self.written = True
        return self.folder

    def frame(self) -> Any:
        """The records as a Spark frame (read from their Parquet, in the schema they were written with)."""
        folder = self.path()
        return read_parquet(self.spark, self.settings, folder, self.schema)

    def _records(self) -> Any:
        """RECORDS_SQL's rows, in its columns (read_records on the driver)."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        def latest(sql: str) -> Any:
            rows = self.spark.sql(to_spark(sql))
            order = Window.partitionBy("source_system", "source_record_id").orderBy(F.col("seen_at").desc_nulls_last())
            return rows.withColumn("_n", F.row_number().over(order)).where("_n = 1").drop("_n")

        parts = [latest(_CUSTOMERS_SQL), self.spark.sql(to_spark(_REFS_SQL)), latest(_LEADS_SQL)]
        types = dict(parts[0].dtypes)
        typed = [
            df.select([(F.col(c) if c in df.columns else F.lit(None)).cast(t).alias(c) for c, t in types.items()])
            for df in parts
        ]
        return typed[0].unionByName(typed[1]).unionByName(typed[2])

    def digest(self) -> tuple[object, ...]:
        """What identity's step is keyed by (derive.py): the records without their snapshot ids, in any order —
        their columns and types, count, and sums and an exclusive or of two 64-bit hashes of every row (each
        column with whether it is null: Spark's hashes skip nulls) — made by the job that writes the records
        (path): no Spark job of its own."""
        self.path()
        return self.made

    def unknown(self, sql: str, refs: pl.DataFrame) -> int:
        """How many of ``refs`` (source_system, customer_ref: the references of the rows changed since the current
        build) name no customer record of their source: ``sql``, the DuckDB engine's statement over the view
        identity_changed_refs and the snapshots' customers (derive._same_records), as a Spark job; ``refs`` go to
        Spark as Parquet, no record comes to the driver."""
        register_entities(self.spark, self.settings, self.store, self.manifest)
        folder = self.stage / f"{PARTS}_changed_refs"
        views = {"identity_changed_refs": refs}
        return int(gathered(self.spark, self.settings, folder, "identity_links", to_spark(sql), views).item())

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class SparkRecords(Records):
    """derived.identity's records and features made on Spark from the records SparkInput writes (derived.identity's
    Polars functions on every part with mapInArrow), written as Parquet in ``stage``'s Spark folder, where pass 1
    (SparkGraph), the training sample and Splink's Spark linker (scorer) read them. The driver gets back only what
    the records' state is made from (_KEY_COLUMNS): no record's attributes, no feature. Records are numbered in uid
    order, as derived.identity numbers them. ``source``: the build's records (None: written here, removed after)."""

    def __init__(
        self,
        spark: Any,
        settings: Settings,
        store: Store,
        manifest: Manifest,
        stage: Path,
        source: SparkInput | None = None,
    ) -> None:
        self.spark, self.settings = spark, settings
        self.folder = stage / PARTS / "identity_records"
        self.stage = stage
        self.own = SparkInput(spark, settings, store, manifest, stage) if source is None else None
        records = source or self.own
        assert records is not None
        self.source = records
        run_job(spark, settings, "identity_links", lambda: self._write_parts(self._records()))
        files = sorted((self.folder / "records").glob("*.parquet"))
        schema = pl.Schema({c: pl.Int64 if _PART_COLUMNS[c] == "bigint" else pl.String for c in _KEY_COLUMNS})
        keys = pl.read_parquet(files, columns=list(_KEY_COLUMNS)) if files else pl.DataFrame(schema=schema)
        self.recs = keys.sort("node").with_columns(pl.col("digest", "name_hash").reinterpret(signed=False))

    def _uri(self, name: str) -> str:
        return shared_uri(self.settings, self.folder / name)

    def _records(self) -> Any:
        """What a record's part needs of the build's records (_RECORD_INPUTS), as text."""
        from pyspark.sql import functions as F

        return self.source.frame().select([F.col(c).cast("string").alias(c) for c in _RECORD_INPUTS])

    def _write_parts(self, records: Any) -> None:
        """The records in uid order (node 0..n-1 across the partitions: each numbered from the rows before it),
        each part through record_part, as Parquet; the view identity_nodes (pass 1's input) over it."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        uid = F.concat_ws(":", "record_kind", "source_system", "source_record_id")
        parts = int(self.spark.conf.get("spark.sql.shuffle.partitions", "200"))
        ordered = (
            records.withColumn("_uid", uid)
            .repartitionByRange(parts, "_uid")
            .sortWithinPartitions("_uid")
            .drop("_uid")
            .persist(StorageLevel.MEMORY_AND_DISK)
        )
        try:
            sizes = dict(ordered.groupBy(F.spark_partition_id()).count().collect())
            offsets, start = {}, 0
            for part in sorted(sizes):
                offsets[part], start = start, start + sizes[part]
            schema = ", ".join(f"{c} {t}" for c, t in _PART_COLUMNS.items())
            made = ordered.mapInArrow(functools.partial(_record_batches, offsets), schema)
            made.write.mode("overwrite").parquet(self._uri("records"))
        finally:
            ordered.unpersist()
        made_records = read_parquet(self.spark, self.settings, self.folder / "records", schema)
        made_records.createOrReplaceTempView("identity_records_made")
        self.spark.sql(f"SELECT {', '.join(NODE_COLUMNS)} FROM identity_records_made").createOrReplaceTempView(
            "identity_nodes"
        )

    def nodes(self) -> pl.DataFrame | None:
        return None  # on Spark already (identity_nodes)

    def features(self, exact: np.ndarray) -> pl.DataFrame:
        """Pass 2's features (FEATURE_COLUMNS) written on Spark, with pass 1's clusters SparkGraph found there (the
        view identity_exact) and each name's count; the driver gets unique_id, ex, named and the state hashes."""
        cols = ", ".join("COALESCE(e.cluster, f.node) AS ex" if c == "ex" else _FEATURE_SQL.get(c, f"f.{c}")
                         for c in FEATURE_COLUMNS)  # fmt: skip

        def work() -> None:
            sql = f"SELECT {cols} FROM identity_records_made AS f LEFT JOIN identity_exact AS e ON e.node = f.node"
            made = self.spark.sql(sql)
            made.write.mode("overwrite").parquet(self._uri("features"))
            read_parquet(self.spark, self.settings, self.folder / "features", made.schema).createOrReplaceTempView(
                FEATURES_VIEW
            )

        run_job(self.spark, self.settings, "identity_links", work)
        return self.recs.select(
            pl.col("node").alias("unique_id"),
            pl.Series("ex", exact, dtype=pl.Int64),
            pl.col("name_hash").is_not_null().alias("named"),
            "digest",
            "name_hash",
        )

    def sample(self, k: int) -> pl.DataFrame:
        """The training sample (derived.identity.Sampler), pulled from the features on Spark."""
        from pyspark.sql import functions as F

        out: list[pl.DataFrame] = []

        def work() -> None:
            rows = self.spark.table(FEATURES_VIEW).where(F.col("name").isNotNull() & (F.col("name_bucket") % k == 0))
            got = pl.from_arrow(rows.orderBy("unique_id").toArrow())
            assert isinstance(got, pl.DataFrame)
            out.append(got)

        run_job(self.spark, self.settings, "identity_links", work)
        return out[0].cast({"unique_id": pl.Int64, "ex": pl.Int64, "name_n": pl.Int32, "name_bucket": pl.Int64})

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.own is not None:
            self.own.close()
        with contextlib.suppress(OSError):  # the build's Spark folder, when no other step uses it
            (self.stage / PARTS).rmdir()


FEATURES_VIEW = "identity_features_made"  # SparkRecords' features: what the scorer scores when they are on Spark
_FEATURE_SQL = {
    "unique_id": "f.node AS unique_id",
    "name_n": "CAST(count(*) OVER (PARTITION BY f.name) AS INT) AS name_n",
}


def spark_model(trained: dict[str, Any]) -> dict[str, Any]:
    """A trained model (Splink's JSON, DuckDB SQL) for Splink's Spark linker: every comparison level's and
    blocking rule's condition transpiled, every probability as trained."""
    out = copy.deepcopy(trained)
    out.pop("sql_dialect", None)
    for comparison in out["comparisons"]:
        for level in comparison["comparison_levels"]:
            level["sql_condition"] = to_spark_condition(level["sql_condition"])
    rules = []
    for rule in out["blocking_rules_to_generate_predictions"]:
        spec = {"blocking_rule": rule} if isinstance(rule, str) else dict(rule)
        spec.pop("sql_dialect", None)
        spec["blocking_rule"] = to_spark_condition(spec["blocking_rule"])
        rules.append(spec)
    out["blocking_rules_to_generate_predictions"] = rules
    return out


def scorer(spark: Any, settings: Settings, stage: Path) -> Scorer:
    """derived.identity's Scorer on ``spark``: the features go to ``stage``'s Spark folder on the shared
    storage, Splink's intermediate tables into a checkpoint folder beside them; both are removed after."""

    def score(feats: pl.DataFrame, trained: dict[str, Any], model: Model) -> pl.DataFrame:
        folder = stage / PARTS / "identity"
        folder.mkdir(parents=True, exist_ok=True)
        made = "name" not in feats.columns  # features made on Spark (SparkRecords): only flags go out from here
        if not made:
            feats.write_parquet(folder / "features.parquet")
        elif "dirty" in feats.columns:  # what only a changed record's pairs are scored by (identity._restrict)
            feats.select("unique_id", "dirty", "name_dirty").write_parquet(folder / "flags.parquet")
        pairs = folder / "pairs"
        limit = settings.engine.job_timeout_seconds
        late = f"the Spark job for identity_links ran past {limit:g} s ([engine] job_timeout_seconds) and was cancelled"

        def work() -> None:
            from splink import Linker

            spark.sparkContext.setCheckpointDir(shared_uri(settings, folder / "checkpoints"))
            if not made:
                records = read_parquet(spark, settings, folder / "features.parquet")
            elif "dirty" in feats.columns:
                flags = read_parquet(spark, settings, folder / "flags.parquet")
                records = spark.table(FEATURES_VIEW).join(flags, "unique_id")
            else:
                records = spark.table(FEATURES_VIEW)
            records = records.where(CANDIDATES)
            records.createOrReplaceTempView("identity_records")
            db = splink_api(spark, feats.height)  # registers the jar's jaro_winkler (spark.jars: .session)
            linker = Linker(db.register("identity_records"), spark_model(trained), log_level=None)
            if model.tf_total:  # a name's frequency over the named records the parameters were made with
                tf = spark.sql(_TF_SQL, args={"total": model.tf_total})
                tf.createOrReplaceTempView("identity_tf_name")
                linker.table_management.register_term_frequency_lookup(db.register("identity_tf_name"), "name")
            scored = linker.inference.predict(threshold_match_probability=model.threshold, warning_mode="never")
            scored.as_spark_dataframe().selectExpr(
                "CAST(unique_id_l AS BIGINT) AS node_l", "CAST(unique_id_r AS BIGINT) AS node_r", "match_probability"
            ).write.mode("overwrite").parquet(shared_uri(settings, pairs))

        try:
            run_within(spark, work, limit, late, "the Spark job for identity_links failed")
            files = sorted(pairs.glob("*.parquet"))
            out = pl.read_parquet(files).select(list(PAIRS)).cast(PAIRS) if files else pl.DataFrame(schema=PAIRS)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):  # the build's Spark folder, when no other step uses it
                (stage / PARTS).rmdir()
        return out

    return score


# a round of pass 1's label propagation (SparkGraph._propagated): each value its records' smallest label, each
# record its values' smallest
_ROUND_SQL = """
WITH g AS (
    SELECT v.value, min(l.label) AS label FROM identity_values AS v JOIN {labels} AS l ON l.node = v.node
    GROUP BY v.value
)
SELECT v.node, min(g.label) AS label FROM identity_values AS v JOIN g ON g.value = v.value GROUP BY v.node
"""
_PREVIOUS = {"source_system": pl.String, "source_record_id": pl.String, "customer_key": pl.String}
# Graph.links on Spark, as derived.identity makes them on the driver (_finish, assign_keys; tests/test_spark_identity
# pins both to the same links). Each record: its cluster (a split override's new one first), pass-1 cluster, rule
# bits, id (uid) and source reference (ref), and whether a merge override names it ({forced}).
_COMPONENTS_SQL = """
SELECT n.node, n.source_system, n.source_record_id, n.record_kind,
       concat(n.record_kind, ':', n.source_system, ':', n.source_record_id) AS uid,
       concat(n.source_system, ':', n.source_record_id) AS ref,
       coalesce(s.cluster, c.cluster, n.node) AS component, coalesce(e.cluster, n.node) AS ex,
       r.rule, {forced} AS forced
FROM identity_nodes AS n
LEFT JOIN identity_clusters AS c ON c.node = n.node
LEFT JOIN identity_split AS s ON s.node = n.node
LEFT JOIN identity_exact AS e ON e.node = n.node
LEFT JOIN identity_rules AS r ON r.node = n.node
"""
_ANCHORS = "SELECT component, min(uid) AS anchor FROM identity_components GROUP BY component"
_KEYS_SQL = {
    # each previous key to the component holding most of its records (ties: the smallest anchor), then each
    # component its best key (most records, then the smallest key)
    "claimed": f"""
WITH votes AS (
    SELECT c.component, p.customer_key, count(*) AS n FROM identity_components AS c
    JOIN identity_previous AS p ON p.ref = c.ref GROUP BY c.component, p.customer_key
), by_key AS (
    SELECT v.*, row_number() OVER (PARTITION BY v.customer_key ORDER BY v.n DESC, a.anchor) AS k
    FROM votes AS v JOIN ({_ANCHORS}) AS a ON a.component = v.component
)
SELECT component, customer_key FROM (
    SELECT component, customer_key, row_number() OVER (PARTITION BY component ORDER BY n DESC, customer_key) AS k
    FROM by_key WHERE k = 1
) WHERE k = 1
""",
    # the others: 'C' + 12 hex digits of md5 of the smallest record id; clash: another has that key
    "fresh": f"""
SELECT f.*, (c.customer_key IS NOT NULL OR count(*) OVER (PARTITION BY f.customer_key) > 1) AS clash
FROM (
    SELECT a.component, a.anchor, concat('C', substring(md5(a.anchor), 1, 12)) AS customer_key
    FROM ({_ANCHORS}) AS a LEFT ANTI JOIN identity_claimed AS k ON k.component = a.component
) AS f
LEFT JOIN (SELECT DISTINCT customer_key FROM identity_claimed) AS c ON c.customer_key = f.customer_key
""",
}
_RULE_CASE = " ".join(f"WHEN {mask} THEN '{name}'" for mask, name in RULE_NAMES.items())
# every record's key, rule and confidence (the best surviving pair's probability of its pass-1 cluster, floored)
_LINKS_SQL = f"""
WITH keys AS (
    SELECT component, customer_key FROM identity_claimed
    UNION ALL SELECT component, customer_key FROM identity_fresh WHERE NOT clash
    UNION ALL SELECT component, customer_key FROM identity_settled
), sizes AS (
    SELECT component, count(*) AS members, count(DISTINCT ex) AS exact_clusters
    FROM identity_components GROUP BY component
), kept AS (
    SELECT l.ex AS ex_l, r.ex AS ex_r, p.match_probability AS p FROM identity_scored AS p
    JOIN identity_components AS l ON l.node = p.node_l JOIN identity_components AS r ON r.node = p.node_r
    WHERE l.component = r.component
), best AS (
    SELECT ex, max(p) AS p FROM (SELECT ex_l AS ex, p FROM kept UNION ALL SELECT ex_r AS ex, p FROM kept) GROUP BY ex
), figures AS (
    SELECT c.source_system, c.source_record_id, c.record_kind, k.customer_key, c.forced, s.members,
           s.exact_clusters, CASE WHEN c.rule <> 0 THEN c.rule END AS rule, b.p
    FROM identity_components AS c JOIN keys AS k ON k.component = c.component
    JOIN sizes AS s ON s.component = c.component LEFT JOIN best AS b ON b.ex = c.ex
)
SELECT source_system, source_record_id, record_kind, customer_key,
       CASE WHEN members = 1 THEN 'single' WHEN forced THEN 'override'
            WHEN rule IS NOT NULL THEN CASE rule {_RULE_CASE} ELSE 'exact' END
            WHEN p IS NOT NULL THEN 'probabilistic' ELSE 'override' END AS match_rule,
       FLOOR(CASE WHEN exact_clusters = 1 OR forced THEN 1.0D ELSE coalesce(p, 1.0D) END * 10000.0D) / 10000.0D
           AS confidence
FROM figures ORDER BY customer_key, source_system, source_record_id
"""


@dataclasses.dataclass(frozen=True)
class Written:
    """What SparkGraph.links wrote into the build's identity_links.parquet, counted by the Spark jobs that wrote
    it: its rows (records) and its keys (customers)."""

    rows: int
    keys: int


def current_file(store: Store, manifest: Manifest, table: str) -> Path | None:
    """The file of ``table`` in the current build (the one the new build replaces), or None when it has none."""
    rel = ((manifest.get("derived") or {}).get("tables") or {}).get(table)
    path = store.abs(rel) if rel else None
    return path if path is not None and path.is_file() else None


_REDIRECT_COLUMNS = {"old_key": "VARCHAR", "customer_key": "VARCHAR", "merged_at": "TIMESTAMP"}
# derived.identity.redirects as one statement (DuckDB dialect; transpiled for Spark): the keys of the previous build
# (redirect_previous) that no record has now (redirect_links) point to the key most of their records have now
# (ties: the smaller key), merged at $now; the earlier redirects (redirect_earlier) re-pointed where their target
# went, dropped where their target or their own key is a customer now. tests/test_spark_driver.py pins it to
# derived.identity.redirects.
REDIRECTS_SQL = """
WITH keys AS (
    SELECT DISTINCT customer_key FROM redirect_links
), gone AS (
    SELECT p.customer_key AS old_key, p.source_system, p.source_record_id FROM redirect_previous AS p
    LEFT JOIN keys AS k ON k.customer_key = p.customer_key
    WHERE p.customer_key IS NOT NULL AND k.customer_key IS NULL
), votes AS (
    SELECT g.old_key, c.customer_key, count(*) AS n FROM gone AS g
    JOIN redirect_links AS c ON c.source_system = g.source_system AND c.source_record_id = g.source_record_id
    GROUP BY g.old_key, c.customer_key
), moved AS (
    SELECT old_key, customer_key, $now AS merged_at FROM (
        SELECT old_key, customer_key, row_number() OVER (PARTITION BY old_key ORDER BY n DESC, customer_key) AS k
        FROM votes
    ) WHERE k = 1
), kept AS (
    SELECT e.old_key, coalesce(m.customer_key, e.customer_key) AS customer_key, e.merged_at
    FROM redirect_earlier AS e LEFT JOIN moved AS m ON m.old_key = e.customer_key
), both_ AS (
    SELECT old_key, customer_key, merged_at FROM moved
    UNION ALL
    SELECT t.old_key, t.customer_key, t.merged_at FROM kept AS t
    JOIN keys AS k ON k.customer_key = t.customer_key
    LEFT JOIN moved AS m ON m.old_key = t.old_key
    WHERE m.old_key IS NULL
)
SELECT b.old_key, b.customer_key, b.merged_at FROM both_ AS b
LEFT JOIN keys AS k ON k.customer_key = b.old_key
WHERE b.old_key IS NOT NULL AND k.customer_key IS NULL
ORDER BY b.old_key, b.customer_key, b.merged_at
"""


def write_redirects(
    spark: Any,
    con: Any,
    settings: Settings,
    stage: Path,
    previous: Path | None,
    earlier: Path | None,
    now: datetime,
) -> None:
    """The build's customer_redirects.parquet (derived.identity.redirects) by Spark (REDIRECTS_SQL) from the
    build's identity_links.parquet in ``stage``, the current build's links (``previous``) and redirects
    (``earlier``) files: the driver reads none of the links, only the redirects Spark hands back to be written.
    With neither (no build before this one) no key went and none is kept: the file is written empty, no Spark job."""
    table = "customer_redirects"
    if previous is None and earlier is None:
        target = quote_path(stage / f"{table}.parquet")
        con.execute(f"COPY ({empty_select(_REDIRECT_COLUMNS)}) TO {target} (FORMAT parquet, COMPRESSION zstd)")
        return
    empty = {
        "redirect_previous": "source_system string, source_record_id string, customer_key string",
        "redirect_earlier": "old_key string, customer_key string, merged_at timestamp_ntz",
    }

    def views() -> None:
        read_parquet(spark, settings, stage / "identity_links.parquet").createOrReplaceTempView("redirect_links")
        for view, path in (("redirect_previous", previous), ("redirect_earlier", earlier)):
            made = read_parquet(spark, settings, path) if path is not None else spark.createDataFrame([], empty[view])
            made.createOrReplaceTempView(view)

    run_job(spark, settings, table, views)
    run_to_parquet(spark, con, settings, REDIRECTS_SQL, table, _REDIRECT_COLUMNS, stage, args={"now": now})
    with contextlib.suppress(OSError):  # the build's Spark folder, when no other step uses it
        (stage / PARTS).rmdir()


def _joined(exact: np.ndarray, pairs: pl.DataFrame, merge: list[tuple[int, int]]) -> pl.DataFrame:
    """The pass-1 clusters (``exact``: each record's, named by its smallest record) that ``pairs`` (node_l, node_r)
    and ``merge`` join to another: (ex, cluster), each named by the smallest pass-1 cluster of its component, which
    is the smallest record of all its records, as Splink's components over the records name it."""
    m = np.array(merge, dtype=np.int64).reshape(-1, 2)
    left = exact[np.concatenate([pairs["node_l"].to_numpy(), m[:, 0]]).astype(np.int64)]
    right = exact[np.concatenate([pairs["node_r"].to_numpy(), m[:, 1]]).astype(np.int64)]
    apart = left != right
    left, right = left[apart], right[apart]
    ids = np.unique(np.concatenate([left, right]))
    labels = _components(len(ids), [(np.searchsorted(ids, left), np.searchsorted(ids, right))])
    smallest = np.full(len(ids), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, labels, ids)
    return pl.DataFrame({"ex": ids, "cluster": smallest[labels]}, schema={"ex": pl.Int64, "cluster": pl.Int64})


class SparkGraph(Graph):
    """derived.identity's Graph on ``spark``: pass 1's values (VALUES_SQL) and the clusters as Spark jobs, their
    files in ``stage``'s Spark folder on the shared storage (removed on close); the driver gets one cluster
    number and one rule mask per record back. ``previous``: the current build's identity_links file, whose keys
    Spark reads for the vote (None: the frame links() is given, if any). ``target``: where links() has Spark write
    the links (the build's identity_links.parquet): the driver then gets their counts (written), not their rows."""

    def __init__(
        self, spark: Any, settings: Settings, stage: Path, previous: Path | None = None, target: Path | None = None
    ) -> None:
        self.spark, self.settings, self.stage = spark, settings, stage
        self.folder = stage / PARTS / "identity_graph"
        self.n = 0
        self.previous, self.target = previous, target
        self.written: Written | None = None  # what links() wrote into ``target``
        self.rounds = 0  # pass 1's rounds of label propagation

    def _uri(self, name: str) -> str:
        return shared_uri(self.settings, self.folder / name)

    def _per_node(self, name: str, column: str, dtype: type[np.generic]) -> np.ndarray:
        """``column`` of the part files ``name`` by node: an array of one value per record (0 where none)."""
        out = np.zeros(self.n, dtype=dtype)
        files = sorted((self.folder / name).glob("*.parquet"))
        if files:
            rows = pl.read_parquet(files, columns=["node", column])
            out[rows["node"].to_numpy()] = rows[column].to_numpy()
        return out

    def _components(self, edges_sql: str, out: str, rows: int) -> None:
        """Splink's connected components on Spark over the records (identity_nodes) and ``edges_sql``'s (node_l,
        node_r; about ``rows``): each record's cluster, named by its smallest node, as part files ``out`` and the
        view of it."""
        from splink.clustering import cluster_pairwise_predictions_at_threshold

        self.spark.sparkContext.setCheckpointDir(self._uri("checkpoints"))
        self.spark.sql(edges_sql).createOrReplaceTempView("identity_edges")
        db = splink_api(self.spark, rows)
        clusters = cluster_pairwise_predictions_at_threshold(
            db.register("identity_nodes"), db.register("identity_edges"), db, "node", "node_l", "node_r"
        )
        clusters.as_spark_dataframe().selectExpr(
            "CAST(node AS BIGINT) AS node", "CAST(cluster_id AS BIGINT) AS cluster"
        ).write.mode("overwrite").parquet(self._uri(out))
        clustered = read_parquet(self.spark, self.settings, self.folder / out, "node bigint, cluster bigint")
        clustered.createOrReplaceTempView(f"identity_{out}")

    def exact(self, nodes: pl.DataFrame | None) -> np.ndarray:
        """Pass 1 on Spark: the shared values written (the clusters, the split overrides' members and the keys
        read them), each record's rule bits a view over them (read once, by the keys' plan), the clusters."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if nodes is not None:
            nodes.write_parquet(self.folder / "nodes.parquet")

        def work() -> None:
            if nodes is not None:
                read_parquet(self.spark, self.settings, self.folder / "nodes.parquet").createOrReplaceTempView(
                    "identity_nodes"
                )
            values = self.spark.sql(to_spark(VALUES_SQL))
            values.write.mode("overwrite").parquet(self._uri("values"))
            read_parquet(self.spark, self.settings, self.folder / "values", values.schema).createOrReplaceTempView(
                "identity_values"
            )
            self.spark.sql(to_spark(RULES_SQL)).createOrReplaceTempView("identity_rules")
            self._propagated("exact")

        run_job(self.spark, self.settings, "identity_links", work)
        # every record has its cluster (a record sharing no value its own): their number
        self.n = nodes.height if nodes is not None else self._rows("exact")
        return self._per_node("exact", "cluster", np.int64)

    def _propagated(self, out: str) -> None:
        """Pass 1's clusters on Spark by label propagation over the shared values (identity_values), one table
        written per round: each record starts at the smallest hub of its values (each value's smallest record);
        each round every value takes the smallest label of its records and every record the smallest of its
        values'; labels only fall, so a round whose labels' sum (observed by the job writing them) is the last
        round's changed none, and every record then has its cluster's smallest record, as Splink's connected
        components name it. A record sharing no value is its own cluster. Part files ``out`` and the view of it."""
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        def written(sql: str, name: str) -> Any:
            seen = Observation(f"identity_{name}")
            self._write(sql, name, seen=(seen, F.sum("label").alias("total")))
            return seen.get["total"]

        last = written("SELECT node, min(hub) AS label FROM identity_values GROUP BY node", "labels_0")
        rounds = 0
        while True:
            rounds += 1
            total = written(_ROUND_SQL.format(labels=f"identity_labels_{rounds - 1}"), f"labels_{rounds}")
            shutil.rmtree(self.folder / f"labels_{rounds - 1}", ignore_errors=True)  # read by this round only
            if total == last:
                break
            last = total
        self.rounds = rounds
        self._write(
            "SELECT n.node, coalesce(l.label, n.node) AS cluster FROM identity_nodes AS n "
            f"LEFT JOIN identity_labels_{rounds} AS l ON l.node = n.node",
            out,
        )
        shutil.rmtree(self.folder / f"labels_{rounds}", ignore_errors=True)

    def _rows(self, name: str) -> int:
        """The rows of the part files ``name``, from their footers (no Spark job)."""
        import pyarrow.parquet as pq

        return sum(pq.read_metadata(f).num_rows for f in (self.folder / name).glob("*.parquet"))

    def _clusters(
        self, exact: np.ndarray, pairs: pl.DataFrame, merge: list[tuple[int, int]], detach: list[int]
    ) -> None:
        """Each record's cluster (Graph.clusters) on Spark: the view identity_clusters. Pass 1's clusters are
        connected already (exact): with no record detached, the accepted pairs and the merges
        only join whole pass-1 clusters, so their components are found here over those few clusters (joined), and
        each record's cluster is a view over pass 1's; a detached record leaves its pass-1 cluster, whose
        members Splink's components on Spark connect again without it."""
        if not detach:
            joined = _joined(exact, pairs, merge)
            self._view(joined, "identity_joined")
            self.spark.sql(
                "SELECT e.node, coalesce(j.cluster, e.cluster) AS cluster FROM identity_exact AS e "
                "LEFT JOIN identity_joined AS j ON j.ex = e.cluster"
            ).createOrReplaceTempView("identity_clusters")
            return
        m = np.array(merge, dtype=np.int64).reshape(-1, 2)
        links = pl.concat(
            [
                undetached(pairs.select("node_l", "node_r"), detach),
                pl.DataFrame({"node_l": m[:, 0], "node_r": m[:, 1]}),
            ]
        )
        links.write_parquet(self.folder / "links.parquet")

        def work() -> None:
            read_parquet(self.spark, self.settings, self.folder / "links.parquet").createOrReplaceTempView(
                "identity_pairs"
            )
            self.spark.sql(*spark_query(DETACHED_HUBS_SQL, {"detach": detach})).createOrReplaceTempView(
                "identity_hubs"
            )  # the stars again without the detached records
            edges = "SELECT node AS node_l, hub AS node_r FROM identity_hubs WHERE node <> hub UNION ALL "
            self._components(edges + "SELECT node_l, node_r FROM identity_pairs", "clusters", self.n)

        run_job(self.spark, self.settings, "identity_links", work)

    def _pulled(self, sql: str, args: dict[str, Any] | None = None) -> pl.DataFrame:
        """A Spark query's (few) rows on the driver."""
        out: list[pl.DataFrame] = []

        def work() -> None:
            got = pl.from_arrow(self.spark.sql(sql, args).toArrow())
            assert isinstance(got, pl.DataFrame)
            out.append(got)

        run_job(self.spark, self.settings, "identity_links", work)
        return out[0]

    def _view(self, frame: pl.DataFrame, name: str) -> None:
        """A driver's frame as the Spark view ``name``: written as Parquet, read by Spark (no Python rows)."""
        path = self.folder / f"{name}.parquet"
        frame.write_parquet(path)
        run_job(
            self.spark,
            self.settings,
            "identity_links",
            lambda: read_parquet(self.spark, self.settings, path).createOrReplaceTempView(name),
        )

    def values_of(self, nodes: np.ndarray) -> pl.DataFrame:
        self._view(pl.DataFrame({"node": pl.Series(nodes, dtype=pl.Int64)}), "identity_members")
        return self._pulled(
            "SELECT v.node, v.value, v.rule FROM identity_values AS v JOIN identity_members USING (node)"
        ).cast({"node": pl.Int64, "rule": pl.Int32})

    def _split(self, pairs: pl.DataFrame, merge: list[tuple[int, int]], detach: list[int],
               apart: list[tuple[int, int]]) -> None:  # fmt: skip
        """The clusters a split override cuts made again (derived.identity.recluster) over their members, which
        Spark finds: the view identity_split (node, cluster: the members' new clusters, numbered from n on,
        past every cluster Splink names by its smallest record)."""
        new = pl.DataFrame(schema={"node": pl.Int64, "cluster": pl.Int64})
        ends = sorted({int(x) for pair in apart for x in pair})
        if ends:
            at = dict(
                self._pulled(
                    "SELECT node, cluster FROM identity_clusters WHERE array_contains(:ends, node)", {"ends": ends}
                ).iter_rows()
            )
            hit = sorted({at[a] for a, b in apart if at[a] == at[b]})
            if hit:
                members = self._pulled(
                    "SELECT node FROM identity_clusters WHERE array_contains(:hit, cluster) ORDER BY node",
                    {"hit": hit},
                )["node"].to_numpy()
                roots = recluster(members, self, pairs, merge, detach, apart, self.n)
                new = pl.DataFrame({"node": members, "cluster": self.n + roots}).cast(pl.Int64)
        self._view(new, "identity_split")

    def links(
        self,
        recs: pl.DataFrame,
        exact: np.ndarray,
        pairs: pl.DataFrame,
        overrides: Overrides,
        previous: pl.DataFrame | None,
    ) -> pl.DataFrame:
        """Graph.links on Spark: the clusters, a split override's members and their keys' votes there, written as
        Parquet (_LINKS_SQL); the driver holds per record only the links it reads back."""
        merge, apart, detach = overrides
        self._clusters(exact, pairs, merge, detach)
        self._split(pairs, merge, detach, apart)
        self._view(pairs.select(list(PAIRS)).cast(PAIRS), "identity_scored")
        self._previous_keys(previous)
        forced = sorted({int(x) for pair in merge for x in pair})
        clashes: list[int] = []  # how many fresh keys clash, counted by the job that writes them
        keys: list[int] = []  # the components (one key each): the keys claimed and the fresh ones, counted likewise

        def components() -> None:
            from pyspark.sql import Observation
            from pyspark.sql import functions as F

            sql = _COMPONENTS_SQL.format(forced="array_contains(:forced, n.node)" if forced else "false")
            self._write(sql, "components", {"forced": forced} if forced else None)
            claimed = Observation("identity_claimed")
            self._write(_KEYS_SQL["claimed"], "claimed", seen=(claimed, F.count(F.lit(1)).alias("rows")))
            seen = Observation("identity_fresh")
            counts = (F.count_if("clash").alias("clashes"), F.count(F.lit(1)).alias("rows"))
            self._write(_KEYS_SQL["fresh"], "fresh", seen=(seen, *counts))
            clashes.append(int(seen.get["clashes"]))
            keys.append(int(claimed.get["rows"]) + int(seen.get["rows"]))

        run_job(self.spark, self.settings, "identity_links", components)
        clash = (
            self._pulled("SELECT component, anchor, customer_key FROM identity_fresh WHERE clash ORDER BY anchor")
            if clashes[0]
            else pl.DataFrame(schema={"component": pl.Int64, "anchor": pl.String, "customer_key": pl.String})
        )  # mostly none: then no Spark job brings them here
        candidates = sorted({k for a in clash["anchor"] for k in salted_keys(a)})
        taken = self._pulled(
            "SELECT DISTINCT customer_key FROM identity_claimed WHERE array_contains(:keys, customer_key)",
            {"keys": candidates},
        ) if candidates else pl.DataFrame(schema={"customer_key": pl.String})  # fmt: skip
        settled = settle_clashes(clash.iter_rows(), set(taken["customer_key"].to_list()))
        self._view(pl.DataFrame(settled, schema={"component": pl.Int64, "customer_key": pl.String}, orient="row"),
                   "identity_settled")  # fmt: skip
        rows: list[int] = []

        def write() -> None:
            from pyspark.sql import Observation
            from pyspark.sql import functions as F

            seen = Observation("identity_links")
            count = (seen, F.count(F.lit(1)).alias("rows"))
            self._write(_LINKS_SQL, "links", view=False, seen=count, compression="zstd")  # zstd: the published file
            rows.append(int(seen.get["rows"]))

        run_job(self.spark, self.settings, "identity_links", write)
        schema = pl.Schema({c: pl.Float64 if c == "confidence" else pl.String for c in LINK_COLUMNS})
        if self.target is not None:  # the parts (in key order) joined as they are: no row comes here
            if not join_parts(self.spark, self.settings, "identity_links", self.folder / "links", self.target):
                pl.DataFrame(schema=schema).write_parquet(self.target)
            self.written = Written(rows[0], keys[0])
            return pl.DataFrame(schema=schema)
        files = sorted((self.folder / "links").glob("*.parquet"))  # in key order, part by part
        return pl.read_parquet(files).select(list(schema)).cast(schema) if files else pl.DataFrame(schema=schema)

    def _previous_keys(self, previous: pl.DataFrame | None) -> None:
        """The view identity_previous (ref, customer_key): the keys of the build this one replaces, from the frame
        ``previous`` or, without one, read by Spark from the file ``self.previous`` (none: no key to hand on)."""
        if previous is None and self.previous is not None:
            path = self.previous
            run_job(
                self.spark,
                self.settings,
                "identity_links",
                lambda: (
                    read_parquet(self.spark, self.settings, path)
                    .selectExpr("concat(source_system, ':', source_record_id) AS ref", "customer_key")
                    .createOrReplaceTempView("identity_previous")
                ),
            )
            return
        before = previous if previous is not None else pl.DataFrame(schema=_PREVIOUS)
        self._view(
            before.select((pl.col("source_system") + ":" + pl.col("source_record_id")).alias("ref"), "customer_key"),
            "identity_previous",
        )

    def _write(
        self,
        sql: str,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        view: bool = True,
        seen: tuple[Any, ...] = (),
        compression: str | None = None,
    ) -> None:
        """``sql`` (Spark SQL) written as the part files ``name`` (one Spark job) and, with ``view``, read back in
        the schema it was written with as the view identity_<name> (no job). ``seen``: an Observation and the
        aggregates the same job gives it of the rows it writes; ``compression``: other than Spark's default."""
        made = self.spark.sql(sql, args)
        writer = (made.observe(*seen) if seen else made).write.mode("overwrite")
        (writer.option("compression", compression) if compression else writer).parquet(self._uri(name))
        if view:
            read_parquet(self.spark, self.settings, self.folder / name, made.schema).createOrReplaceTempView(
                f"identity_{name}"
            )

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # the build's Spark folder, when no other step uses it
            (self.stage / PARTS).rmdir()
