"""Churn reasons say what a person reading the customer's records would say: days counted from the last order's
day to the data's last day, and no two reasons of a customer that contradict each other or Customer 360."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import polars as pl
import pytest

from dashboard.core.config import load_settings
from dashboard.core.store import Store
from dashboard.derived.churn.features import FEATURES
from dashboard.derived.churn.reasons import REASON_CODES, top_reasons
from dashboard.derived.tables import attach_views
from tests.conftest import demo_template


def _inactivity(**features: list[float | None]) -> pl.DataFrame:
    """Reasons of customers whose only reason is inactivity (the score date's midnight less the order's time)."""
    n = len(next(iter(features.values())))
    frame = pl.DataFrame({f: [0.0] * n for f in FEATURES}).with_columns(
        pl.Series(name, values, dtype=pl.Float64) for name, values in features.items()
    )
    weights = np.zeros((n, len(REASON_CODES)))
    weights[:, REASON_CODES.index("inactivity")] = 1.0
    return top_reasons(frame, weights, 90)


def test_days_since_the_last_order_are_counted_to_the_data_s_last_day() -> None:
    """The score date is the day after the data: an order dated to the data's last day is 1.0 day before it, one at
    09:00 the day before 1.625. A person counts 0 and 1 days (not 1 and 2)."""
    got = _inactivity(
        order_recency_days=[1.0, 1.625, 300.0, 2.0, 1.0],
        recency_days=[1.0, 1.625, 300.0, 2.0, 1.0],
        mean_gap_days=[30.0, 30.0, 30.0, None, None],
    )
    assert got["reasons_en"].list.first().to_list() == [
        "last order on the data's last day, usually one every 30 days",
        "no order in 1 day, usually one every 30 days",
        "no order in 299 days, usually one every 30 days",
        "only one order, 1 day ago",
        "only one order, on the data's last day",
    ]
    assert got["reasons_zh"].list.first().to_list() == [
        "最后一单在数据的最后一天，以往约每 30 天一单",
        "已 1 天未下单，以往约每 30 天一单",
        "已 299 天未下单，以往约每 30 天一单",
        "只下过一单，在 1 天前",
        "只下过一单，在数据的最后一天",
    ]
    never = _inactivity(order_recency_days=[None], recency_days=[3.2])  # day D-4 at 19:12: 3 days before D-1
    assert never["reasons_en"].to_list() == [["no order yet; last interaction 3 days ago"]]


def test_no_interaction_in_a_year_is_said_once() -> None:
    """The walk found "no interaction on record; ...; no interaction in any channel in the past year" (没有任何互动记录
    and 近一年没有在任何渠道互动): one fact, said once, by the contacts' reason with both reasons' weight."""
    frame = pl.DataFrame({f: [0.0] * 4 for f in FEATURES}).with_columns(
        pl.Series("contact_recency_days", [None, 400.0, None, 3.0], dtype=pl.Float64),
        pl.Series("contacts_previous", [0.0, 1.0, 0.0, 2.0]),
        pl.Series("channels_year", [0.0, 0.0, 0.0, 2.0]),
    )
    weights = np.zeros((4, len(REASON_CODES)))
    weights[:, REASON_CODES.index("channels")] = [0.4, 0.4, 0.4, 0.4]
    weights[:, REASON_CODES.index("contacts")] = [0.5, 0.5, 0.0, 0.0]  # the third: the channels' weight alone
    got = top_reasons(frame, weights, 90)
    said = got["reasons_en"].to_list()
    assert said[:3] == [["no interaction on record"], ["no interaction in 399 days"], ["no interaction on record"]]
    assert len(said[3]) == 1 and said[3][0].endswith("2 in the past year")  # channels in a year: said as they are
    assert got["reasons_zh"].to_list()[:3] == [["没有任何互动记录"], ["已 399 天没有互动"], ["没有任何互动记录"]]


def test_a_single_order_is_said_once() -> None:
    """The walk found "only one order, 96 days ago; ...; orders on 1 day, ¥4.1K in total, over 97 days" (只下过一单 and
    累计 1 天有下单): one fact, said once, by the inactivity's reason with the history's weight too."""
    frame = pl.DataFrame({f: [0.0] * 3 for f in FEATURES}).with_columns(
        pl.Series("order_recency_days", [97.0, 97.0, 97.0]),
        pl.Series("recency_days", [97.0, 97.0, 97.0]),
        pl.Series("mean_gap_days", [None, None, 30.0], dtype=pl.Float64),
        pl.Series("order_days", [1.0, 1.0, 3.0]),
        pl.Series("monetary", [4100.0, 4100.0, 9000.0]),
        pl.Series("tenure_days", [98.0, 98.0, 98.0]),
        pl.Series("complaints_recent", [2.0, 2.0, 2.0]),
    )
    weights = np.zeros((3, len(REASON_CODES)))
    weights[:, REASON_CODES.index("history")] = [0.6, 0.6, 0.6]
    weights[:, REASON_CODES.index("inactivity")] = [0.3, 0.0, 0.3]  # the second: the history's weight alone
    weights[:, REASON_CODES.index("complaints")] = [0.5, 0.5, 0.5]
    got = top_reasons(frame, weights, 90)
    assert got["reason_codes"].to_list() == [
        ["inactivity", "complaints"],  # 0.9: the history's 0.6 with the inactivity's 0.3
        ["inactivity", "complaints"],
        ["history", "complaints", "inactivity"],  # three orders' days: the history says what the inactivity does not
    ]
    assert got["reasons_en"].to_list()[0][0] == "only one order, 96 days ago"
    assert got["reasons_zh"].to_list()[1][0] == "只下过一单，在 96 天前"
    assert got["reasons_en"].to_list()[2][0] == "orders on 3 days, ¥9.0K in total, over 98 days"


# -- over every scored customer of a built demo -----------------------------------------------------------------
_NONE = re.compile(r"^no interaction on record$")
_SOME = re.compile(
    r"^no order yet; last interaction|^no interaction in \d|^\d+ (interaction|complaint|service request|visit)s? in"
    r"|^interactions in [1-9]|^unsubscribed or unfollowed|ended with no interest"
)
_ZH_NONE = re.compile(r"^没有任何互动记录$")
_ZH_SOME = re.compile(
    r"最近一次互动|已 \d+ 天没有互动|互动 [1-9]\d* 次|在 [1-9]\d* 个渠道|投诉 [1-9]|服务请求 [1-9]"
    r"|拜访 [1-9]|取消关注/退订|无意向或无预算"
)
_NO_ORDER = re.compile(r"^no order yet|^no purchase in")
_ORDERED = re.compile(r"^only one order|^no order in \d|^last order on|^orders on|^[1-9]\d* orders? in the last")


def _contradictions(reasons: list[str], zh: list[str]) -> list[str]:
    """What a customer's reasons (``reasons`` in English, ``zh`` in Chinese) say against each other."""
    out = []
    if any(_ZH_NONE.search(r) for r in zh) and any(_ZH_SOME.search(r) for r in zh):
        out.append("互动：没有又有")
    if any(_NONE.search(r) for r in reasons) and any(_SOME.search(r) for r in reasons):
        out.append("interactions: none and some")
    if sum(r.startswith("no interaction") for r in reasons) > 1:  # one fact said twice
        out.append("interactions: none, twice")
    if any(r.startswith("only one order") for r in reasons) and any(r.startswith("orders on 1 day") for r in reasons):
        out.append("orders: one order, twice")
    if any(_NO_ORDER.search(r) for r in reasons) and any(_ORDERED.search(r) for r in reasons):
        out.append("orders: none and some")
    since = [int(m[1]) for r in reasons if (m := re.match(r"^no order in (\d+) day", r))]
    recent = [int(m[2]) for r in reasons if (m := re.match(r"^([1-9]\d*) orders? in the last (\d+) days", r))]
    if since and recent and since[0] >= recent[0]:  # "no order in 120 days" beside "2 orders in the last 90 days"
        out.append("orders: none in the window and some")
    return out


