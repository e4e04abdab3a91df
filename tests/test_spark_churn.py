"""Churn on the small demo with engine spark (local[2]) against engine duckdb: the backtest's windows (every
cutoff's customers with their features, BG/NBD's figures and labels) are made and kept on Spark and are DuckDB's
(same customers, values to 1e-9), the fits and yardsticks made from them (derived.spark.backtest) give the same
model card; today's served pass over every customer (features, BG/NBD's figures, scores, reasons, owners, ranks)
runs on Spark (derived.spark.served) and the published churn tables (scores, ranks, reasons, model card) and the
rows a rescore reads (churn_rows) are the same. Also when a kept fit rescores everyone, as an incremental refresh
does."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import duckdb
import numpy as np
import polars as pl
import pytest

from dashboard.core.config import EngineConfig, Settings
from dashboard.core.duck import attach_entities, work_connection
from dashboard.core.store import Store
from dashboard.derived.churn import bgnbd as churn_bgnbd
from dashboard.derived.churn import build as churn
from dashboard.derived.churn import features as churn_features
from dashboard.derived.churn import model as churn_model
from dashboard.derived.spark import backtest, cutoffs, isotonic, served
from dashboard.derived.spark import churn as spark_churn
from dashboard.derived.spark.jobs import PARTS, read_parquet
from tests.test_spark_steps import assert_same

pytestmark = pytest.mark.xdist_group("spark")

Asked = list[tuple[tuple[str, int, int], pl.DataFrame]]  # ((features | labels, cutoff day, horizon), frame)
Windows = dict[tuple[int, int], pl.DataFrame]  # (cutoff day, horizon) → the backtest's labelled customers there


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


def _windows(windows: Windows, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backtest's labelled customers at each cutoff, as the DuckDB engine's run holds them (build._Windows) and
    as Spark's keeps them (backtest.SparkBacktest: gathered here, for the test only), in the order first asked."""
    at = churn._Windows.at

    def held(self: churn._Windows, k: int) -> pl.DataFrame:
        frame = at(self, k)
        windows.setdefault((self.d - k * self.h, self.h), frame)
        return frame

    on_spark = backtest.SparkBacktest.at

    def kept(self: backtest.SparkBacktest, con: Any, t: int, horizon: int, first: float) -> backtest.Window:
        got = on_spark(self, con, t, horizon, first)
        if (t, horizon) not in windows:
            rows = backtest._polars(self.spark.table(got.view)).sort(cutoffs.CID) if got.view else None  # one job
            windows[t, horizon] = pl.DataFrame() if rows is None else rows.drop(cutoffs.CID)
        return got

    monkeypatch.setattr(churn._Windows, "at", held)
    monkeypatch.setattr(backtest.SparkBacktest, "at", kept)


