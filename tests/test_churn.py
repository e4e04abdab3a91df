"""Churn: no look-ahead, BG/NBD recovers what generated the data, the additive model's attributions
are its own score, reasons follow them, and the ranking puts a long-gone customer above a steady one.

The data here is not the demo generator's: customers buy at gamma-distributed rates until an
exponential lifetime ends (a Pareto/NBD world), in a plain ``orders`` table with customer, date and
amount only; some complain before they leave.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import numpy as np
import polars as pl
import pytest

from dashboard.core.config import parse_settings
from dashboard.core.duck import entity_columns, view_sql
from dashboard.core.entities import ENTITIES
from dashboard.derived.churn import bgnbd as churn_bgnbd
from dashboard.derived.churn import build as churn
from dashboard.derived.churn import features as churn_features
from dashboard.derived.churn import model as churn_model
from dashboard.derived.churn.features import FEATURES
from dashboard.derived.churn.reasons import REASON_CODES, group_weights, top_reasons

AS_OF = date(2026, 3, 1)
START = AS_OF - timedelta(days=720)


def synthetic_shop(n: int = 900, seed: int = 3, complaints: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(orders: customer, date, amount; interactions: customer, date, kind) up to AS_OF."""
    rng = np.random.default_rng(seed)
    orders, calls = [], []
    for c in range(n):
        born = rng.uniform(0, 400)
        death = born + rng.exponential(500)
        rate = rng.gamma(0.9, 1 / 25)
        spend = rng.lognormal(5, 0.6)
        t = born
        while t < min(death, 720):
            orders.append((f"K{c:04d}", START + timedelta(days=t), round(spend * rng.uniform(0.5, 1.5), 2)))
            t += rng.exponential(1 / max(rate, 1e-3))
        if complaints and death < 800:  # the unhappy ones complain in their last two months
            for _ in range(rng.poisson(2)):
                when = death - rng.uniform(0, 60)
                if born < when < 720:
                    calls.append((f"K{c:04d}", START + timedelta(days=when), "complaint"))
    for i in range(24):  # a steady monthly buyer, and one who bought once, long ago
        orders.append(("STEADY", START + timedelta(days=10 + 30 * i), 300.0))
    orders.append(("ONCE", AS_OF - timedelta(days=300), 300.0))
    return (
        pl.DataFrame(orders, schema=["customer", "date", "amount"], orient="row"),
        pl.DataFrame(calls, schema=["customer", "date", "kind"], orient="row"),
    )


def warehouse_con(orders: pl.DataFrame, calls: pl.DataFrame | None = None) -> duckdb.DuckDBPyConnection:
    """Canonical tables holding one source, 'shop'; the rest empty."""
    con = duckdb.connect()
    for entity in ENTITIES:
        con.execute(view_sql(entity, [], entity_columns(entity), "TABLE"))
    con.register("o", orders)
    con.execute(
        "INSERT INTO orders BY NAME SELECT 'shop' AS source_system, customer AS customer_ref, "
        "CAST(date AS TIMESTAMP) AS ordered_at, amount FROM o"
    )
    if calls is not None and calls.height:
        con.register("c", calls)
        con.execute(
            "INSERT INTO interactions BY NAME SELECT 'shop' AS source_system, customer AS customer_ref, "
            "'call_center' AS channel, kind, CAST(date AS TIMESTAMP) AS occurred_at FROM c"
        )
    return con


NO_LINKS = pl.DataFrame(
    schema={
        "source_system": pl.String,
        "source_record_id": pl.String,
        "record_kind": pl.String,
        "customer_key": pl.String,
        "match_rule": pl.String,
    }
)
SETTINGS = parse_settings({"timezone": "Asia/Shanghai"}, base_dir=__import__("pathlib").Path("."))


def _features(con: duckdb.DuckDBPyConnection, t: date) -> pl.DataFrame:
    churn_features.load_events(con, NO_LINKS, {}, churn_features.day_number(date(2100, 1, 1)))
    return churn_features.features_at(con, churn_features.day_number(t), 90)


