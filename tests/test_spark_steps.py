"""Golden records, the identity-consistency table and churn's keys, per-day tables, features and labels made
on both engines over the same awkward rows: DuckDB runs the statements as written (derived.golden,
derived.quality.tables, derived.churn.features), Spark their transpiling (derived.spark.steps, .churn), and
the two give the same rows — the surviving values, conflicts, provenance, lifecycle, RFM tiers, masked
examples, per-day counts and the churn features read from them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest

from dashboard.core.config import Settings, parse_settings
from dashboard.core.duck import attach_entities, quote_path
from dashboard.core.store import Manifest, Store
from dashboard.derived import analytics, golden, identity
from dashboard.derived.churn import features as churn_features
from dashboard.derived.quality import tables as quality
from dashboard.derived.spark import churn as spark_churn
from dashboard.derived.spark import steps
from dashboard.derived.spark.jobs import PARTS
from dashboard.derived.spark.session import build_session
from dashboard.derived.spark.sql import to_spark
from tests.sparkcluster import spark_home

pytestmark = pytest.mark.xdist_group("spark")

TODAY = datetime.combine(date.today(), datetime.min.time())


def _ago(days: float) -> datetime:
    """``days`` before today, with a fraction of a second (epoch() and the day numbers must keep it)."""
    return TODAY - timedelta(days=days) + timedelta(microseconds=123_457)


def _frame(rows: list[dict[str, Any]], source: str) -> pl.DataFrame:
    frame = pl.DataFrame(rows)
    empty = [c for c, t in frame.schema.items() if t == pl.Null]  # a column no row fills: typed as a source's is
    flags = {"phone_valid", "email_valid", "id_number_valid", "marketing_consent"}
    return frame.with_columns(
        *(pl.col(c).cast(pl.Boolean if c in flags else pl.String) for c in empty),
        source_system=pl.lit(source),
        snapshot_id=pl.lit(f"{source}-s1"),
    )


_NO_FLAGS = {"phone_valid": True, "email_valid": True, "id_number_valid": None}


def _customer(rid: str, **values: Any) -> dict[str, Any]:
    base = dict.fromkeys(("name", "phone", "email", "id_number", "company", "industry", "region", "city", "owner"))
    return {
        "source_record_id": rid,
        **base,
        **_NO_FLAGS,
        "created_at": _ago(900),
        "updated_at": None,
        "marketing_consent": None,
        **values,
    }


# crm is the most trusted source (priority 1), web next (5); shop and call are not configured (100)
FILES: dict[str, dict[str, pl.DataFrame]] = {
    "crm": {
        "customers": _frame(
            [
                _customer("C1", name="张 伟", phone="13800138000", email="Zhang@Example.com", owner="王经理",
                          region="华东", updated_at=_ago(10), marketing_consent=True, company="ACME 上海"),
                _customer("C2", name="李娜", phone="12345", phone_valid=False, owner="", city="北京"),
                _customer("C3", name="Ann.Lee", company="ACME", email="ann@x.cn", updated_at=_ago(30)),
            ],
            "crm",
        ),
        "leads": _frame(
            [
                {"lead_id": "L1", "created_at": _ago(500), "channel": "paid_search", "customer_ref": "C1",
                 "name": "张伟", "phone": "13800138000", "phone_valid": True, "owner": "赵销售",
                 "marketing_consent": True},
                {"lead_id": "L2", "created_at": _ago(40), "channel": "wechat", "customer_ref": None,
                 "name": "王芳", "phone": None, "phone_valid": None, "owner": None, "marketing_consent": None},
            ],
            "crm",
        ),
        "lead_events": _frame(
            [
                {"lead_id": "L1", "stage": "won", "occurred_at": _ago(450), "amount": 12000.5},
                {"lead_id": "L2", "stage": "opportunity", "occurred_at": _ago(20), "amount": None},
            ],
            "crm",
        ),
        "orders": _frame(
            [
                {"order_id": f"O{i}", "customer_ref": ref, "ordered_at": _ago(d), "amount": amount, "status": status}
                for i, (ref, d, amount, status) in enumerate(
                    [
                        ("C1", 400.25, 100.1, "paid"),
                        ("C1", 400.75, 0.2, "paid"),  # the same day as the one above: one active day
                        ("C1", 200, 999.99, "已取消"),  # cancelled: not revenue
                        ("C1", 90, 50.0, "Returned"),
                        ("C1", 60, 300.3, None),
                        ("C3", 10, 42.42, "paid"),
                        ("C3", -30000, 5.0, "paid"),  # a typo'd year far ahead: not recent activity for churn
                        ("X9", 25, 7.0, "paid"),  # a customer_ref no link names (churn: its own key)
                    ]
                )
            ],
            "crm",
        ),
        "contracts": _frame(
            [
                {"contract_id": "K1", "customer_ref": "C1", "signed_at": _ago(300), "amount": 1000.0,
                 "due_date": _ago(200), "paid_amount": 400.0, "paid_at": _ago(250)},
                {"contract_id": "K2", "customer_ref": "C3", "signed_at": _ago(100), "amount": 50.0,
                 "due_date": _ago(50), "paid_amount": 80.0, "paid_at": _ago(60)},
            ],
            "crm",
        ),
        "interactions": _frame(
            [
                {"interaction_id": f"I{i}", "customer_ref": ref, "channel": channel, "kind": kind,
                 "occurred_at": _ago(d), "outcome": outcome}
                for i, (ref, channel, kind, d, outcome) in enumerate(
                    [
                        ("C1", "wechat", "投诉", 70, None),
                        ("C1", "wechat", "Service call", 70, "no answer"),
                        ("C1", "phone", "Unsubscribe", 30, "拒绝"),
                        ("C2", "email", "拜访", 5, "成交"),
                        ("C3", "phone", "chat", 400, None),
                    ]
                )
            ],
            "crm",
        ),
    },
    "web": {
        "customers": _frame(
            [  # U1 is C1 (same name but for the space, another phone, the same e-mail in another case)
                _customer("U1", name="张伟", phone="13900139000", email="zhang@example.com", owner="李经理",
                          updated_at=_ago(10), marketing_consent=False, region="华南"),
                _customer("U2", name="\u3000", email="not-an-email", email_valid=False),
                _customer("U3", name="Ann Lee", company="ACME", email="ann@x.cn", updated_at=_ago(5), owner="Bob"),
            ],
            "web",
        ),
    },
    "shop": {  # no customers table: its customer is known by reference only
        "orders": _frame(
            [{"order_id": "S1", "customer_ref": "S9", "ordered_at": _ago(3), "amount": 19.9, "status": "paid"}],
            "shop",
        ),
    },
    "call": {
        "interactions": _frame(
            [
                {"interaction_id": "K1", "customer_ref": "P9", "channel": "phone", "kind": "complaint",
                 "occurred_at": _ago(2), "outcome": "Not interested"},
                {"interaction_id": "K2", "customer_ref": "P9", "channel": None, "kind": "chat",
                 "occurred_at": _ago(2), "outcome": None},
            ],
            "call",
        ),
    },
}  # fmt: skip
# who is who: the rest are customers of their own
KEYS = {
    ("crm", "C1"): "k1", ("web", "U1"): "k1", ("crm", "L1"): "k1", ("call", "P9"): "k1",
    ("crm", "C3"): "k3", ("web", "U3"): "k3",
}  # fmt: skip


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    spark_home()  # skips (fails in CI) without pyspark or Java
    root = tmp_path_factory.mktemp("spark_steps")
    sources = [{"name": "crm", "kind": "demo", "priority": 1}, {"name": "web", "kind": "demo", "priority": 5}]
    raw = {"data_dir": str(root / "data"), "engine": {"kind": "spark", "master": "local[2]"}, "sources": sources}
    return parse_settings(raw, root)


@pytest.fixture(scope="module")
def built(settings: Settings) -> tuple[Store, Manifest]:
    """The snapshot files and a manifest naming them; the identity links and lead facts the steps read."""
    store = Store(settings.data_path)
    manifest: dict[str, Any] = {"sources": {}}
    for source, entities in FILES.items():
        entry: dict[str, Any] = {"snapshot_id": f"{source}-s1", "entities": {}}
        for entity, frame in entities.items():
            path = store.snapshots / source / f"{source}-s1" / f"{entity}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.write_parquet(path)
            entry["entities"][entity] = {"file": store.rel(path)}
        manifest["sources"][source] = entry
    with _duck(store, manifest) as con:
        records = identity.read_records(con)
        links = _links(records)
        analytics.build(con, links, 7.0, [])
        for stage in ("duck", "spark"):
            folder = settings.data_path / stage
            folder.mkdir()
            links.write_parquet(folder / "identity_links.parquet")
            con.execute(f"COPY lead_facts TO {quote_path(folder / 'lead_facts.parquet')} (FORMAT parquet)")
    return store, manifest


def _links(records: pl.DataFrame) -> pl.DataFrame:
    records = records.filter(pl.col("source_record_id") != "X9")
    keys = [
        KEYS.get((s, r), f"{s}:{r}") for s, r in zip(records["source_system"], records["source_record_id"], strict=True)
    ]
    confidence = [0.97 if k == "k3" else 1.0 for k in keys]
    return records.select("source_system", "source_record_id", "record_kind").with_columns(
        customer_key=pl.Series(keys), match_rule=pl.lit("exact"), confidence=pl.Series(confidence)
    )


class _duck:
    """A DuckDB connection with the entity views, as a build has."""

    def __init__(self, store: Store, manifest: Manifest) -> None:
        self.con = duckdb.connect()
        attach_entities(self.con, store, manifest)

    def __enter__(self) -> duckdb.DuckDBPyConnection:
        return self.con

    def __exit__(self, *_: object) -> None:
        self.con.close()


@pytest.fixture(scope="module")
def spark(settings: Settings) -> Iterator[Any]:
    session = build_session(settings)
    yield session
    session.stop()


def _read(folder: Path, tables: tuple[str, ...]) -> dict[str, pl.DataFrame]:
    return {t: pl.read_parquet(folder / f"{t}.parquet") for t in tables}


@pytest.fixture(scope="module")
def golden_both(settings: Settings, built: tuple[Store, Manifest], spark: Any) -> dict[str, dict[str, pl.DataFrame]]:
    store, manifest = built
    out = {}
    for engine in ("duck", "spark"):
        folder = settings.data_path / engine
        with _duck(store, manifest) as con:
            records = identity.read_records(con)
            links = pl.read_parquet(folder / "identity_links.parquet")
            con.execute(
                f"CREATE TABLE lead_facts AS SELECT * FROM read_parquet({quote_path(folder / 'lead_facts.parquet')})"
            )
            if engine == "duck":
                golden.write_golden(con, settings, records, links, folder)
            else:
                steps.golden_tables(spark, con, settings, store, manifest, records, folder)
                assert not (folder / PARTS).exists()  # the part files go once gathered
        out[engine] = _read(folder, golden.GOLDEN_TABLES)
    return out


def assert_same(want: pl.DataFrame, got: pl.DataFrame, columns: list[str]) -> None:
    """The same rows in any order; floats equal to 1e-9 (a sum may add in another order)."""
    assert got.columns == columns
    assert got.height == want.height > 0
    want = want.select(columns)
    floats = [c for c, t in want.schema.items() if t.is_float()]

    def rows(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.col(floats).round(9)).sort(columns, nulls_last=True)

    a, b = rows(want), rows(got)
    assert a.schema == b.schema
    differ = {c: (a[c].to_list(), b[c].to_list()) for c in columns if not a[c].equals(b[c], check_names=True)}
    assert not differ, differ


@pytest.mark.parametrize("table", golden.GOLDEN_TABLES)
def test_golden_tables_match(table: str, golden_both: dict[str, dict[str, pl.DataFrame]]) -> None:
    assert_same(golden_both["duck"][table], golden_both["spark"][table], list(golden.TABLES[table]))


def test_golden_records_survive_by_the_rules_on_spark(golden_both: dict[str, dict[str, pl.DataFrame]]) -> None:
    """What a person checks on a golden record, read from the Spark engine's files."""
    g = {r["customer_key"]: r for r in golden_both["spark"]["customer_golden"].iter_rows(named=True)}
    k1 = g["k1"]
    assert k1["phone"] == "13800138000"  # C1 and U1 seen the same day: crm (priority 1) wins
    assert k1["owner"] == "王经理"
    assert k1["sources"] == ["call", "crm", "web"] and k1["records"] == 4
    assert {"phone", "owner", "region"} <= set(k1["conflicts"])
    assert "name" not in k1["conflicts"]  # 张 伟 and 张伟 are one name
    assert k1["marketing_consent"] is False  # web's withdrawal wins over crm's yes
    assert k1["lifetime_revenue"] == pytest.approx(100.1 + 0.2 + 300.3)  # cancelled and returned orders left out
    assert k1["open_receivables"] == 600.0
    assert k1["lifecycle_stage"] == "active"
    assert g["k3"]["name"] == "Ann Lee" and "name" not in g["k3"]["conflicts"]  # U3 seen later; Ann.Lee the same
    assert g["crm:L2"]["lifecycle_stage"] == "opportunity"
    assert g["crm:C2"]["phone"] is None  # an invalid phone never survives
    lookup = golden_both["spark"]["customer_lookup"]
    assert lookup["attribute"].unique().sort().to_list() == ["email", "phone"]
    assert lookup.select("attribute", "value").equals(lookup.select("attribute", "value").sort("attribute", "value"))