class _DaysOnce:
    """SparkDays.make's keys and per-day tables (spark_churn's materialize and numbered: the key rows, their ids,
    churn_keys, churn_ids, churn_days, churn_channel_days) made by the module's first Spark churn build and copied
    into each later build's staging folder, read there as the build reads what it wrote. Every build here is of
    the small demo's one manifest (its snapshots and identity links) and one day, and the tables are made from
    those alone: made again they would be the same files. The first build's are compared with DuckDB's through
    every cutoff's windows, the published tables and churn_rows; a later build still runs everything that reads
    them on Spark (its backtest, fits, served pass, isotonic fit). Each making cost ~14 CPU-s a build
    (docs/benchmarks.md, session 27), paid once instead of by each of the four full Spark builds."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder  # under the data folder, as a staging folder is
        self.latest: int | None = None  # the day of activity they were made for
        self.made: dict[str, Path] = {}

    def patch(self, patch: pytest.MonkeyPatch) -> None:
        make = spark_churn.SparkDays.make

        def made_for(days: spark_churn.SparkDays, con: Any, latest: int) -> None:
            if latest != self.latest:  # another day's: made again
                shutil.rmtree(self.folder, ignore_errors=True)
                self.latest, self.made = latest, {}
            make(days, con, latest)

        patch.setattr(spark_churn.SparkDays, "make", made_for)
        materialize, numbered = spark_churn.materialize, spark_churn.numbered

        def made_once(spark: Any, settings: Settings, view: str, stage: Path, run: Callable[[], Path]) -> Path:
            parts = stage / PARTS / view
            if view in self.made:
                shutil.copytree(self.made[view], parts)
                read_parquet(spark, settings, parts).createOrReplaceTempView(view)
                return parts
            got = run()
            self.made[view] = shutil.copytree(got, self.folder / view)
            return got

        def materialized(spark: Any, settings: Settings, sql: str, view: str, stage: Path, args: Any = None) -> Path:
            return made_once(spark, settings, view, stage, lambda: materialize(spark, settings, sql, view, stage, args))

        def numbered_once(spark: Any, settings: Settings, source: Any, orders: Any, view: str, stage: Path) -> Path:
            return made_once(
                spark, settings, view, stage, lambda: numbered(spark, settings, source, orders, view, stage)
            )

        patch.setattr(spark_churn, "materialize", materialized)
        patch.setattr(spark_churn, "numbered", numbered_once)


@pytest.fixture(scope="module")
def days_once(small_demo: Settings) -> _DaysOnce:
    return _DaysOnce(small_demo.data_path / "churn_days_made")


def _churn(
    settings: Settings, folder: Path, spark: Any, kept: churn.KeptFit | None = None, days: _DaysOnce | None = None
) -> tuple[Asked, Any, Windows]:
    """Churn's build into ``folder`` (with engine spark when ``spark`` is given), from the demo's current snapshots
    and identity links; the frames it read on the driver at each cutoff, the run and the backtest's windows.
    ``days``: the keys and per-day tables made once for the module's Spark builds (_DaysOnce)."""
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    folder.mkdir(parents=True)
    links = pl.read_parquet(store.abs(manifest["derived"]["tables"]["identity_links"]))
    links.write_parquet(folder / "identity_links.parquet")  # what Spark reads, as in a build's staging folder
    asked: Asked = []
    windows: Windows = {}
    on_spark: list[str] = []  # the statements run as Spark jobs
    query = spark_churn.SparkDays.query

    def counted(days: spark_churn.SparkDays, con: Any, sql: str, params: dict[str, int]) -> pl.DataFrame:
        on_spark.append(sql)
        return query(days, con, sql, params)

    with pytest.MonkeyPatch.context() as patch, work_connection(settings) as con:
        _recording(asked, patch)
        _windows(windows, patch)
        patch.setattr(spark_churn.SparkDays, "query", counted)
        if days is not None:
            days.patch(patch)
        attach_entities(con, store, manifest)
        with served.churn_on(spark, _on_spark(settings), store, manifest, folder):  # spark None: DuckDB's
            result = churn.build(con, settings, links, folder, kept=kept)
    assert not (folder / PARTS).exists()  # Spark's files are gone with the step
    # with engine spark a fitting run's backtest (every cutoff's customers, labels, scores) and served pass (today's
    # features, first records, owners), and a kept fit's rescore of everyone, are Spark's own jobs
    # (derived.spark.backtest, .served): the driver held no customer's row of them, but one per cutoff, where it tried
    # churn's functions for their outputs' types
    on_executors = spark is not None
    if on_executors:
        assert asked and all(kind == "features" and frame.height == 1 for (kind, _, _), frame in asked), asked
        assert on_spark == [churn_features.RANGE_SQL]  # the activity range: one row
        asked = []
    else:
        assert not on_spark
    assert result.written == on_executors and (result.scores.height == 0) == on_executors
    return asked, result, windows


@pytest.fixture(scope="module")
def both(small_demo: Settings, spark: Any, days_once: _DaysOnce) -> dict[str, tuple[Asked, Any, Path, Windows]]:
    out = {}
    for engine in ("duckdb", "spark"):
        folder = small_demo.data_path / f"churn_{engine}"
        asked, result, windows = _churn(small_demo, folder, spark if engine == "spark" else None, days=days_once)
        out[engine] = (asked, result, folder, windows)
    return out


def test_every_cutoff_is_the_same_on_both_engines(both: dict[str, tuple[Asked, Any, Path, Windows]]) -> None:
    """The backtest's windows: the same cutoffs, customers in key order, features, BG/NBD's figures and labels."""
    _same_windows(both)
    day = both["duckdb"][1].day
    duck = both["duckdb"][0]
    assert duck[-1][0] == ("features", day, both["duckdb"][1].train_horizon_days)  # today's: the served pass's


