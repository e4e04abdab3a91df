"""Churn warnings: who is likely to stop buying, how much revenue that puts at risk, and why.

A customer with activity before the as-of date D has *churned* when they have no order and no
interaction in the horizon H after it. Three scores compete in every run:

- ``model``: the additive gradient-boosting model (derived/churn/model.py) on RFM, trends,
  interactions by kind, channel mix, overdue receivables, tenure and BG/NBD's own figures;
- ``recency``: days since the last activity;
- ``bgnbd``: BG/NBD's expected activity in the horizon (fewer expected → riskier).

Backtest: each is fitted with labels from the cutoff D − 2H (and, for a small shop, the cutoffs
before it: see _Windows) and judged on the customers at D − H (labels: their activity up to D). The
model is kept only when its AUC beats both baselines; otherwise the better baseline scores the
customers, and the model card says so. The winner is then refitted with labels from D − H (and the
windows before it) and scores everyone at D. Nothing at or after D is read.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import polars as pl
from numpy.typing import NDArray

from dashboard.core.config import Settings
from dashboard.core.duck import attach_entities, attach_table, work_connection
from dashboard.core.errors import CockpitError
from dashboard.core.store import Store
from dashboard.derived import identity
from dashboard.derived.churn import TABLES
from dashboard.derived.churn import bgnbd as churn_bgnbd
from dashboard.derived.churn import features as churn_features
from dashboard.derived.churn import model as churn_model
from dashboard.derived.churn.features import FEATURES
from dashboard.derived.churn.reasons import REASON_CODES, group_weights, top_reasons

CHURN_TABLES: tuple[str, ...] = ("churn_scores", "churn_model")
METHODS: tuple[str, ...] = ("model", "recency", "bgnbd")
MAX_TRAIN = 200_000  # customers the model is fitted on (a random sample above this)
MIN_CUSTOMERS = 50  # at each backtest cutoff, for a fit to mean anything
STACK_ROWS = 100_000  # a fit adds older windows while it has fewer customer windows than this...
STACK_WINDOWS = 3  # ...up to this many cutoffs
RISK_FLOOR = 0.01  # a served risk never claims certainty: 1 % to 99 %
VALUE_WINDOW_DAYS = 730  # a customer's pace of spending is read over at most the last two years
F64 = NDArray[np.float64]
Progress = Callable[[str], None]
Bins = list[tuple[int, float, float, int]]  # calibration chart: (bin, mean predicted, observed rate, customers)


class ChurnError(CockpitError):
    """Churn cannot be scored as asked (e.g. an as-of date before any activity)."""

    exit_code = 2


@dataclass
class ChurnRun:
    as_of: date
    horizon_days: int
    method: str  # the method whose risks are served
    status: str  # validated | unvalidated | no_activity
    scores: pl.DataFrame
    card: pl.DataFrame  # one row per method; the calibration chart's bins are list columns
    notes: list[str] = field(default_factory=list)


# -- customers at a cutoff ------------------------------------------------------------------------
def _with_bgnbd(frame: pl.DataFrame, horizon: int) -> pl.DataFrame:
    """Adds BG/NBD's expected activity and P(alive), fitted on the frame's own customers (no labels)."""
    x = (frame["active_days"].to_numpy() - 1).astype(np.float64)
    tx = frame["active_span"].to_numpy().astype(np.float64)
    big_t = frame["tenure_days"].to_numpy().astype(np.float64)
    fitted = churn_bgnbd.fit(x, tx, big_t)
    return frame.with_columns(
        pl.Series("bgnbd_expected", fitted.expected(horizon, x, tx, big_t)),
        pl.Series("bgnbd_p_alive", fitted.p_alive(x, tx, big_t)),
        pl.Series("bgnbd_p_none", fitted.p_none(horizon, x, tx, big_t)),
    )


def _at(con: duckdb.DuckDBPyConnection, t: int, horizon: int, labelled: bool) -> pl.DataFrame:
    frame = churn_features.features_at(con, t, horizon)
    if frame.is_empty():
        return frame
    frame = _with_bgnbd(frame, horizon)
    if labelled:
        active = churn_features.active_at(con, t, horizon).with_columns(pl.lit(False).alias("churned"))
        frame = frame.join(active, on="customer_key", how="left").with_columns(pl.col("churned").fill_null(True))
    return frame


def _matrix(frame: pl.DataFrame) -> F64:
    return frame.select(pl.col(c).cast(pl.Float64) for c in FEATURES).to_numpy().astype(np.float64)


def _baseline_score(frame: pl.DataFrame, method: str) -> F64:
    """Higher = riskier."""
    col = "recency_days" if method == "recency" else "bgnbd_expected"
    s = frame[col].to_numpy().astype(np.float64)
    return s if method == "recency" else -s


def _sample(frame: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    return frame.sample(MAX_TRAIN, seed=seed) if frame.height > MAX_TRAIN else frame


# -- the backtest ---------------------------------------------------------------------------------
class _Windows:
    """Labelled customers at the cutoffs D − kH (k = 1, 2, ...), each computed once when first asked for.

    A fit from cutoff k sees the windows k, k + 1, ... stacked (a customer once per window), adding
    older ones only while the fit has fewer than STACK_ROWS customer windows (at most STACK_WINDOWS):
    a small shop learns from its last year, not its last quarter, and a large one pays for one window.
    Every label of window k ends before cutoff k − 1, so the backtest's fit never sees what it is judged on.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, d: int, horizon: int, first: float) -> None:
        self.con, self.d, self.h, self.first = con, d, horizon, first
        self.frames: dict[int, pl.DataFrame] = {}

    def at(self, k: int) -> pl.DataFrame:
        t = self.d - k * self.h
        if k not in self.frames:
            self.frames[k] = _at(self.con, t, self.h, labelled=True) if self.first < t else pl.DataFrame()
        return self.frames[k]

    def stacked(self, k: int) -> pl.DataFrame:
        frames = [self.at(k)]
        while len(frames) < STACK_WINDOWS and sum(f.height for f in frames) < STACK_ROWS:
            older = self.at(k + len(frames))
            if older.height < MIN_CUSTOMERS or older["churned"].n_unique() < 2:
                break
            frames.append(older)
        return pl.concat(frames, how="vertical_relaxed")


