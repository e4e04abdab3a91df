"""Churn on the small demo with engine spark (local[2]) against engine duckdb: the features and labels of
every cutoff the backtest and the fit ask for are made as Spark jobs and are DuckDB's (same customers, values to
1e-9); today's served pass over every customer (features, BG/NBD's figures, scores, reasons, owners, ranks) runs on
Spark (derived.spark.served) and the published churn tables (scores, ranks, reasons, model card) and the rows a
rescore reads (churn_rows) are the same. Also when a kept fit rescores everyone, as an incremental refresh does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from dashboard.core.config import EngineConfig, Settings
from dashboard.core.duck import attach_entities, work_connection
from dashboard.core.store import Store
from dashboard.derived.churn import bgnbd as churn_bgnbd
from dashboard.derived.churn import build as churn
from dashboard.derived.churn import features as churn_features
from dashboard.derived.spark import churn as spark_churn
from dashboard.derived.spark import served
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
        with served.churn_on(spark, _on_spark(settings), store, manifest, folder):  # spark None: DuckDB's
            result = churn.build(con, settings, links, folder, kept=kept)
    assert not (folder / PARTS).exists()  # Spark's files are gone with the step
    # with engine spark every cutoff's features and labels and the activity range were Spark jobs; a fitting run's
    # served pass (today's features, first records, owners) too, in Spark's own jobs (derived.spark.served): the
    # driver held no customer's row of it
    on_executors = spark is not None and kept is None
    if on_executors:  # the served pass scores one customer on the driver, for its output's types
        (kind, _, _), probe = asked.pop()
        assert kind == "features" and probe.height == 1
    assert len(on_spark) == (len(asked) + (1 if on_executors else 3) if spark else 0), on_spark
    assert result.written == on_executors and (result.scores.height == 0) == on_executors
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
    day = both["duckdb"][1].day
    assert want[-1][0] == ("features", day, both["duckdb"][1].train_horizon_days)  # today's: the served pass's
    want = want[:-1]  # on Spark read by the served pass on the executors (churn_rows holds them: compared below)
    assert [k for k, _ in got] == [k for k, _ in want]  # the same cutoffs and horizons, asked in the same order
    features = {k for k, _ in want if k[0] == "features"}
    assert len(features) >= 3  # the backtest's two cutoffs and at least one older window
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


def test_the_rows_a_rescore_reads_are_the_same(both: dict[str, tuple[Asked, Any, Path]]) -> None:
    """churn_rows: every customer's features at the as-of day, BG/NBD's figures, score, risk and first record, in
    key order, with the day, the last day read, the horizon and BG/NBD's fit in its metadata (KeptRows.meta)."""
    paths = {engine: both[engine][2] / churn.ROWS_FILE for engine in ("duckdb", "spark")}
    want, got = (pl.read_parquet(paths[e]) for e in ("duckdb", "spark"))
    assert got.columns == want.columns and got.height == want.height > 100
    assert got["customer_key"].to_list() == want["customer_key"].to_list()
    assert got.equals(want.cast(got.schema)), "the same values (Spark's file keeps the features' SQL types)"
    want_meta, got_meta = (pl.read_parquet_metadata(paths[e]) for e in ("duckdb", "spark"))
    assert {k: got_meta[k] for k in ("day", "latest", "horizon", "bgnbd")} == {
        k: want_meta[k] for k in ("day", "latest", "horizon", "bgnbd")
    }


def test_the_served_pass_keeps_the_drivers_sample_and_cut_points() -> None:
    """BG/NBD is fitted on the customers bgnbd.fit would draw (their places in key order, served.bgnbd_sample) and
    the segments cut where polars' nearest quantile cuts (served.nearest_index)."""
    rng = np.random.default_rng(7)
    x, tx = rng.integers(0, 5, 500).astype(np.float64), rng.uniform(0, 300, 500)
    big_t = tx + rng.uniform(0, 100, 500)
    keep = served.bgnbd_sample(500, max_customers=120)
    assert keep is not None and served.bgnbd_sample(120, max_customers=120) is None
    assert churn_bgnbd.fit(x[keep], tx[keep], big_t[keep]) == churn_bgnbd.fit(x, tx, big_t, max_customers=120)
    for n in range(1, 400):
        values = pl.Series(np.arange(n, dtype=np.float64))
        for q in (0.5, 0.8):
            assert served.nearest_index(n, q) == int(values.quantile(q, "nearest") or 0), (n, q)


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
