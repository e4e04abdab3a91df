"""Every statement the Spark engine runs, run on both engines over the same awkward rows: DuckDB runs the
SQL as written (derived.analytics), Spark the sqlglot transpiling of it (derived.spark), and the files they
write hold the same values. sqlglot alone got some of these wrong without an error (epoch of an interval,
fractions of a second, decimal division), so each statement is pinned here, not trusted."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import duckdb
import polars as pl
import pytest

from dashboard.core.config import Settings, parse_settings
from dashboard.core.duck import entity_columns, view_sql
from dashboard.derived import analytics
from dashboard.derived.spark import jobs
from dashboard.derived.spark.session import build_session
from tests.sparkcluster import spark_home

pytestmark = pytest.mark.xdist_group("spark")

T0 = datetime(2026, 3, 1, 9, 30, 15, 250_000)  # fractions of a second: epoch() must keep them


def _at(days: float) -> datetime:
    return T0 + timedelta(days=days)


LEADS = pl.DataFrame(
    {
        "source_system": ["crm", "crm", "crm", "web", "web", "crm"],
        "lead_id": ["L1", "L2", "L3", "W1", "W2", "L4"],
        "created_at": [_at(0), _at(1.5), _at(2), _at(0.25), _at(3), _at(4)],
        "channel": ["paid_search", "wechat", "paid_search", "web_form", "web_form", "events"],
        "campaign": ["spring", None, "spring", None, "autumn", None],
        "region": ["华东", "华北", None, "华东", "华南", "华东"],
        "customer_ref": ["C1", "C2", None, "U1", None, "C1"],
        "name": ["张伟", "李娜", None, "张伟", "王芳", "张伟"],
        "phone": ["13800138000", None, "12345", "13800138000", None, None],
        "phone_valid": [True, None, False, True, None, None],
    }
)  # no owner column in this file: it reads as NULL, as in the DuckDB view
EVENTS = pl.DataFrame(
    {
        "lead_id": ["L1", "L1", "L1", "L2", "L2", "L3", "W1", "W1", "W2", "L4", "L4"],
        "stage": ["mql", "opportunity", "won", "sql", "lost", "mql", "mql", "won", "lost", "won", "won"],
        "occurred_at": [
            _at(1.000001), _at(3.7), _at(10.123456), _at(2.2), _at(9), _at(2.5), _at(0.3), _at(40.5),
            _at(3.1), _at(5), _at(6),
        ],
        "amount": [None, None, 12000.5, None, None, None, None, 3333.33, None, 700.0, 900.0],
    }
)  # fmt: skip
INTERACTIONS = pl.DataFrame(
    {
        "source_system": ["crm", "crm", "crm", "crm", "call", "call", "web"],
        "interaction_id": ["I1", "I2", "I3", "I4", "K1", "K2", "I5"],
        "customer_ref": ["C1", "C1", "C1", None, "P9", "P9", "U1"],
        "lead_id": [None, None, None, "L1", None, None, None],
        "channel": ["wechat", "wechat", "phone", "email", "phone", "direct_sales", "web_form"],
        "kind": ["chat"] * 7,
        "occurred_at": [_at(0.5), _at(0.5), _at(11), _at(2.000002), _at(6.25), _at(7), _at(20)],
    }
)  # a tie at the same instant, a touch after the win, one on an excluded channel, one via the lead id
LINKS = pl.DataFrame(
    {
        "source_system": ["crm", "crm", "crm", "web", "web", "call", "crm"],
        "source_record_id": ["C1", "L1", "L4", "W1", "U1", "P9", "C2"],
        "record_kind": ["customer", "lead", "lead", "lead", "customer", "customer", "customer"],
        "customer_key": ["k1", "k1", "k1", "k1", "k1", "k1", "k2"],
    }
)
HALF_LIFE = 7.0
EXCLUDED = ["direct_sales"]
FILES = {"leads": LEADS, "lead_events": EVENTS, "interactions": INTERACTIONS}


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    spark_home()  # skips (fails in CI) without pyspark or Java
    root = tmp_path_factory.mktemp("spark_sql")
    data = root / "data"
    for name, frame in FILES.items():
        (data / "in").mkdir(parents=True, exist_ok=True)
        frame.write_parquet(data / "in" / f"{name}.parquet")
    LINKS.write_parquet(data / "in" / "links.parquet")
    raw = {"data_dir": str(data), "engine": {"kind": "spark", "master": "local[2]"}}
    raw["analytics"] = {"attribution_half_life_days": HALF_LIFE, "attribution_exclude_channels": EXCLUDED}
    return parse_settings(raw, root)


@pytest.fixture(scope="module")
def spark(settings: Settings) -> Iterator[Any]:
    session = build_session(settings)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def duck(settings: Settings) -> dict[str, pl.DataFrame]:
    """The DuckDB engine's tables, made as a build makes them."""
    con = duckdb.connect()
    for entity in ("leads", "lead_events", "interactions"):
        con.execute(view_sql(entity, [settings.data_path / "in" / f"{entity}.parquet"], entity_columns(entity)))
    analytics.build(con, LINKS, HALF_LIFE, EXCLUDED)
    return {t: con.sql(f"SELECT * FROM {t}").pl() for t in analytics.ANALYTICS_TABLES}


