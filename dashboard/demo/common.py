"""The demo generator's shared constants, array types and small vectorized numpy/polars helpers."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import date

import numpy as np
import numpy.typing as npt
import polars as pl

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

DAY = 86_400
EPOCH = date(1970, 1, 1)
EXCEL_EPOCH_DAYS = (date(1899, 12, 30) - EPOCH).days
NEVER = np.iinfo(np.int64).max // 4  # "since" of a person who never becomes a customer
PURCHASED_CAP = 40_000  # a purchased list is tens of thousands of rows, not millions
JSON_PAGE = 1_000_000  # records per WeChat events page


def rng_for(seed: int, name: str) -> np.random.Generator:
    """The random stream of one part of the generator: the same (seed, name) gives the same draws."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def norm(w: Sequence[float] | F64) -> F64:
    a: F64 = np.asarray(w, dtype=np.float64)
    return a / float(a.sum())


def pick(rng: np.random.Generator, n: int, weights: Sequence[float] | F64) -> I64:
    out: I64 = rng.choice(len(weights), size=n, p=norm(weights)).astype(np.int64)
    return out


def pick_rows(rng: np.random.Generator, table: F64, row: I64) -> I64:
    """Per element, a category drawn from ``table[row]`` (rows are weights)."""
    cum = np.cumsum(table / table.sum(axis=1, keepdims=True), axis=1)[row]
    u = rng.random(row.size)
    out: I64 = np.minimum((u[:, None] > cum).sum(axis=1), table.shape[1] - 1).astype(np.int64)
    return out


def lookup(table: Sequence[str | None], idx: I64) -> pl.Series:
    return pl.Series(list(table), dtype=pl.String).gather(idx)


def ids(prefix: str, n: int, width: int, start: int = 1) -> pl.Series:
    num = pl.Series(np.arange(start, start + n, dtype=np.int64)).cast(pl.String).str.zfill(width)
    return pl.select(pl.concat_str([pl.lit(prefix), pl.lit(num)])).to_series() if n else num


def nulls(s: pl.Series, mask: Bool) -> pl.Series:
    idx = np.flatnonzero(mask)
    return s.clone().scatter(idx, None) if idx.size else s


def concat(*parts: pl.Series | str) -> pl.Series:
    exprs = [pl.lit(p) for p in parts]
    return pl.select(pl.concat_str(exprs)).to_series()


def fmt_ts(ts: I64, fmt: str) -> pl.Series:
    return (pl.Series(ts, dtype=pl.Int64) * 1000).cast(pl.Datetime("ms")).dt.strftime(fmt)


def fmt_day(days: I64, fmt: str) -> pl.Series:
    return pl.Series(days, dtype=pl.Int64).cast(pl.Int32).cast(pl.Date).dt.strftime(fmt)


def random_strings(rng: np.random.Generator, n: int, length: int, alphabet: str) -> pl.Series:
    table = np.frombuffer(alphabet.encode("ascii"), dtype=np.uint8)
    raw = table[rng.integers(0, len(alphabet), size=(n, length))]
    return pl.Series(raw.view(f"S{length}").ravel()).cast(pl.String)


def with_dups(df: pl.DataFrame, rng: np.random.Generator, rate: float = 0.005) -> pl.DataFrame:
    """Exact duplicated rows (~rate), each right after its original, as exports have them."""
    n = df.height
    k = round(n * rate)
    if k == 0:
        return df
    extra = rng.choice(n, size=k, replace=False)
    order = np.sort(np.concatenate([np.arange(n), extra]), kind="stable")
    return df[order]


def weekday(days: I64) -> I64:
    return (days + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)


def fill_template(template: pl.Series, value: pl.Series) -> pl.Series:
    """Each template's ``{}`` replaced by the value of its row."""
    frame = pl.DataFrame({"t": template, "p": value})
    return frame.select(pl.col("t").str.replace("{}", pl.col("p"), literal=True))["t"]