@dataclass
class Scored:
    ranking: F64  # the uncalibrated score (isotonic calibration makes ties; ranks are judged before it)
    risk: F64  # the calibrated probability of churn
    terms: F64 | None = None  # the model's per-feature log-odds terms (None for a baseline)


@dataclass
class Fitted:
    method: str
    model: churn_model.AdditiveModel | None = None
    calibrator: churn_model.ScoreCalibrator | None = None

    def score(self, frame: pl.DataFrame) -> Scored:
        if self.model is not None:
            terms = self.model.terms(_matrix(frame))
            log_odds = self.model.log_odds_of(terms)
            return Scored(log_odds, self.model.calibrator.predict(log_odds), terms)
        assert self.calibrator is not None
        raw = _baseline_score(frame, self.method)
        return Scored(raw, self.calibrator.predict(raw))


def fit(method: str, frame: pl.DataFrame) -> Fitted:
    """``frame``: customers at a cutoff with their ``churned`` label."""
    y = frame["churned"].to_numpy().astype(bool)
    if method == "model":
        train = _sample(frame)
        return Fitted(method, model=churn_model.fit_model(_matrix(train), train["churned"].to_numpy().astype(bool)))
    return Fitted(method, calibrator=churn_model.ScoreCalibrator.fit(_baseline_score(frame, method), y))


def _evaluate(fitted: Fitted, frame: pl.DataFrame) -> tuple[dict[str, float | None], Bins]:
    y = frame["churned"].to_numpy().astype(bool)
    got = fitted.score(frame)
    metrics = {
        "auc": churn_model.auc(y, got.ranking),
        "precision_top10": churn_model.precision_at(y, got.ranking, 0.1),
        "brier": churn_model.brier(y, got.risk),
    }
    return metrics, churn_model.reliability(y, got.risk)


