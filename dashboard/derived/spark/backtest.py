"""Churn's backtest as Spark jobs (engine spark; build.Served.backtest): every cutoff's customers, their labels and
BG/NBD's figures made and kept on Spark, each method's scores of the judged customers made on the executors by
churn's own functions, and the yardsticks (AUC, precision, Brier score, calibration bins) as Spark aggregates. The
driver holds the fits: the baselines' calibrations fitted on (score, label) counts per distinct score (the same
isotonic fit as on every row), the model on the bounded sample build.fit draws (the same rows in the same order, so
the same fit). A model whose backtest is thin at the target horizon trains at a shorter one here too (model_plan, as
build.model_backtest), and its risk is scaled to the target over the judged customers by isotonic.to_target."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial, reduce
from typing import TYPE_CHECKING, Any, cast

import duckdb
import numpy as np
import polars as pl
from sklearn.isotonic import IsotonicRegression

from dashboard.derived.churn import bgnbd as churn_bgnbd
from dashboard.derived.churn import features as churn_features
from dashboard.derived.churn import model as churn_model
from dashboard.derived.spark import isotonic
from dashboard.derived.spark.churn import SparkDays
from dashboard.derived.spark.cutoffs import CID, Given, bgnbd_fit, features_view, mapped, one_row
from dashboard.derived.spark.jobs import spark_query
from dashboard.derived.spark.steps import numbered

if TYPE_CHECKING:
    from dashboard.derived.churn import build as churn

_W = "_w"  # a customer window's place in a stack: its window's (0 = the newest)
PLATT_BELOW = 2000  # ScoreCalibrator.fit's: fewer windows are calibrated by a logistic curve, on every row


@dataclass
class Window:
    """The labelled customers at a cutoff: a Spark view (features, BG/NBD's figures, ``churned``, CID), their
    number and how many churned."""

    view: str | None  # None: nobody was active before the cutoff
    n: int = 0
    churned: int = 0

    @property
    def labels(self) -> int:
        return int(self.churned > 0) + int(self.churned < self.n)

    @property
    def valid(self) -> bool:
        """Enough customers, both outcomes (build._validated)."""
        from dashboard.derived.churn import build as churn

        return self.n >= churn.MIN_CUSTOMERS and self.labels == 2


def window_part(
    raw: pl.DataFrame, t: int, horizon: int, bg: churn_bgnbd.BGNBD, target: int | None = None
) -> pl.DataFrame:
    """A partition of a cutoff's FEATURES_SQL rows with their label and id as build._at makes them: features_at's
    columns, BG/NBD's figures under ``bg`` (fitted on the whole cutoff; with a ``target`` horizon its growth to it
    too), ``churned``."""
    from dashboard.derived.churn import build as churn

    with churn_features.day_tables_from(Given(raw.drop(CID, "churned"))):
        features = churn_features.features_at(cast(duckdb.DuckDBPyConnection, None), t, horizon)
    return churn._with_bgnbd(features, horizon, target, bg).with_columns(raw["churned"], raw[CID])


def scores_part(raw: pl.DataFrame, fitted: churn.Fitted) -> pl.DataFrame:
    """A partition of a window's customers scored by ``fitted`` (Fitted.score: a part gets what the whole gets; a
    model scaled to the target horizon scores unscaled here, with BG/NBD's growth beside: isotonic.to_target)."""
    got = unscaled(fitted).score(raw)
    out = pl.DataFrame({CID: raw[CID], "y": raw["churned"].cast(pl.Int64), "ranking": got.ranking, "risk": got.risk})
    return out.with_columns(raw[isotonic.GROWTH]) if fitted.scaled else out


def unscaled(fitted: churn.Fitted) -> churn.Fitted:
    """``fitted`` without _to_target (its risk the calibrated one, a customer's own): the scaling is made over every
    customer by isotonic.to_target."""
    return replace(fitted, scaled=False) if fitted.scaled else fitted