# -- no look-ahead ----------------------------------------------------------------------------------
def test_features_at_a_date_ignore_everything_after_it() -> None:
    orders, calls = synthetic_shop(200, complaints=True)
    cut = AS_OF - timedelta(days=120)
    con = warehouse_con(orders, calls)
    con.execute(
        "INSERT INTO contracts BY NAME SELECT * FROM (VALUES "
        "('shop', 'C1', 'K0001', TIMESTAMP '2025-06-01', 1000.0, TIMESTAMP '2025-07-01', 1000.0, "
        "TIMESTAMP '2026-02-01')"
        ") AS v(source_system, contract_id, customer_ref, signed_at, amount, due_date, paid_amount, paid_at)"
    )
    before = _features(con, cut)
    assert before.filter(pl.col("customer_key") == "shop:K0001")["overdue_amount"].to_list() == [1000.0]
    # Everything after the cutoff: new orders, new complaints, a new customer, a new contract.
    later = pl.DataFrame(
        {"customer": ["K0001", "K0002", "NEW"], "date": [cut, cut + timedelta(days=3), cut + timedelta(days=9)]}
    ).with_columns(pl.lit(99.0).alias("amount"))
    con.register("later", later)
    con.execute(
        "INSERT INTO orders BY NAME SELECT 'shop' AS source_system, customer AS customer_ref, "
        "CAST(date AS TIMESTAMP) AS ordered_at, amount FROM later"
    )
    con.execute(
        "INSERT INTO interactions BY NAME SELECT 'shop' AS source_system, 'K0003' AS customer_ref, "
        "'call_center' AS channel, 'complaint' AS kind, CAST($t AS TIMESTAMP) AS occurred_at",
        {"t": cut},
    )
    after = _features(con, cut)
    assert after.equals(before)
    assert "shop:NEW" not in after["customer_key"].to_list()
    # ...and they do count one day later.
    assert _features(con, cut + timedelta(days=1)).filter(pl.col("customer_key") == "shop:K0001")[
        "orders_recent"
    ].to_list() == [before.filter(pl.col("customer_key") == "shop:K0001")["orders_recent"][0] + 1]


def test_labels_are_activity_in_the_horizon_after_the_cutoff() -> None:
    con = warehouse_con(
        pl.DataFrame(
            {
                "customer": ["A", "A", "B", "C"],
                "date": [datetime(2026, 1, 1), datetime(2026, 2, 10), datetime(2026, 1, 5), datetime(2026, 5, 1)],
                "amount": [1.0, 1.0, 1.0, 1.0],
            }
        )
    )
    churn_features.load_events(con, NO_LINKS, {}, churn_features.day_number(date(2100, 1, 1)))
    t = churn_features.day_number(date(2026, 2, 1))
    assert set(churn_features.active_at(con, t, 30)["customer_key"]) == {"shop:A"}  # B churned; C comes later


# -- the pieces -------------------------------------------------------------------------------------
def test_bgnbd_recovers_the_parameters_that_made_the_data() -> None:
    rng = np.random.default_rng(1)
    n, r, alpha, a, b = 8000, 0.25, 4.4, 0.8, 2.4
    lam, p, big_t = rng.gamma(r, 1 / alpha, n) / 7, rng.beta(a, b, n), rng.uniform(200, 500, n)
    x, tx = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > big_t[i]:
                break
            x[i], tx[i] = x[i] + 1, t
            if rng.random() < p[i]:
                break
    fitted = churn_bgnbd.fit(x, tx, big_t)
    assert fitted.r == pytest.approx(r, rel=0.15) and fitted.alpha == pytest.approx(alpha, rel=0.2)
    assert fitted.a == pytest.approx(a, rel=0.3) and fitted.b == pytest.approx(b, rel=0.3)
    alive = fitted.p_alive(x, tx, big_t)
    assert alive[(x >= 5) & (big_t - tx < 7)].mean() > 0.9 > 0.5 > alive[(x >= 5) & (big_t - tx > 150)].mean()


