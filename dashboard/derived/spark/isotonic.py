"""scikit-learn's IsotonicRegression (increasing, y in [0, 1], clipped out of bounds), fitted and predicted on the same
scores as build._to_target does, made over sorted ranges of the customers and equal to scikit-learn's to the last bit.

scikit-learn sorts the points by (score, target), makes each group of scores within ``EPS`` of its first one a point
(its targets' mean, summed in that order: ``groups``), runs SciPy's pool-adjacent-violators (Busing's stack
algorithm: ``machine``) over those points and predicts by linear interpolation between them (``predicted``). A block's
value depends on the order its points were pooled in, so pooling ranges' blocks in another order would give other
last bits. It does not need to: the stack algorithm run on a range alone pools exactly as it does inside the whole
run as long as nothing crosses the range's edges, which the driver checks from each range's blocks (their values,
weights, and bounds on what the first block was on its way and what the last pooled forward to the edge: ``Range``).
Where something crosses, the driver runs the same algorithm again over the points of the blocks at that edge with
the whole run's stack below them (``Fold``), and stops at a block edge past which nothing crosses: a few blocks, not
the customers. Each range's customers are then predicted from their range's blocks with the driver's corrections."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import isotonic_regression

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
EPS = float(np.finfo(np.float64).resolution)  # sklearn's _make_unique: a score within this of its group's first joins
SLACK = 1e-9  # the bounds' margin: a pooled mean is within far less of the exact one (sums of at most ~1e6 terms)


def groups(score: F64, target: F64) -> tuple[I64, F64, F64, F64]:
    """sklearn's _make_unique on points sorted by (score, target), each of weight 1: each point's group, each group's
    first score, its targets' mean (summed in order) and its weight."""
    n = score.size
    start = np.ones(n, dtype=bool)
    gap = np.diff(score)
    start[1:] = gap >= EPS  # at least EPS above the point before: above the group's first too
    index = np.arange(n)
    last = np.maximum.accumulate(np.where(start, index, 0))
    mine = -1
    for j in np.flatnonzero((gap > 0) & (gap < EPS)) + 1:  # near the point before: against the group's first
        first = max(int(last[j - 1]), mine)
        if score[j] - score[first] >= EPS:
            start[j], mine = True, int(j)
    group = np.cumsum(start) - 1
    firsts = np.flatnonzero(start)
    sizes = np.diff(np.append(firsts, n))
    sums = target[firsts].copy()
    for g in np.flatnonzero(sizes > 1):  # summed in order, as _make_unique adds them
        lo = firsts[g]
        sums[g] = np.add.accumulate(target[lo : lo + sizes[g]])[-1]
    weight = sizes.astype(np.float64)
    return group, score[firsts], sums / weight, weight


@dataclass
class Run:
    """The stack algorithm's state: block values, weights and starts (in the points' numbering), what the forward
    pooling reached the last point with (its greatest mean), and whether a block was pooled into the bottom one."""

    values: list[float]
    weights: list[float]
    starts: list[int]
    to_end: float = -math.inf
    bottom: bool = False


def machine(y: Sequence[float] | F64, w: Sequence[float] | F64, offset: int = 0, below: Run | None = None) -> Run:
    """SciPy's pava (Busing 2022, Algorithm 1, as scipy/optimize/_pava/pava_pybind.cpp) over the points ``y`` with
    weights ``w`` (numbered from ``offset``), on top of the blocks ``below`` (the whole run's stack before them)."""
    run = Run(list(below.values), list(below.weights), list(below.starts)) if below else Run([], [], [])
    x, ws, r = run.values, run.weights, run.starts
    n, i = len(y), 0
    if not x:
        x.append(float(y[0]))
        ws.append(float(w[0]))
        r.append(offset)
        i = 1
    b = len(x) - 1
    xb_prev, wb_prev = x[b], ws[b]
    while i < n:
        b += 1
        xb, wb = float(y[i]), float(w[i])
        if xb_prev >= xb:
            b -= 1
            sb = wb_prev * xb_prev + wb * xb
            wb += wb_prev
            xb = sb / wb
            while i < n - 1 and xb >= y[i + 1]:
                i += 1
                sb += w[i] * y[i]
                wb += w[i]
                xb = sb / wb
            if i == n - 1:
                run.to_end = max(run.to_end, xb)
            while b > 0 and x[b - 1] >= xb:
                b -= 1
                sb += ws[b] * x[b]
                wb += ws[b]
                xb = sb / wb
            run.bottom = run.bottom or b == 0
            del x[b + 1 :], ws[b + 1 :], r[b + 1 :]
            x[b], ws[b] = xb, wb
        else:
            x.append(xb)
            ws.append(wb)
            r.append(offset + i)
        xb_prev, wb_prev = xb, wb
        i += 1
    return run