class SparkBacktest:
    """build.run's backtest where ``days`` made the per-day tables; each window made once, when first asked for."""

    def __init__(self, days: SparkDays) -> None:
        self.spark, self.settings, self.stage = days.spark, days.settings, days.stage
        self.windows: dict[tuple[int, int], Window] = {}
        self.views = 0

    def _view(self) -> str:
        self.views += 1
        return f"churn_backtest_{self.views}"

    def at(self, con: duckdb.DuckDBPyConnection, t: int, horizon: int, first: float) -> Window:
        """build._Windows.at's customers at day ``t`` (labels: activity in the ``horizon`` days after it)."""
        if (t, horizon) in self.windows:
            return self.windows[t, horizon]
        spark, settings, stage = self.spark, self.settings, self.stage
        name = self._view()
        n = features_view(spark, settings, stage, con, t, horizon, f"{name}_raw") if first < t else 0
        if n == 0:
            self.windows[t, horizon] = Window(None)
            return self.windows[t, horizon]
        bg = bgnbd_fit(spark, settings, stage, f"{name}_raw", n)
        text, bound = spark_query(churn_features.LABELS_SQL, {"t": t, "h": horizon})
        spark.sql(text, bound).createOrReplaceTempView(f"{name}_active")
        spark.sql(
            f"SELECT r.*, a.customer_key IS NULL AS churned FROM {name}_raw AS r "
            f"LEFT JOIN {name}_active AS a ON a.customer_key = r.customer_key"
        ).createOrReplaceTempView(f"{name}_labelled")
        part = partial(window_part, t=t, horizon=horizon, bg=bg)
        mapped(spark, settings, stage, f"{name}_labelled", part, name, _labelled_row(spark, name))
        churned = spark.sql(f"SELECT count_if(churned) AS c FROM {name}").collect()[0]["c"]
        self.windows[t, horizon] = Window(name, n, int(churned or 0))
        return self.windows[t, horizon]

    def stacked(self, con: duckdb.DuckDBPyConnection, d: int, k: int, horizon: int, first: float) -> list[Window]:
        """build._Windows.stacked's windows: cutoff k, then older ones while they are few (STACK_ROWS)."""
        from dashboard.derived.churn import build as churn

        windows = [self.at(con, d - k * horizon, horizon, first)]
        while len(windows) < churn.STACK_WINDOWS and sum(w.n for w in windows) < churn.STACK_ROWS:
            older = self.at(con, d - (k + len(windows)) * horizon, horizon, first)
            if older.n < churn.MIN_CUSTOMERS or older.labels < 2:
                break
            windows.append(older)
        return windows

    def _stack(self, windows: list[Window]) -> Any:
        """The windows' customers as one Spark DataFrame, each with its window's place (_W): the stack's order is
        (_W, CID), as build's concat of frames in key order."""
        from pyspark.sql import functions as F

        parts = [self.spark.table(w.view).withColumn(_W, F.lit(i)) for i, w in enumerate(windows) if w.view]
        return reduce(lambda a, b: a.unionByName(b), parts)

    def fit(self, method: str, windows: list[Window]) -> churn.Fitted:
        """build.fit on the stacked windows: the model on build._sample's rows (gathered in its order), a baseline's
        calibration on its score's (score, label) counts."""
        from dashboard.derived.churn import build as churn

        if method == "model":
            return churn.fit(method, self._sample(windows))
        score = "recency_days" if method == "recency" else "bgnbd_p_none"  # build._baseline_score's
        stack, n = self._stack(windows), sum(w.n for w in windows)
        labels = int(sum(w.churned for w in windows) > 0) + int(sum(w.churned for w in windows) < n)
        if n < PLATT_BELOW and labels == 2:  # few: every row, in the stack's order (a logistic fit reads them all)
            rows = _polars(stack.orderBy(_W, CID).select(score, "churned"))
            x, y = rows[score].to_numpy().astype(np.float64), rows["churned"].to_numpy()
            return churn.Fitted(method, calibrator=churn_model.ScoreCalibrator.fit(x, y))
        counts = _polars(stack.groupBy(score, "churned").count())
        return churn.Fitted(method, calibrator=calibrated(counts[score], counts["churned"], counts["count"]))

    def _sample(self, windows: list[Window]) -> pl.DataFrame:
        """build._sample of the stacked windows: every row up to MAX_TRAIN, else the rows polars' sample(MAX_TRAIN,
        seed=0) takes, in the order it takes them (drawn by place in the stack, gathered by Spark)."""
        from pyspark.sql import functions as F

        from dashboard.derived.churn import build as churn

        stack, n = self._stack(windows), sum(w.n for w in windows)
        if n <= churn.MAX_TRAIN:
            return _polars(stack.orderBy(_W, CID)).drop(_W, CID)
        picks = pl.DataFrame({"i": np.arange(n)}).sample(churn.MAX_TRAIN, seed=0)["i"].to_numpy()
        name = self._view()
        numbered(self.spark, self.settings, stack, {"_place": (_W, CID)}, name, self.stage)
        wanted = self.spark.createDataFrame(
            [(int(p) + 1, at) for at, p in enumerate(picks)], "_place bigint, _pick bigint"
        )
        got = self.spark.table(name).join(F.broadcast(wanted), "_place").orderBy("_pick")
        return _polars(got).drop(_W, CID, "_place", "_pick")

    def evaluate(self, fitted: churn.Fitted, judged: Window) -> tuple[dict[str, float | None], churn.Bins]:
        """build._evaluate on the judged window's customers, scored on the executors; AUC, the top tenth's churn rate,
        the Brier score and the calibration bins as Spark aggregates. A model scaled to the target horizon: its risk
        _to_target's over the judged customers (isotonic.to_target), as Fitted.score makes it over the whole frame."""
        from pyspark.sql import functions as F

        spark, settings, stage, n, pos = self.spark, self.settings, self.stage, judged.n, judged.churned
        assert judged.view is not None
        name = self._view()
        if fitted.scaled:
            mapped(spark, settings, stage, judged.view, partial(scores_part, fitted=fitted), f"{name}_u")
            spark.sql(
                f"SELECT {CID}, ranking AS {isotonic.SCORE}, risk AS {isotonic.RISK}, {isotonic.GROWTH} FROM {name}_u"
            ).createOrReplaceTempView(f"{name}_in")
            isotonic.to_target(spark, settings, stage, f"{name}_in", f"{name}_t")
            spark.sql(
                f"SELECT u.{CID}, u.y, u.ranking, t.{isotonic.RISK} AS risk FROM {name}_u AS u "
                f"JOIN {name}_t AS t USING ({CID})"
            ).createOrReplaceTempView(name)
        else:
            mapped(spark, settings, stage, judged.view, partial(scores_part, fitted=fitted), name)
        # AUC (roc_auc_score's, ties counted half): each churner against the stayers scored below it, counted
        auc = None
        if 0 < pos < n:
            pairs = spark.sql(
                "SELECT sum(p * (2 * below + q)) AS pairs FROM (SELECT p, q, coalesce(sum(q) OVER (ORDER BY ranking "
                "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS below FROM (SELECT ranking, sum(y) AS p, "
                f"count(*) - sum(y) AS q FROM {name} GROUP BY ranking))"
            ).collect()[0]["pairs"]
            auc = int(pairs) / (2 * pos * (n - pos))
        # precision_at: the churn rate among the riskiest tenth by score, ties by place (key order); the calibration
        # bins' order (_bins) numbered in the same pass; the Brier score beside the top tenth's count
        k = max(math.ceil(n * 0.1), 1)
        numbered(spark, settings, spark.table(name).withColumn("_neg", -F.col("ranking")),
                 {"_top": ("_neg", CID), "_risk_at": ("risk", CID)}, f"{name}_cal", stage)  # fmt: skip
        got = spark.sql(
            f"SELECT sum(CASE WHEN _top <= {k} THEN y ELSE 0 END) AS s, avg((risk - y) * (risk - y)) AS b "
            f"FROM {name}_cal"
        ).collect()[0]
        metrics = {"auc": auc, "precision_top10": int(got["s"] or 0) / k, "brier": float(got["b"])}
        return metrics, self._bins(name, n)

    def _bins(self, name: str, n: int) -> churn.Bins:
        """model.reliability: ten equal-count bins of the risk (ties by place; np.array_split's sizes), over the
        view ``<name>_cal`` numbered in that order (_risk_at)."""
        bins = min(10, n)
        q, r = divmod(n, bins)
        big = r * (q + 1)  # the first r bins hold q + 1 customers
        at = (
            f"CASE WHEN _risk_at - 1 < {big} THEN floor((_risk_at - 1) / {q + 1}) "
            f"ELSE {r} + floor((_risk_at - 1 - {big}) / {max(q, 1)}) END"
        )
        got = self.spark.sql(
            f"SELECT CAST({at} AS INT) AS bin, avg(risk) AS p, avg(y) AS o, count(*) AS c FROM {name}_cal GROUP BY 1"
        ).collect()  # ten rows, put in order here: an ORDER BY is two more Spark jobs (a range sort)
        return sorted((int(row["bin"]) + 1, float(row["p"]), float(row["o"]), int(row["c"])) for row in got)

    def run(
        self, con: duckdb.DuckDBPyConnection, run_: churn.ChurnRun, first: float, say: churn.Progress
    ) -> churn.Backtest | None:
        """build.run's backtest with the same windows, fits, metrics and decision (a model thin at the target horizon
        trained at a shorter one: model_plan), and the fit that serves."""
        from dashboard.derived.churn import build as churn

        d, h = run_.day, run_.horizon_days
        t1, t2 = d - 2 * h, d - h
        test, back_train = self.at(con, t2, h, first), self.at(con, t1, h, first)
        if not (back_train.n and test.n and back_train.valid and test.valid):
            return churn.Backtest({}, {}, {}, {}, None)
        train = self.stacked(con, d, 2, h, first)
        windows, needed = sum(w.n for w in train), math.ceil(churn.THIN_SHARE * test.n)
        say(f"churn: backtest on Spark, fitted on {windows} customer windows, judged on {test.n}")
        metrics: dict[str, dict[str, float | None]] = {}
        bins: dict[str, churn.Bins] = {}
        per_method: dict[str, dict[str, object]] = {}
        for m in ("recency", "bgnbd"):
            metrics[m], bins[m] = self.evaluate(self.fit(m, train), test)
            per_method[m] = {"train_cutoff": churn._date(t1), "backtest_windows": windows, "train_horizon_days": h}
        horizon, model_train, judged = self.model_plan(con, d, h, first, test, train, needed)
        tried = self.fit("model", model_train)
        tried.scaled = horizon != h
        metrics["model"], bins["model"] = self.evaluate(tried, judged)
        trained_on = sum(w.n for w in model_train)
        say(f"churn: model backtest on {trained_on} windows of {horizon} days ({needed} needed)")
        per_method["model"] = {
            "train_cutoff": churn._date(t2 - horizon), "backtest_windows": trained_on, "train_horizon_days": horizon
        }  # fmt: skip
        churn.decide(run_, {m: metrics[m]["auc"] or 0.0 for m in churn.METHODS}, trained_on, needed)
        extra: dict[str, object] = {
            "train_cutoff": churn._date(t1),
            "backtest_cutoff": churn._date(t2),
            "backtest_customers": test.n,
            "backtest_churn_rate": test.churned / test.n,
            "backtest_windows_needed": needed,
        }
        if run_.method == "model" and horizon != h:  # trained at the shorter horizon, scaled to the target: served
            run_.train_horizon_days = horizon  # by isotonic.to_target over every customer (served.SparkServed.serve)
            final = self.fit("model", self.stacked(con, d, 1, horizon, first))
            final.scaled = True
        else:
            final = self.fit(run_.method, self.stacked(con, d, 1, h, first))
        return churn.Backtest(metrics, bins, per_method, extra, final)

    def model_plan(
        self, con: duckdb.DuckDBPyConnection, d: int, h: int, first: float, test: Window, train: list[Window],
        needed: int,
    ) -> tuple[int, list[Window], Window]:  # fmt: skip
        """build.model_backtest: the longest training horizon (h, h/2, ...) whose backtest fit has ``needed``
        customer windows, its windows and the judged customers (at a shorter horizon: their features at it, BG/NBD's
        growth to ``h``, the labels of ``test``); thin at all of them, the shortest that could be fitted."""
        from dashboard.derived.churn import build as churn

        best = (h, train, test)
        if sum(w.n for w in train) >= needed:
            return best
        for horizon in churn._train_horizons(h)[1:]:
            shorter = self.at(con, d - h - horizon, horizon, first)
            if not shorter.valid:
                continue
            stacked = self.stacked(con, d - h, 1, horizon, first)
            best = (horizon, stacked, self.judged_at(con, d - h, horizon, h, test))
            if sum(w.n for w in stacked) >= needed:
                break
        return best

    def judged_at(self, con: duckdb.DuckDBPyConnection, t: int, horizon: int, target: int, test: Window) -> Window:
        """build.model_backtest's judged customers at a shorter ``horizon``: features at ``t`` over it, BG/NBD's figures
        fitted on them with the growth to ``target`` (build._at, unlabelled), joined with ``test``'s labels."""
        spark, settings, stage = self.spark, self.settings, self.stage
        name = self._view()
        n = features_view(spark, settings, stage, con, t, horizon, f"{name}_raw")
        bg = bgnbd_fit(spark, settings, stage, f"{name}_raw", n)
        spark.sql(
            f"SELECT r.*, j.churned FROM {name}_raw AS r JOIN {test.view} AS j ON j.customer_key = r.customer_key"
        ).createOrReplaceTempView(f"{name}_labelled")
        part = partial(window_part, t=t, horizon=horizon, bg=bg, target=target)
        mapped(spark, settings, stage, f"{name}_labelled", part, name, _labelled_row(spark, name))
        churned = spark.sql(f"SELECT count(*) AS n, count_if(churned) AS c FROM {name}").collect()[0]
        return Window(name, int(churned["n"]), int(churned["c"] or 0))


def _labelled_row(spark: Any, name: str) -> pl.DataFrame:
    """A row with the columns and types of the view ``<name>_labelled`` (``<name>_raw``'s, ``churned``): one of the
    written ``<name>_raw``'s (one Spark job; the labelled join's row is three: the labels' and the join's too)."""
    return one_row(spark, f"{name}_raw").with_columns(pl.lit(False).alias("churned"))


def calibrated(score: pl.Series, churned: pl.Series, count: pl.Series) -> churn_model.ScoreCalibrator:
    """ScoreCalibrator.fit's isotonic calibration from (score, label, customers) counts: sklearn merges equal scores
    into their labels' weighted mean, so the counts give the fit every row gives."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0, increasing=True)
    x, y = score.to_numpy().astype(np.float64), churned.cast(pl.Float64).to_numpy()
    return churn_model.ScoreCalibrator(iso=iso.fit(x, y, sample_weight=count.cast(pl.Float64).to_numpy()))


def _polars(frame: Any) -> pl.DataFrame:
    out = pl.from_arrow(frame.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out