def test_an_incremental_golden_build_with_engine_spark_makes_what_a_full_spark_build_makes(
    settings: Settings,
    built: tuple[Store, Manifest],
    golden_both: dict[str, dict[str, pl.DataFrame]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A few touched customers are made by DuckDB on the driver and the others' rows copied from the build before
    (here the full Spark build); the result is that full Spark build, row for row."""
    store, manifest = built
    full, folder = settings.data_path / "spark", settings.data_path / "incremental"
    folder.mkdir()
    links = pl.read_parquet(full / "identity_links.parquet")
    touched = pl.DataFrame({"customer_key": ["k1", "crm:L2"]})  # two of the customers
    previous = golden.Previous(full / "customer_golden.parquet", full / "customer_attributes.parquet", touched)
    customers = links["customer_key"].n_unique()
    assert customers >= 6 and not steps.on_driver(previous, lambda: customers)  # 2 of 6: past 5 %, all on Spark
    monkeypatch.setattr(steps, "DRIVER_SHARE", 0.5)  # a few
    assert steps.on_driver(previous, lambda: customers) and not steps.on_driver(None, lambda: customers)
    with _duck(store, manifest) as con:
        con.execute(f"CREATE TABLE lead_facts AS SELECT * FROM read_parquet({quote_path(full / 'lead_facts.parquet')})")
        golden.write_golden(con, settings, identity.read_records(con), links, folder, previous)
    made = _read(folder, golden.GOLDEN_TABLES)
    for table in golden.GOLDEN_TABLES:
        assert_same(golden_both["spark"][table], made[table], list(golden.TABLES[table]))
    copied = made["customer_golden"].filter(pl.col("customer_key") == "k3")
    assert copied["name"].to_list() == ["Ann Lee"]  # a customer not touched: its row as the Spark build made it


def test_identity_consistency_matches(settings: Settings, built: tuple[Store, Manifest], spark: Any) -> None:
    store, manifest = built
    folder = settings.data_path / "spark"
    links = pl.read_parquet(folder / "identity_links.parquet")
    with _duck(store, manifest) as con:
        want = quality.identity_consistency(con, links)
        steps.identity_consistency(spark, con, settings, store, manifest, folder)
    got = pl.read_parquet(folder / "identity_consistency.parquet")
    assert_same(want, got, list(quality.TABLES["identity_consistency"]))
    k1 = {r["field"]: r for r in got.filter(pl.col("customer_key") == "k1").iter_rows(named=True)}
    assert k1["phone"]["conflict"] and k1["phone"]["n_values"] == 2
    assert k1["phone"]["examples"] == ["crm: 138****8000", "web: 139****9000"]  # masked
    assert not k1["name"]["conflict"]


@pytest.fixture(scope="module")
def churn_both(
    settings: Settings, built: tuple[Store, Manifest], spark: Any
) -> Iterator[tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection, spark_churn.SparkDays]]:
    """Two connections with churn's keys: made by DuckDB (and its per-day tables), and made on Spark (the
    per-day tables there; ``days`` runs what reads them)."""
    store, manifest = built
    folder = settings.data_path / "spark"
    links = pl.read_parquet(folder / "identity_links.parquet")
    latest = churn_features.day_number(date.today() + timedelta(days=1))
    priorities = {s.name: s.priority for s in settings.sources}
    days = spark_churn.SparkDays(spark, settings, store, manifest, folder)
    with _duck(store, manifest) as duck, _duck(store, manifest) as on_spark:
        churn_features.load_events(duck, links, priorities, latest)
        _duckdb_day_tables(duck, latest)
        with churn_features.day_tables_from(days):
            churn_features.load_events(on_spark, links, priorities, latest)
        assert on_spark.sql("SELECT count(*) FROM churn_days").fetchall() == [(0,)]  # not on the driver
        yield duck, on_spark, days
    shutil.rmtree(folder / PARTS)


ChurnBoth = tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection, spark_churn.SparkDays]


def _duckdb_day_tables(con: duckdb.DuckDBPyConnection, latest: int) -> None:
    """The per-day tables by DuckDB's statements, to compare Spark's with (after load_events, which reads the events
    as arrays on DuckDB and keeps no such tables)."""
    con.execute(churn_features.KINDS_SQL, churn_features.kind_params())
    con.execute(churn_features.OUTCOMES_SQL, churn_features.outcome_params())
    for sql in (churn_features.KEYED_SQL, churn_features.DAYS_SQL, churn_features.CHANNEL_DAYS_SQL):
        con.execute(sql, churn_features.events_params(latest) if "$latest" in sql else None)


@pytest.mark.parametrize("table", list(churn_features.DAY_TABLES))
def test_churn_day_tables_match(table: str, churn_both: ChurnBoth, spark: Any) -> None:
    duck, _, _ = churn_both
    want = duck.sql(f"SELECT * FROM {table}").pl()
    got = pl.from_arrow(spark.table(table).toArrow())
    assert isinstance(got, pl.DataFrame)
    types = {"INTEGER": pl.Int32, "DOUBLE": pl.Float64, "VARCHAR": pl.String}
    columns = churn_features.DAY_TABLES[table]
    assert_same(want, got.cast({c: types[t] for c, t in columns.items()}), list(columns))  # Spark's floor: BIGINT


def test_churn_keys_stay_on_spark(churn_both: ChurnBoth, spark: Any) -> None:
    """The keys Spark made are DuckDB's, the same ids; the driver holds none of them (every statement reading them
    runs on Spark), only their columns, to bind those statements."""
    duck, on_spark, _ = churn_both
    for table in ("churn_keys", "churn_ids"):
        want = duck.sql(f"SELECT * FROM {table}").pl()
        got = pl.from_arrow(spark.table(table).toArrow())
        assert isinstance(got, pl.DataFrame)
        assert_same(want, got.select(want.columns).cast(want.schema), want.columns)
        assert on_spark.sql(f"SELECT count(*) FROM {table}").fetchall() == [(0,)]
        assert on_spark.sql(f"SELECT * FROM {table}").pl().schema == want.schema


def test_churn_features_match(churn_both: ChurnBoth) -> None:
    duck, on_spark, days = churn_both
    t = churn_features.day_number(date.today() - timedelta(days=20))
    want, want_active = churn_features.features_at(duck, t, 90), churn_features.active_at(duck, t - 30, 30)
    with churn_features.day_tables_from(days):
        got, active = churn_features.features_at(on_spark, t, 90), churn_features.active_at(on_spark, t - 30, 30)
        assert churn_features.activity_range(on_spark) == churn_features.activity_range(duck)
    assert_same(want, got, want.columns)
    assert got["customer_key"].to_list() == want["customer_key"].to_list()  # in key order, as DuckDB's
    k1 = got.filter(pl.col("customer_key") == "k1").row(0, named=True)
    assert k1["order_days"] == 2  # two orders on one day are one active day; cancelled and returned ones none
    assert k1["monetary"] == pytest.approx(100.1 + 0.2 + 300.3)  # the golden record's lifetime revenue
    assert k1["complaints_recent"] == 1 and k1["unsubscribes_recent"] == 1 and k1["negative_recent"] == 2
    assert k1["overdue_amount"] == 600.0 and k1["overdue_contracts"] == 1  # K1: 1000 due, 400 paid before t
    assert "crm:X9" in set(got["customer_key"])  # a customer_ref without a link: its own key
    assert sorted(active["customer_key"]) == sorted(want_active["customer_key"]) == ["crm:X9", "k1"]
    assert sorted(p.name for p in (days.stage / PARTS).iterdir()) == sorted(
        ["churn_keys", "churn_ids", *churn_features.DAY_TABLES]
    )  # each cutoff's result is gone once read back


def test_the_declared_day_tables_are_what_duckdb_makes(churn_both: ChurnBoth) -> None:
    duck, _, _ = churn_both
    for table, columns in churn_features.DAY_TABLES.items():
        described = duck.sql(f"DESCRIBE {table}").fetchall()
        assert {name: kind for name, kind, *_ in described} == columns


def test_ordered_lists_keep_their_order_on_spark(spark: Any) -> None:
    """sqlglot dropped the ORDER BY of list(x ORDER BY k) without an error."""
    rows = [("a", 3, "z"), ("a", 1, "y"), ("a", 2, "y"), ("b", 5, "x")]
    sql = (
        "SELECT g, list(v ORDER BY v) AS by_value, list(v ORDER BY n) AS by_key, "
        "list(DISTINCT v ORDER BY v DESC) AS distinct_desc FROM t GROUP BY g ORDER BY g"
    )
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('a', 3, 'z'), ('a', 1, 'y'), ('a', 2, 'y'), ('b', 5, 'x'))"
                " AS v(g, n, v)")  # fmt: skip
    want = con.sql(sql).fetchall()
    spark.createDataFrame(rows, "g string, n int, v string").createOrReplaceTempView("t")
    got = [tuple(r) for r in spark.sql(to_spark(sql)).collect()]
    assert got == want == [("a", ["y", "y", "z"], ["y", "y", "z"], ["z", "y"]), ("b", ["x"], ["x"], ["x"])]
    with pytest.raises(ValueError, match="sort it by its own value"):
        to_spark("SELECT list(v ORDER BY n DESC) FROM t")


def test_rounding_to_the_cent_is_duckdbs_on_spark(spark: Any) -> None:
    """Spark rounds the shortest decimal printing a double (1.005 → 1.01), DuckDB the double itself (1.005 is
    1.00499999... in binary → 1.0): churn's money features and golden's revenue round sums to the cent."""
    values = [1.005, 0.285, 2.675, -1.005, 12.345, 0.125, -0.5, 2.5, 1234567.895]
    sql = "SELECT x, round(x, 2) AS cents, round(x * 3, 1) AS tenths, round(x) AS whole FROM t ORDER BY x"
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT unnest($v::DOUBLE[]) AS x", {"v": values})
    want = con.sql(sql).fetchall()
    spark.createDataFrame([(v,) for v in values], "x double").createOrReplaceTempView("t")
    got = [tuple(r) for r in spark.sql(to_spark(sql)).collect()]
    assert got == want
    assert dict((x, cents) for x, cents, *_ in want)[1.005] == 1.0  # where Spark's own round gives 1.01
    assert spark.sql("SELECT round(CAST(1.005 AS DOUBLE), 2) AS r").collect()[0]["r"] == 1.01


def test_the_ranks_over_every_customer_are_duckdbs_without_one_partition(settings: Settings, spark: Any) -> None:
    """RFM's fifths and the value tier's percent rank rank every customer against the others: on Spark from row
    numbers made over range partitions (steps.numbered), the same as DuckDB's windows, ties, nulls, few rows."""
    import sqlglot

    rfm = sqlglot.parse_one(golden._RANK_SQL.format(active_days=golden.ACTIVE_DAYS), read="duckdb")
    sql = sqlglot.select("customer_key", "r", "f", "revenue_rank").from_("rfm")
    sql.set("with_", rfm.args["with_"])
    on_duckdb = sql.sql("duckdb")
    on_spark = steps.without_cte(on_duckdb, "golden_numbered")
    assert "row_number" not in on_spark.lower()
    stage = settings.data_path / "ranks"
    for n in (3, 7, 4001):
        base = pl.DataFrame(
            {
                "customer_key": [f"c{i:05d}" for i in range(n)],
                "last_order_at": [None if i % 13 == 0 else TODAY - timedelta(days=i % 17) for i in range(n)],
                "orders": [1 + i % 4 for i in range(n)],
                "lifetime_revenue": [float(i % 9) * 10.5 for i in range(n)],
            }
        ).sample(fraction=1.0, shuffle=True, seed=n)
        con = duckdb.connect()
        con.register("golden_base", base)
        want = con.sql(on_duckdb + " ORDER BY customer_key").pl()
        spark.createDataFrame(base.to_pandas()).createOrReplaceTempView("golden_base")
        source = spark.sql(golden.RFM_SOURCE).repartition(5)  # rows spread over several partitions
        steps.numbered(spark, settings, source, golden.RFM_ORDERS, "golden_numbered", stage)
        got = pl.from_arrow(spark.sql(to_spark(on_spark)).toArrow())
        assert isinstance(got, pl.DataFrame)
        assert got.sort("customer_key").cast(want.schema).equals(want)
        assert set(want["r"]) == set(range(1, min(n, 5) + 1))  # every fifth dealt
        shutil.rmtree(stage)