@pytest.mark.slow
def test_no_customer_s_reasons_contradict_each_other_or_customer_360(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every scored customer of the medium demo (issue 22, trust: one read both 没有任何互动记录 and
    近 90 天在 1 个渠道活跃, an order's source system counted as a channel): its reasons agree with each other, a
    customer said to have no interaction has none on Customer 360, and no more channels are named than it lists."""
    demo = load_settings(demo_template(tmp_path_factory, "medium") / "cockpit.toml")  # only read: the small demo's
    store = Store(demo.data_path)  # history is too short for a backtest, and its reasons name no interactions
    con = duckdb.connect()
    try:
        attach_views(con, store, store.read_manifest(), in_memory=frozenset())
        scores = con.sql("SELECT customer_key, reasons_en, reasons_zh FROM churn_scores").pl()
        interactions = con.sql(
            """SELECT l.customer_key, count(*) AS n FROM interactions AS i
            JOIN identity_links AS l ON l.record_kind = 'customer' AND l.source_system = i.source_system
                AND l.source_record_id = i.customer_ref
            GROUP BY ALL"""
        ).pl()
        channels = con.sql("SELECT customer_key, len(channels) AS listed FROM customer_golden").pl()
    finally:
        con.close()
    assert scores.height > 50_000 and scores["reasons_en"].list.len().sum() > 2 * scores.height
    bad = {
        key: found
        for key, reasons, zh in zip(scores["customer_key"], scores["reasons_en"], scores["reasons_zh"], strict=True)
        if (found := _contradictions(list(reasons), list(zh)))
    }
    assert not bad, list(bad.items())[:5]

    said = (
        scores.with_columns(
            pl.col("reasons_en")
            .list.eval(pl.element().filter(pl.element() == "no interaction on record"))
            .list.len()
            .alias("none"),
            pl.col("reasons_en")
            .list.eval(pl.element().str.extract(r"in the last \d+ days, (\d+) in the past year").cast(pl.Int64))
            .list.max()
            .alias("named"),
        )
        .join(interactions, on="customer_key", how="left")
        .join(channels, on="customer_key", how="left")
    )
    assert said.filter(pl.col("none") > 0).height > 0 and said["named"].drop_nulls().len() > 0  # both are said
    assert said.filter((pl.col("none") > 0) & (pl.col("n") > 0)).is_empty()
    assert said.filter(pl.col("named") > pl.col("listed").fill_null(0)).is_empty()
    # the Chinese words say the same
    zh_none = scores["reasons_zh"].list.eval(pl.element() == "没有任何互动记录").list.any()
    en_none = scores["reasons_en"].list.eval(pl.element() == "no interaction on record").list.any()
    assert zh_none.equals(en_none)