@pytest.fixture(scope="module")
def on_spark(settings: Settings, spark: Any) -> dict[str, pl.DataFrame]:
    """The Spark engine's files, made by the functions a build calls."""
    inputs = settings.data_path / "in"
    for entity in FILES:
        uri = jobs.shared_uri(settings, inputs / f"{entity}.parquet")
        jobs.frame(spark, [uri], entity_columns(entity)).createOrReplaceTempView(entity)
    spark.read.parquet(jobs.shared_uri(settings, inputs / "links.parquet")).createOrReplaceTempView(
        "attribution_links"
    )
    spark.createDataFrame([(c,) for c in EXCLUDED], "channel string").createOrReplaceTempView("excluded_channels")
    stage = settings.data_path / "stage"
    stage.mkdir()
    con = duckdb.connect()
    out = {}
    for table, sql in (
        ("lead_facts", analytics.LEAD_FACTS_SQL),
        ("attribution", analytics.attribution_sql(HALF_LIFE)),
        ("filter_values", analytics.FILTER_VALUES_SQL),
    ):
        path = jobs.run_to_parquet(spark, con, settings, sql, table, analytics.TABLES[table], stage)
        out[table] = pl.read_parquet(path)
    assert not (stage / jobs.PARTS / "lead_facts").exists()  # the part files go once gathered
    return out


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


@pytest.mark.parametrize("table", analytics.ANALYTICS_TABLES)
def test_spark_writes_what_duckdb_writes(
    table: str, duck: dict[str, pl.DataFrame], on_spark: dict[str, pl.DataFrame]
) -> None:
    want = duck[table].select(list(analytics.TABLES[table]))
    got = on_spark[table]
    assert got.columns == list(analytics.TABLES[table])
    assert got.height == want.height > 0
    floats = [c for c, t in want.schema.items() if t.is_float()]
    a, b = _sorted(want.drop(floats)), _sorted(got.drop(floats))
    assert a.equals(b), (a, b)
    keys = [c for c in want.columns if c not in floats]
    joined = want.join(got, on=keys, how="full", nulls_equal=True, suffix="_spark")
    for c in floats:  # sums may add in another order: equal to 1e-9
        assert joined[c].is_null().eq(joined[f"{c}_spark"].is_null()).all(), c
        diff = (joined[c] - joined[f"{c}_spark"]).abs().max()
        assert diff is None or float(str(diff)) <= 1e-9 * max(1.0, float(str(joined[c].abs().max()))), (c, diff)


def test_lead_facts_keep_fractions_of_a_second_and_skipped_stages(on_spark: dict[str, pl.DataFrame]) -> None:
    l1 = on_spark["lead_facts"].filter(pl.col("lead_id") == "L1").row(0, named=True)
    assert l1["days_in_lead"] == pytest.approx(1.000001, abs=1e-6)  # epoch(a - b), not UNIX_TIMESTAMP(interval)
    assert l1["sql_at"] == l1["opportunity_at"]  # sql skipped: reached when the opportunity was
    assert l1["won_amount"] == 12000.5


def test_attribution_credits_sum_to_each_won_amount(on_spark: dict[str, pl.DataFrame]) -> None:
    per_lead = on_spark["attribution"].group_by("lead_id").agg(
        [pl.col(m).sum() for m in ("first_touch", "last_touch", "linear", "u_shaped", "time_decay")]
    )
    l1 = per_lead.filter(pl.col("lead_id") == "L1").row(0, named=True)
    for model in ("first_touch", "last_touch", "linear", "u_shaped", "time_decay"):
        assert l1[model] == pytest.approx(12000.5)
    channels = set(on_spark["attribution"]["channel"])
    assert "direct_sales" not in channels  # excluded
    assert {"paid_search", "wechat", "email"} <= channels
