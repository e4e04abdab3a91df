"""The gate's common expectation kinds checked by the cockpit itself, with the verdicts, counts, percentages,
sample values and kwargs that Great Expectations' pandas engine reports for them.

Importing GX costs ~2 s of CPU, more than validating a small changed source. A suite whose expectations are
all of the kinds below, with options and column types checked here the way GX checks them, never needs it;
any other suite (another kind, an option such as ``row_condition``, a missing column, a column type not
listed, a value set of mixed types) goes to GX as before. tests/test_own_checks.py pins the results to GX's
on the demo sources, the messy fixture and frames made to hit the edges (nulls, NaN, empty frames).

Where GX's behaviour comes from (GX 1.24, pandas 3): a column-map expectation looks only at the rows whose
value is not missing (pandas ``isnull``: null, or NaN in a float column); its percentage is over those rows
(not-null's over all rows); ``mostly`` compares the share of good rows; a table or column with no rows is a
vacuous success. Values reach pandas as polars' ``to_pandas`` makes them (an integer column with nulls
becomes float64), so the comparisons, the duplicates and the printed samples are made on those values.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import polars as pl

NOT_NULL = "expect_column_values_to_not_be_null"
ROW_COUNT = "expect_table_row_count_to_be_between"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
NOT_IN_SET = "expect_column_values_to_not_be_in_set"
REGEX = "expect_column_values_to_match_regex"
UNIQUE = "expect_column_values_to_be_unique"

# Each kind's own kwargs, in the order GX reports them (its model's field order, after ``mostly``).
_PARAMS: dict[str, tuple[str, ...]] = {
    ROW_COUNT: ("min_value", "max_value", "strict_min", "strict_max"),
    NOT_NULL: (),
    UNIQUE: (),
    BETWEEN: ("min_value", "max_value", "strict_min", "strict_max"),
    IN_SET: ("value_set",),
    NOT_IN_SET: ("value_set",),
    REGEX: ("regex",),
}
SEVERITIES = {"critical", "warning", "info"}
_EXPECTATION_KEYS = {"type", "kwargs", "meta", "severity"}
_SUITE_KEYS = {"name", "expectations", "meta", "notes"}
_SAMPLES = 5  # partial_unexpected_count of the gate's result format
_EXACT_FLOAT = 2**53  # integers a float64 holds exactly (an integer column with nulls is float64 in pandas)


class Unsupported(Exception):
    """This expectation is left to GX."""


def supported(suite: dict[str, Any], frame: pl.DataFrame) -> bool:
    """Whether every expectation of the suite can be checked here on this frame exactly as GX would (a suite
    GX might refuse goes to GX, which names what is wrong)."""
    if set(suite) - _SUITE_KEYS or not isinstance(suite.get("name"), str):
        return False
    if not isinstance(suite.get("meta", {}), dict):
        return False
    if not isinstance(suite.get("notes"), str | list | None) or not isinstance(suite.get("expectations"), list):
        return False
    try:
        for exp in suite["expectations"]:
            _plan(exp, frame)
    except Unsupported:
        return False
    return True


def check(suite: dict[str, Any], frame: pl.DataFrame) -> list[dict[str, Any]]:
    """Each expectation's result, in suite order, as the fields the gate reads from GX's result:
    type, column, severity, success, element_count, unexpected_count, unexpected_percent, samples (the
    printed values, nulls left out), observed, kwargs. Raises Unsupported when ``supported`` is False.
    In GX's order: grouped by column, the groups (and the table's own checks) where each first appears."""
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for exp in suite["expectations"]:
        groups.setdefault((exp.get("kwargs") or {}).get("column"), []).append(exp)
    return [_one(exp, frame) for group in groups.values() for exp in group]


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _flag(v: Any) -> bool:
    return v is None or isinstance(v, bool)


def _plan(exp: dict[str, Any], frame: pl.DataFrame) -> None:
    """Raise Unsupported unless this expectation is one checked here, with options and a column type GX
    treats the same way as the code below."""
    kind = exp.get("type")
    kwargs = exp.get("kwargs") or {}
    if kind not in _PARAMS or set(exp) - _EXPECTATION_KEYS or exp.get("severity", "critical") not in SEVERITIES:
        raise Unsupported(kind)
    allowed = set(_PARAMS[kind]) | ({"column", "mostly"} if kind != ROW_COUNT else set())
    if set(kwargs) - allowed or not isinstance(exp.get("meta", {}), dict):
        raise Unsupported(kind)
    if kind == ROW_COUNT:
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        if any(v is not None and (not isinstance(v, int) or isinstance(v, bool)) for v in (lo, hi)):
            raise Unsupported(kind)
        if not (_flag(kwargs.get("strict_min")) and _flag(kwargs.get("strict_max"))):
            raise Unsupported(kind)
        return
    column, mostly = kwargs.get("column"), kwargs.get("mostly", 1.0)
    if not isinstance(column, str) or column not in frame.columns:
        raise Unsupported(kind)  # GX reports a missing column as an exception of its own
    if not _number(mostly) or not 0 <= mostly <= 1:
        raise Unsupported(kind)
    dtype = frame.schema[column]
    simple = dtype in (pl.String, pl.Boolean, pl.Date) or dtype.is_numeric() or isinstance(dtype, pl.Datetime)
    if not simple or dtype.is_decimal() or (isinstance(dtype, pl.Datetime) and dtype.time_zone is not None):
        raise Unsupported(kind)
    if kind == BETWEEN:
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        bounds_ok = all(v is None or _number(v) for v in (lo, hi)) and (lo is not None or hi is not None)
        if not dtype.is_numeric() or not bounds_ok or (lo is not None and hi is not None and lo > hi):
            raise Unsupported(kind)
        if not (_flag(kwargs.get("strict_min")) and _flag(kwargs.get("strict_max"))):
            raise Unsupported(kind)
        _integers_exact(frame[column])
    elif kind in (IN_SET, NOT_IN_SET):
        values = kwargs.get("value_set")
        if not isinstance(values, list):
            raise Unsupported(kind)
        if dtype == pl.String:
            same = all(isinstance(v, str) for v in values)
        elif dtype == pl.Boolean:
            same = all(isinstance(v, bool) for v in values)
        elif dtype.is_integer():
            same = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
            _integers_exact(frame[column])
        else:
            same = False
        if not same:
            raise Unsupported(kind)
    elif kind == REGEX:
        if dtype != pl.String or not isinstance(kwargs.get("regex"), str):
            raise Unsupported(kind)
        try:
            re.compile(kwargs["regex"])
        except re.error:
            raise Unsupported(kind) from None  # GX reports the pattern's error as the expectation's exception
    elif kind == UNIQUE:
        if not (dtype == pl.String or dtype.is_integer() or dtype == pl.Date or isinstance(dtype, pl.Datetime)):
            raise Unsupported(kind)
        _integers_exact(frame[column])


def _integers_exact(column: pl.Series) -> None:
    """An integer column with nulls is float64 in pandas: its values must survive that unchanged."""
    if column.dtype.is_integer() and column.null_count():
        lo, hi = column.min(), column.max()
        if lo is not None and hi is not None and max(abs(int(lo)), abs(int(hi))) >= _EXACT_FLOAT:  # type: ignore[arg-type]
            raise Unsupported("integers beyond float64's exact range")


def _kwargs(exp: dict[str, Any]) -> dict[str, Any]:
    given = exp.get("kwargs") or {}
    order = ("mostly", *_PARAMS[exp["type"]]) if exp["type"] != ROW_COUNT else _PARAMS[ROW_COUNT]
    out = {k: given[k] for k in order if k in given}
    if "mostly" in out:
        out["mostly"] = float(out["mostly"])
    return out


def _one(exp: dict[str, Any], frame: pl.DataFrame) -> dict[str, Any]:
    _plan(exp, frame)
    kind, kwargs = exp["type"], exp.get("kwargs") or {}
    out: dict[str, Any] = {
        "type": kind,
        "column": kwargs.get("column"),
        "severity": exp.get("severity", "critical"),
        "kwargs": _kwargs(exp),
        "element_count": None,
        "unexpected_count": None,
        "unexpected_percent": None,
        "samples": [],
        "observed": "None",
    }
    n = frame.height
    if kind == ROW_COUNT:
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        above = lo is None or (n > lo if kwargs.get("strict_min") else n >= lo)
        below = hi is None or (n < hi if kwargs.get("strict_max") else n <= hi)
        return {**out, "success": bool(above and below), "observed": str(n)}
    column = frame[kwargs["column"]]
    missing = column.is_null()
    if column.dtype.is_float():
        missing = missing | column.is_nan().fill_null(True)
    mostly = float(kwargs.get("mostly", 1.0))
    if kind == NOT_NULL:
        bad = missing
        unexpected = int(bad.sum())
        percent = unexpected / n * 100 if n > 0 else None
        success = True if n == 0 else (n - unexpected) / n >= mostly
    else:
        present = ~missing
        bad = present & ~_good(kind, kwargs, column).fill_null(False)
        unexpected = int(bad.sum())
        considered = int(present.sum())
        percent = unexpected / considered * 100 if n > 0 and considered > 0 else None
        success = True if n == 0 or considered == 0 else (float(considered) - unexpected) / considered >= mostly
    return {
        **out,
        "success": bool(success),
        "element_count": n,
        "unexpected_count": unexpected,
        "unexpected_percent": percent,
        "samples": _samples(column, bad),
    }


def _as_pandas_values(column: pl.Series) -> pl.Series:
    """The column as pandas holds it: an integer column with nulls as float64."""
    return column.cast(pl.Float64) if column.dtype.is_integer() and column.null_count() else column


def _good(kind: str, kwargs: dict[str, Any], column: pl.Series) -> pl.Series:
    if kind == BETWEEN:
        values = _as_pandas_values(column)
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        ok = pl.Series([True] * len(values), dtype=pl.Boolean)
        if lo is not None:
            ok = ok & (values > lo if kwargs.get("strict_min") else values >= lo)
        if hi is not None:
            ok = ok & (values < hi if kwargs.get("strict_max") else values <= hi)
        return ok
    if kind in (IN_SET, NOT_IN_SET):
        inside = column.is_in(pl.Series(kwargs["value_set"], dtype=column.dtype))
        return inside if kind == IN_SET else ~inside
    if kind == REGEX:
        # pandas' own str.contains on the column as GX gets it: Python's re semantics, which pandas keeps
        # when it hands simple patterns to Arrow's engine (``$`` before a final newline, Unicode ``\d``).
        with warnings.catch_warnings():  # "has match groups": a group is how a suite repeats a part
            warnings.simplefilter("ignore", UserWarning)
            found = column.to_pandas().str.contains(kwargs["regex"], na=False)
        return pl.Series(found.to_numpy(dtype=bool))
    if kind == UNIQUE:
        values = _as_pandas_values(column)
        present = values.drop_nulls()
        repeated = present.filter(present.is_duplicated()).unique()
        return ~values.is_in(repeated)
    return pl.Series([True] * len(column), dtype=pl.Boolean)  # NOT_NULL is counted by the caller


def _samples(column: pl.Series, bad: pl.Series) -> list[str]:
    """The first unexpected values in row order, printed as GX prints them (from pandas), nulls left out."""
    picked = column.filter(bad).head(_SAMPLES)
    if picked.is_empty():
        return []
    if column.null_count() and not picked.null_count():
        # pandas' dtype for the column depends on its nulls: convert with one, so the values print the same
        shown = pl.concat([picked, pl.Series([None], dtype=column.dtype)]).to_pandas().tolist()[:-1]
    else:
        shown = picked.to_pandas().tolist()
    return [str(v) for v in shown if str(v) not in ("nan", "NaT", "None", "<NA>")]
