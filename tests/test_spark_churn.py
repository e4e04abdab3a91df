"""Churn on the small demo with engine spark (local[2]) against engine duckdb: the features and labels of
every cutoff the backtest and the fit ask for, and today's, are made as Spark jobs and are DuckDB's (same
customers, values to 1e-9), and the published churn tables (scores, ranks, reasons, model card) are the same.
Also when a kept fit rescores everyone, as an incremental refresh does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.core.config import EngineConfig, Settings
from dashboard.core.duck import attach_entities, work_connection
from dashboard.core.store import Store
from dashboard.derived.churn import build as churn
from dashboard.derived.churn import features as churn_features
from dashboard.derived.spark import churn as spark_churn
from dashboard.derived.spark.jobs import PARTS
from tests.test_spark_steps import assert_same

pytestmark = pytest.mark.xdist_group("spark")

Asked = list[tuple[tuple[str, int, int], pl.DataFrame]]  # ((features | labels, cutoff day, horizon), frame)


def _on_spark(settings: Settings) -> Settings:
    return settings.model_copy(update={"engine": EngineConfig.model_validate({"kind": "spark", "master": "local[2]"})})


def _recording(asked: Asked, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cutoff's features and labels churn's run reads, in the order it reads them, kept in ``asked``."""
    for kind, name in (("features", "features_at"), ("labels", "active_at")):
        read = getattr(churn_features, name)

        def record(con: Any, t: int, horizon: int, kind: str = kind, read: Callable[..., pl.DataFrame] = read) -> Any:
            frame = read(con, t, horizon)
            asked.append(((kind, t, horizon), frame))
            return frame

        monkeypatch.setattr(churn_features, name, record)


def _churn(settings: Settings, folder: Path, spark: Any, kept: churn.KeptFit | None = None) -> tuple[Asked, Any]:
    """Churn's build into ``folder`` (with engine spark when ``spark`` is given), from the demo's current snapshots
    and identity links; the frames it read at each cutoff and the run."""
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    folder.mkdir(parents=True)
    links = pl.read_parquet(store.abs(manifest["derived"]["tables"]["identity_links"]))
    links.write_parquet(folder / "identity_links.parquet")  # what Spark reads, as in a build's staging folder
    asked: Asked = []
    on_spark: list[str] = []  # the statements run as Spark jobs
    query = spark_churn.SparkDays.query

    def counted(days: spark_churn.SparkDays, con: Any, sql: str, params: dict[str, int]) -> pl.DataFrame:
        on_spark.append(sql)
        return query(days, con, sql, params)

    with pytest.MonkeyPatch.context() as patch, work_connection(settings) as con:
        _recording(asked, patch)
        patch.setattr(spark_churn.SparkDays, "query", counted)
        attach_entities(con, store, manifest)
        with spark_churn.churn_on(spark, _on_spark(settings), store, manifest, folder):  # spark None: DuckDB's
            result = churn.build(con, settings, links, folder, kept=kept)
    assert not (folder / PARTS).exists()  # Spark's files are gone with the step
    # with engine spark every cutoff's features and labels, the activity range, each customer's first record and the
    # owners and regions were Spark jobs
    assert len(on_spark) == (len(asked) + 3 if spark else 0), on_spark
    if spark:
        assert churn_features.FIRST_RECORDS_SQL in on_spark and churn_features.ATTRIBUTES_SQL in on_spark
    return asked, result


@pytest.fixture(scope="module")
def both(small_demo: Settings, spark: Any) -> dict[str, tuple[Asked, Any, Path]]:
    out = {}
    for engine in ("duckdb", "spark"):
        folder = small_demo.data_path / f"churn_{engine}"
        asked, result = _churn(small_demo, folder, spark if engine == "spark" else None)
        out[engine] = (asked, result, folder)
    return out


def test_every_cutoff_is_the_same_on_both_engines(both: dict[str, tuple[Asked, Any, Path]]) -> None:
    want, got = both["duckdb"][0], both["spark"][0]
    assert [k for k, _ in got] == [k for k, _ in want]  # the same cutoffs and horizons, asked in the same order
    features = {k for k, _ in want if k[0] == "features"}
    assert len(features) >= 4  # today's, the backtest's two cutoffs and at least one older window
    for (key, frame), (_, spark_frame) in zip(want, got, strict=True):
        assert_same(frame, spark_frame, frame.columns)
        if key[0] == "features":  # in key order, as the fit's sample and the scores' ties take them
            assert spark_frame["customer_key"].to_list() == frame["customer_key"].to_list(), key


def _published(folder: Path) -> dict[str, pl.DataFrame]:
    return {t: pl.read_parquet(folder / f"{t}.parquet") for t in churn.CHURN_TABLES}


def test_the_published_churn_tables_are_the_same(both: dict[str, tuple[Asked, Any, Path]]) -> None:
    want, got = _published(both["duckdb"][2]), _published(both["spark"][2])
    scores = want["churn_scores"]
    assert scores.height > 100 and scores["rank"].to_list() == list(range(1, scores.height + 1))
    assert got["churn_scores"].equals(scores)  # ranks, risks, reasons (zh and en), owners: value for value
    card = [c for c in want["churn_model"].columns if c != "trained_at"]  # when each run trained
    assert got["churn_model"].select(card).equals(want["churn_model"].select(card))
    assert both["spark"][1].method == both["duckdb"][1].method and both["duckdb"][1].status == "validated"


def test_a_kept_fit_rescores_the_same_on_spark(
    small_demo: Settings, spark: Any, both: dict[str, tuple[Asked, Any, Path]]
) -> None:
    """An incremental refresh rescores everyone with the fit kept from the last one: on Spark too."""
    kept = both["duckdb"][1].fit
    assert kept is not None
    folders = {engine: small_demo.data_path / f"rescored_{engine}" for engine in ("duckdb", "spark")}
    for engine, folder in folders.items():
        asked, _ = _churn(small_demo, folder, spark if engine == "spark" else None, kept=kept)
        assert [kind for (kind, _, _), _ in asked] == ["features"]  # today's only: nothing fitted or backtested
    want, got = _published(folders["duckdb"]), _published(folders["spark"])
    assert got["churn_scores"].equals(want["churn_scores"]) and want["churn_scores"].height > 100
    assert got["churn_model"].equals(want["churn_model"])