@dataclass
class Range:
    """One sorted range's points pooled alone (SciPy's pava): its blocks, and for the driver's edge checks the
    scores at its ends, its first point's mean, a lower bound of the values each block took while it grew (its
    least prefix mean: a block only ever pools its own points) and an upper bound of what the forward pooling
    reached its last point with (the last block's greatest suffix mean)."""

    n: int
    first_score: float  # the first group's score
    last_score: float  # the last group's first score (sklearn's current_x there)
    first: float  # the first point's mean
    starts: I64
    values: F64
    weights: F64
    floor: F64  # per block
    to_end: float


def pooled(y: F64, w: F64) -> tuple[I64, F64, F64]:
    """SciPy's pava over the points: block starts, values, weights."""
    got = isotonic_regression(y, weights=w, increasing=True)
    return np.asarray(got.blocks[:-1], dtype=np.int64), np.asarray(got.x[got.blocks[:-1]]), np.asarray(got.weights)


def summarize(first_scores: F64, y: F64, w: F64) -> Range:
    starts, values, weights = pooled(y, w)
    ends = np.append(starts[1:], y.size)
    floor = np.empty(starts.size)
    for k, (lo, hi) in enumerate(zip(starts, ends, strict=True)):
        floor[k] = np.min(np.cumsum(y[lo:hi] * w[lo:hi]) / np.cumsum(w[lo:hi]))
    lo = int(starts[-1])
    tail = (np.cumsum((y[lo:] * w[lo:])[::-1]) / np.cumsum(w[lo:][::-1])).max()
    return Range(y.size, float(first_scores[0]), float(first_scores[-1]), float(y[0]), starts, values, weights,
                 floor, float(tail))  # fmt: skip


Points = Callable[[int, int], tuple[F64, F64]]  # (range, up to local point) → its first points' means and weights


@dataclass
class Fold:
    """The whole run's blocks from each range's (Range) in order: taken as they are where nothing crosses an edge,
    the stack algorithm run again (``machine``) over the points of the blocks at an edge where something does."""

    ranges: list[Range]
    points: Points  # a range's first points (read where they are)
    stack: Run = field(default_factory=lambda: Run([], [], []))
    offsets: list[int] = field(default_factory=list)
    again: int = 0  # edges run again

    def run(self) -> Run:
        at = 0
        for r in self.ranges:
            self.offsets.append(at)
            at += r.n
        for k, r in enumerate(self.ranges):
            self._add(k, r)
        return self.stack

    def _local(self, k: int, r: Range, block: int) -> None:
        """Range k's blocks from ``block`` on, as pooled alone."""
        off = self.offsets[k]
        s = self.stack
        s.values += r.values[block:].tolist()
        s.weights += r.weights[block:].tolist()
        s.starts += (r.starts[block:] + off).tolist()
        s.to_end = r.to_end

    def _add(self, k: int, r: Range) -> None:
        s = self.stack
        if not s.values or (s.values[-1] < r.floor[0] - SLACK and s.to_end + SLACK < r.first):
            self._local(k, r, 0)
            return
        self.again += 1
        # from the start of the last block so far: the state there is the blocks before it (nothing before pooled
        # forward past it), and only its pooling reached the edge
        lo = s.starts[-1]
        below = Run(s.values[:-1], s.weights[:-1], s.starts[:-1])
        left = self._global_points(lo, self.offsets[k])
        upto = 1
        while True:
            end = int(r.starts[upto]) if upto < r.starts.size else r.n
            y, w = self.points(k, end + (1 if end < r.n else 0))
            ys, ws = np.concatenate([left[0], y[:end]]), np.concatenate([left[1], w[:end]])
            got = machine(ys, ws, lo, below)
            if end == r.n:
                self.stack = got
                return
            if got.values[-1] < r.floor[upto] - SLACK and got.to_end < y[end]:
                self.stack = got
                self._local(k, r, upto)
                return
            upto += 1

    def _global_points(self, lo: int, hi: int) -> tuple[F64, F64]:
        """The points numbered [lo, hi) (within the ranges before ``hi``'s)."""
        ys, ws = [], []
        for k, off in enumerate(self.offsets):
            end = off + self.ranges[k].n
            if end <= lo or off >= hi:
                continue
            y, w = self.points(k, min(end, hi) - off)
            ys.append(y[max(lo - off, 0) :])
            ws.append(w[max(lo - off, 0) :])
        return (np.concatenate(ys), np.concatenate(ws)) if ys else (np.empty(0), np.empty(0))


