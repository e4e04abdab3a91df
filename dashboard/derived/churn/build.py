"""Churn warnings: who is likely to stop buying, how much revenue that puts at risk, and why.

A customer with activity before the as-of date D has *churned* when they have no order and no
interaction in the horizon H after it. Three scores compete in every run:

- ``model``: the additive gradient-boosting model (derived/churn/model.py) on RFM, trends,
  interactions by kind, channel mix, overdue receivables, tenure and BG/NBD's own figures;
- ``recency``: days since the last activity;
- ``bgnbd``: BG/NBD's probability of no activity in the horizon, fitted on every customer (a 300k
  sample only above that: bgnbd.MAX_CUSTOMERS). Its probability of none, not its expected count: the
  label is "none in H", and the count also ranks by how often the live ones buy (simulated cohort
  shops, AUC on the real next 180 days: 0.7726 against 0.7697; the medium demo's backtest 0.805
  against 0.802).

Backtest: the baselines are fitted with labels from the cutoff D − 2H (and, for a small shop, the
cutoffs before it: see _Windows) and everything is judged on the customers at D − H (labels: their
activity up to D). The winner is then refitted with labels from D − H (and the windows before it)
and scores everyone at D. Nothing at or after D is read.

How much the backtest could train on decides what may serve. At D − 2H only the customers who were
already there can be trained on: a shop whose customers all arrived in one quarter, with a year of
history and a 180-day horizon, has D − 2H a few days into that quarter — about 1,400 windows of
23,570 customers, each a few days old (CDNOW-shaped shops simulated from BG/NBD: the model's backtest
AUC was 0.37-0.61 there, below both baselines). So the model trains on the longest horizon h of H, H/2,
H/4, ... (at least MIN_TRAIN_HORIZON days) at which its backtest fit has THIN_SHARE windows per judged
customer (see model_backtest); its features and labels then span h, and its probability is scaled
to H by BG/NBD (_to_target). In that shop h = 90 days gives 24,947 windows: where leavers complain
first, the model now wins the backtest (0.83 against BG/NBD 0.70) and the real next 180 days (0.871
against 0.787; recency 0.717); in a pure BG/NBD world BG/NBD still wins both, as it should. When no
horizon gives enough windows the backtest is *thin* and the model may not serve whatever its AUC:
BG/NBD, which ranks without labels, is the robust choice (``thin_backtest_robust``).

Recency is the floor: a method serves only when its backtest AUC beats recency's, else recency
serves (``recency_floor``); and the served risk keeps the order the backtest judged (_served).
Before, the isotonic calibration's ties had cost the served BG/NBD score 0.008-0.012 AUC on the real
future of those shops, nearly all of its lead over recency (0.7577 against 0.7565), which on a real
shop put it below. Why the served method serves is the model card's ``serve_reason`` (SERVE_REASONS),
next to each method's ``backtest_windows``, ``backtest_windows_needed`` and ``train_horizon_days``.
"""

from __future__ import annotations

import json
import math
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Protocol, TypeVar

import duckdb
import numpy as np
import polars as pl
import pyarrow.parquet as pq
from numpy.typing import NDArray
from scipy.stats import rankdata
from sklearn.isotonic import IsotonicRegression

from dashboard.core.config import Settings
from dashboard.core.config import today as config_today
from dashboard.core.duck import attach_entities, attach_table, work_connection
from dashboard.core.errors import CockpitError, ConfigError
from dashboard.core.store import Store
from dashboard.derived import identity
from dashboard.derived.churn import TABLES
from dashboard.derived.churn import bgnbd as churn_bgnbd
from dashboard.derived.churn import features as churn_features
from dashboard.derived.churn import model as churn_model
from dashboard.derived.churn.features import FEATURES
from dashboard.derived.churn.reasons import REASON_CODES, days_counted, group_weights, top_reasons

CHURN_TABLES: tuple[str, ...] = ("churn_scores", "churn_model")
FIT_FILE = "churn_fit.pkl"  # the fitted model a build scored with, beside its tables: later refreshes rescore with it
# The features its scores came from (one row per customer, BG/NBD's figures left out), with the as-of day, the
# last day read and their horizon in the file's metadata: a rescore the same day makes only the touched again.
ROWS_FILE = "churn_rows.parquet"
SCORE_COLUMNS = ("score_ranking", "score_risk")  # ROWS_FILE's: each customer's score and risk before _served
# ROWS_FILE's: each customer's first record (features.FIRST_RECORDS_SQL), the served order's tie-break, kept so that a
# rescore reads it for the touched customers only (a file without it: every link's, as before)
FIRST_COLUMN = "first_record"
REASON_COLUMNS = ("reason_codes", "reasons_zh", "reasons_en")
METHODS: tuple[str, ...] = ("model", "recency", "bgnbd")
# Why the served method serves (the model card's serve_reason; the page and CLI translate the code):
SERVE_REASONS: tuple[str, ...] = (
    "best_auc",  # it beat the others on a backtest the model could train on
    "thin_backtest_robust",  # the model's backtest was thin: BG/NBD, which needs no labels to rank, beat recency
    "recency_floor",  # nothing beat days since the last activity on the backtest
    "no_backtest",  # history too short to backtest: BG/NBD's own probability of no activity, unvalidated
    "no_activity",  # nothing to score
)
MAX_TRAIN = 200_000  # customers the model is fitted on (a random sample above this)
MIN_CUSTOMERS = 50  # at each backtest cutoff, for a fit to mean anything
STACK_ROWS = 100_000  # a fit adds older windows while it has fewer customer windows than this...
STACK_WINDOWS = 3  # ...up to this many cutoffs
RISK_FLOOR = 0.01  # a served risk never claims certainty: 1 % to 99 %
ORDER_NUDGE = 1e-6  # customers a calibration step ties are ordered by their score again, by at most this much
THIN_SHARE = 0.5  # the model's backtest is thin below this many training windows per customer it is judged on
MIN_TRAIN_HORIZON = 14  # days: the shortest horizon the model is trained on when the target one leaves too few windows
VALUE_WINDOW_DAYS = 730  # a customer's pace of spending is read over at most the last two years
F64 = NDArray[np.float64]
Progress = Callable[[str], None]
Bins = list[tuple[int, float, float, int]]  # calibration chart: (bin, mean predicted, observed rate, customers)
T = TypeVar("T")
U = TypeVar("U")


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
    reason: str = "no_activity"  # why ``method`` serves: one of SERVE_REASONS
    train_horizon_days: int = 0  # the horizon the served method was trained on (the model's may be shorter)
    fit: KeptFit | None = None  # what scored: a new fit, or the kept one it was given
    rows: pl.DataFrame | None = None  # the customers scored (ROWS_FILE), as of ``day`` with days up to ``latest``
    day: int = 0
    latest: int = 0
    bgnbd: churn_bgnbd.BGNBD | None = None  # the BG/NBD fit of their figures
    touched: int | None = None  # a rescore of the customers whose inputs changed: how many (None: everyone)
    scored: int = 0  # customers whose score, risk and reasons were made (the others': a kept build's)
    written: bool = False  # churn_scores and ROWS_FILE written by another engine (Served), not held in scores and rows


