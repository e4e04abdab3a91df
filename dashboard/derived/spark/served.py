"""Churn's served pass over every customer as Spark jobs (engine spark): the customers' features at the as-of day,
BG/NBD's figures, the scores and the reasons made on the executors by churn's own functions, a partition at a time
(derived.churn.features.features_at, build._with_bgnbd, build._score: a part of the customers gets what the whole
gets), the served risk, segments, owners and ranks in Spark SQL, churn_scores.parquet and churn_rows.parquet
written by Spark. The driver holds the fits only: BG/NBD is fitted there on the (x, t_x, T) of the customers it is
fitted on anyway (every one up to bgnbd.MAX_CUSTOMERS, a sample of that many by position in key order above it:
the same arrays, so the same fit), the model came from the backtest's bounded sample.

The backtest before it runs on Spark too (derived.spark.backtest). Not here: a model trained on a shorter horizon
than the target scales its risk by an isotonic map over every customer (build._to_target): that run scores on the
driver as before (serve() returns None)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import duckdb
import polars as pl

from dashboard.core.config import Settings
from dashboard.core.store import Manifest, Store
from dashboard.derived.churn import TABLES
from dashboard.derived.churn import bgnbd as churn_bgnbd
from dashboard.derived.churn import features as churn_features
from dashboard.derived.churn.reasons import days_counted
from dashboard.derived.spark.backtest import SparkBacktest
from dashboard.derived.spark.churn import SparkDays
from dashboard.derived.spark.cutoffs import CID as _CID
from dashboard.derived.spark.cutoffs import Given, bgnbd_fit, features_view, mapped
from dashboard.derived.spark.jobs import PARTS, run_to_parquet, spark_query
from dashboard.derived.spark.steps import numbered

if TYPE_CHECKING:
    from dashboard.derived.churn import build as churn

_DAYS = "_days_inactive"  # churn_scores' days_inactive (reasons.days_counted), made with the scores
_TO_DUCK = {pl.Int64: "BIGINT", pl.Int32: "INTEGER", pl.Float64: "DOUBLE", pl.String: "VARCHAR", pl.Boolean: "BOOLEAN"}


def scored_part(
    raw: pl.DataFrame, t: int, horizon: int, bg: churn_bgnbd.BGNBD, fitted: churn.Fitted | None, method: str
) -> pl.DataFrame:
    """A partition of FEATURES_SQL's rows at ``t`` (with their id, _CID) as the served method sees them: churn's
    features_at columns, BG/NBD's figures under ``bg``, the score and risk (build.SCORE_COLUMNS) and the reasons,
    by churn's own functions."""
    from dashboard.derived.churn import build as churn

    with churn_features.day_tables_from(Given(raw.drop(_CID))):
        features = churn_features.features_at(cast(duckdb.DuckDBPyConnection, None), t, horizon)
    frame = churn._with_bgnbd(features, horizon, None, bg)
    ranking, risk, reasons = churn._score(frame, fitted, method, horizon)
    scores = (pl.Series(churn.SCORE_COLUMNS[0], ranking), pl.Series(churn.SCORE_COLUMNS[1], risk), raw[_CID])
    days = frame.select(days_counted(pl.col("recency_days")).alias(_DAYS))  # churn_scores' days_inactive, as _scores
    return pl.concat([frame.with_columns(*scores), reasons, days], how="horizontal")


def _double(x: float) -> str:
    """A Python float as a Spark SQL double, the same number (Java parses the shortest repr back exactly)."""
    return f"CAST('{x!r}' AS DOUBLE)"


def nearest_index(n: int, q: float) -> int:
    """The 0-based place polars' quantile(q, "nearest") takes among ``n`` sorted values: (n - 1) q rounded half
    away from zero."""
    return int(Decimal((n - 1) * q).quantize(Decimal(1), rounding=ROUND_HALF_UP))