def _validated(frames: tuple[pl.DataFrame, pl.DataFrame]) -> bool:
    return all(f.height >= MIN_CUSTOMERS and f["churned"].n_unique() == 2 for f in frames)


# -- what is served -------------------------------------------------------------------------------
def _segments(frame: pl.DataFrame) -> pl.Expr:
    """Value tiers on the last year's spend: the top 20 % of spenders high, the next 30 % mid."""
    spend = frame.filter(pl.col("spend_year") > 0)["spend_year"]
    if spend.is_empty():
        return pl.lit("none")
    hi, mid = spend.quantile(0.8, "nearest"), spend.quantile(0.5, "nearest")
    s = pl.col("spend_year")
    return (
        pl.when(s <= 0).then(pl.lit("none"))
        .when(s >= hi).then(pl.lit("high"))
        .when(s >= mid).then(pl.lit("mid"))
        .otherwise(pl.lit("low"))
    )  # fmt: skip


def _reason_weights(method: str, fitted: Fitted | None, scored: Scored | None, frame: pl.DataFrame) -> F64:
    if fitted is not None and fitted.model is not None and scored is not None and scored.terms is not None:
        return group_weights(scored.terms - fitted.model.centres)
    # A baseline's score is made of inactivity alone (recency), or of inactivity and purchase history (BG/NBD).
    w = np.zeros((frame.height, len(REASON_CODES)))
    w[:, REASON_CODES.index("inactivity")] = 1.0
    if method == "bgnbd":
        w[:, REASON_CODES.index("history")] = 0.5
    return w


def _scores(
    con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, risk: F64, weights: F64, settings: Settings, run: ChurnRun
) -> pl.DataFrame:
    cfg, h = settings.churn, run.horizon_days
    reasons = top_reasons(frame, weights, h)
    pace = pl.col("spend_2y").clip(lower_bound=0) / pl.col("tenure_days").clip(h, VALUE_WINDOW_DAYS) * h
    band = (
        pl.when(pl.col("risk") >= cfg.high_risk)
        .then(pl.lit("high"))
        .when(pl.col("risk") >= cfg.medium_risk)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )
    out = (
        pl.concat([frame, reasons], how="horizontal")
        .with_columns(
            pl.Series("risk", np.clip(risk, RISK_FLOOR, 1 - RISK_FLOOR)),
            pace.alias("value_at_stake"),
            _segments(frame).alias("segment"),
            pl.from_epoch((pl.col("last_d") * 86400).cast(pl.Int64), time_unit="s").alias("last_activity_at"),
        )
        .with_columns(
            band.alias("risk_band"), (pl.col("risk") * pl.col("value_at_stake")).alias("expected_value_at_risk")
        )
    )
    attrs = churn_features.attributes(con, out)
    out = out.join(attrs, on="customer_key", how="left").sort(
        ["expected_value_at_risk", "risk", "customer_key"], descending=[True, True, False]
    )
    return out.select(
        pl.int_range(1, out.height + 1, dtype=pl.Int64).alias("rank"),
        "customer_key",
        "owner",
        "region",
        "segment",
        "risk",
        "risk_band",
        "expected_value_at_risk",
        "value_at_stake",
        "last_activity_at",
        pl.col("recency_days").floor().cast(pl.Int64).alias("days_inactive"),
        pl.col("order_days").cast(pl.Int64).alias("orders"),
        pl.col("monetary").alias("revenue"),
        "reason_codes",
        "reasons_zh",
        "reasons_en",
        pl.lit(run.as_of).alias("as_of"),
        pl.lit(run.method).alias("method"),
    )