def _jobs(spark: Any) -> int:
    """The Spark jobs the session has started so far."""
    return int(spark.sparkContext._jsc.sc().dagScheduler().numTotalJobs())


def test_what_spark_wrote_is_read_back_without_a_job_and_numbered_from_its_footers(
    settings: Settings, spark: Any
) -> None:
    """A view Spark wrote (write_view) is read back in the schema Spark keeps in its files' footers, lists,
    timestamps and decimals too: the write's jobs and no job more, and the schema Spark's own reader infers.
    numbered's rows per partition come from the part files' footers: the counts Spark's groupBy gives."""
    from pyspark.sql import functions as F

    from dashboard.derived.spark.jobs import parquet_schema, shared_uri

    stage = settings.data_path / "written_back"
    sql = (
        "SELECT id, array(id, id + 1) AS pair, timestamp_seconds(id) AS at, CAST(id AS DECIMAL(12, 2)) AS amount "
        "FROM range(50)"
    )
    frame = spark.sql(sql).repartition(3)
    before = _jobs(spark)
    frame.write.mode("overwrite").parquet(shared_uri(settings, stage / "plain"))
    write_only = _jobs(spark) - before
    before = _jobs(spark)
    parts = steps.write_view(spark, settings, frame, "written_back", stage)
    assert _jobs(spark) - before == write_only  # the write, no job to read a footer back
    assert spark.table("written_back").schema == spark.read.parquet(shared_uri(settings, parts)).schema
    assert parquet_schema(parts) is not None and spark.table("written_back").count() == 50
    ranged = spark.table("written_back").repartitionByRange(4, "id").withColumn("_at", F.monotonically_increasing_id())
    ranged.write.mode("overwrite").parquet(shared_uri(settings, stage / "ranged"))
    counts = spark.read.parquet(shared_uri(settings, stage / "ranged")).groupBy(F.shiftright("_at", 33)).count()
    assert steps.part_rows(stage / "ranged") == {row[0]: row[1] for row in counts.collect()}
    shutil.rmtree(stage)