def predicted(score: F64, group: I64, first: F64, value: F64) -> F64:
    """IsotonicRegression.predict of each point's score (its group ``group``): np.interp between the groups' first
    scores ``first`` and fitted values ``value`` (with the next range's first group appended, when there is one): a
    group's own value, or the line to the next group's for a score past its group's first."""
    out = value[group].copy()
    nxt = np.minimum(group + 1, first.size - 1)
    between = (score != first[group]) & (nxt != group) & (value[nxt] != value[group])
    if between.any():
        g, h = group[between], nxt[between]
        slope = (value[h] - value[g]) / (first[h] - first[g])
        out[between] = slope * (score[between] - first[g]) + value[g]
    return out


# -- on Spark --------------------------------------------------------------------------------------------------------
CID, SCORE, RISK, GROWTH = "_cid", "score_ranking", "score_risk", "bgnbd_active_growth"  # the scored customers' columns
_RANGE = "_range"
# per range: the whole run's block starts and values over it (empty: its own pooling's), the next range's first
# score and fitted value (NaN: none)
Fitted = tuple[list[int], list[float], float, float]


def _target(table: Any) -> tuple[F64, F64, I64]:
    """A range's customers sorted by (score, target) as sklearn sorts them: scores, targets (_to_target's, by the
    same numpy expression) and their order in ``table``."""
    score = table.column(SCORE).to_numpy().astype(np.float64)
    p_none = table.column(RISK).to_numpy().astype(np.float64)
    target = np.clip(1.0 - (1.0 - p_none) * table.column(GROWTH).to_numpy().astype(np.float64), 0.0, p_none)
    order = np.lexsort((target, score))
    return score[order], target[order], order


def _summary(table: Any) -> Any:
    """One range's Range, as one row (on an executor)."""
    import pyarrow as pa

    score, target, _ = _target(table)
    _, first, y, w = groups(score, target)
    r = summarize(first, y, w)
    row = {_RANGE: [table.column(_RANGE)[0].as_py()], "n": [r.n], "first_score": [r.first_score],
           "last_score": [r.last_score], "first": [r.first], "to_end": [r.to_end], "starts": [r.starts.tolist()],
           "values": [r.values.tolist()], "weights": [r.weights.tolist()], "floor": [r.floor.tolist()]}  # fmt: skip
    return pa.table(row, schema=_arrow(_SUMMARY))


def _points(wanted: dict[int, int]) -> Callable[[Any], Any]:
    def run(table: Any) -> Any:
        """The first points (means, weights) of a range the driver asked for (on an executor)."""
        import pyarrow as pa

        k = table.column(_RANGE)[0].as_py()
        if k not in wanted:
            return _arrow(_POINTS).empty_table()
        score, target, _ = _target(table)
        _, _, y, w = groups(score, target)
        m = wanted[k]
        return pa.table({_RANGE: [k] * min(m, y.size), "y": y[:m], "w": w[:m]}, schema=_arrow(_POINTS))

    return run


def _predict(fitted: dict[int, Fitted], schema: str) -> Callable[[Any], Any]:
    def run(table: Any) -> Any:
        """A range's customers' predictions (on an executor): its blocks pooled alone, or the driver's where they
        differ, clipped to [0, 1]; the next range's first group appended for the line past a group's last."""
        import pyarrow as pa

        k = table.column(_RANGE)[0].as_py()
        score, target, order = _target(table)
        group, first, y, w = groups(score, target)
        given = fitted[k]
        starts, values = (given[0], given[1]) if given[0] else pooled(y, w)[:2]
        value = np.clip(np.repeat(np.asarray(values, dtype=np.float64), np.diff(np.append(starts, y.size))), 0.0, 1.0)
        if not math.isnan(given[2]):
            first, value = np.append(first, given[2]), np.append(value, given[3])
        got = np.empty(score.size)
        got[order] = predicted(score, group, first, value)
        return pa.table({CID: table.column(CID), RISK: got}, schema=_arrow(schema))

    return run