def test_the_model_is_additive_so_its_attributions_are_its_score() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 4))
    x[rng.random(3000) < 0.1, 2] = np.nan
    y = (x[:, 0] + 0.5 * np.nan_to_num(x[:, 2]) + rng.normal(size=3000)) > 0
    model = churn_model.fit_model(x, y)
    booster_says = model.booster.decision_function(model.binner.transform(x))
    np.testing.assert_allclose(model.log_odds(x), booster_says, atol=1e-9)
    contrib = model.contributions(x)
    np.testing.assert_allclose(contrib.sum(axis=1) + model.bias + model.centres.sum(), booster_says, atol=1e-9)
    assert np.abs(contrib[:, 0]).mean() > 5 * np.abs(contrib[:, 1]).mean()  # the feature that matters carries it


# -- the whole run on orders-only data --------------------------------------------------------------
@pytest.fixture(scope="module")
def shop_run() -> churn.ChurnRun:
    orders, calls = synthetic_shop(complaints=True)
    con = warehouse_con(orders, calls)
    return churn.run(con, SETTINGS, NO_LINKS, as_of=AS_OF)


def test_the_run_backtests_three_methods_and_keeps_the_model_only_if_it_beats_both(shop_run: churn.ChurnRun) -> None:
    card = {r["method"]: r for r in shop_run.card.iter_rows(named=True)}
    assert set(card) == {"model", "recency", "bgnbd"} and shop_run.status == "validated"
    auc = {m: card[m]["auc"] for m in card}
    assert all(0.5 < a < 1 for a in auc.values())
    best_baseline = max(auc["recency"], auc["bgnbd"])
    expected = "model" if auc["model"] > best_baseline else max(("recency", "bgnbd"), key=auc.__getitem__)
    assert shop_run.method == expected and [m for m in card if card[m]["chosen"]] == [expected]
    assert card["model"]["train_cutoff"] == AS_OF - timedelta(days=180)
    assert card["model"]["backtest_cutoff"] == AS_OF - timedelta(days=90)
    assert len(card[expected]["calibration_predicted"]) == 10
    assert sum(card[expected]["calibration_customers"]) == card[expected]["backtest_customers"]


def test_a_single_order_long_ago_ranks_high_a_steady_monthly_buyer_low(shop_run: churn.ChurnRun) -> None:
    scores = shop_run.scores
    risk = dict(zip(scores["customer_key"], scores["risk"], strict=True))
    current = scores.filter(pl.col("days_inactive") < 90)["risk"]  # the customers buying now
    assert (current < risk["shop:ONCE"]).mean() > 0.8 and risk["shop:ONCE"] >= 0.6
    assert (current > risk["shop:STEADY"]).mean() > 0.6 and risk["shop:STEADY"] < 0.3
    once = scores.filter(pl.col("customer_key") == "shop:ONCE").row(0, named=True)
    assert once["risk_band"] == "high"
    assert {"only one order, 300 days ago", "1 order, ¥300 in total, over 300 days"} & set(once["reasons_en"])


def test_expected_value_at_risk_is_risk_times_value_and_orders_the_list(shop_run: churn.ChurnRun) -> None:
    s = shop_run.scores
    np.testing.assert_allclose(s["expected_value_at_risk"], s["risk"] * s["value_at_stake"])
    assert s["expected_value_at_risk"].is_sorted(descending=True) and s["rank"].to_list() == list(
        range(1, s.height + 1)
    )
    steady = s.filter(pl.col("customer_key") == "shop:STEADY").row(0, named=True)
    assert steady["value_at_stake"] == pytest.approx(300.0 * 24 / 700 * 90, rel=0.1)  # ¥300 a month, 90 days


