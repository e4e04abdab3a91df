"""Churn's features on integer customer ids (one per key, joined back to the key on the features' rows) are
the features the statements before them made on string keys (kept below as they were, the reference): the
same customers, in the same order, with the same values, at every cutoff a run reads, on the small demo and
on a short-history cohort shop (whose model trains on shorter horizons). And what is published from them —
scores, reasons, the model card and its calibration — is what the string-keyed features make.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from dashboard.core.config import Settings
from dashboard.core.duck import work_connection
from dashboard.core.store import Store
from dashboard.derived.churn import build as churn
from dashboard.derived.churn import features as churn_features
from dashboard.derived.tables import attach_views
from tests.test_churn import COHORT_HORIZON, NO_LINKS, SETTINGS, cohort_shop, warehouse_con


# -- the reference: the statements as they were before integer ids -----------------------------------------
def _ref(sql: str) -> str:
    """One of today's statements whose only change was the key: on the reference's tables, by key."""
    for table in ("keyed", "days", "channel_days"):
        sql = sql.replace(f"churn_{table}", f"ref_{table}")
    return re.sub(r"\bcid\b", "customer_key", sql)


REF_TABLES_SQL = (
    """
CREATE OR REPLACE TEMP TABLE ref_keys AS
SELECT DISTINCT ON (source_system, source_record_id) source_system, source_record_id, customer_key
FROM churn_links WHERE record_kind = 'customer' AND customer_key IS NOT NULL
""",
    # the events as today, keyed by string: an unlinked customer_ref's key made on every row
    churn_features.KEYED_SQL.replace("churn_keyed", "ref_keyed")
    .replace(
        "SELECT k.cid, floor(d) AS day",
        "SELECT coalesce(k.customer_key, ev.source_system || ':' || ev.customer_ref) AS customer_key, floor(d) AS day",
    )
    .replace("FROM ev JOIN churn_keys AS k", "FROM ev LEFT JOIN ref_keys AS k"),
    _ref(churn_features.DAYS_SQL),
    _ref(churn_features.CHANNEL_DAYS_SQL),
)
REF_FEATURES_SQL = _ref(churn_features._FEATURES_SQL)  # the same sums, counts and windows, by key
REF_CHANNELS_SQL = _ref(churn_features._CHANNELS_SQL)
REF_RECEIVABLES_SQL = _ref(
    churn_features._RECEIVABLES_SQL.replace(
        "SELECT k.cid,", "SELECT coalesce(k.customer_key, c.source_system || ':' || c.customer_ref) AS cid,"
    ).replace("JOIN churn_keys AS k", "LEFT JOIN ref_keys AS k")
)
REFERENCE = (*REF_TABLES_SQL, REF_FEATURES_SQL, REF_CHANNELS_SQL, REF_RECEIVABLES_SQL)
assert not any(re.search(r"\bcid\b|churn_keys", sql) for sql in REFERENCE), "the reference keys by string"
REF_LABELS_SQL = "SELECT DISTINCT customer_key FROM ref_days WHERE day >= $t AND day < $t + $h"


def ref_load(con: duckdb.DuckDBPyConnection, latest: int) -> None:
    """The reference's per-day tables, keyed by strings (after load_events: its churn_links registered)."""
    con.execute(churn_features.KINDS_SQL, churn_features.kind_params())
    con.execute(churn_features.OUTCOMES_SQL, churn_features.outcome_params())
    for sql in REF_TABLES_SQL:
        con.execute(sql, churn_features.events_params(latest) if "$latest" in sql else None)


def ref_features_at(con: duckdb.DuckDBPyConnection, t: int, horizon: int) -> pl.DataFrame:
    raw = con.sql(REF_FEATURES_SQL, params={"t": t, "h": horizon}).pl()
    channels = con.sql(REF_CHANNELS_SQL, params={"t": t, "h": horizon}).pl()
    due = con.sql(REF_RECEIVABLES_SQL, params={"t": t}).pl()
    out = (
        raw.join(channels, on="customer_key", how="left")
        .join(due, on="customer_key", how="left")
        .with_columns(
            pl.col("overdue_amount").fill_null(0.0),
            pl.col("overdue_contracts").fill_null(0),
            pl.col("overdue_days").fill_null(0.0),
            pl.col("channels_recent").fill_null(0),  # no interaction: no channel (an order is none)
            pl.col("channels_year").fill_null(0),
        )
    )
    gap = pl.when(pl.col("order_days") > 1).then(pl.col("order_span") / (pl.col("order_days") - 1))
    return (
        out.with_columns(
            gap.alias("mean_gap_days"),
            (pl.col("orders_recent") - pl.col("orders_previous")).alias("order_trend"),
            pl.when(pl.col("order_days") > 0).then(pl.col("monetary") / pl.col("order_days")).alias("avg_order_value"),
        )
        .with_columns(
            (pl.col("order_recency_days") / pl.col("mean_gap_days").clip(lower_bound=1.0)).alias("overdue_ratio")
        )
        .sort("customer_key")
    )


