"""The quality profile's measures from one SQL definition on both engines: polars' SQL engine over the staged
frame (engine duckdb) and a Spark job over the staged file (engine spark, master local[2]) give the same rows
for awkward values (dates on and past the plausible range, unknown validity flags, a repeated key, a
trailing full-width space), and each counts what a person reading the quality page would count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from dashboard.core.config import EngineConfig, Settings, parse_settings
from dashboard.core.dictionary import load_dictionary
from dashboard.derived.quality import profile
from dashboard.derived.quality.profile import profile_frame
from tests.sparkcluster import spark_home, stop_keeping_jvm

LOCAL = {"kind": "spark", "master": "local[2]"}
NOW = datetime.now()
CUSTOMERS = pl.DataFrame(
    {
        "source_record_id": ["C1", "C2", "C1", "C4", "C5", "C6"],
        "name": ["张三", "张三\u3000", None, "李四", "王五", None],
        "phone": ["13800138000", "123", "13900139000", None, "13700137000", "555"],
        "phone_valid": [True, False, True, None, None, False],  # an unknown verdict is not counted invalid
        "created_at": [
            datetime(1999, 12, 31, 23, 59),  # before 2000: not plausible
            datetime(2000, 1, 1),  # the first plausible instant
            NOW + timedelta(days=30),  # a month ahead: not plausible
            None,
            datetime(2024, 3, 4, 5, 6, 7, 891000),
            NOW - timedelta(days=1),
        ],
        "marketing_consent": [True, False, None, True, True, None],
    },
    schema_overrides={"created_at": pl.Datetime("us")},
)


def _rows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("computed_at").sort("column_name")


def test_what_the_profile_counts() -> None:
    out = profile_frame(CUSTOMERS, "crm", "s1", "customers", {}, load_dictionary())
    field = {r["column_name"]: r for r in out.iter_rows(named=True)}
    assert (field["created_at"]["filled"], field["created_at"]["invalid"], field["created_at"]["valid_rate"]) == (
        5,
        2,
        0.6,
    )
    assert field["phone"]["invalid"] == 2 and field["phone"]["fill_rate"] == 5 / 6
    key = field["source_record_id"]
    assert (key["distinct_values"], key["duplicate_samples"]) == (5, ["C1 ×2"])
    assert field["name"]["distinct_values"] == 4  # the full-width space makes a value of its own
    assert field["name"]["empty_samples"] == ["C1", "C6"]


@pytest.fixture(scope="module")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    spark_home()  # skips (fails in CI) without pyspark or Java
    root = tmp_path_factory.mktemp("profile_spark")
    settings = parse_settings({"data_dir": str(root / "data"), "engine": LOCAL}, root)
    yield settings
    stop_keeping_jvm()


def _on_spark(settings: Settings, frame: pl.DataFrame, entity: str) -> pl.DataFrame:
    from dashboard.derived.spark.quality import aggregator

    path = settings.data_path / "staging" / "crm" / "s1" / f"{entity}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    measured = aggregator(settings)(f"the quality profile of crm.{entity}", path)
    return profile_frame(frame, "crm", "s1", entity, {}, load_dictionary(), measured)


@pytest.mark.slow
@pytest.mark.xdist_group("spark")
def test_both_engines_give_the_same_profile(spark: Settings) -> None:
    want = profile_frame(CUSTOMERS, "crm", "s1", "customers", {}, load_dictionary())
    assert _rows(_on_spark(spark, CUSTOMERS, "customers")).equals(_rows(want))
    empty = CUSTOMERS.clear()
    assert _rows(_on_spark(spark, empty, "customers")).equals(
        _rows(profile_frame(empty, "crm", "s1", "customers", {}, load_dictionary()))
    )


@pytest.mark.slow
@pytest.mark.xdist_group("spark")
def test_above_the_exact_limit_both_engines_estimate(spark: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past EXACT_DISTINCT_ROWS only the record key is counted exactly; the other fields are each engine's
    own HyperLogLog estimate, flagged as one."""
    monkeypatch.setattr(profile, "EXACT_DISTINCT_ROWS", 100)
    frame = pl.DataFrame(
        {
            "order_id": [f"O{i}" for i in range(2000)],
            "customer_ref": [f"C{i % 700}" for i in range(2000)],
            "ordered_at": [datetime(2024, 1, 1)] * 2000,
            "amount": [float(i % 50) for i in range(2000)],
        }
    )
    got = _on_spark(spark, frame, "orders")
    want = profile_frame(frame, "crm", "s1", "orders", {}, load_dictionary())
    assert _rows(got).drop("distinct_values", "uniqueness").equals(_rows(want).drop("distinct_values", "uniqueness"))
    for out in (got, want):
        distinct = dict(zip(out["column_name"], out["distinct_values"], strict=True))
        exact = dict(zip(out["column_name"], out["distinct_exact"], strict=True))
        assert distinct["order_id"] == 2000 and exact["order_id"]
        assert abs(distinct["customer_ref"] - 700) <= 0.1 * 700 and not exact["customer_ref"]


def test_the_profile_is_measured_where_the_engine_says(tmp_path: Path) -> None:
    from dashboard.pipeline.refresh import _profile_engine

    settings = parse_settings({"data_dir": str(tmp_path)}, tmp_path)
    assert _profile_engine(settings) is None
    spark = settings.model_copy(update={"engine": EngineConfig.model_validate(LOCAL)})
    assert callable(_profile_engine(spark))