def _same_windows(both: dict[str, tuple[Asked, Any, Path, Windows]], ordered: bool = True) -> None:
    want, got = both["duckdb"][3], both["spark"][3]
    assert list(got) == list(want) if ordered else set(got) == set(want)  # the same cutoffs and horizons (in order)
    assert len(want) >= 3  # the backtest's two cutoffs and at least one older window
    for key, frame in want.items():
        assert frame.height > 0, key
        assert got[key]["customer_key"].to_list() == frame["customer_key"].to_list(), key  # key order: the sample's
        assert_same(frame, got[key], frame.columns)


def _published(folder: Path) -> dict[str, pl.DataFrame]:
    return {t: pl.read_parquet(folder / f"{t}.parquet") for t in churn.CHURN_TABLES}


_FLOATS = ("auc", "precision_top10", "brier", "backtest_churn_rate")  # the card's numbers, summed in another order
_CHART = ("calibration_predicted", "calibration_observed")


def test_the_published_churn_tables_are_the_same(both: dict[str, tuple[Asked, Any, Path, Windows]]) -> None:
    _same_published(both)
    assert both["duckdb"][1].status == "validated"


def _same_published(both: dict[str, tuple[Asked, Any, Path, Windows]]) -> None:
    want, got = _published(both["duckdb"][2]), _published(both["spark"][2])
    scores = want["churn_scores"]
    assert scores.height > 100 and scores["rank"].to_list() == list(range(1, scores.height + 1))
    assert got["churn_scores"].equals(scores)  # ranks, risks, reasons (zh and en), owners: value for value
    card, spark_card = want["churn_model"], got["churn_model"]
    same = [c for c in card.columns if c not in ("trained_at", *_FLOATS, *_CHART)]  # trained_at: when each trained
    assert spark_card.select(same).equals(card.select(same))
    assert card["auc"].null_count() == 0 and card.height == len(churn.METHODS)
    for col in _FLOATS:  # Spark's aggregates sum in their own order: the same to 1e-12, and as the page shows them
        assert np.allclose(spark_card[col].to_numpy(), card[col].to_numpy(), rtol=0, atol=1e-12), col
        assert spark_card[col].round(3).equals(card[col].round(3)), col
    for col in _CHART:
        for a, b in zip(spark_card[col].to_list(), card[col].to_list(), strict=True):
            assert np.allclose(a, b, rtol=0, atol=1e-12), col
    assert both["spark"][1].method == both["duckdb"][1].method


def test_the_rows_a_rescore_reads_are_the_same(both: dict[str, tuple[Asked, Any, Path, Windows]]) -> None:
    """churn_rows: every customer's features at the as-of day, BG/NBD's figures, score, risk and first record, in
    key order, with the day, the last day read, the horizon and BG/NBD's fit in its metadata (KeptRows.meta)."""
    _same_rows(both)


def _same_rows(both: dict[str, tuple[Asked, Any, Path, Windows]]) -> None:
    paths = {engine: both[engine][2] / churn.ROWS_FILE for engine in ("duckdb", "spark")}
    want, got = (pl.read_parquet(paths[e]) for e in ("duckdb", "spark"))
    assert got.columns == want.columns and got.height == want.height > 100
    assert got["customer_key"].to_list() == want["customer_key"].to_list()
    assert got.equals(want.cast(got.schema)), "the same values (Spark's file keeps the features' SQL types)"
    want_meta, got_meta = (pl.read_parquet_metadata(paths[e]) for e in ("duckdb", "spark"))
    assert {k: got_meta[k] for k in ("day", "latest", "horizon", "bgnbd")} == {
        k: want_meta[k] for k in ("day", "latest", "horizon", "bgnbd")
    }
    # Parquet's LZ4_RAW, which polars reads at any size (Spark's "lz4", Hadoop-framed, failed at medium)
    codecs = duckdb.sql(f"SELECT DISTINCT compression FROM parquet_metadata('{paths['spark']}')").fetchall()
    assert codecs == [("LZ4_RAW",)]