@dataclass
class KeptRows:
    """A build's ROWS_FILE and churn_scores, for a rescore with the same fit that makes again only the customers
    ``touched`` names (customer_key, of either build: those whose orders, interactions, contracts, customer or
    lead records or links changed since, and ``<source>:<ref>`` for a changed row's own ref)."""

    rows: Path
    scores: Path
    touched: pl.DataFrame

    def meta(self) -> tuple[tuple[int, int, int], churn_bgnbd.BGNBD] | None:
        """(as-of day, last day read, horizon) the rows were made at, and their BG/NBD fit; None when the file
        cannot tell."""
        try:
            got = pl.read_parquet_metadata(self.rows)
            made = int(got["day"]), int(got["latest"]), int(got["horizon"])
            return made, churn_bgnbd.BGNBD(*(float(v) for v in json.loads(got["bgnbd"])))
        except (OSError, KeyError, ValueError, TypeError, pl.exceptions.PolarsError):
            return None


def _meta(result: ChurnRun) -> dict[str, str]:
    """ROWS_FILE's metadata (KeptRows.meta reads it); floats as repr, which reads back the same number."""
    bg = result.bgnbd
    fitted = [repr(v) for v in (bg.r, bg.alpha, bg.a, bg.b)] if bg is not None else None
    made = {"day": result.day, "latest": result.latest, "horizon": result.train_horizon_days}
    return {**{k: str(v) for k, v in made.items()}, "bgnbd": json.dumps(fitted)}


# -- customers at a cutoff ------------------------------------------------------------------------
def bgnbd_data(frame: pl.DataFrame) -> tuple[F64, F64, F64]:
    """BG/NBD's (x, t_x, T) of each customer at a cutoff: repeat active days, the last one's time and the
    time observed, in days from the first activity."""
    x = (frame["active_days"].to_numpy() - 1).astype(np.float64)
    tx = frame["active_span"].to_numpy().astype(np.float64)
    big_t = frame["tenure_days"].to_numpy().astype(np.float64)
    return x, tx, big_t


def _with_bgnbd(
    frame: pl.DataFrame, horizon: int, target: int | None = None, fitted: churn_bgnbd.BGNBD | None = None
) -> pl.DataFrame:
    """Adds BG/NBD's expected activity, P(alive) and P(no activity in the horizon), fitted on the frame's
    own customers, all of them (no labels needed: see bgnbd.MAX_CUSTOMERS), or ``fitted``; with a ``target``
    horizon also ``bgnbd_active_growth``, how much likelier a live customer is active in it than in the horizon.
    Each customer's figures are their own numbers' (the fit aside): a part of the frame gets the same."""
    x, tx, big_t = bgnbd_data(frame)
    fitted = fitted or churn_bgnbd.fit(x, tx, big_t)
    alive = fitted.p_alive(x, tx, big_t)  # once, not in each figure
    out = frame.with_columns(
        pl.Series("bgnbd_expected", fitted.expected(horizon, x, tx, big_t, alive)),
        pl.Series("bgnbd_p_alive", alive),
        pl.Series("bgnbd_p_none", fitted.p_none(horizon, x, tx, big_t, alive)),
    )
    if target is not None:
        growth = fitted.p_active_if_alive(target, x, big_t) / fitted.p_active_if_alive(horizon, x, big_t)
        out = out.with_columns(pl.Series("bgnbd_active_growth", growth))
    return out


def _served_frame(
    con: duckdb.DuckDBPyConnection, t: int, horizon: int, target: int | None = None
) -> tuple[pl.DataFrame, churn_bgnbd.BGNBD]:
    """The customers at ``t`` as a served method sees them (``_at``, unlabelled), and their BG/NBD fit."""
    raw = churn_features.features_at(con, t, horizon)
    fitted = churn_bgnbd.fit(*bgnbd_data(raw))
    return _with_bgnbd(raw, horizon, target, fitted), fitted


def _at(
    con: duckdb.DuckDBPyConnection, t: int, horizon: int, labelled: bool, target: int | None = None
) -> pl.DataFrame:
    frame = churn_features.features_at(con, t, horizon)
    if frame.is_empty():
        return frame
    frame = _with_bgnbd(frame, horizon, target)
    if labelled:
        active = churn_features.active_at(con, t, horizon).with_columns(pl.lit(False).alias("churned"))
        frame = frame.join(active, on="customer_key", how="left").with_columns(pl.col("churned").fill_null(True))
    return frame


def _matrix(frame: pl.DataFrame) -> F64:
    """The features as float64, one copy (polars' own: no second one by astype)."""
    return np.asarray(frame.select(pl.col(c).cast(pl.Float64) for c in FEATURES).to_numpy(), dtype=np.float64)


def _column(frame: pl.DataFrame, name: str) -> F64:
    """One feature as float64 (_matrix's column: null as NaN)."""
    return np.asarray(frame[name].cast(pl.Float64).to_numpy(), dtype=np.float64)


def _baseline_score(frame: pl.DataFrame, method: str) -> F64:
    """Higher = riskier: days since the last activity, or BG/NBD's probability of none in the horizon."""
    col = "recency_days" if method == "recency" else "bgnbd_p_none"
    return frame[col].to_numpy().astype(np.float64)


def _sample(frame: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    return frame.sample(MAX_TRAIN, seed=seed) if frame.height > MAX_TRAIN else frame


def _beside(side: Callable[[], T], here: Callable[[], U], threads: bool) -> tuple[T, U]:
    """``side`` in a thread of its own (the run's context copied into it) while ``here`` runs in this one, with
    ``threads``; else ``side`` then ``here``. Both results; an error in ``here`` waits for ``side`` first, so no thread
    outlives the run. The work given is numpy's, scikit-learn's boosting, polars' or DuckDB's, which leave the GIL
    while they work: two such use both cores (at large churn's full build ran on one core outside DuckDB's statements,
    ~29 s wall for ~29 CPU-s)."""
    if not threads:
        return side(), here()
    with ThreadPoolExecutor(1, thread_name_prefix="cockpit-churn") as pool:
        made = pool.submit(copy_context().run, side)
        mine = here()
        return made.result(), mine


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
    scaled: bool = False  # a model trained on a shorter horizon than the target: see _to_target

    def score(self, frame: pl.DataFrame) -> Scored:
        if self.model is not None:
            terms = self.model.terms_of((_column(frame, c) for c in FEATURES), frame.height)
            log_odds = self.model.log_odds_of(terms)
            risk = self.model.calibrator.predict(log_odds)
            return Scored(log_odds, _to_target(frame, log_odds, risk) if self.scaled else risk, terms)
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


@dataclass
class KeptFit:
    """A fit's decision (which method serves, fitted how, and its model card), kept so that the refreshes
    until the next fit rescore every customer with it ([churn] refit_every_days): the same model and the
    same data give the same scores as the run that fitted it."""

    horizon_days: int
    method: str
    status: str
    reason: str
    train_horizon_days: int
    notes: list[str]
    card: pl.DataFrame
    fitted: Fitted | None  # None: BG/NBD's own probability serves (no backtest), fitted on the customers scored
    trained_on: date


def save_fit(kept: KeptFit, path: Path) -> None:
    with open(path, "wb") as f:
        pickle.dump(kept, f, protocol=pickle.HIGHEST_PROTOCOL)


def load_fit(path: Path) -> KeptFit | None:
    """The fit a build kept, or None when it cannot be read (then the refresh fits again). The file is one
    this code wrote into the data folder's derived build; a changed code version never reads it (the
    pipeline keys kept fits on the code and settings)."""
    try:
        with open(path, "rb") as f:
            kept = pickle.load(f)  # our own derived build, keyed on this code version
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError):
        return None
    return kept if isinstance(kept, KeptFit) else None


