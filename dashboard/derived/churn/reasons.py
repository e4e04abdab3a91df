"""Why a customer is at risk, in words a salesperson can act on, zh and en.

Features are grouped into reasons (the three order-trend features make one reason, not three); a
reason's weight for a customer is the sum of its features' attributions, and the three heaviest that
push towards churn are written out with the customer's own numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

from dashboard.derived.churn.features import FEATURES

MIN_WEIGHT = 0.01  # log-odds: a reason must push the risk up by at least this much to be named


@dataclass(frozen=True)
class Reason:
    code: str
    features: tuple[str, ...]


REASONS: tuple[Reason, ...] = (
    Reason(
        "inactivity",
        ("recency_days", "order_recency_days", "overdue_ratio", "mean_gap_days", "bgnbd_expected", "bgnbd_p_alive"),
    ),
    Reason("order_trend", ("orders_recent", "orders_previous", "order_trend", "spend_recent", "spend_previous")),
    Reason("history", ("order_days", "monetary", "avg_order_value", "tenure_days")),
    Reason("contacts", ("contacts_recent", "contacts_previous", "contact_recency_days")),
    Reason("complaints", ("complaints_recent",)),
    Reason("service", ("service_recent",)),
    Reason("visits", ("visits_recent",)),
    Reason("unsubscribes", ("unsubscribes_recent",)),
    Reason("negative", ("negative_recent",)),
    Reason("channels", ("channels_recent", "channels_year")),
    Reason("receivables", ("overdue_amount", "overdue_contracts", "overdue_days")),
)
REASON_CODES: tuple[str, ...] = tuple(r.code for r in REASONS)
assert sorted(f for r in REASONS for f in r.features) == sorted(FEATURES), "every feature belongs to one reason"


def group_weights(contributions: NDArray[np.float64]) -> NDArray[np.float64]:
    """(customers × features) attributions → (customers × reasons), in REASONS order."""
    index = {f: j for j, f in enumerate(FEATURES)}
    return np.stack([contributions[:, [index[f] for f in r.features]].sum(axis=1) for r in REASONS], axis=1)


def _int(col: str) -> pl.Expr:
    return pl.col(col).fill_null(0).round(0).cast(pl.Int64).cast(pl.String)


def days_counted(days_before: pl.Expr) -> pl.Expr:
    """An event's days before the score date (a feature: the score date's midnight less the event's time, in
    days) as a person counts them from the event's day to the data's last day, the day before the score date:
    0 for an event on that day, 1 for one the day before, at whatever time of day (the feature is 1.0 for an
    order dated to the last day, 1.6 for one at 09:00 the day before)."""
    return (days_before.ceil() - 1).clip(lower_bound=0).cast(pl.Int64)


def _ago(col: str, lang: str, zh_text: str, en_text: str, zh_zero: str, en_zero: str) -> pl.Expr:
    """A sentence naming ``col``'s days as counted (days_counted), its own wording for the data's last day."""
    n = days_counted(pl.col(col))
    if lang == "zh":
        return pl.when(n == 0).then(pl.lit(zh_zero)).otherwise(pl.format(zh_text, n.cast(pl.String)))
    many = pl.when(n == 1).then(pl.lit("1 day")).otherwise(pl.format("{} days", n.cast(pl.String)))
    return pl.when(n == 0).then(pl.lit(en_zero)).otherwise(pl.format(en_text, many))


def _n(col: str, lang: str, one: str, many: str) -> pl.Expr:
    """'1 order' / '3 orders' in English; the bare number in Chinese (the unit is in the sentence)."""
    if lang == "zh":
        return _int(col)
    return (
        pl.when(pl.col(col).fill_null(0).round(0) == 1)
        .then(pl.lit(f"1 {one}"))
        .otherwise(pl.format("{} " + many, _int(col)))
    )


def _money(col: str, lang: str) -> pl.Expr:
    """¥1.2万 / ¥12.3K: readable in a sentence."""
    x = pl.col(col).fill_null(0)
    units = ((1e8, "亿"), (1e4, "万")) if lang == "zh" else ((1e6, "M"), (1e3, "K"))
    expr = pl.format("¥{}", x.round(0).cast(pl.Int64))
    for size, unit in reversed(units):
        expr = pl.when(x.abs() >= size).then(pl.format("¥{}" + unit, (x / size).round(1))).otherwise(expr)
    return expr


def _texts(lang: str, h: int) -> dict[str, tuple[pl.Expr, pl.Expr]]:
    """reason code → (text, applies): the sentence for each customer, and whether it makes sense as a reason."""
    zh = lang == "zh"
    hs, h2 = str(h), str(2 * h)
    g = _int("mean_gap_days")
    a, b = _n("orders_recent", lang, "order", "orders"), _int("orders_previous")
    ca, cb = _n("contacts_recent", lang, "interaction", "interactions"), _int("contacts_previous")
    n_orders, tenure = _n("order_days", lang, "day", "days"), _int("tenure_days")

    def f(zh_t: str, en_t: str, *args: pl.Expr) -> pl.Expr:
        return pl.format(zh_t if zh else en_t, *args)

    # days since the last order or interaction as a person counts them to the data's last day (days_counted)
    last_activity = _ago("recency_days", lang, "在 {} 天前", "{} ago", "在数据的最后一天", "on the data's last day")
    last_order = _ago("order_recency_days", lang, "在 {} 天前", "{} ago", "在数据的最后一天", "on the data's last day")
    no_order_for = _ago(
        "order_recency_days",
        lang,
        "已 {} 天未下单",
        "no order in {}",
        "最后一单在数据的最后一天",
        "last order on the data's last day",
    )
    # one order's day: the inactivity says "only one order" (its gap is unknown), and the history's "orders on 1 day"
    # would say it again (the walk found both in one customer's reasons)
    one_order = pl.col("order_recency_days").is_not_null() & pl.col("mean_gap_days").is_null()
    inactivity = (
        pl.when(pl.col("order_recency_days").is_null())
        .then(f("从未下单，最近一次互动{}", "no order yet; last interaction {}", last_activity))
        .when(one_order)
        .then(f("只下过一单，{}", "only one order, {}", last_order))
        .otherwise(f("{}，以往约每 {} 天一单", "{}, usually one every {} days", no_order_for, g))
    )
    trend = (
        pl.when((pl.col("orders_recent") == 0) & (pl.col("orders_previous") == 0))
        .then(f("近 {} 天没有下单", "no order in the last {} days", pl.lit(h2)))
        .when(pl.col("orders_recent") < pl.col("orders_previous"))
        .then(
            f(
                "近 {} 天下单 {} 次，此前 {} 天为 {} 次",
                "{} in the last {} days, down from {} the {} days before",
                *((pl.lit(hs), a, pl.lit(hs), b) if zh else (a, pl.lit(hs), b, pl.lit(hs))),
            )
        )
        .otherwise(
            f(
                "近 {} 天下单 {} 次（此前 {} 天 {} 次）",
                "{} in the last {} days ({} the {} days before)",
                *((pl.lit(hs), a, pl.lit(hs), b) if zh else (a, pl.lit(hs), b, pl.lit(hs))),
            )
        )
    )
    history = (
        pl.when(pl.col("order_days") == 0)
        .then(f("成为客户 {} 天，还没有购买", "no purchase in {} days as a customer", tenure))
        .otherwise(
            f(
                "累计 {} 天有下单、{}，历时 {} 天",
                "orders on {}, {} in total, over {} days",
                n_orders,
                _money("monetary", lang),
                tenure,
            )
        )
    )
    contacts = (
        pl.when(pl.col("contact_recency_days").is_null())
        .then(pl.lit("没有任何互动记录" if zh else "no interaction on record"))
        .when(pl.col("contacts_recent") == 0)
        .then(_ago("contact_recency_days", lang, "已 {} 天没有互动", "no interaction in {}", "", ""))  # never 0 here
        .when(pl.col("contacts_recent") < pl.col("contacts_previous"))
        .then(
            f(
                "近 {} 天互动 {} 次，此前 {} 天为 {} 次",
                "{} in the last {} days, down from {}",
                *((pl.lit(hs), ca, pl.lit(hs), cb) if zh else (ca, pl.lit(hs), cb)),
            )
        )
        .otherwise(f("近 {} 天互动 {} 次", "{} in the last {} days", *((pl.lit(hs), ca) if zh else (ca, pl.lit(hs)))))
    )

    def counted(
        col: str, unit: tuple[str, str], zh_some: str, en_some: str, zh_none: str | None, en_none: str | None
    ) -> tuple[pl.Expr, pl.Expr]:
        n = _n(col, lang, *unit)
        some = f(zh_some, en_some, *((pl.lit(hs), n) if zh else (n, pl.lit(hs))))
        if zh_none is None or en_none is None:
            return some, pl.col(col) > 0
        return pl.when(pl.col(col) > 0).then(some).otherwise(f(zh_none, en_none, pl.lit(hs))), pl.lit(True)

    overdue = f(
        "{} 份合同逾期未付 {}，最长逾期 {} 天",
        "{} overdue on {}, up to {} days late",
        *(
            (_int("overdue_contracts"), _money("overdue_amount", lang), _int("overdue_days"))
            if zh
            else (
                _money("overdue_amount", lang),
                _n("overdue_contracts", lang, "contract", "contracts"),
                _int("overdue_days"),
            )
        ),
    )
    # interactions' channels (an order is none: features.CHANNEL_DAYS_SQL), as Customer 360 lists a customer's
    channels = (
        pl.when(pl.col("channels_year") == 0)
        .then(pl.lit("近一年没有在任何渠道互动" if zh else "no interaction in any channel in the past year"))
        .otherwise(
            f(
                "近 {} 天在 {} 个渠道有互动，近一年 {} 个",
                "interactions in {} in the last {} days, {} in the past year",
                *(
                    (pl.lit(hs), _int("channels_recent"), _int("channels_year"))
                    if zh
                    else (_n("channels_recent", lang, "channel", "channels"), pl.lit(hs), _int("channels_year"))
                ),
            )
        )
    )
    yes = pl.lit(True)
    return {
        "inactivity": (inactivity, yes),
        "order_trend": (trend, yes),
        "history": (history, ~one_order),  # one order: the inactivity's reason says it
        "contacts": (contacts, yes),
        "complaints": counted(
            "complaints_recent", ("complaint", "complaints"), "近 {} 天投诉 {} 次", "{} in the last {} days", None, None
        ),
        "service": counted(
            "service_recent",
            ("service request", "service requests"),
            "近 {} 天服务请求 {} 次",
            "{} in the last {} days",
            "近 {} 天没有服务往来",
            "no service contact in the last {} days",
        ),
        "visits": counted(
            "visits_recent",
            ("visit", "visits"),
            "近 {} 天拜访 {} 次",
            "{} in the last {} days",
            "近 {} 天没有拜访",
            "no visit in the last {} days",
        ),
        "unsubscribes": counted(
            "unsubscribes_recent",
            ("time", "times"),
            "近 {} 天取消关注/退订 {} 次",
            "unsubscribed or unfollowed {} in the last {} days",
            None,
            None,
        ),
        "negative": counted(
            "negative_recent",
            ("follow-up", "follow-ups"),
            "近 {} 天有 {} 次跟进结果为无意向或无预算",
            "{} ended with no interest or no budget in the last {} days",
            None,
            None,
        ),
        "channels": (channels, pl.col("channels_year") > 0),  # none in a year: the contacts' reason says it
        "receivables": (overdue, pl.col("overdue_contracts") > 0),
    }


def _applies(features: pl.DataFrame, texts: dict[str, tuple[pl.Expr, pl.Expr]]) -> NDArray[np.bool_]:
    """(customers × reasons): whether each reason makes sense for the customer at all."""
    if not features.height:
        return np.zeros((0, len(REASON_CODES)), dtype=bool)
    return features.select([texts[code][1].alias(code) for code in REASON_CODES]).to_numpy().astype(bool)


def _weighed(applies: NDArray[np.bool_], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """(customers × reasons): the weight each reason is named by, -inf where it is not named at all."""
    w = np.where(applies & (weights > MIN_WEIGHT), weights, -np.inf)
    # One fact is said once, by one reason, which takes the other's weight where the other does not apply: no
    # interaction in the past year (没有任何互动记录 or 已 400 天没有互动 beside 近一年没有在任何渠道互动 said it twice)
    # is the contacts' reason's; a single order (只下过一单 beside 累计 1 天有下单) is the inactivity's.
    for says, other in (("contacts", "channels"), ("inactivity", "history")):
        c, o = REASON_CODES.index(says), REASON_CODES.index(other)
        folded = weights[:, c] + np.where(applies[:, o], 0.0, weights[:, o])
        w[:, c] = np.where(applies[:, c] & (folded > MIN_WEIGHT), folded, -np.inf)
    return w


def reason_weights(features: pl.DataFrame, weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """(customers × reasons): the weight top_reasons names each customer's reasons by (the attributions' sums, one
    reason's given to the one that says its fact), -inf for a reason that is not named (it does not apply to the
    customer, or pushes the risk up by less than MIN_WEIGHT)."""
    return _weighed(_applies(features, _texts("en", 0)), weights)


def top_reasons(features: pl.DataFrame, weights: NDArray[np.float64], horizon_days: int, k: int = 3) -> pl.DataFrame:
    """Per customer (rows of ``features``): reason_codes, reasons_zh, reasons_en (lists of up to k).

    Sentences are written only for the reasons a customer shows (at most k of the eleven), one reason
    at a time over the customers who show it, from the columns its sentence reads: a million customers make
    three million sentences, not twenty-two million. They are made in reason order and put in the customers'
    (row, then slot) order by one gather, and each row's list is its run of them (Arrow offsets): no sort, group
    and join of three million strings (at large ~1.3 CPU-s).
    """
    texts = {lang: _texts(lang, horizon_days) for lang in ("zh", "en")}
    w = _weighed(_applies(features, texts["en"]), weights)
    order = np.argsort(-w, axis=1, kind="stable")[:, :k]
    codes = np.where(np.isfinite(np.take_along_axis(w, order, axis=1)), order, -1)
    row, slot = np.nonzero(codes >= 0)  # row-major: by row, then slot (a row's reasons are its first slots)
    picked = codes[row, slot]
    by_code = np.argsort(picked, kind="stable")  # the picks grouped by reason, each group in row order
    ends = np.cumsum(np.bincount(picked, minlength=len(REASON_CODES)))
    zh, en = [], []
    for j, code in enumerate(REASON_CODES):
        who = row[by_code[ends[j - 1] if j else 0 : ends[j]]]
        if who.size:
            zh_text, en_text = texts["zh"][code][0], texts["en"][code][0]
            used = sorted(set(zh_text.meta.root_names()) | set(en_text.meta.root_names()))
            made = (features.select(used) if used else features)[who].select(zh_text.alias("zh"), en_text.alias("en"))
            zh.append(made["zh"])
            en.append(made["en"])
    place = np.empty_like(by_code)
    place[by_code] = np.arange(by_code.size)  # pick i's sentence is the place[i]-th made
    offsets = pa.array(np.concatenate([[0], np.cumsum(np.bincount(row, minlength=features.height))]), pa.int64())
    out = {"reason_codes": pl.Series(REASON_CODES, dtype=pl.String).gather(picked)}
    for lang, made_in in (("zh", zh), ("en", en)):
        out[f"reasons_{lang}"] = pl.concat(made_in).gather(place) if made_in else pl.Series([], dtype=pl.String)
    lists = {
        name: pa.LargeListArray.from_arrays(offsets, values.to_arrow().cast(pa.large_string()))
        for name, values in out.items()
    }
    frame = pl.from_arrow(pa.table(lists))
    assert isinstance(frame, pl.DataFrame)
    return frame
