"""Churn's served pass over every customer as Spark jobs (engine spark): the customers' features at the as-of day,
BG/NBD's figures, the scores and the reasons made on the executors by churn's own functions, a partition at a time
(derived.churn.features.features_at, build._with_bgnbd, build._score: a part of the customers gets what the whole
gets), the served risk, segments, owners and ranks in Spark SQL, churn_scores.parquet and churn_rows.parquet
written by Spark. The driver holds the fits only: BG/NBD is fitted there on the (x, t_x, T) of the customers it is
fitted on anyway (every one up to bgnbd.MAX_CUSTOMERS, a sample of that many by position in key order above it:
the same arrays, so the same fit), the model came from the backtest's bounded sample.

The backtest before it runs on Spark too (derived.spark.backtest), and so does an incremental build's rescore of the
touched customers (SparkServed.rescore: the kept build's rows and scores read there). A model trained on a shorter
horizon than the target scales its risk by an isotonic map over every customer (build._to_target): made here too,
range by range (isotonic.to_target, sklearn's fit to the last bit), and so is a kept fit of such a model's rescore
(build._rescored_by's of everyone, SparkServed.rescore's of an incremental build): as the DuckDB engine does, every
customer is scored again and the map fitted again over all of them."""

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
from dashboard.derived.spark import isotonic
from dashboard.derived.spark.backtest import SparkBacktest, _polars, unscaled
from dashboard.derived.spark.churn import SparkDays
from dashboard.derived.spark.cutoffs import CID as _CID
from dashboard.derived.spark.cutoffs import Given, bgnbd_fit, features_view, mapped, one_row
from dashboard.derived.spark.jobs import PARTS, read_parquet, run_to_parquet, spark_query
from dashboard.derived.spark.steps import numbered, write_view, written_rows

if TYPE_CHECKING:
    from dashboard.derived.churn import build as churn

_DAYS = "_days_inactive"  # churn_scores' days_inactive (reasons.days_counted), made with the scores
_TO_DUCK = {pl.Int64: "BIGINT", pl.Int32: "INTEGER", pl.Float64: "DOUBLE", pl.String: "VARCHAR", pl.Boolean: "BOOLEAN"}


def scored_part(
    raw: pl.DataFrame,
    t: int,
    horizon: int,
    bg: churn_bgnbd.BGNBD,
    fitted: churn.Fitted | None,
    method: str,
    target: int | None = None,
) -> pl.DataFrame:
    """A partition of FEATURES_SQL's rows at ``t`` (with their id, _CID) as the served method sees them: churn's
    features_at columns, BG/NBD's figures under ``bg`` (with a ``target`` horizon, its growth to it), the score and
    risk (build.SCORE_COLUMNS) and the reasons, by churn's own functions."""
    with churn_features.day_tables_from(Given(raw.drop(_CID))):
        features = churn_features.features_at(cast(duckdb.DuckDBPyConnection, None), t, horizon)
    return _scored(features, raw[_CID], horizon, bg, fitted, method, target)


def rescored_part(
    raw: pl.DataFrame,
    horizon: int,
    bg: churn_bgnbd.BGNBD,
    fitted: churn.Fitted | None,
    method: str,
    target: int | None = None,
) -> pl.DataFrame:
    """A partition of every customer's features (features_at's columns: a kept build's ROWS_FILE rows, the touched
    customers' made again) with their id, scored as scored_part scores today's."""
    return _scored(raw.drop(_CID), raw[_CID], horizon, bg, fitted, method, target)