def read_pinned(settings: Settings) -> KeptFit | None:
    """The fit ``[churn] model`` names (a file `cockpit churn export-fit` wrote, relative to the config's folder),
    or None when none is set. A missing or unreadable file, or a fit of another horizon, is a ConfigError naming
    the key and the file: a pinned fit is never replaced by a new one silently."""
    name = settings.churn.model
    if name is None:
        return None
    path = settings.base_dir / name
    if not path.is_file():
        raise ConfigError(f"{path}: churn fit file not found ([churn] model)")
    kept = load_fit(path)
    if kept is None:
        raise ConfigError(f"{path}: not a churn fit file ([churn] model; `cockpit churn export-fit` writes one)")
    if kept.horizon_days != settings.churn.horizon_days:
        raise ConfigError(
            f"{path}: a churn fit for a {kept.horizon_days}-day horizon ([churn] model), "
            f"but [churn] horizon_days = {settings.churn.horizon_days}"
        )
    return kept


def export_fit(store: Store, path: Path) -> KeptFit:
    """Write the fit that scored the current build to ``path`` (for ``[churn] model``); returns it."""
    info = (store.read_manifest().get("derived") or {}).get("churn_fit") or {}
    kept = load_fit(store.abs(info["file"])) if info.get("file") else None
    if kept is None:
        raise ConfigError("no churn fit yet: run `cockpit refresh` (a build with customers to score fits one)")
    save_fit(kept, path)
    return kept


def _evaluate(fitted: Fitted, frame: pl.DataFrame) -> tuple[dict[str, float | None], Bins]:
    """AUC and precision of the score's order (the served risk keeps it: see _served), Brier score and
    calibration bins of the probability."""
    y = frame["churned"].to_numpy().astype(bool)
    got = fitted.score(frame)
    metrics = {
        "auc": churn_model.auc(y, got.ranking),
        "precision_top10": churn_model.precision_at(y, got.ranking, 0.1),
        "brier": churn_model.brier(y, got.risk),
    }
    return metrics, churn_model.reliability(y, got.risk)


def _baselines_judged(train: pl.DataFrame, judged: pl.DataFrame) -> dict[str, tuple[dict[str, float | None], Bins]]:
    """Each baseline fitted on ``train`` and judged on ``judged`` (_evaluate)."""
    return {m: _evaluate(fit(m, train), judged) for m in ("recency", "bgnbd")}


def _fit_and_baselines(
    model_on: pl.DataFrame | None, train: pl.DataFrame, judged: pl.DataFrame
) -> tuple[Fitted | None, dict[str, tuple[dict[str, float | None], Bins]]]:
    """The model fitted on ``model_on`` (None: not fitted), then _baselines_judged."""
    return (fit("model", model_on) if model_on is not None else None), _baselines_judged(train, judged)


def _model_judged(
    con: duckdb.DuckDBPyConnection, windows: _Windows, judged: pl.DataFrame
) -> tuple[ModelBacktest, tuple[dict[str, float | None], Bins]]:
    """The model's backtest (model_backtest: the horizon it trains on) fitted and judged (_evaluate)."""
    plan = model_backtest(con, windows, judged)
    tried = fit("model", plan.train)
    tried.scaled = plan.horizon != windows.h
    return plan, _evaluate(tried, plan.judged)


def _validated(frames: tuple[pl.DataFrame, ...]) -> bool:
    return all(f.height >= MIN_CUSTOMERS and f["churned"].n_unique() == 2 for f in frames)


# -- how much the model's backtest can train on ------------------------------------------------------
def _train_horizons(horizon: int) -> list[int]:
    """The target horizon, then halved while at least MIN_TRAIN_HORIZON days: 180 → 180, 90, 45, 23."""
    out = [horizon]
    while (h := math.ceil(out[-1] / 2)) >= MIN_TRAIN_HORIZON and h < out[-1]:
        out.append(h)
    return out


@dataclass
class ModelBacktest:
    horizon: int  # the horizon the model's labels span (and its features' "recent" windows)
    train: pl.DataFrame  # the customer windows its backtest fit sees
    judged: pl.DataFrame  # the backtest's customers at D − H: features at ``horizon``, labels at the target H
    needed: int  # training windows below which the backtest is thin: THIN_SHARE per judged customer

    @property
    def thin(self) -> bool:
        return self.train.height < self.needed


def _needed(judged: pl.DataFrame) -> int:
    """Training windows below which the model's backtest is thin."""
    return math.ceil(THIN_SHARE * judged.height)


def model_backtest(con: duckdb.DuckDBPyConnection, windows: _Windows, judged: pl.DataFrame) -> ModelBacktest:
    """The longest training horizon (H, H/2, H/4, ...) at which the model's backtest fit has at least
    THIN_SHARE customer windows per judged customer; thin at all of them, the shortest that could be fitted.

    At a horizon h < H the fit's cutoffs are D − H − h, D − H − 2h, ... (labels: activity in the h days
    after each, all ending by D − H), and it is judged on the same customers and the same H-day
    outcome as the baselines, so the AUCs compare."""
    d, target, first = windows.d, windows.h, windows.first
    needed = _needed(judged)
    best: ModelBacktest | None = None
    for h in _train_horizons(target):
        if h == target:
            plan = ModelBacktest(h, windows.stacked(2), judged, needed)
        else:
            shorter = _Windows(con, d - target, h, first)
            if not _validated((shorter.at(1),)):
                continue
            at_h = _at(con, d - target, h, labelled=False, target=target)
            plan = ModelBacktest(
                h,
                shorter.stacked(1),
                at_h.join(judged.select("customer_key", "churned"), on="customer_key", maintain_order="left"),
                needed,
            )
        best = plan
        if not plan.thin:
            break
    assert best is not None  # the target horizon always fits: the run validated its windows
    return best


def _to_target(frame: pl.DataFrame, score: F64, p_none: F64) -> F64:
    """A model trained on a horizon h shorter than the target H: its probability of some activity in h
    scaled up to H by BG/NBD's ratio for this customer, P(active in H | alive) / P(active in h | alive)
    (``bgnbd_active_growth``; it does not depend on P(alive), which the model may know better: a
    customer it is sure is gone stays gone), then made monotone in the model's score (isotonic
    regression on it), so the order stays the model's. Needs no labels: the backtest judges exactly what
    serves. On simulated cohort shops the served risk averaged within 0.04 of the real churn rate of the
    next 180 days, with a lower Brier score than mapping h's probability to H's by what the backtest's
    customers did (an isotonic map was off by 0.02-0.09; a fitted power law P_h^c, c unstable)."""
    target = np.clip(1.0 - (1.0 - p_none) * frame["bgnbd_active_growth"].to_numpy(), 0.0, p_none)
    iso = IsotonicRegression(increasing=True, y_min=0.0, y_max=1.0, out_of_bounds="clip")
    return np.asarray(iso.fit(score, target).predict(score), dtype=np.float64)