def _card(
    run: ChurnRun, metrics: dict[str, dict[str, float | None]], bins: dict[str, Bins], extra: dict[str, object]
) -> pl.DataFrame:
    rows = []
    for m in METHODS:
        got, chart = metrics.get(m, {}), bins.get(m, [])
        rows.append(
            {
                "method": m,
                "auc": got.get("auc"),
                "precision_top10": got.get("precision_top10"),
                "brier": got.get("brier"),
                "chosen": m == run.method,
                "status": run.status,
                "as_of": run.as_of,
                "horizon_days": run.horizon_days,
                "notes": " · ".join(run.notes),
                "calibration_predicted": [b[1] for b in chart],
                "calibration_observed": [b[2] for b in chart],
                "calibration_customers": [b[3] for b in chart],
                **extra,
            }
        )
    return pl.DataFrame(rows, schema=CARD_SCHEMA)


CARD_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "method": pl.String,
    "auc": pl.Float64,
    "precision_top10": pl.Float64,
    "brier": pl.Float64,
    "chosen": pl.Boolean,
    "status": pl.String,
    "as_of": pl.Date,
    "horizon_days": pl.Int64,
    "notes": pl.String,
    "train_cutoff": pl.Date,
    "backtest_cutoff": pl.Date,
    "backtest_customers": pl.Int64,
    "backtest_churn_rate": pl.Float64,
    "customers_scored": pl.Int64,
    "trained_at": pl.Datetime("us", "UTC"),
    "calibration_predicted": pl.List(pl.Float64),  # the backtest's customers in ten equal bins of risk
    "calibration_observed": pl.List(pl.Float64),
    "calibration_customers": pl.List(pl.Int64),
}


# -- the run --------------------------------------------------------------------------------------
def run(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    links: pl.DataFrame,
    as_of: date | None = None,
    horizon_days: int | None = None,
    progress: Progress | None = None,
) -> ChurnRun:
    """Score every customer at ``as_of`` (default: the day after the latest activity).

    ``con`` has the canonical views (orders, interactions, contracts, customers, leads); ``links`` is
    the identity_links table of the build.
    """
    say = progress or (lambda _m: None)
    h = int(horizon_days or settings.churn.horizon_days)
    today = datetime.now(ZoneInfo(settings.timezone)).date()
    priorities = {s.name: s.priority for s in settings.sources}
    churn_features.load_events(con, links, priorities, churn_features.day_number(today + timedelta(days=1)))
    first, last = churn_features.activity_range(con)
    if as_of is None:
        as_of = date(1970, 1, 1) + timedelta(days=math.floor(last) + 1) if last is not None else today
    d = churn_features.day_number(as_of)
    trained_at = datetime.now(UTC)
    run_ = ChurnRun(as_of, h, "none", "no_activity", pl.DataFrame(), pl.DataFrame())
    extra: dict[str, object] = {"trained_at": trained_at}
    if first is None or first >= d:
        run_.notes.append("no order or interaction before the as-of date")
        run_.scores, run_.card = _empty_scores(), _card(run_, {}, {}, extra)
        return run_

    say(f"churn: customers at {as_of} (horizon {h} days)")
    now = _at(con, d, h, labelled=False)
    t1, t2 = d - 2 * h, d - h
    windows = _Windows(con, d, h, first)
    back_test, back_train = windows.at(1), windows.at(2)
    extra.update(customers_scored=now.height)
    metrics: dict[str, dict[str, float | None]] = {}
    bins: dict[str, Bins] = {}
    final: Fitted | None = None
    scored: Scored | None = None
    if back_train.height and back_test.height and _validated((back_train, back_test)):
        train = windows.stacked(2)
        say(f"churn: backtest, trained on {train.height} customer windows, judged on {back_test.height} customers")
        for m in METHODS:
            metrics[m], bins[m] = _evaluate(fit(m, train), back_test)
        del train
        aucs = {m: metrics[m]["auc"] or 0.0 for m in METHODS}
        model_wins = aucs["model"] > max(aucs["recency"], aucs["bgnbd"])
        run_.method = "model" if model_wins else max(("recency", "bgnbd"), key=lambda m: aucs[m])
        run_.status = "validated"
        if not model_wins:
            run_.notes.append(
                f"the model did not beat the {run_.method} baseline on the backtest; {run_.method} is used"
            )
        extra.update(
            train_cutoff=_date(t1),
            backtest_cutoff=_date(t2),
            backtest_customers=back_test.height,
            backtest_churn_rate=float(back_test["churned"].cast(pl.Float64).mean() or 0.0),  # type: ignore[arg-type]
        )
        say(f"churn: {run_.method} scores ({', '.join(f'{m} AUC {aucs[m]:.3f}' for m in METHODS)})")
        final = fit(run_.method, windows.stacked(1))
        scored = final.score(now)
        risk = scored.risk
    else:
        run_.method, run_.status = "bgnbd", "unvalidated"
        run_.notes.append(
            f"history too short to train and backtest (needs activity before {_date(t1)}, "
            f"{2 * h} days before the as-of date): BG/NBD's own probability of no activity is used"
        )
        risk = now["bgnbd_p_none"].to_numpy()
    del back_train, back_test, windows  # the fits are done: free their frames and the per-day tables
    churn_features.drop_days(con)
    run_.scores = _scores(con, now, risk, _reason_weights(run_.method, final, scored, now), settings, run_)
    run_.card = _card(run_, metrics, bins, extra)
    return run_