def test_reasons_follow_the_attributions_that_drove_the_score() -> None:
    orders, calls = synthetic_shop(complaints=True)
    con = warehouse_con(orders, calls)
    churn_features.load_events(con, NO_LINKS, {}, churn_features.day_number(date(2100, 1, 1)))
    train = churn._at(con, churn_features.day_number(AS_OF) - 90, 90, labelled=True)
    now = churn._at(con, churn_features.day_number(AS_OF), 90, labelled=False)
    fitted = churn.fit("model", train)
    weights = group_weights(fitted.model.contributions(churn._matrix(now)))  # type: ignore[union-attr]
    reasons = top_reasons(now, weights, 90)
    complaint = REASON_CODES.index("complaints")
    for i, codes in enumerate(reasons["reason_codes"].to_list()):
        w = weights[i]
        assert [w[REASON_CODES.index(c)] for c in codes] == sorted(
            (w[REASON_CODES.index(c)] for c in codes), reverse=True
        )
        if codes:
            # the first reason is the heaviest one that applies (complaints only when there were some)
            applicable = [j for j in range(len(REASON_CODES)) if j != complaint or now["complaints_recent"][i] > 0]
            assert REASON_CODES.index(codes[0]) == max(applicable, key=lambda j: w[j])
    # The words carry the customer's own numbers: weights that point at complaints name them.
    row = now.filter(pl.col("complaints_recent") == 0).head(1).with_columns(pl.lit(2).alias("complaints_recent"))
    w = np.zeros((1, len(REASON_CODES)))
    w[0, complaint], w[0, REASON_CODES.index("inactivity")] = 0.8, 0.2
    named = top_reasons(row, w, 90)
    assert named["reason_codes"].to_list() == [["complaints", "inactivity"]]
    assert named["reasons_en"][0][0] == "2 complaints in the last 90 days"
    assert named["reasons_zh"][0][0] == "近 90 天投诉 2 次"
    assert top_reasons(row.with_columns(pl.lit(0).alias("complaints_recent")), w, 90)["reason_codes"].to_list() == [
        ["inactivity"]
    ]  # no complaint, no complaint reason, whatever the weight
    assert weights.shape == (now.height, len(REASON_CODES)) and now.select(FEATURES).width == len(FEATURES)


def test_short_history_is_served_unvalidated_from_bgnbd() -> None:
    orders = pl.DataFrame(
        {"customer": ["A", "A", "B"], "date": [datetime(2026, 1, 1), datetime(2026, 1, 20), datetime(2026, 1, 5)]}
    ).with_columns(pl.lit(10.0).alias("amount"))
    result = churn.run(warehouse_con(orders), SETTINGS, NO_LINKS)
    assert result.as_of == date(2026, 1, 21)  # the day after the latest activity
    assert result.status == "unvalidated" and result.method == "bgnbd"
    assert result.card["auc"].null_count() == 3 and "history too short" in result.card["notes"][0]
    assert result.scores.height == 2 and result.scores["risk"].is_between(0, 1).all()


def test_a_small_shop_trains_on_older_windows_too_and_never_on_the_judged_one(monkeypatch: pytest.MonkeyPatch) -> None:
    orders, _ = synthetic_shop()
    con = warehouse_con(orders)
    churn_features.load_events(con, NO_LINKS, {}, churn_features.day_number(date(2100, 1, 1)))
    d = churn_features.day_number(AS_OF)
    windows = churn._Windows(con, d, 90, churn_features.activity_range(con)[0] or d)
    train = windows.stacked(2)  # the backtest's fit: cutoffs D − 180, D − 270, D − 360
    assert sorted(windows.frames) == [2, 3, 4] and 1 not in windows.frames  # D − 90 is what it is judged on
    assert train.height == sum(windows.frames[k].height for k in (2, 3, 4))
    monkeypatch.setattr(churn, "STACK_ROWS", 500)  # a shop with enough customers keeps to one window
    big = churn._Windows(con, d, 90, churn_features.activity_range(con)[0] or d)
    assert big.stacked(2).height == big.at(2).height and sorted(big.frames) == [2]