def choose(aucs: dict[str, float], thin: bool) -> tuple[str, str]:
    """The method that serves and why (a SERVE_REASONS code). Recency is the floor: a method serves only
    when its backtest AUC beats recency's. The model also has to beat BG/NBD, on a backtest that could
    train on enough windows; on a thin one BG/NBD, which ranks without labels, is the robust choice."""
    if not thin and aucs["model"] > max(aucs["recency"], aucs["bgnbd"]):
        return "model", "best_auc"
    if aucs["bgnbd"] > aucs["recency"]:
        return "bgnbd", "thin_backtest_robust" if thin else "best_auc"
    return "recency", "recency_floor"


def decide(run_: ChurnRun, aucs: dict[str, float], windows: int, needed: int) -> None:
    """run_'s method, why, and the notes saying so, from the backtest's AUCs and the model's training windows (thin
    below ``needed``)."""
    thin = windows < needed
    run_.method, run_.reason = choose(aucs, thin)
    run_.status = "validated"
    if thin:
        run_.notes.append(
            f"the model's backtest could train on only {windows} customer windows "
            f"({needed} needed), too few to trust; {run_.method} is used"
        )
    elif run_.method != "model":
        run_.notes.append(f"the model did not beat the {run_.method} baseline on the backtest; {run_.method} is used")


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


def _served(risk: F64, ranking: F64) -> F64:
    """The served risk: the calibrated probability within RISK_FLOOR of certainty, and in the score's
    order — customers a calibration step (or the floor) ties are ordered by their score again, moved by
    at most ORDER_NUDGE. Ties had cost the served BG/NBD score 0.008-0.012 AUC on the real future of
    simulated cohort shops, nearly all it led recency by."""
    if risk.size == 0:
        return risk
    order = rankdata(ranking, method="average")
    nudge = ORDER_NUDGE * (order - 1) / max(risk.size - 1, 1)
    return np.asarray(np.clip(risk, RISK_FLOOR, 1 - RISK_FLOOR - ORDER_NUDGE) + nudge, dtype=np.float64)


def _reason_weights(method: str, fitted: Fitted | None, scored: Scored | None, frame: pl.DataFrame) -> F64:
    if fitted is not None and fitted.model is not None and scored is not None and scored.terms is not None:
        return group_weights(scored.terms - fitted.model.centres)
    # A baseline's score is made of inactivity alone (recency), or of inactivity and purchase history (BG/NBD).
    w = np.zeros((frame.height, len(REASON_CODES)))
    w[:, REASON_CODES.index("inactivity")] = 1.0
    if method == "bgnbd":
        w[:, REASON_CODES.index("history")] = 0.5
    return w


def _score(frame: pl.DataFrame, fitted: Fitted | None, method: str, horizon: int) -> tuple[F64, F64, pl.DataFrame]:
    """Each customer's score, risk (calibrated, before _served) and reasons (their words name the features'
    "recent" windows, ``horizon`` days: the served method's training horizon), from their own numbers: a part
    of the customers gets the same as the whole (a model scaled to the target horizon aside: _to_target)."""
    scored = fitted.score(frame) if fitted is not None else None
    if scored is not None:
        ranking, risk = scored.ranking, scored.risk
    else:  # BG/NBD's own probability serves
        ranking = risk = frame["bgnbd_p_none"].to_numpy()
    weights = _reason_weights(method, fitted, scored, frame)
    return ranking, risk, top_reasons(frame, weights, horizon)


def _score_halves(
    frame: pl.DataFrame, fitted: Fitted | None, method: str, horizon: int
) -> tuple[F64, F64, pl.DataFrame]:
    """_score of each half of ``frame``'s customers, the first half in a thread of its own (_beside), joined in order:
    the same as _score of all of them (each customer's from their own numbers). At large the model's terms ran on one
    core (0.9 s) and the reasons' sentences at ~1.3. A model scaled to the target horizon: _score (_to_target's fit
    reads everyone)."""
    half = frame.height // 2
    if (fitted is not None and fitted.scaled) or half == 0:
        return _score(frame, fitted, method, horizon)
    (ranking, risk, reasons), (ranking_2, risk_2, reasons_2) = _beside(
        partial(_score, frame.slice(0, half), fitted, method, horizon),
        partial(_score, frame.slice(half), fitted, method, horizon),
        threads=True,
    )
    return np.concatenate([ranking, ranking_2]), np.concatenate([risk, risk_2]), pl.concat([reasons, reasons_2])


def _scores(
    con: duckdb.DuckDBPyConnection,
    frame: pl.DataFrame,
    risk: F64,
    reasons: pl.DataFrame | None,
    settings: Settings,
    run: ChurnRun,
    owners: tuple[pl.DataFrame, pl.DataFrame] | None = None,
    first: pl.DataFrame | None = None,
    attrs: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """``frame``: the customers as the served method saw them; ``risk``: the served risk, ``reasons`` their
    reasons (_score), in their order. ``owners``: the owner and region of the customers not touched (a kept
    build's) and the touched customers (customer_key); ``reasons`` None: both of ``owners``' frames hold the
    customers' reasons too, joined by key (the kept customers' are not joined with their features again).
    ``first``: their first records (customer_key, FIRST_COLUMN; None: read from every link); ``attrs``: every
    customer's owner and region (features.attributes of ``frame``; None: read here)."""
    cfg, h = settings.churn, run.horizon_days
    pace = pl.col("spend_2y").clip(lower_bound=0) / pl.col("tenure_days").clip(h, VALUE_WINDOW_DAYS) * h
    band = (
        pl.when(pl.col("risk") >= cfg.high_risk)
        .then(pl.lit("high"))
        .when(pl.col("risk") >= cfg.medium_risk)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )
    out = (
        frame.with_columns(
            pl.Series("risk", risk),
            pace.alias("value_at_stake"),
            _segments(frame).alias("segment"),
            pl.from_epoch((pl.col("last_d") * 86400).cast(pl.Int64), time_unit="s").alias("last_activity_at"),
        )
        .with_columns(
            band.alias("risk_band"), (pl.col("risk") * pl.col("value_at_stake")).alias("expected_value_at_risk")
        )
        .select(*_PUBLISHED)
    )  # the join and sort below copy these, not every feature (at large 1.3M rows)
    if owners is None:
        attrs = churn_features.attributes(con, out) if attrs is None else attrs
    else:
        same, touched = owners
        made = churn_features.attributes(
            con, out.filter(pl.col("customer_key").is_in(touched["customer_key"])), few=True
        )
        if reasons is None:  # the touched customers' reasons, made again (_touched_only); one without a record
            made = touched.join(made, on="customer_key", how="left")  # has no owner, and its reasons
        attrs = pl.concat([same, made.select(same.columns)])
    # The reasons (three lists of strings) are not moved by the join and the sort: each row carries the number of
    # its reasons' row (in ``reasons``, or in ``attrs`` when they came with the owners), and they are taken once, in
    # the served order (at large, joining and sorting the lists cost ~2 CPU-s, and writing lists gathered twice
    # ~2 more than writing them gathered once)
    if reasons is None:
        lists, attrs = attrs.select(REASON_COLUMNS), attrs.drop(REASON_COLUMNS).with_row_index(_REASONS_ROW)
    else:
        lists, out = reasons.select(REASON_COLUMNS), out.with_row_index(_REASONS_ROW)
    out = (
        out.join(attrs, on="customer_key", how="left")
        .join(first if first is not None else churn_features.first_records(con), on="customer_key", how="left")
        .sort(
            "expected_value_at_risk",
            "risk",
            pl.coalesce("first_record", "customer_key"),
            descending=[True, True, False],
        )
    )
    picked = pl.from_arrow(lists.to_arrow().take(out[_REASONS_ROW].to_arrow()))  # by Arrow: ~0.5 CPU-s less
    assert isinstance(picked, pl.DataFrame)
    out = pl.concat([out, picked], how="horizontal")
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
        days_counted(pl.col("recency_days")).alias("days_inactive"),  # as the reasons count them
        pl.col("order_days").cast(pl.Int64).alias("orders"),
        pl.col("monetary").alias("revenue"),
        "reason_codes",
        "reasons_zh",
        "reasons_en",
        pl.lit(run.as_of).alias("as_of"),
        pl.lit(run.method).alias("method"),
    )