def test_the_served_pass_keeps_the_drivers_sample_and_cut_points() -> None:
    """BG/NBD is fitted on the customers bgnbd.fit would draw (their places in key order, cutoffs.bgnbd_sample) and
    the segments cut where polars' nearest quantile cuts (served.nearest_index)."""
    rng = np.random.default_rng(7)
    x, tx = rng.integers(0, 5, 500).astype(np.float64), rng.uniform(0, 300, 500)
    big_t = tx + rng.uniform(0, 100, 500)
    keep = cutoffs.bgnbd_sample(500, max_customers=120)
    assert keep is not None and cutoffs.bgnbd_sample(120, max_customers=120) is None
    assert churn_bgnbd.fit(x[keep], tx[keep], big_t[keep]) == churn_bgnbd.fit(x, tx, big_t, max_customers=120)
    for n in range(1, 400):
        values = pl.Series(np.arange(n, dtype=np.float64))
        for q in (0.5, 0.8):
            assert served.nearest_index(n, q) == int(values.quantile(q, "nearest") or 0), (n, q)


def test_a_kept_fit_rescores_the_same_on_spark(
    small_demo: Settings, spark: Any, both: dict[str, tuple[Asked, Any, Path, Windows]], days_once: _DaysOnce
) -> None:
    """An incremental refresh rescores everyone with the fit kept from the last one: on Spark too."""
    kept = both["duckdb"][1].fit
    assert kept is not None
    folders = {engine: small_demo.data_path / f"rescored_{engine}" for engine in ("duckdb", "spark")}
    for engine, folder in folders.items():
        asked, result, _ = _churn(small_demo, folder, spark if engine == "spark" else None, kept=kept, days=days_once)
        # today's only, nothing fitted or backtested; on Spark the served pass's, on the executors
        assert [kind for (kind, _, _), _ in asked] == ([] if engine == "spark" else ["features"])
        assert result.scored > 100
    want, got = _published(folders["duckdb"]), _published(folders["spark"])
    assert got["churn_scores"].equals(want["churn_scores"]) and want["churn_scores"].height > 100
    assert got["churn_model"].equals(want["churn_model"])


def test_the_backtests_fits_from_counts_and_places_are_the_drivers() -> None:
    """A baseline's calibration from (score, label) counts is ScoreCalibrator.fit's on every row (ties and all), and
    the model's sample drawn by place is the rows build._sample takes, in its order."""
    rng = np.random.default_rng(3)
    score = rng.integers(0, 400, 20_000).astype(np.float64)  # recency-like: many ties
    y = rng.random(20_000) < score / 500
    rows = pl.DataFrame({"score": score, "churned": y})
    counts = rows.group_by("score", "churned").len("count")
    got = backtest.calibrated(counts["score"], counts["churned"], counts["count"])
    want = churn_model.ScoreCalibrator.fit(score, y)
    probe = np.linspace(-10, 410, 2_000)
    assert got.iso is not None and want.iso is not None
    assert np.array_equal(got.predict(probe), want.predict(probe)) and np.array_equal(
        got.predict(score), want.predict(score)
    )
    frame = pl.DataFrame({"i": np.arange(1_000) * 3, "x": rng.random(1_000)})
    places = pl.DataFrame({"i": np.arange(1_000)}).sample(250, seed=0)["i"].to_numpy()
    assert frame.sample(250, seed=0)["i"].to_list() == (places * 3).tolist()