def to_target(spark: Any, settings: Any, stage: Any, view: str, out: str) -> int:
    """The Spark view ``out`` (CID, score_risk): build._to_target of the Spark view ``view``'s customers (CID, their
    score, calibrated risk and BG/NBD's growth to the target horizon), equal to it to the last bit. Ranges of the
    scores are pooled on the executors, the edges where something crosses pooled again on the driver from their
    blocks' points (Fold); the customers predicted on the executors. How many edges were pooled again."""
    from pyspark.sql import functions as F

    from dashboard.derived.spark.steps import write_view

    partitions = int(spark.conf.get("spark.sql.shuffle.partitions"))
    source = spark.table(view).select(CID, SCORE, RISK, GROWTH)
    # the customers' id as the view has it: the served pass's number, an incremental rescore's customer_key
    predicted = f"{CID} {dict(source.dtypes)[CID]}, {RISK} double"
    ranged = source.repartitionByRange(partitions, F.col(SCORE)).withColumn(_RANGE, F.spark_partition_id())
    write_view(spark, settings, ranged, f"{out}_ranged", stage)
    while True:
        ranges = sorted(spark.table(f"{out}_ranged").groupBy(_RANGE).applyInArrow(_summary, _SUMMARY).collect(),
                        key=lambda row: row[_RANGE])  # fmt: skip
        # a group of scores within EPS of its first split by a range's edge: the two ranges made one, pooled again
        split = [b[_RANGE] for a, b in pairwise(ranges) if b["first_score"] - a["last_score"] < EPS]
        if not split:
            break
        merged: dict[int, int] = {}
        for a, b in pairwise(ranges):
            if b[_RANGE] in split:
                merged[b[_RANGE]] = merged.get(a[_RANGE], a[_RANGE])
        renumbered = F.col(_RANGE)
        for k, into in merged.items():
            renumbered = F.when(F.col(_RANGE) == k, into).otherwise(renumbered)
        again = spark.table(f"{out}_ranged").withColumn(_RANGE, renumbered)
        write_view(spark, settings, again, f"{out}_ranged_again", stage)
        spark.table(f"{out}_ranged_again").createOrReplaceTempView(f"{out}_ranged")
    keys = [row[_RANGE] for row in ranges]
    summaries = [
        Range(row["n"], row["first_score"], row["last_score"], row["first"], np.asarray(row["starts"], np.int64),
              np.asarray(row["values"]), np.asarray(row["weights"]), np.asarray(row["floor"]), row["to_end"])
        for row in ranges
    ]  # fmt: skip
    fetched: dict[int, tuple[F64, F64]] = {}

    def points(k: int, m: int) -> tuple[F64, F64]:
        if k not in fetched or fetched[k][0].size < m:
            want = {keys[k]: min(max(2 * m, 1024), summaries[k].n)}
            one = spark.table(f"{out}_ranged").where(F.col(_RANGE) == keys[k])
            got = one.groupBy(_RANGE).applyInArrow(_points(want), _POINTS).toArrow()
            fetched[k] = (got.column("y").to_numpy(), got.column("w").to_numpy())
        y, w = fetched[k]
        return y[:m], w[:m]

    fold = Fold(summaries, points)
    stack = fold.run()
    fitted = _per_range(stack, fold.offsets, summaries)
    write_view(spark, settings, spark.table(f"{out}_ranged").groupBy(_RANGE).applyInArrow(
        _predict({keys[k]: f for k, f in enumerate(fitted)}, predicted), predicted), out, stage)  # fmt: skip
    return fold.again


def _per_range(stack: Run, offsets: list[int], ranges: list[Range]) -> list[Fitted]:
    """Per range: the whole run's blocks over its points (starts numbered within it, values; none where they are its
    own pooling's), and the next range's first score and fitted value (NaN for the last range)."""
    starts = np.asarray(stack.starts, dtype=np.int64)
    values = np.asarray(stack.values, dtype=np.float64)
    ends = np.append(starts[1:], np.iinfo(np.int64).max)
    out = []
    for k, r in enumerate(ranges):
        lo, hi = offsets[k], offsets[k] + r.n
        inside = np.flatnonzero((starts < hi) & (ends > lo))
        mine, theirs = np.maximum(starts[inside] - lo, 0), values[inside]
        own = np.array_equal(mine, r.starts) and np.array_equal(theirs, r.values)
        given: tuple[list[int], list[float]] = ([], []) if own else (mine.tolist(), theirs.tolist())
        if k + 1 < len(ranges):
            at = int(np.searchsorted(starts, hi, side="right")) - 1  # the block holding the next range's first point
            out.append((*given, ranges[k + 1].first_score, float(np.clip(values[at], 0.0, 1.0))))
        else:
            out.append((*given, math.nan, math.nan))
    return out


_SUMMARY_TYPES = {_RANGE: "int", "n": "bigint", "first_score": "double", "last_score": "double", "first": "double",
                  "to_end": "double", "starts": "array<bigint>", "values": "array<double>",
                  "weights": "array<double>", "floor": "array<double>"}  # fmt: skip
_SUMMARY = ", ".join(f"{c} {t}" for c, t in _SUMMARY_TYPES.items())
_POINTS = f"{_RANGE} int, y double, w double"


def _arrow(types: str) -> Any:
    """A Spark DDL schema (int, bigint, double, string, array<...>) as Arrow's."""
    import pyarrow as pa

    kinds = {"int": pa.int32(), "bigint": pa.int64(), "double": pa.float64(), "string": pa.string()}
    fields = []
    for part in types.split(", "):
        name, kind = part.split(" ")
        inner = kind.removeprefix("array<").removesuffix(">")
        fields.append((name, pa.list_(kinds[inner]) if kind.startswith("array<") else kinds[kind]))
    return pa.schema(fields)