def _owners(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """_scores' first records of every linked customer and owners of ``frame``'s customers (features.first_records,
    features.attributes)."""
    return churn_features.first_records(con), churn_features.attributes(con, frame)


# what _scores publishes of its frame (with rank, owner, region, the reasons, as_of and method)
_PUBLISHED = ("customer_key", "segment", "risk", "risk_band", "expected_value_at_risk", "value_at_stake",
              "last_activity_at", "recency_days", "order_days", "monetary")  # fmt: skip
_REASONS_ROW = "_reasons_row"  # _scores: a served row's row in the frame its reasons are in


def _card(
    run: ChurnRun,
    metrics: dict[str, dict[str, float | None]],
    bins: dict[str, Bins],
    extra: dict[str, object],
    per_method: dict[str, dict[str, object]] | None = None,
) -> pl.DataFrame:
    """One row per method; ``extra`` is the same on every row, ``per_method`` each method's own."""
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
                "serve_reason": run.reason,
                **extra,
                **(per_method or {}).get(m, {}),
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
    "serve_reason": pl.String,
    "backtest_windows": pl.Int64,
    "backtest_windows_needed": pl.Int64,
    "train_horizon_days": pl.Int64,
}


# -- the run --------------------------------------------------------------------------------------
def run(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    links: pl.DataFrame,
    as_of: date | None = None,
    horizon_days: int | None = None,
    progress: Progress | None = None,
    kept: KeptFit | None = None,
    rows: KeptRows | None = None,
) -> ChurnRun:
    """Score every customer at ``as_of`` (default: the day after the latest activity).

    ``con`` has the canonical views (orders, interactions, contracts, customers, leads); ``links`` is
    the identity_links table of the build. With ``kept`` (a fit for the same horizon) nothing is fitted
    or backtested: every customer is scored with it, as the run that fitted it would score them. With
    ``rows`` too, made by a run with that fit on the same as-of day and the same last day read, only the
    customers it names as touched have their features made again (_rescore_touched).
    """
    say = progress or (lambda _m: None)
    h = int(horizon_days or settings.churn.horizon_days)
    today = config_today(settings.timezone)  # COCKPIT_AS_OF when set
    priorities = {s.name: s.priority for s in settings.sources}
    latest = churn_features.day_number(today + timedelta(days=1))
    if kept is not None and kept.horizon_days == h and rows is not None and as_of is None:
        again = _rescore_touched(con, settings, links, kept, rows, priorities, latest, say)
        if again is not None:
            return again
    churn_features.load_events(con, links, priorities, latest)
    first, last = churn_features.activity_range(con)
    if as_of is None:
        as_of = date(1970, 1, 1) + timedelta(days=math.floor(last) + 1) if last is not None else today
    d = churn_features.day_number(as_of)
    trained_at = datetime.now(UTC)
    run_ = ChurnRun(
        as_of, h, "none", "no_activity", pl.DataFrame(), pl.DataFrame(), train_horizon_days=h, day=d, latest=latest
    )
    extra: dict[str, object] = {"trained_at": trained_at}
    if first is None or first >= d:
        run_.notes.append("no order or interaction before the as-of date")
        run_.scores, run_.card = _empty_scores(), _card(run_, {}, {}, extra)
        return run_
    if kept is not None and kept.horizon_days == h:
        say(f"churn: customers at {as_of} scored with the {kept.method} fit of {kept.trained_on}")
        if _rescored_by(_SERVED.get(), con, settings, run_, kept):
            return run_
        return _rescore(con, settings, run_, kept, churn_features.features_at(con, d, kept.train_horizon_days))

    say(f"churn: customers at {as_of} (horizon {h} days)")
    t1, t2 = d - 2 * h, d - h
    served = _SERVED.get()
    tested = served.backtest(con, run_, first, say) if served is not None else None  # engine spark: made there
    windows = _Windows(con, d, h, first)
    back_test, back_train = (windows.at(1), windows.at(2)) if tested is None else (pl.DataFrame(), pl.DataFrame())
    # DuckDB's arrays in this process: the independent parts two at a time (_beside): the model's backtest beside its
    # final fit and the baselines', then the served customers' features beside their owners. Not the two cutoffs'
    # features: at large they took as long side by side as one after the other (4.0-4.8 s wall either way)
    threads = served is None and churn_features.arrays_here(con)
    metrics: dict[str, dict[str, float | None]] = {}
    bins: dict[str, Bins] = {}
    per_method: dict[str, dict[str, object]] = {}
    final: Fitted | None = None
    final_on: pl.DataFrame | None = None  # what the final fit reads, when it is made beside the served customers' read
    frame: pl.DataFrame | None = None  # the customers as the served method sees them (at D: read after the fits)
    if tested is not None and tested.metrics:
        metrics, bins, per_method, final = tested.metrics, tested.bins, tested.per_method, tested.final
        extra.update(tested.extra)
    elif back_train.height and back_test.height and _validated((back_train, back_test)):
        train = windows.stacked(2)
        say(f"churn: backtest, baselines fitted on {train.height} customer windows, judged on {back_test.height}")
        # The model's final fit made beside its backtest when the model may serve as trained there (its backtest at
        # the target horizon not thin: model_backtest takes it); unused when a baseline wins the backtest
        ahead = _sample(windows.stacked(1)) if threads and train.height >= _needed(back_test) else None
        judged = partial(_model_judged, con, windows, back_test)
        (plan, (metrics["model"], bins["model"])), (early, got) = _beside(
            judged, partial(_fit_and_baselines, ahead, train, back_test), threads
        )
        del ahead
        for m, (metrics[m], bins[m]) in got.items():
            per_method[m] = {"train_cutoff": _date(t1), "backtest_windows": train.height, "train_horizon_days": h}
        del train, judged
        say(f"churn: model backtest on {plan.train.height} windows of {plan.horizon} days ({plan.needed} needed)")
        per_method["model"] = {
            "train_cutoff": _date(t2 - plan.horizon),
            "backtest_windows": plan.train.height,
            "train_horizon_days": plan.horizon,
        }
        aucs = {m: metrics[m]["auc"] or 0.0 for m in METHODS}
        decide(run_, aucs, plan.train.height, plan.needed)
        extra.update(
            train_cutoff=_date(t1),
            backtest_cutoff=_date(t2),
            backtest_customers=back_test.height,
            backtest_churn_rate=float(back_test["churned"].cast(pl.Float64).mean() or 0.0),  # type: ignore[arg-type]
            backtest_windows_needed=plan.needed,
        )
        say(f"churn: {run_.method} scores ({', '.join(f'{m} AUC {aucs[m]:.3f}' for m in METHODS)}; {run_.reason})")
        if run_.method == "model" and plan.horizon != h:
            run_.train_horizon_days = plan.horizon
            del plan
            frame, run_.bgnbd = _served_frame(con, d, run_.train_horizon_days, target=h)
            final = fit("model", _Windows(con, d, run_.train_horizon_days, first).stacked(1))
            final.scaled = True
        elif run_.method == "model" and early is not None:
            del plan
            final = early  # fitted beside the backtest, on the windows this branch fits on
        else:
            del plan
            # the model reads its sample only (fit's own: the same rows), so the windows' frames go now
            final_on = _sample(windows.stacked(1)) if run_.method == "model" else windows.stacked(1)
            if not threads:
                final, final_on = fit(run_.method, final_on), None
        del early
    else:
        run_.method, run_.status, run_.reason = "bgnbd", "unvalidated", "no_backtest"
        run_.notes.append(
            f"history too short to train and backtest (needs activity before {_date(t1)}, "
            f"{2 * h} days before the as-of date): BG/NBD's own probability of no activity is used"
        )
    del back_train, back_test, windows  # the fits are done: free their frames and the per-day tables
    n = served.serve(con, settings, run_, final, run_.train_horizon_days) if frame is None and served else None
    if n is not None:  # scored where the per-day tables are (engine spark): the files are written there
        run_.written, run_.scored = True, n
        extra.update(customers_scored=n)
        churn_features.drop_days(con)
    else:
        owned: tuple[pl.DataFrame, pl.DataFrame] | None = None  # the first records and owners, when read already
        if threads and frame is None:  # the served customers' read beside their owners (DuckDB's)
            customers = churn_features.customers_at(con, d)
            owned, (frame, run_.bgnbd) = _beside(
                partial(_owners, con, customers), partial(_served_frame, con, d, h), threads
            )
            del customers
            if final_on is not None:  # a baseline's calibration (the model's was fitted beside its backtest)
                final, final_on = fit(run_.method, final_on), None
        elif frame is None and final_on is not None:  # the final fit beside the served customers' read
            final, (frame, run_.bgnbd) = _beside(
                partial(fit, run_.method, final_on), partial(_served_frame, con, d, h), threads
            )
            final_on = None
        elif frame is None:  # read now, not beside the backtest's: at large 0.4 GB less at its peak
            frame, run_.bgnbd = _served_frame(con, d, h)
        assert frame is not None  # read above
        extra.update(customers_scored=frame.height)
        churn_features.drop_days(con)
        if owned is not None:  # the scores in two halves, side by side
            records, attrs = owned
            ranking, risk, reasons = _score_halves(frame, final, run_.method, run_.train_horizon_days)
        else:
            (records, attrs), (ranking, risk, reasons) = _beside(
                partial(_owners, con, frame),
                partial(_score, frame, final, run_.method, run_.train_horizon_days),
                threads,
            )  # the owners, read by DuckDB, beside the scores and reasons
        run_.scored = frame.height
        run_.scores = _scores(con, frame, _served(risk, ranking), reasons, settings, run_, first=records, attrs=attrs)
        run_.rows = _rows(frame, ranking, risk, records)
    run_.card = _card(run_, metrics, bins, extra, per_method)
    run_.fit = KeptFit(
        h, run_.method, run_.status, run_.reason, run_.train_horizon_days, list(run_.notes), run_.card, final, today
    )
    return run_