def ref_active_at(con: duckdb.DuckDBPyConnection, t: int, horizon: int) -> pl.DataFrame:
    return con.sql(REF_LABELS_SQL, params={"t": t, "h": horizon}).pl()


# -- the connections ----------------------------------------------------------------------------------------
LATEST = churn_features.day_number(date.today() + timedelta(days=1))


def _loaded(con: duckdb.DuckDBPyConnection, links: pl.DataFrame, priorities: dict[str, int]) -> int:
    """Both engines' per-day tables on ``con``; returns the day after the latest activity (the as-of day)."""
    churn_features.load_events(con, links, priorities, LATEST)
    ref_load(con, LATEST)
    last = churn_features.activity_range(con)[1]
    assert last is not None
    return int(last) + 1


@pytest.fixture(scope="module")
def demo_con(small_demo: Settings) -> Iterator[tuple[duckdb.DuckDBPyConnection, pl.DataFrame, Settings]]:
    store = Store(small_demo.data_path)
    with work_connection(small_demo) as con:
        attach_views(con, store, store.read_manifest(), in_memory=frozenset())
        links = con.sql("SELECT * FROM identity_links").pl()
        yield con, links, small_demo


def _cutoffs(d: int) -> list[tuple[int, int]]:
    """The run's cutoffs (D, D − H, D − 2H, older stacked windows) and a shorter horizon's."""
    return [(d, 90), (d - 90, 90), (d - 180, 90), (d - 270, 90), (d - 360, 90), (d - 90, 45), (d - 135, 45), (d, 23)]


def _same_per_cutoff(con: duckdb.DuckDBPyConnection, cutoffs: Sequence[tuple[int, int]]) -> list[int]:
    sizes = []
    for t, h in cutoffs:
        frame = churn_features.features_at(con, t, h)
        assert_frame_equal(frame, ref_features_at(con, t, h), check_exact=True)
        active = churn_features.active_at(con, t, h)["customer_key"]
        assert sorted(active) == sorted(ref_active_at(con, t, h)["customer_key"])
        sizes.append(frame.height)
    return sizes


def test_the_demos_features_at_every_cutoff_are_the_string_keyed_ones(
    demo_con: tuple[duckdb.DuckDBPyConnection, pl.DataFrame, Settings],
) -> None:
    con, links, settings = demo_con
    d = _loaded(con, links, {s.name: s.priority for s in settings.sources})
    sizes = _same_per_cutoff(con, _cutoffs(d))
    # every customer with activity before D is there, and earlier cutoffs see fewer of them
    everyone = con.sql("SELECT count(DISTINCT customer_key) FROM ref_days WHERE day < $d", params={"d": d})
    assert sizes[0] == everyone.fetchall()[0][0] > 2000
    assert sizes[0] > sizes[1] > sizes[2] > 0
    # receivables and channels were computed, not just null: the demo has overdue contracts and contacts
    now = churn_features.features_at(con, d, 90)
    assert now["overdue_contracts"].sum() > 0 and now["channels_year"].max() >= 2  # type: ignore[operator]


def test_linked_records_share_one_id_and_an_unlinked_ref_is_its_own_customer() -> None:
    day = [date(2026, 1, d) for d in (5, 6, 6, 20)]
    orders = pl.DataFrame({"customer": ["K1", "K2", "K1", "K3"], "date": day, "amount": [10.0, 20.0, 5.0, 7.0]})
    links = pl.DataFrame(
        {
            "source_system": ["shop", "shop"],
            "source_record_id": ["K1", "K2"],
            "record_kind": ["customer", "customer"],
            "customer_key": ["x1", "x1"],  # two records of one customer, whose key sorts after "shop:K3"
            "match_rule": ["phone", "phone"],
        }
    )
    con = warehouse_con(orders)
    d = _loaded(con, links, {})
    keys = con.sql("SELECT source_record_id, customer_key, cid FROM churn_keys ORDER BY source_record_id").fetchall()
    assert keys == [("K1", "x1", 2), ("K2", "x1", 2), ("K3", "shop:K3", 1)]  # ids in key order
    got = churn_features.features_at(con, d, 90)
    assert got["customer_key"].to_list() == ["shop:K3", "x1"]
    assert got["order_days"].to_list() == [1, 2] and got["monetary"].to_list() == [7.0, 35.0]
    _same_per_cutoff(con, [(d, 90), (d - 10, 7)])


