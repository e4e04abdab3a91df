"""Identity resolution's pass 2 with [engine] kind = "spark": Splink's Spark linker scores the candidate pairs,
with the comparisons, blocking rules and threshold of derived.identity (their DuckDB SQL transpiled by .sql),
the parameters derived.identity trains or keeps, and the term frequencies it would use.

What runs where, and why: the candidate pairs grow with the data (the part a cluster is for), so they are
blocked and scored on Spark. Training stays where the DuckDB engine does it, on a sample bounded by
``Model.train_records`` whatever the data's size: Splink estimates u from *random* pairs, and the two engines
draw different ones (DEPENDENCY_NOTES: 23,160 against 23,189 clusters at 50k records), so a model trained on each
would link differently; one model, scored on both, links the same records. Pass 1, overrides and clustering stay
on the driver too (derived.identity.resolve: linear in the records, which the build reads there anyway).

Splink's SparkAPI needs a classic SparkSession (it registers its Java functions through the JVM gateway and
checkpoints through the SparkContext): the engine's session (.session) is one; the Spark Connect packages of
the spark extra are only installed, not used.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
from pathlib import Path
from typing import Any

import polars as pl

from dashboard.core.config import Settings
from dashboard.derived.identity import CANDIDATES, Model, Scorer
from dashboard.derived.spark.jobs import PARTS, shared_uri
from dashboard.derived.spark.session import run_within
from dashboard.derived.spark.sql import to_spark_condition

# as derived.identity's DuckDB scoring makes it (_predict_with)
_TF_SQL = (
    "SELECT name, CAST(count(*) AS DOUBLE) / :total AS tf_name FROM identity_records "
    "WHERE name IS NOT NULL GROUP BY name"
)
PAIRS = pl.Schema({"node_l": pl.Int64, "node_r": pl.Int64, "match_probability": pl.Float64})


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
        feats.write_parquet(folder / "features.parquet")
        pairs = folder / "pairs"
        limit = settings.engine.job_timeout_seconds
        late = f"the Spark job for identity_links ran past {limit:g} s ([engine] job_timeout_seconds) and was cancelled"

        def work() -> None:
            from splink import Linker, SparkAPI

            spark.sparkContext.setCheckpointDir(shared_uri(settings, folder / "checkpoints"))
            records = spark.read.parquet(shared_uri(settings, folder / "features.parquet")).where(CANDIDATES)
            records.createOrReplaceTempView("identity_records")
            db = SparkAPI(spark_session=spark)  # registers the jar's jaro_winkler (spark.jars: .session)
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