@dataclass
class Backtest:
    """What run's backtest makes (the card's metrics, bins, per-method and shared columns, and the fit that
    serves), made by another engine (Served.backtest); no metrics: too little history to backtest."""

    metrics: dict[str, dict[str, float | None]]
    bins: dict[str, Bins]
    per_method: dict[str, dict[str, object]]
    extra: dict[str, object]
    final: Fitted | None


class Served(Protocol):
    """Another engine's served pass (engine spark: derived/spark/served.py): every customer at ``run_.day``
    scored with ``fitted`` (None: BG/NBD's own probability) on ``horizon``'s features, as run's own tail scores them;
    sets run_.bgnbd, writes churn_scores and ROWS_FILE where build() would, and returns the customers scored, or
    None when it cannot (then run scores them itself). ``backtest``: run's backtest made there (setting run_'s
    method, reason, status, notes and training horizon as run's does), or None (then run makes it). ``rescore``:
    _rescore_touched's rescore with the kept fit made there from ``rows`` and ``new`` (the ``touched`` customers'
    features, made here), its files written there and run_ set as _rescore sets it; False: made here."""

    def backtest(
        self, con: duckdb.DuckDBPyConnection, run_: ChurnRun, first: float, say: Progress
    ) -> Backtest | None: ...

    def serve(
        self, con: duckdb.DuckDBPyConnection, settings: Settings, run_: ChurnRun, fitted: Fitted | None, horizon: int
    ) -> int | None: ...

    def rescore(
        self,
        con: duckdb.DuckDBPyConnection,
        settings: Settings,
        run_: ChurnRun,
        kept: KeptFit,
        rows: KeptRows,
        touched: pl.Series,
        new: pl.DataFrame,
    ) -> bool: ...


_SERVED: ContextVar[Served | None] = ContextVar("churn_served", default=None)


@contextmanager
def served_by(served: Served) -> Iterator[None]:
    """Inside: run's served pass is ``served``'s (the derived build's churn step with engine spark)."""
    token = _SERVED.set(served)
    try:
        yield
    finally:
        _SERVED.reset(token)


@dataclass
class _Untouched:
    """What a rescore of the touched customers keeps of the others: their ROWS_FILE rows (features, BG/NBD's
    figures, score and risk) and churn_scores rows (owner, region, reasons), and the BG/NBD fit those came from."""

    rows: pl.DataFrame
    scores: pl.DataFrame
    bgnbd: churn_bgnbd.BGNBD
    touched: pl.Series  # customer_key
    new: pl.DataFrame  # the touched customers' features
    same_inputs: bool = False  # BG/NBD's fit reads the same numbers as the kept rows' did (_same_bgnbd_inputs)

    def everyone(self) -> pl.DataFrame:
        """Every customer's features: the kept rows' and the touched customers' made again, in key order."""
        return _in_key_order(self.rows.select(self.new.columns), self.new)


