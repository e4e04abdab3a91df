"""A cutoff's customers as Spark views (engine spark): FEATURES_SQL's rows at a day and horizon made and kept on
Spark, churn's own per-customer functions applied to them a partition at a time (mapInArrow), BG/NBD's sample drawn
there. What the served pass (.served) and the backtest (.backtest) both stand on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl

from dashboard.core.config import Settings
from dashboard.derived.churn import bgnbd as churn_bgnbd
from dashboard.derived.churn import features as churn_features
from dashboard.derived.spark.churn import _columns, _unordered
from dashboard.derived.spark.jobs import spark_query, spark_type
from dashboard.derived.spark.steps import numbered, write_view, written_rows

ORDER = "_order0"  # the features' ORDER BY key (their customer id, in key order), as _unordered selects it
CID = "_cid"  # the same, under a name of its own
Part = Callable[[pl.DataFrame], pl.DataFrame]  # a partition's rows → its rows made (on an executor)


class Given:
    """A DayTables handing back one partition's FEATURES_SQL rows: features_at derives its columns on them."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame

    def query(self, con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, int]) -> pl.DataFrame:
        assert sql == churn_features.FEATURES_SQL, "only a cutoff's features are handed back"
        return self.frame

    def make(self, con: duckdb.DuckDBPyConnection, latest: int) -> None:
        raise NotImplementedError

    def first_records(self, con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
        raise NotImplementedError

    def attributes(self, con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
        raise NotImplementedError


def arrow_schema(frame: pl.DataFrame) -> Any:
    """``frame``'s Arrow schema with plain (not large) strings and lists: what Spark's Arrow reader takes."""
    import pyarrow as pa

    def plain(kind: Any) -> Any:
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            return pa.string()
        if pa.types.is_large_list(kind) or pa.types.is_list(kind):
            return pa.list_(plain(kind.value_type))
        return kind

    return pa.schema([(f.name, plain(f.type)) for f in frame.to_arrow().schema])


def bgnbd_sample(n: int, max_customers: int = churn_bgnbd.MAX_CUSTOMERS, seed: int = 0) -> np.ndarray | None:
    """The 0-based places (in key order) of the customers bgnbd.fit fits on when given ``n`` (None: every one), as
    it draws them."""
    if n <= max_customers:
        return None
    return np.asarray(np.random.default_rng(seed).choice(n, max_customers, replace=False))


def features_view(
    spark: Any, settings: Settings, stage: Path, con: duckdb.DuckDBPyConnection, t: int, horizon: int, view: str
) -> int:
    """The Spark view ``view``: FEATURES_SQL's rows at day ``t`` and ``horizon`` (DuckDB's types) with their id
    (CID, key order), written once; how many customers."""
    params = {"t": t, "h": horizon}
    columns = _columns(con, churn_features.FEATURES_SQL, params)
    unordered, _ = _unordered(churn_features.FEATURES_SQL)
    text, bound = spark_query(unordered, params)
    casts = ", ".join(f"CAST(`{c}` AS {spark_type(ty)}) AS `{c}`" for c, ty in columns.items())
    casts += f", CAST(`{ORDER}` AS INT) AS `{CID}`"
    return written_rows(write_view(spark, settings, spark.sql(f"SELECT {casts} FROM ({text})", bound), view, stage))


def bgnbd_fit(spark: Any, settings: Settings, stage: Path, view: str, n: int) -> churn_bgnbd.BGNBD:
    """BG/NBD fitted on the (x, t_x, T) of ``view``'s ``n`` customers that bgnbd.fit fits on, as it would draw them
    from every customer's (bgnbd_sample): the same arrays, so the same fit; a bounded set on the driver."""
    from dashboard.derived.churn import build as churn

    cols = "active_days, active_span, tenure_days"
    keep = bgnbd_sample(n)
    if keep is None:
        got = spark.sql(f"SELECT {cols} FROM {view}").toArrow()
    else:
        source = spark.table(view).select(CID, "active_days", "active_span", "tenure_days")
        numbered(spark, settings, source, {"_place": (CID,)}, f"{view}_places", stage)
        places = spark.createDataFrame([(int(p) + 1,) for p in keep], "_place bigint")
        places.createOrReplaceTempView(f"{view}_keep")
        got = spark.sql(f"SELECT {cols} FROM {view}_places LEFT SEMI JOIN {view}_keep USING (_place)").toArrow()
    frame = pl.from_arrow(got)
    assert isinstance(frame, pl.DataFrame)
    return churn_bgnbd.fit(*churn.bgnbd_data(frame))


def one_row(spark: Any, view: str) -> pl.DataFrame:
    """One row of ``view``, on the driver: what a partition's function is tried on, to learn its output's types."""
    one = pl.from_arrow(spark.table(view).limit(1).toArrow())
    assert isinstance(one, pl.DataFrame)
    return one


def mapped(
    spark: Any, settings: Settings, stage: Path, source: str, part: Part, view: str, row: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The Spark view ``view``: ``part`` applied to ``source``'s rows a partition (an Arrow batch) at a time on the
    executors, written once; ``part``'s output on one row (its shape, made on the driver): ``row``, a row with
    ``source``'s columns and types, or one of ``source``'s."""
    shape = part(one_row(spark, source) if row is None else row)
    schema = arrow_schema(shape)
    from pyspark.sql.pandas.types import from_arrow_schema

    frame = spark.table(source).mapInArrow(_batches(part, schema), from_arrow_schema(schema))
    write_view(spark, settings, frame, view, stage)
    return shape


def _batches(part: Part, schema: Any) -> Callable[[Iterator[Any]], Iterator[Any]]:
    def run(batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            raw = pl.from_arrow(batch)
            assert isinstance(raw, pl.DataFrame)
            yield from part(raw).to_arrow().cast(schema).to_batches()

    return run