def _published(run: churn.ChurnRun) -> tuple[pl.DataFrame, pl.DataFrame]:
    return run.scores, run.card.drop("trained_at")


def _per_cutoff_run(monkeypatch: pytest.MonkeyPatch, *args: object, **kwargs: object) -> churn.ChurnRun:
    """churn.run with the reference's string-keyed features and labels. Its parts one after another: the reference's
    statements read the connection, which takes one call at a time (run's parts side by side read DuckDB's arrays)."""
    load = churn_features.load_events

    def both(con: duckdb.DuckDBPyConnection, links: pl.DataFrame, priorities: dict[str, int], latest: int) -> None:
        load(con, links, priorities, latest)
        ref_load(con, latest)

    with monkeypatch.context() as m:
        m.setattr(churn_features, "load_events", both)
        m.setattr(churn_features, "features_at", ref_features_at)
        m.setattr(churn_features, "active_at", ref_active_at)
        m.setattr(churn, "_beside", lambda side, here, threads: (side(), here()))
        return churn.run(*args, **kwargs)  # type: ignore[arg-type]


def test_the_demos_published_churn_tables_are_what_the_string_keyed_features_make(
    demo_con: tuple[duckdb.DuckDBPyConnection, pl.DataFrame, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    con, links, settings = demo_con
    got = churn.run(con, settings, links)
    want = _per_cutoff_run(monkeypatch, con, settings, links)
    assert got.status == "validated" and got.scores.height > 2000
    for a, b in zip(_published(got), _published(want), strict=True):
        assert_frame_equal(a, b, check_exact=True)


def test_a_cohort_shop_trained_on_shorter_windows_publishes_what_the_string_keyed_features_make(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    past, calls, _, as_of = cohort_shop(3000, seed=1, complaints=True)
    got = churn.run(warehouse_con(past, calls), SETTINGS, NO_LINKS, as_of=as_of, horizon_days=COHORT_HORIZON)
    assert got.train_horizon_days == 90  # the model's backtest tried 180 days, then trained on 90
    want = _per_cutoff_run(
        monkeypatch, warehouse_con(past, calls), SETTINGS, NO_LINKS, as_of=as_of, horizon_days=COHORT_HORIZON
    )
    for a, b in zip(_published(got), _published(want), strict=True):
        assert_frame_equal(a, b, check_exact=True)
    con = warehouse_con(past, calls)
    d = _loaded(con, NO_LINKS, {})
    _same_per_cutoff(con, [(d, 180), (d - 180, 180), (d - 180, 90), (d - 270, 90), (d - 360, 90), (d, 90)])


@pytest.mark.parametrize("rows", [["C1", "C2"], ["C2", "C1"]])
def test_equally_trusted_records_give_the_owner_of_the_first_record_whatever_order_they_arrive_in(
    rows: list[str],
) -> None:
    con = warehouse_con(pl.DataFrame({"customer": ["C1"], "date": [date(2026, 1, 5)], "amount": [10.0]}))
    owners = {"C1": "Li", "C2": "Wang"}
    for ref in rows:  # two records of one customer in one source, each naming its own owner
        con.execute(
            "INSERT INTO customers BY NAME SELECT 'shop' AS source_system, ? AS source_record_id, ? AS owner",
            [ref, owners[ref]],
        )
    links = pl.DataFrame(
        {
            "source_system": ["shop", "shop"],
            "source_record_id": ["C1", "C2"],
            "record_kind": ["customer", "customer"],
            "customer_key": ["K", "K"],
            "match_rule": ["phone", "phone"],
        }
    )
    _loaded(con, links, {"shop": 1})
    got = churn_features.attributes(con, pl.DataFrame({"customer_key": ["K"]}))
    assert got.select("customer_key", "owner").rows() == [("K", "Li")]