def _in_key_order(old: pl.DataFrame, new: pl.DataFrame) -> pl.DataFrame:
    """The rows of ``old`` and ``new`` (no key in both) in key order: merged when both are in it already (the kept
    rows are, and features_at's; a sort of 1.3M keys at large was ~0.3 CPU-s, each time), else sorted."""
    if old["customer_key"].is_sorted() and new["customer_key"].is_sorted():
        return old.merge_sorted(new, "customer_key")
    return pl.concat([old, new]).sort("customer_key")


def _rescore(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    run_: ChurnRun,
    kept: KeptFit,
    raw: pl.DataFrame | None,
    same: _Untouched | None = None,
    first: pl.DataFrame | None = None,
) -> ChurnRun:
    """``run``'s customers scored with a kept fit: ``raw``, their features at ``run_.day`` of the horizon it was
    trained on (BG/NBD's figures fitted on these customers, as a fitting run does before it scores), its
    method, status and model card (as of that day, with the customers scored). With ``same``, when BG/NBD's
    fit on ``raw`` is the one its rows were made with, only the touched customers are scored; ``raw`` None:
    ``same.everyone()``, made only when BG/NBD is fitted again or everyone scored. ``first``: every customer's
    first record (None: read from every link)."""
    h, th = run_.horizon_days, kept.train_horizon_days
    _kept_decision(run_, kept)
    churn_features.drop_days(con)
    target = h if th != h else None
    if same is not None and same.same_inputs:
        run_.bgnbd = same.bgnbd  # the same numbers, fitted the same: not fitted again
    else:
        raw = _raw(raw, same)
        run_.bgnbd = churn_bgnbd.fit(*bgnbd_data(raw)) if not raw.is_empty() else None
    scaled = kept.fitted is not None and kept.fitted.scaled  # its risk is the whole population's (_to_target)
    reuse = same is not None and same.bgnbd == run_.bgnbd and not scaled
    part = _touched_only(same, kept, th, target) if same is not None and reuse else None
    owners = None
    reasons: pl.DataFrame | None
    if part is not None and same is not None:  # the kept customers' reasons joined once, with their owners
        frame, ranking, risk, touched_reasons = part
        run_.scored = same.new.height
        reasons, owners = None, (same.scores, touched_reasons)
    else:
        raw = _raw(raw, same)
        frame = _with_bgnbd(raw, th, target, run_.bgnbd) if run_.bgnbd is not None else raw
        ranking, risk, reasons = _score(frame, kept.fitted, kept.method, th)
        run_.scored = frame.height
        if same is not None:
            owners = (same.scores.select("customer_key", "owner", "region"), same.touched.to_frame())
    first = first if first is not None else churn_features.first_records(con)
    run_.scores = _scores(con, frame, _served(risk, ranking), reasons, settings, run_, owners, first)
    run_.rows = _rows(frame, ranking, risk, first)
    _kept_card(run_, kept, frame.height)
    return run_


def _kept_decision(run_: ChurnRun, kept: KeptFit) -> None:
    run_.method, run_.status, run_.reason = kept.method, kept.status, kept.reason
    run_.train_horizon_days, run_.notes = kept.train_horizon_days, list(kept.notes)


def _kept_card(run_: ChurnRun, kept: KeptFit, scored: int) -> None:
    """The fit's card (its backtest, when it was trained), for the ``scored`` customers scored now."""
    run_.card = kept.card.with_columns(
        pl.lit(run_.as_of, pl.Date).alias("as_of"), pl.lit(scored, pl.Int64).alias("customers_scored")
    )
    run_.fit = kept


def _rescored_by(
    served: Served | None, con: duckdb.DuckDBPyConnection, settings: Settings, run_: ChurnRun, kept: KeptFit
) -> bool:
    """_rescore of every customer made by another engine's served pass (engine spark: its files written there), as
    _rescore scores them (a model scaled to the target horizon too: _to_target's fit made there over every customer);
    False when it cannot."""
    if served is None:
        return False
    _kept_decision(run_, kept)
    n = served.serve(con, settings, run_, kept.fitted, kept.train_horizon_days)
    if n is None:
        return False
    run_.written, run_.scored = True, n
    churn_features.drop_days(con)
    _kept_card(run_, kept, n)
    return True


def _rows(frame: pl.DataFrame, ranking: F64, risk: F64, first: pl.DataFrame) -> pl.DataFrame:
    """ROWS_FILE's rows: ``frame`` with each customer's score, risk and first record."""
    records = frame.select("customer_key").join(first, on="customer_key", how="left", maintain_order="left")
    return frame.with_columns(
        pl.Series(SCORE_COLUMNS[0], ranking), pl.Series(SCORE_COLUMNS[1], risk), records[FIRST_COLUMN]
    )  # the one column joined: not every feature gathered


def _raw(raw: pl.DataFrame | None, same: _Untouched | None) -> pl.DataFrame:
    if raw is not None:
        return raw
    assert same is not None  # _rescore_touched's: the kept rows and the touched customers' features
    return same.everyone()


def _touched_only(
    same: _Untouched, kept: KeptFit, horizon: int, target: int | None
) -> tuple[pl.DataFrame, F64, F64, pl.DataFrame] | None:
    """_rescore's frame, scores and risks (every customer, in key order) with only the touched customers scored,
    and those customers' reasons (customer_key and REASON_COLUMNS): the others' BG/NBD figures, scores and
    reasons are their own numbers' under the same fits (_with_bgnbd, _score), so they are taken as they were (their
    reasons from their churn_scores rows, joined once with their owners in _scores). None when the kept rows and
    scores do not name the same customers."""
    new = _with_bgnbd(same.new, horizon, target, same.bgnbd)
    if new.height:
        ranking, risk, reasons = _score(new, kept.fitted, kept.method, horizon)
        new = new.with_columns(pl.Series(SCORE_COLUMNS[0], ranking), pl.Series(SCORE_COLUMNS[1], risk))
        reasons = pl.concat([new.select("customer_key"), reasons], how="horizontal")
    else:
        new = new.with_columns(pl.lit(None, pl.Float64).alias(c) for c in SCORE_COLUMNS)
        reasons = pl.DataFrame(schema={"customer_key": pl.String, **_REASON_TYPES})
    old, named = same.rows, same.scores["customer_key"]
    if named.len() != old.height or not named.is_in(old["customer_key"]).all():
        return None
    if not set(new.columns) <= set(old.columns):
        return None
    both = _in_key_order(old.select(new.columns), new)
    return both.drop(*SCORE_COLUMNS), both[SCORE_COLUMNS[0]].to_numpy(), both[SCORE_COLUMNS[1]].to_numpy(), reasons


_REASON_TYPES = dict.fromkeys(REASON_COLUMNS, pl.List(pl.String))