class SparkServed:
    """churn.build's served pass on Spark, where ``days`` made the per-day tables (build.Served)."""

    def __init__(self, days: SparkDays, folder: Path) -> None:
        self.days, self.folder = days, folder
        self.spark, self.settings, self.stage = days.spark, days.settings, days.stage

    def backtest(
        self, con: duckdb.DuckDBPyConnection, run_: churn.ChurnRun, first: float, say: churn.Progress
    ) -> churn.Backtest | None:
        """The backtest's windows, fits and yardsticks on Spark (derived.spark.backtest)."""
        return SparkBacktest(self.days).run(con, run_, first, say)

    def serve(
        self,
        con: duckdb.DuckDBPyConnection,
        settings: Settings,
        run_: churn.ChurnRun,
        fitted: churn.Fitted | None,
        horizon: int,
    ) -> int | None:
        from dashboard.derived.churn import build as churn

        if fitted is not None and fitted.scaled:
            return None  # _to_target's isotonic map is over every customer: the driver's path
        spark, settings, stage, t = self.spark, self.settings, self.stage, run_.day
        n = features_view(spark, settings, stage, con, t, horizon, "churn_served_raw")
        if n == 0:
            return None
        run_.bgnbd = bg = bgnbd_fit(spark, settings, stage, "churn_served_raw", n)
        part = partial(scored_part, t=t, horizon=horizon, bg=bg, fitted=fitted, method=run_.method)
        shape = mapped(spark, settings, stage, "churn_served_raw", part, "churn_served_scored")
        self._published(con, settings, run_, n, horizon)
        rows = {c: _TO_DUCK[shape.schema[c].base_type()] for c in shape.columns if c not in (*_REASONS, _CID, _DAYS)}
        meta = {"day": str(run_.day), "latest": str(run_.latest), "horizon": str(horizon)}
        meta["bgnbd"] = json.dumps([repr(v) for v in (bg.r, bg.alpha, bg.a, bg.b)])
        run_to_parquet(
            spark, con, settings, f"SELECT * FROM churn_served_rows ORDER BY {_CID}",
            Path(churn.ROWS_FILE).stem, {**rows, churn.FIRST_COLUMN: "VARCHAR"}, self.folder,
            compression="lz4", metadata=meta,
        )  # fmt: skip
        return n

    def _published(
        self, con: duckdb.DuckDBPyConnection, settings: Settings, run_: churn.ChurnRun, n: int, horizon: int
    ) -> None:
        """churn_scores.parquet as build._scores makes it, from the scored customers (Spark view
        churn_served_scored); and the Spark view churn_served_rows, ROWS_FILE's rows (build._rows)."""
        from dashboard.derived.churn import build as churn

        spark, cfg, h = self.spark, settings.churn, run_.horizon_days
        self.days._views()
        priority = con.sql("SELECT * FROM churn_priority").fetchall()
        spark.createDataFrame(priority or [], "source_system string, priority int").createOrReplaceTempView(
            "churn_priority"
        )
        spark.table("churn_served_scored").select("customer_key").createOrReplaceTempView("churn_scored")
        spark.sql(*spark_query(churn_features.ATTRIBUTES_SQL)).createOrReplaceTempView("churn_served_owners")
        spark.sql(*spark_query(churn_features.FIRST_RECORDS_SQL)).createOrReplaceTempView("churn_served_first")
        hi, mid = self._segment_cuts()
        lo_risk, hi_risk = churn.RISK_FLOOR, 1 - churn.RISK_FLOOR - churn.ORDER_NUDGE
        segment = (
            "'none'" if hi is None else
            f"CASE WHEN spend_year <= 0 THEN 'none' WHEN spend_year >= {_double(hi)} THEN 'high' "
            f"WHEN spend_year >= {_double(mid or 0.0)} THEN 'mid' ELSE 'low' END"
        )  # fmt: skip
        # build._served: the calibrated risk clipped, plus a nudge by the score's average rank (scipy's rankdata)
        served = f"""
        SELECT s.*, least(greatest({churn.SCORE_COLUMNS[1]}, {_double(lo_risk)}), {_double(hi_risk)})
            + {_double(churn.ORDER_NUDGE)} * (0.5 * CAST(2 * _lo + _ties - 1 AS DOUBLE) - 1)
            / {_double(float(max(n - 1, 1)))} AS risk
        FROM (SELECT *, rank() OVER (ORDER BY {churn.SCORE_COLUMNS[0]}) AS _lo,
            count(*) OVER (PARTITION BY {churn.SCORE_COLUMNS[0]}) AS _ties FROM churn_served_scored) AS s
        """
        days, window = _double(float(h)), _double(float(churn.VALUE_WINDOW_DAYS))
        valued = f"""
        SELECT r.*, greatest(spend_2y, 0.0) / least(greatest(tenure_days, {days}), {window}) * {days} AS value_at_stake,
            {segment} AS segment
        FROM ({served}) AS r
        """
        spark.sql(valued).createOrReplaceTempView("churn_served_valued")
        rows_cols = ", ".join(
            f"v.`{c}`" for c in spark.table("churn_served_scored").columns if c not in (*_REASONS, _DAYS)
        )  # ROWS_FILE: the scored frame's columns, the first record
        spark.sql(
            f"SELECT {rows_cols}, f.first_record AS {churn.FIRST_COLUMN} FROM churn_served_scored AS v "
            "LEFT JOIN churn_served_first AS f USING (customer_key)"
        ).createOrReplaceTempView("churn_served_rows")
        band = (
            f"CASE WHEN v.risk >= {_double(cfg.high_risk)} THEN 'high' "
            f"WHEN v.risk >= {_double(cfg.medium_risk)} THEN 'medium' ELSE 'low' END"
        )
        ordered = spark.sql(
            f"""
            SELECT v.customer_key, o.owner, o.region, v.segment, v.risk, {band} AS risk_band,
                v.risk * v.value_at_stake AS expected_value_at_risk, v.value_at_stake,
                CAST(timestamp_seconds(CAST(v.last_d * 86400 AS BIGINT)) AS TIMESTAMP_NTZ) AS last_activity_at,
                v.{_DAYS} AS days_inactive, CAST(v.order_days AS BIGINT) AS orders,
                v.monetary AS revenue, v.reason_codes, v.reasons_zh, v.reasons_en,
                -(v.risk * v.value_at_stake) AS _k1, -v.risk AS _k2,
                coalesce(f.first_record, v.customer_key) AS _k3, v.{_CID} AS _k4
            FROM churn_served_valued AS v
            LEFT JOIN churn_served_owners AS o USING (customer_key)
            LEFT JOIN churn_served_first AS f USING (customer_key)
            """
        )
        numbered(self.spark, self.settings, ordered, {"rank": ("_k1", "_k2", "_k3", "_k4")}, "churn_served", self.stage)
        published = [c for c in TABLES["churn_scores"] if c not in ("as_of", "method")]
        sql = (
            f"SELECT {', '.join(published)}, DATE '{run_.as_of.isoformat()}' AS as_of, "
            f"'{run_.method}' AS method FROM churn_served ORDER BY rank"
        )
        run_to_parquet(
            spark, con, settings, sql, "churn_scores", TABLES["churn_scores"], self.folder,
            row_group_size=churn.SCORES_ROW_GROUP,
        )  # fmt: skip

    def _segment_cuts(self) -> tuple[float | None, float | None]:
        """build._segments' cut points: the last year's spend at polars' nearest 0.8 and 0.5 quantiles among the
        customers who spent (None: nobody did)."""
        spark = self.spark
        m = spark.sql("SELECT count(*) AS m FROM churn_served_scored WHERE spend_year > 0").collect()[0]["m"]
        if not m:
            return None, None
        at = {nearest_index(m, q) + 1: q for q in (0.8, 0.5)}
        got = spark.sql(
            "SELECT i, spend_year FROM (SELECT spend_year, row_number() OVER (ORDER BY spend_year) AS i "
            f"FROM churn_served_scored WHERE spend_year > 0) WHERE i IN ({', '.join(map(str, at))})"
        ).collect()
        value = {at[row["i"]]: float(row["spend_year"]) for row in got}
        return value[0.8], value[0.5]


_REASONS = ("reason_codes", "reasons_zh", "reasons_en")


@contextmanager
def churn_on(spark: Any, settings: Settings, store: Store, manifest: Manifest, stage: Path) -> Iterator[None]:
    """Inside: churn's keys, per-day tables, features and labels are made on ``spark`` (engine spark), and its served
    pass over every customer runs there (derived.spark.served), or all by DuckDB when it is None. Spark's files are
    removed when it ends."""
    if spark is None:
        yield
        return
    from dashboard.derived.churn import build as churn

    days = SparkDays(spark, settings, store, manifest, stage)
    try:
        with churn_features.day_tables_from(days), churn.served_by(SparkServed(days, stage)):
            yield
    finally:
        shutil.rmtree(stage / PARTS, ignore_errors=True)