def _date(day_number: float) -> date:
    return date(1970, 1, 1) + timedelta(days=int(day_number))


def _empty_scores() -> pl.DataFrame:
    return pl.DataFrame(schema={c: _POLARS[t] for c, t in TABLES["churn_scores"].items()})


_POLARS: dict[str, pl.DataType | type[pl.DataType]] = {
    "VARCHAR": pl.String,
    "DOUBLE": pl.Float64,
    "BIGINT": pl.Int64,
    "DATE": pl.Date,
    "TIMESTAMP": pl.Datetime("us"),
    "VARCHAR[]": pl.List(pl.String),
}  # DuckDB types of TABLES["churn_scores"] → polars


def build(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    links: pl.DataFrame,
    folder: Path,
    progress: Progress | None = None,
) -> ChurnRun:
    """The derived build's churn tables: ``<table>.parquet`` for each of CHURN_TABLES in ``folder``."""
    result = run(con, settings, links, progress=progress)
    result.scores.write_parquet(folder / "churn_scores.parquet")
    result.card.write_parquet(folder / "churn_model.parquet")
    return result


# -- the command line -------------------------------------------------------------------------------
BACKTEST_COLUMNS = ("method", "auc", "precision_top10", "brier", "chosen", "status")


def parse_as_of(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ChurnError(f"--as-of must be a date like 2026-03-01, got {text!r}") from None


def score_current(
    settings: Settings, as_of: date | None, horizon_days: int | None, progress: Progress | None = None
) -> ChurnRun:
    """A fresh run over the current snapshots (what ``cockpit churn --as-of`` prints)."""
    if horizon_days is not None and not 7 <= horizon_days <= 730:
        raise ChurnError(f"--horizon-days must be between 7 and 730, got {horizon_days}")
    store = Store(settings.data_path)
    manifest = store.read_manifest()
    rel = ((manifest.get("derived") or {}).get("tables") or {}).get("identity_links")
    with work_connection(settings) as con:
        attach_entities(con, store, manifest)  # the canonical entities, and the current build's links
        attach_table(con, "identity_links", [store.abs(rel)] if rel else [], identity.TABLES["identity_links"])
        links = con.sql("SELECT * FROM identity_links").pl()
        result = run(con, settings, links, as_of, horizon_days, progress)
    if result.status == "no_activity":
        raise ChurnError(f"nothing to score: no order or interaction before {result.as_of}")
    return result


def listing(scores: pl.DataFrame, lang: str) -> pl.DataFrame:
    """churn_scores rows → the CLI's columns, reasons in ``lang``."""
    reasons = pl.col("reasons_en" if lang == "en" else "reasons_zh")
    return scores.sort("rank").select(
        "customer_key",
        "risk",
        "expected_value_at_risk",
        *(reasons.list.get(i, null_on_oob=True).alias(f"reason_{i + 1}") for i in range(3)),
    )