def _rescore_touched(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    links: pl.DataFrame,
    kept: KeptFit,
    rows: KeptRows,
    priorities: dict[str, int],
    latest: int,
    say: Progress,
) -> ChurnRun | None:
    """``run`` with a kept fit when ``rows`` were made with its horizon, as of the same day (the activity range
    is read from every row) and with the same last day read: the features of the touched customers made again
    on this connection (whatever the engine: they are few), the others' taken from ``rows``; BG/NBD is fitted
    on everyone, as a full rescore fits it, and when that gives the fit the rows were made with only the
    touched are scored (_touched_only); the served order, segments and ranks are the whole population's.
    Owners and regions are read for the touched only. None: rescore everyone."""
    made = rows.meta()
    first, last = churn_features.events_range(con, latest)
    if made is None or first is None or last is None:
        return None
    d, th = math.floor(last) + 1, kept.train_horizon_days
    if made[0] != (d, latest, th):
        return None
    touched = rows.touched["customer_key"].cast(pl.String).unique()
    as_of = _date(d)
    say(f"churn: {touched.len()} customers touched at {as_of}, scored with the {kept.method} fit of {kept.trained_on}")
    with churn_features.on_connection():
        churn_features.load_events(con, links, priorities, latest, touched=touched.to_frame())
        new = churn_features.features_at(con, d, th)
    run_ = ChurnRun(
        as_of, kept.horizon_days, "none", "no_activity", pl.DataFrame(), pl.DataFrame(), train_horizon_days=th,
        day=d, latest=latest, touched=touched.len(),
    )  # fmt: skip
    served = _SERVED.get()  # engine spark: the kept rows and scores read there, the files written there
    if served is not None and served.rescore(con, settings, run_, kept, rows, touched, new):
        say(f"churn: {run_.scored} customers scored again on Spark with the {kept.method} fit of {kept.trained_on}")
        return run_
    unchanged = ~pl.col("customer_key").is_in(touched)
    every = pl.read_parquet(rows.rows)
    kept_rows = every.filter(unchanged)
    scores = pl.read_parquet(rows.scores, columns=["customer_key", "owner", "region", *REASON_COLUMNS])
    same_inputs = _same_bgnbd_inputs(every.filter(~unchanged), new)
    same = _Untouched(kept_rows, scores.filter(unchanged), made[1], touched, new, same_inputs)
    records = None  # the kept customers' first records and the touched customers' (FIRST_RECORDS_SQL for them only)
    if FIRST_COLUMN in kept_rows.columns:
        kept_records = kept_rows.select("customer_key", FIRST_COLUMN)
        records = pl.concat([kept_records, churn_features.first_records(con, few=True)])
    _rescore(con, settings, run_, kept, None, same, records)
    say(f"churn: {run_.scored} of {run_.scores.height} customers scored again (BG/NBD's fit {_same_fit(run_, same)})")
    return run_


def _same_bgnbd_inputs(before: pl.DataFrame, after: pl.DataFrame) -> bool:
    """BG/NBD's fit reads each customer's (x, t_x, T) in key order (a sample of them by position above
    bgnbd.MAX_CUSTOMERS): the touched customers ``before`` and ``after`` being the same customers with the same
    numbers, everyone's are, and the fit is the kept one."""
    cols = ["customer_key", "active_days", "active_span", "tenure_days"]
    return before.select(cols).sort("customer_key").equals(after.select(cols).sort("customer_key"))


def _same_fit(run_: ChurnRun, same: _Untouched) -> str:
    return "the same" if run_.bgnbd == same.bgnbd else "moved"


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


@contextmanager
def _memory_given_back(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Inside: DuckDB's allocator gives the memory its statements free back to the system in threads of its own
    (``allocator_background_threads``), not when it is next asked for memory. At large the events' sorted read left
    ~1 GiB of freed pages held through churn's fits and scoring (the process at 3.6-4.4 GiB after the read, against
    2.9 with them)."""
    was = con.sql("SELECT current_setting('allocator_background_threads')").fetchall()[0][0]
    con.execute("SET allocator_background_threads = true")
    try:
        yield
    finally:
        con.execute(f"SET allocator_background_threads = {'true' if was else 'false'}")


def build(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    links: pl.DataFrame,
    folder: Path,
    progress: Progress | None = None,
    kept: KeptFit | None = None,
    rows: KeptRows | None = None,
) -> ChurnRun:
    """The derived build's churn tables: ``<table>.parquet`` for each of CHURN_TABLES in ``folder``, the fit
    that scored them (FIT_FILE; ``kept``: rescore with it instead of fitting) and the features it scored
    (ROWS_FILE; ``rows``: a kept build's, of which only the touched customers are made again)."""
    with _memory_given_back(con):
        result = run(con, settings, links, progress=progress, kept=kept, rows=rows)

    def the_rest() -> None:
        result.card.write_parquet(folder / "churn_model.parquet")
        if result.rows is not None:
            # lz4: read only by the next build's rescore (at large 151 MB against zstd's 116, written in 0.6 CPU-s
            # against 1.1 and read in 0.15 against 0.29)
            result.rows.write_parquet(folder / ROWS_FILE, metadata=_meta(result), compression="lz4")
        if result.fit is not None:
            save_fit(result.fit, folder / FIT_FILE)

    if result.written:
        the_rest()
    else:  # churn_scores written beside the rest (pyarrow's writer and polars' each leave the GIL)
        _beside(lambda: _write_by_arrow(result.scores, folder / "churn_scores.parquet"), the_rest, threads=True)
    return result


SCORES_ROW_GROUP = 122_880  # rows: churn_scores' row groups (about as many as polars' writer made)


def _write_by_arrow(frame: pl.DataFrame, path: Path) -> None:
    """``frame`` as Parquet by pyarrow (zstd). churn_scores' reasons, lists of strings taken in the served order:
    polars' writer took ~2-3 CPU-s for them at large, pyarrow's ~0.7 (written slice by slice, ~1.4); the same
    columns and types read back."""
    pq.write_table(frame.to_arrow(), path, compression="zstd", row_group_size=SCORES_ROW_GROUP)


# -- the command line -------------------------------------------------------------------------------
BACKTEST_COLUMNS = (
    "method",
    "auc",
    "precision_top10",
    "brier",
    "chosen",
    "status",
    "backtest_windows",
    "backtest_windows_needed",
    "train_horizon_days",
)


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


def with_consent(listing: pl.DataFrame, golden: pl.DataFrame) -> pl.DataFrame:
    """``listing`` with each customer's marketing consent (``golden``: customer_key, marketing_consent) as
    ``consent``: yes, no or unknown (no golden record, or no readable consent)."""
    code = (
        pl.when(pl.col("marketing_consent")).then(pl.lit("yes"))
        .when(~pl.col("marketing_consent")).then(pl.lit("no"))
        .otherwise(pl.lit("unknown"))
    )  # fmt: skip
    consent = golden.select("customer_key", code.alias("consent"))
    out = listing.join(consent, on="customer_key", how="left", maintain_order="left")
    return out.with_columns(pl.col("consent").fill_null("unknown"))


def listing(scores: pl.DataFrame, lang: str) -> pl.DataFrame:
    """churn_scores rows → the CLI's columns, reasons in ``lang``."""
    reasons = pl.col("reasons_en" if lang == "en" else "reasons_zh")
    return scores.sort("rank").select(
        "customer_key",
        "risk",
        "expected_value_at_risk",
        *(reasons.list.get(i, null_on_oob=True).alias(f"reason_{i + 1}") for i in range(3)),
    )