def test_the_backtests_yardsticks_on_spark_are_the_drivers(
    spark: Any, on_spark: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On windows with many tied scores: the baselines' calibrations, AUC, the top tenth's churn rate, the Brier
    score and the calibration bins made on Spark are build._evaluate's (counts exactly, means to 1e-12), and the
    model's sample above MAX_TRAIN is build._sample's rows in its order."""
    rng = np.random.default_rng(5)
    n = 3_000
    frame = pl.DataFrame(
        {
            "customer_key": [f"c{i:05d}" for i in range(n)],
            "recency_days": rng.integers(0, 300, n).astype(np.float64),
            "bgnbd_p_none": rng.random(n).round(2),
            "churned": rng.random(n) < 0.4,
            cutoffs.CID: np.arange(n, dtype=np.int32),
        }
    )
    stage = on_spark.data_path / "backtest_yardsticks"  # under the data folder, as a build's staging folder is
    stage.mkdir()
    windows = []
    for i, part in enumerate((frame, frame.head(1_000))):
        part.write_parquet(stage / f"w{i}.parquet")
        read_parquet(spark, on_spark, stage / f"w{i}.parquet").createOrReplaceTempView(f"test_window_{i}")
        windows.append(backtest.Window(f"test_window_{i}", part.height, int(part["churned"].sum())))
    days = SimpleNamespace(spark=spark, settings=on_spark, stage=stage)
    tester = backtest.SparkBacktest(cast(Any, days))
    stacked = pl.concat([frame, frame.head(1_000)]).drop(cutoffs.CID)
    for method in ("recency", "bgnbd"):
        got, want = tester.fit(method, windows), churn.fit(method, stacked)
        assert got.calibrator is not None and want.calibrator is not None
        x = churn._baseline_score(frame, method)
        assert np.array_equal(got.calibrator.predict(x), want.calibrator.predict(x)), method
        metrics, bins = tester.evaluate(want, windows[0])
        want_metrics, want_bins = churn._evaluate(want, frame)
        assert metrics["precision_top10"] == want_metrics["precision_top10"], method
        for key in ("auc", "brier"):
            assert abs(cast(float, metrics[key]) - cast(float, want_metrics[key])) < 1e-12, (method, key)
        assert [(b[0], b[3]) for b in bins] == [(b[0], b[3]) for b in want_bins]
        assert np.allclose([b[1:3] for b in bins], [b[1:3] for b in want_bins], rtol=0, atol=1e-12)
    monkeypatch.setattr(churn, "MAX_TRAIN", 700)
    assert tester._sample(windows).equals(churn._sample(stacked))


def _rescore_touched(
    settings: Settings, folder: Path, spark: Any, kept: churn.KeptFit, rows: churn.KeptRows
) -> tuple[Any, list[Any], Asked]:
    """An incremental build's churn step into ``folder`` (engine spark when ``spark`` is given): the customers
    ``rows`` names as touched made again, the others' taken from its kept files; the run, the files the driver read
    whole with polars and the features it made on the driver."""
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    folder.mkdir(parents=True)
    links = pl.read_parquet(store.abs(manifest["derived"]["tables"]["identity_links"]))
    links.write_parquet(folder / "identity_links.parquet")
    if spark is not None:  # the driver holds the touched customers' links only (derive._churn_links_on_spark)
        links = links.filter(pl.col("customer_key").is_in(rows.touched["customer_key"].implode()))
    read: list[Any] = []
    asked: Asked = []
    whole = pl.read_parquet

    def reading(source: Any, *args: Any, **kwargs: Any) -> pl.DataFrame:
        read.append(source)
        return whole(source, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch, work_connection(settings) as con:
        _recording(asked, patch)
        patch.setattr(churn.pl, "read_parquet", reading)
        attach_entities(con, store, manifest)
        with served.churn_on(spark, _on_spark(settings), store, manifest, folder):
            result = churn.build(con, settings, links, folder, kept=kept, rows=rows)
    assert not (folder / PARTS).exists()
    return result, read, asked


def test_an_incremental_rescore_on_spark_is_the_drivers(
    small_demo: Settings, spark: Any, both: dict[str, tuple[Asked, Any, Path, Windows]]
) -> None:
    """An incremental build rescores the touched customers with the kept fit: with engine spark the kept rows and
    scores are read and everyone scored on Spark, the driver making only the touched customers' features; the
    published tables and the rows the next rescore reads are the DuckDB engine's (which scores only the touched).
    Also when the touched customers' BG/NBD inputs moved and BG/NBD is fitted again."""
    _same_incremental(small_demo, spark, both["duckdb"], "incremental", touched_only=True)


def _same_incremental(
    settings: Settings, spark: Any, first: tuple[Asked, Any, Path, Windows], name: str, touched_only: bool
) -> None:
    """An incremental build with ``first``'s fit and files on both engines, a ninth of the customers touched (and one
    key no record has), their kept numbers the same and moved: the same published tables and rows, no kept file
    read whole on the driver with engine spark, nothing changed (the data did not). ``touched_only``: the DuckDB
    engine scores only the touched customers while BG/NBD's fit is the kept one."""
    kept, made = first[1].fit, first[2]
    assert kept is not None
    keys = pl.read_parquet(made / "churn_scores.parquet")["customer_key"].sort()
    touched = pl.concat([keys.gather_every(9), pl.Series(["crm:no-such-record"])]).to_frame("customer_key")
    moved = settings.data_path / f"{name}_moved_rows.parquet"  # the kept build saw other numbers for the touched
    meta = pl.read_parquet_metadata(made / churn.ROWS_FILE)
    bg = churn_bgnbd.BGNBD(*(float(v) for v in json.loads(meta["bgnbd"])))
    meta["bgnbd"] = json.dumps([repr(v * 1.01) for v in (bg.r, bg.alpha, bg.a, bg.b)])
    hit = pl.col("customer_key").is_in(touched["customer_key"].implode())
    old = pl.read_parquet(made / churn.ROWS_FILE)
    old.with_columns(pl.when(hit).then(pl.col("active_days") + 1).otherwise(pl.col("active_days"))).write_parquet(
        moved, metadata=meta
    )
    for case, rows_file in (("same", made / churn.ROWS_FILE), ("moved", moved)):
        rows = churn.KeptRows(rows_file, made / "churn_scores.parquet", touched)
        results, folders = {}, {}
        for engine in ("duckdb", "spark"):
            folders[engine] = settings.data_path / f"{name}_{case}_{engine}"
            on = spark if engine == "spark" else None
            results[engine], read, asked = _rescore_touched(settings, folders[engine], on, kept, rows)
            assert results[engine].touched == touched.height
            # the driver made the touched customers' features only; with engine spark it read no kept file whole
            assert [kind for (kind, _, _), _ in asked] == ["features"] and asked[0][1].height < touched.height
            kept_files = {str(rows_file), str(made / "churn_scores.parquet")}
            assert (engine == "spark") == (not kept_files & {str(r) for r in read}), (engine, read)
        assert results["spark"].written and not results["duckdb"].written
        # the driver's rescore scores the touched only while BG/NBD's fit is kept (not a scaled model's); else everyone
        everyone = results["duckdb"].scored == keys.len()
        assert everyone == (case == "moved" or not touched_only), case
        want, got = _published(folders["duckdb"]), _published(folders["spark"])
        assert got["churn_scores"].equals(want["churn_scores"]), case
        assert got["churn_model"].equals(want["churn_model"]), case
        assert want["churn_scores"].equals(pl.read_parquet(made / "churn_scores.parquet")), case  # nothing changed
        want_rows, got_rows = (pl.read_parquet(folders[e] / churn.ROWS_FILE) for e in ("duckdb", "spark"))
        assert got_rows.equals(want_rows.cast(got_rows.schema)), case
        want_meta, got_meta = (pl.read_parquet_metadata(folders[e] / churn.ROWS_FILE) for e in ("duckdb", "spark"))
        assert {k: got_meta[k] for k in ("day", "latest", "horizon", "bgnbd")} == {
            k: want_meta[k] for k in ("day", "latest", "horizon", "bgnbd")
        }, case
        # moved: fitted again on everyone's numbers (today's, as the first build's), not the kept file's
        assert results["spark"].bgnbd == results["duckdb"].bgnbd == bg, case


def _iso_cases(rng: np.random.Generator) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(score, calibrated risk, BG/NBD's growth) as _to_target gets them: continuous scores, scores tied in
    hundreds, and scores a few ulps apart (sklearn pools those within 1e-15 of a group's first)."""
    for kind in range(4):
        for _ in range(12):
            n = int(rng.integers(30, 4_000))
            score = rng.normal(size=n)
            if kind == 1:
                score = np.round(score, 1)
            elif kind == 2:
                score = score + rng.integers(0, 3, n) * 4e-16
            elif kind == 3:
                whole = rng.integers(0, 30, n) + 4.0
                score = whole + rng.integers(0, 2, n) * np.spacing(whole)
            risk = 1 / (1 + np.exp(-score))
            yield score, risk, rng.uniform(0.5, 3.0, n)


def _sklearns(score: np.ndarray, risk: np.ndarray, growth: np.ndarray) -> np.ndarray:
    return churn._to_target(pl.DataFrame({"bgnbd_active_growth": growth}), score, risk)


def _first_points(made: list[tuple[Any, Any, Any, Any]], k: int, m: int) -> tuple[Any, Any]:
    return made[k][2][:m], made[k][3][:m]


def test_the_isotonic_fit_made_by_ranges_is_sklearns_to_the_last_bit() -> None:
    """build._to_target's isotonic fit, made over sorted ranges (derived.spark.isotonic: each range pooled alone,
    the edges where something crosses pooled again from their blocks' points), predicts sklearn's fit bit for bit,
    for 1 to 17 ranges (edges pooled again included)."""
    rng = np.random.default_rng(11)
    again = 0
    for score, risk, growth in _iso_cases(rng):
        target = np.clip(1.0 - (1.0 - risk) * growth, 0.0, risk)
        want = _sklearns(score, risk, growth)
        order = np.lexsort((target, score))
        s, t = score[order], target[order]
        for parts in (1, 3, 17):
            cuts = [int(c) for c in np.linspace(0, s.size, parts + 1)[1:-1]]
            bounds = [0, *(c for c in cuts if s[c] - s[c - 1] >= isotonic.EPS), s.size]
            made = [isotonic.groups(s[lo:hi], t[lo:hi]) for lo, hi in itertools.pairwise(bounds)]
            ranges = [isotonic.summarize(first, y, w) for _, first, y, w in made]
            fold = isotonic.Fold(ranges, partial(_first_points, made))
            fitted = isotonic._per_range(fold.run(), fold.offsets, ranges)
            again += fold.again
            got = np.empty(s.size)
            for (lo, hi), (group, first, y, w), (starts, values, nxt, nxt_value) in zip(
                itertools.pairwise(bounds), made, fitted, strict=True
            ):
                at, fit = (np.asarray(starts), np.asarray(values)) if starts else isotonic.pooled(y, w)[:2]
                value = np.clip(np.repeat(fit, np.diff(np.append(at, y.size))), 0.0, 1.0)
                if not np.isnan(nxt):
                    first, value = np.append(first, nxt), np.append(value, nxt_value)
                got[lo:hi] = isotonic.predicted(s[lo:hi], group, first, value)
            back = np.empty(s.size)
            back[order] = got
            assert np.array_equal(back, want), (s.size, parts)
    assert again > 100  # edges where something crossed were pooled again


def test_the_isotonic_fit_on_spark_is_sklearns(spark: Any, on_spark: Settings) -> None:
    """isotonic.to_target over a Spark view (ranges by Spark's range partitioning) gives each customer _to_target's
    risk, bit for bit."""
    rng = np.random.default_rng(12)
    stage = on_spark.data_path / "isotonic_spark"
    stage.mkdir()
    for i, (score, risk, growth) in enumerate(list(_iso_cases(rng))[::6]):
        columns = {isotonic.SCORE: score, isotonic.RISK: risk, isotonic.GROWTH: growth}
        frame = pl.DataFrame({cutoffs.CID: np.arange(score.size, dtype=np.int32), **columns})
        frame.write_parquet(stage / f"in{i}.parquet")
        read_parquet(spark, on_spark, stage / f"in{i}.parquet").createOrReplaceTempView(f"iso_in_{i}")
        isotonic.to_target(spark, on_spark, stage, f"iso_in_{i}", f"iso_out_{i}")
        got = backtest._polars(spark.table(f"iso_out_{i}")).sort(cutoffs.CID)
        assert got[cutoffs.CID].to_list() == list(range(score.size))
        assert np.array_equal(got[isotonic.RISK].to_numpy(), _sklearns(score, risk, growth)), i


@pytest.fixture(scope="module")
def thin(
    small_demo: Settings, spark: Any, both: dict[str, tuple[Asked, Any, Path, Windows]], days_once: _DaysOnce
) -> dict[str, tuple[Asked, Any, Path, Windows]]:
    """Both engines' churn with the model's backtest thin at the target horizon (THIN_SHARE just above the windows
    it had per judged customer), so that it trains at a shorter one, and serving when that one is not thin."""
    model = both["duckdb"][1].card.filter(pl.col("method") == "model").row(0, named=True)
    share = (model["backtest_windows"] + 1) / model["backtest_customers"]
    choose = churn.choose
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(churn, "THIN_SHARE", share)
        patch.setattr(churn, "choose", lambda aucs, thin: choose(aucs, thin) if thin else ("model", "best_auc"))
        for engine in ("duckdb", "spark"):
            folder = small_demo.data_path / f"thin_{engine}"
            asked, result, windows = _churn(small_demo, folder, spark if engine == "spark" else None, days=days_once)
            out[engine] = (asked, result, folder, windows)
    return out


def test_a_model_thin_at_the_target_horizon_is_the_same_on_spark(
    thin: dict[str, tuple[Asked, Any, Path, Windows]],
) -> None:
    """A model whose backtest is thin at the target horizon trains at a shorter one and is scaled to the target by
    _to_target's isotonic fit over every judged and every served customer: on Spark that fit is made on the
    executors (the driver held no customer's row: _churn), and the windows, the model card, churn_scores (ranks and
    risks bit for bit) and churn_rows are the DuckDB engine's."""
    duck, on_spark = thin["duckdb"][1], thin["spark"][1]
    assert duck.method == on_spark.method == "model" and duck.reason == on_spark.reason == "best_auc"
    assert on_spark.train_horizon_days == duck.train_horizon_days < duck.horizon_days
    assert duck.fit.fitted.scaled and on_spark.fit.fitted.scaled
    _same_windows(thin, ordered=False)  # the DuckDB engine's threads may ask for them in another order
    assert any(h == duck.train_horizon_days for _, h in thin["duckdb"][3])  # the shorter horizon's windows
    _same_published(thin)
    card = _published(thin["spark"][2])["churn_model"].filter(pl.col("method") == "model")
    assert card["train_horizon_days"].to_list() == [duck.train_horizon_days]
    _same_rows(thin)


def test_a_kept_fit_of_a_model_thin_at_the_target_horizon_rescores_on_spark(
    small_demo: Settings, spark: Any, thin: dict[str, tuple[Asked, Any, Path, Windows]], days_once: _DaysOnce
) -> None:
    """An incremental refresh that keeps the fit of a model trained at a shorter horizon than the target: its risk is
    scaled by _to_target's isotonic fit over every customer, made again on the executors (isotonic.to_target) as the
    DuckDB engine makes it again over everyone. A rescore of everyone (a new day's: _churn checks the driver read no
    customer's row) and of an incremental build's touched customers (BG/NBD's fit kept, and fitted again: no kept
    file read whole on the driver) give the DuckDB engine's churn_scores (ranks and risks bit for bit), model card
    and churn_rows."""
    kept = thin["duckdb"][1].fit
    assert kept is not None and kept.fitted is not None and kept.fitted.scaled
    assert kept.train_horizon_days < kept.horizon_days
    folders = {engine: small_demo.data_path / f"thin_rescored_{engine}" for engine in ("duckdb", "spark")}
    results = {}
    for engine, folder in folders.items():
        on = spark if engine == "spark" else None
        asked, results[engine], _ = _churn(small_demo, folder, on, kept=kept, days=days_once)
        assert [kind for (kind, _, _), _ in asked] == ([] if engine == "spark" else ["features"])
        assert results[engine].train_horizon_days == kept.train_horizon_days and results[engine].method == "model"
    assert results["spark"].scored == results["duckdb"].scored > 100
    want, got = _published(folders["duckdb"]), _published(folders["spark"])
    assert got["churn_scores"].equals(want["churn_scores"]) and got["churn_model"].equals(want["churn_model"])
    # the same customers on the same day: the thin build's own scores, scaled again over everyone
    assert want["churn_scores"].equals(_published(thin["duckdb"][2])["churn_scores"])
    rescored: dict[str, tuple[Asked, Any, Path, Windows]] = {e: ([], results[e], folders[e], {}) for e in folders}
    _same_rows(rescored)
    _same_rows({"duckdb": thin["duckdb"], "spark": rescored["spark"]})  # the thin build's rows: nothing changed
    _same_incremental(small_demo, spark, thin["duckdb"], "thin_incremental", touched_only=False)