def _scored(
    features: pl.DataFrame,
    cid: pl.Series,
    horizon: int,
    bg: churn_bgnbd.BGNBD,
    fitted: churn.Fitted | None,
    method: str,
    target: int | None = None,
) -> pl.DataFrame:
    """``features`` with BG/NBD's figures under ``bg`` (and the growth to a ``target`` horizon), the score and risk
    (build.SCORE_COLUMNS), ``cid``, the reasons and churn_scores' days_inactive, by churn's own functions."""
    from dashboard.derived.churn import build as churn

    frame = churn._with_bgnbd(features, horizon, target, bg)
    ranking, risk, reasons = churn._score(frame, fitted, method, horizon)
    scores = (pl.Series(churn.SCORE_COLUMNS[0], ranking), pl.Series(churn.SCORE_COLUMNS[1], risk), cid)
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
        spark, settings, stage, t = self.spark, self.settings, self.stage, run_.day
        n = features_view(spark, settings, stage, con, t, horizon, "churn_served_raw")
        if n == 0:
            return None
        run_.bgnbd = bg = bgnbd_fit(spark, settings, stage, "churn_served_raw", n)
        part = partial(scored_part, t=t, horizon=horizon, bg=bg, method=run_.method)
        shape = self._scored_view("churn_served_raw", part, fitted, run_.horizon_days)
        self._owners(con)
        self._published(con, settings, run_, n, horizon)
        self._rows_file(con, run_, shape, bg, horizon)
        return n

    def _scored_view(
        self, view: str, part: partial[pl.DataFrame], fitted: churn.Fitted | None, target: int
    ) -> pl.DataFrame:
        """The Spark view churn_served_scored: the customers of ``view`` scored by ``part`` (scored_part or
        rescored_part, given all but the fit) with ``fitted``; a model trained at a shorter horizon than the
        ``target`` scored unscaled with BG/NBD's growth to the target, then scaled over every customer (_to_target).
        Its columns (one row)."""
        spark, settings, stage = self.spark, self.settings, self.stage
        if fitted is not None and fitted.scaled:
            scaled = partial(part, fitted=unscaled(fitted), target=target)
            shape = mapped(spark, settings, stage, view, scaled, "churn_served_unscaled")
            self._to_target(shape)
            return shape
        return mapped(spark, settings, stage, view, partial(part, fitted=fitted), "churn_served_scored")

    def _to_target(self, shape: pl.DataFrame) -> None:
        """The Spark view churn_served_scored from churn_served_unscaled (``shape``'s columns): each customer's risk
        build._to_target's over every customer (isotonic.to_target), in the place the calibrated one had."""
        from dashboard.derived.churn import build as churn

        spark, risk = self.spark, churn.SCORE_COLUMNS[1]
        isotonic.to_target(spark, self.settings, self.stage, "churn_served_unscaled", "churn_served_target")
        cols = ", ".join(f"t.{risk}" if c == risk else f"u.`{c}`" for c in shape.columns)
        scaled = spark.sql(
            f"SELECT {cols} FROM churn_served_unscaled AS u JOIN churn_served_target AS t USING ({_CID})"
        )
        write_view(spark, self.settings, scaled, "churn_served_scored", self.stage)

    def rescore(
        self,
        con: duckdb.DuckDBPyConnection,
        settings: Settings,
        run_: churn.ChurnRun,
        kept: churn.KeptFit,
        rows: churn.KeptRows,
        touched: pl.Series,
        new: pl.DataFrame,
    ) -> bool:
        """build._rescore_touched's rescore on Spark, from the kept build's ROWS_FILE and churn_scores (read there) and
        ``new``, the ``touched`` customers' features (made on the driver: they are few). BG/NBD is fitted again (on
        Spark's bounded sample of everyone's figures) only when the touched customers' inputs moved
        (build._same_bgnbd_inputs); with the kept fit, only the touched are scored, here, and the others' figures,
        scores, risks, reasons and days inactive are their kept rows' (_touched_only, as build._touched_only takes
        them), else everyone is scored on the executors (rescored_part). The owners and first records are the kept
        build's and the touched customers' (_owners); the served order, segments and ranks the whole population's,
        as the served pass makes them (_published). A model scaled to the target horizon: everyone is scored on the
        executors and the map fitted again over all of them (_scored_view), as build._rescore does. False (the
        driver's rescore): kept files that cannot say."""
        from dashboard.derived.churn import build as churn

        fitted, th, spark = kept.fitted, kept.train_horizon_days, self.spark
        made = rows.meta()
        kept_rows = read_parquet(spark, settings, rows.rows)
        if made is None or churn.FIRST_COLUMN not in kept_rows.columns:
            return False
        if not set(new.columns) <= set(kept_rows.columns):
            return False
        churn._kept_decision(run_, kept)
        kept_rows.createOrReplaceTempView("churn_rescore_kept")
        read_parquet(spark, settings, rows.scores).createOrReplaceTempView("churn_rescore_scores")
        self._given(touched.to_frame("customer_key"), "churn_rescore_touched")
        # the touched customers' figures as the kept build has them: BG/NBD's inputs moved or not (a few rows)
        cols = ["customer_key", "active_days", "active_span", "tenure_days"]
        before = _polars(spark.table("churn_rescore_kept").join(spark.table("churn_rescore_touched"), "customer_key")
                         .select(*cols))  # fmt: skip
        same_inputs = churn._same_bgnbd_inputs(before.cast(new.select(cols).schema), new)
        features = ", ".join(f"`{c}`" for c in new.columns)
        schema = pl.read_parquet_schema(rows.rows)  # the kept file's types (Spark's keeps the features' SQL ones)
        self._given(new.cast({c: schema[c] for c in new.columns}), "churn_rescore_new")
        everyone = spark.sql(
            f"SELECT {features}, customer_key AS {_CID} FROM churn_rescore_kept LEFT ANTI JOIN churn_rescore_touched "
            f"USING (customer_key) UNION ALL SELECT {features}, customer_key AS {_CID} FROM churn_rescore_new"
        )
        n = written_rows(write_view(spark, settings, everyone, "churn_rescore_features", self.stage))
        bg = made[1] if same_inputs else bgnbd_fit(spark, settings, self.stage, "churn_rescore_features", n)
        scaled = fitted is not None and fitted.scaled  # its risk is the whole population's (_to_target): everyone's
        if scaled or bg != made[1] or not self._touched_only(new, bg, kept):
            part = partial(rescored_part, horizon=th, bg=bg, method=kept.method)
            self._scored_view("churn_rescore_features", part, fitted, run_.horizon_days)
        shape = one_row(spark, "churn_served_scored")
        self._owners(con, rows, new)
        self._published(con, settings, run_, n, run_.horizon_days)
        self._rows_file(con, run_, shape, bg, th)
        run_.bgnbd, run_.written, run_.scored = bg, True, n
        churn_features.drop_days(con)
        churn._kept_card(run_, kept, n)
        return True

    def _touched_only(self, new: pl.DataFrame, bg: churn_bgnbd.BGNBD, kept: churn.KeptFit) -> bool:
        """The Spark view churn_served_scored (scored_part's columns) with only the touched customers scored, here
        (they are few), as build._touched_only takes them: the others' BG/NBD figures, scores and risks are their
        kept ROWS_FILE rows' and their reasons and days inactive their kept churn_scores rows' (the same numbers
        under the same fits). False when the kept rows and scores do not name the same customers (then everyone is
        scored on the executors)."""
        from dashboard.derived.churn import build as churn

        spark = self.spark
        unchanged = "LEFT ANTI JOIN churn_rescore_touched USING (customer_key)"
        got = spark.sql(
            f"SELECT count(*) AS n, count(s.customer_key) AS named FROM (SELECT customer_key FROM churn_rescore_kept "
            f"{unchanged}) AS r LEFT JOIN (SELECT customer_key FROM churn_rescore_scores {unchanged}) AS s "
            "USING (customer_key)"
        ).collect()[0]
        scores = spark.sql(f"SELECT count(*) AS m FROM churn_rescore_scores {unchanged}").collect()[0]["m"]
        if not got["n"] == got["named"] == scores:
            return False
        kept_columns = spark.table("churn_rescore_kept").schema
        # the touched customers' rows as scored_part makes them (BG/NBD's figures, score, risk, reasons, days)
        listed = [*new.columns, *_BGNBD_COLUMNS, *churn.SCORE_COLUMNS]
        if not set(listed) <= set(kept_columns.names):
            return False
        typed = {f.name: f.dataType.simpleString() for f in kept_columns}
        sql = (
            f"SELECT {', '.join(f'r.`{c}`' for c in listed)}, r.customer_key AS {_CID}, "
            f"{', '.join(f's.{c}' for c in _REASONS)}, s.days_inactive AS {_DAYS} FROM churn_rescore_kept AS r "
            f"JOIN churn_rescore_scores AS s USING (customer_key) {unchanged.replace('USING', 'AS t USING')}"
        )
        if new.height:
            made = _scored(new, new["customer_key"].alias(_CID), kept.train_horizon_days, bg, kept.fitted, kept.method)
            self._given(made.select(*listed, _CID, *_REASONS, _DAYS), "churn_rescore_made")
            sql += (
                f" UNION ALL SELECT {', '.join(f'CAST(`{c}` AS {typed[c]}) AS `{c}`' for c in listed)}, {_CID}, "
                f"{', '.join(_REASONS)}, CAST({_DAYS} AS BIGINT) FROM churn_rescore_made"
            )
        write_view(spark, self.settings, spark.sql(sql), "churn_served_scored", self.stage)
        return True

    def _given(self, frame: pl.DataFrame, view: str) -> None:
        """The Spark view ``view`` of ``frame`` (a few rows made on the driver), through a file under the stage."""
        (self.stage / PARTS).mkdir(parents=True, exist_ok=True)
        path = self.stage / PARTS / f"{view}.parquet"
        frame.write_parquet(path)
        read_parquet(self.spark, self.settings, path).createOrReplaceTempView(view)

    def _owners(
        self, con: duckdb.DuckDBPyConnection, rows: churn.KeptRows | None = None, new: pl.DataFrame | None = None
    ) -> None:
        """The Spark views churn_served_owners (customer_key, owner, region) and churn_served_first (customer_key,
        FIRST_COLUMN) of the scored customers: on Spark over every link and key (ATTRIBUTES_SQL,
        FIRST_RECORDS_SQL), or for a rescore of the ``new`` (touched) customers, the kept build's (its churn_scores
        and ROWS_FILE) for the others and the touched customers' made on the driver (their keys and links are
        there), as build._rescore_touched takes them."""
        from dashboard.derived.churn import build as churn

        spark = self.spark
        if rows is None or new is None:
            self.days._views()
            priority = con.sql("SELECT * FROM churn_priority").fetchall()
            spark.createDataFrame(priority or [], "source_system string, priority int").createOrReplaceTempView(
                "churn_priority"
            )
            spark.table("churn_served_scored").select("customer_key").createOrReplaceTempView("churn_scored")
            spark.sql(*spark_query(churn_features.ATTRIBUTES_SQL)).createOrReplaceTempView("churn_served_owners")
            spark.sql(*spark_query(churn_features.FIRST_RECORDS_SQL)).createOrReplaceTempView("churn_served_first")
            return
        made = churn_features.attributes(con, new.select("customer_key"), few=True)
        self._given(made.select("customer_key", "owner", "region").cast(pl.String), "churn_rescore_owners")
        self._given(churn_features.first_records(con, few=True).cast(pl.String), "churn_rescore_first")
        first = churn.FIRST_COLUMN
        for view, cols, kept in (
            ("churn_served_owners", "customer_key, owner, region", "churn_rescore_scores"),
            ("churn_served_first", f"customer_key, {first}", "churn_rescore_kept"),
        ):
            spark.sql(
                f"SELECT {cols} FROM {kept} LEFT ANTI JOIN churn_rescore_touched USING (customer_key) "
                f"UNION ALL SELECT {cols} FROM {view.replace('served', 'rescore')}"
            ).createOrReplaceTempView(view)

    def _rows_file(
        self, con: duckdb.DuckDBPyConnection, run_: churn.ChurnRun, shape: pl.DataFrame, bg: churn_bgnbd.BGNBD,
        horizon: int,
    ) -> None:  # fmt: skip
        """ROWS_FILE from the Spark view churn_served_rows, in key order, with the day, last day read, horizon and
        BG/NBD's fit in its metadata (KeptRows.meta); LZ4 as Parquet's LZ4_RAW, which polars, Arrow and DuckDB read
        (Spark's "lz4" is the Hadoop-framed codec: polars failed on a medium build's file, "Decompression failed",
        where the driver's rescore read it)."""
        from dashboard.derived.churn import build as churn

        rows = {c: _TO_DUCK[shape.schema[c].base_type()] for c in shape.columns if c not in (*_REASONS, _CID, _DAYS)}
        meta = {"day": str(run_.day), "latest": str(run_.latest), "horizon": str(horizon)}
        meta["bgnbd"] = json.dumps([repr(v) for v in (bg.r, bg.alpha, bg.a, bg.b)])
        run_to_parquet(
            self.spark, con, self.settings, f"SELECT * FROM churn_served_rows ORDER BY {_CID}",
            Path(churn.ROWS_FILE).stem, {**rows, churn.FIRST_COLUMN: "VARCHAR"}, self.folder,
            compression="lz4_raw", metadata=meta,
        )  # fmt: skip

    def _published(
        self, con: duckdb.DuckDBPyConnection, settings: Settings, run_: churn.ChurnRun, n: int, horizon: int
    ) -> None:
        """churn_scores.parquet as build._scores makes it, from the scored customers (Spark view
        churn_served_scored) with their owners and first records (_owners' views); and the Spark view
        churn_served_rows, ROWS_FILE's rows (build._rows)."""
        from dashboard.derived.churn import build as churn

        spark, cfg, h = self.spark, settings.churn, run_.horizon_days
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
_BGNBD_COLUMNS = ("bgnbd_expected", "bgnbd_p_alive", "bgnbd_p_none")  # build._with_bgnbd's (no target horizon)


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
