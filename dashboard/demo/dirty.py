"""Dirty copies: a person's name, phone, e-mail and company, and a channel, as one system writes them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from dashboard.demo.common import I64, concat, lookup, nulls, pick
from dashboard.demo.context import Context
from dashboard.demo.tables import CHANNEL_LABELS, CHANNELS, CITY_TEL, SIMILAR

# how the users of each system write a channel (a label listed twice is written twice as often);
# a channel missing here is written with its first CHANNEL_LABELS label
_CHANNEL_WRITING: dict[str, dict[str, tuple[str, ...]]] = {
    "crm": {
        "paid_search": ("百度推广", "百度推广", "百度SEM", "SEM "),
        "info_feed": ("抖音信息流", "巨量引擎"),
        "wechat": ("微信广告", "公众号", "广点通"),
        "organic": ("官网自然流量", "直接访问"),
        "trade_show": ("展会", "线下展会"),
        "purchased_list": ("外购名单",),
        "referral": ("转介绍", "转介绍", "老客户推荐", "Referral "),
        "call_center": ("400热线", "400热线", "呼叫中心", "400 hotline"),
    },
    "web": {
        "paid_search": ("baidu_sem", "baidu_sem", "Baidu SEM", "SEM "),
        "info_feed": ("douyin_ads", "Douyin Ads"),
        "wechat": ("wechat", "WeChat Ads"),
        "organic": ("organic", "organic", "SEO"),
    },
    "show": {"trade_show": ("展会", "展会", "Trade Show", "线下展会", "trade_show")},
    "spend": {c: CHANNEL_LABELS[c] for c in CHANNELS},
}


def names(ctx: Context, rng: np.random.Generator, idx: I64, typo: float, space: float = 0.0) -> pl.Series:
    """Names of persons ``idx``: ``typo`` of them with a mixed-up last character, ``space`` with a trailing blank."""
    name = ctx.people.name.gather(idx)
    u = rng.random(idx.size)
    bad = u < typo
    if bad.any():
        chars = ctx.words.name_chars
        sub = name.filter(pl.Series(bad))
        last = sub.str.slice(-1)
        fallback = lookup(chars, rng.integers(0, len(chars), sub.len()))
        new_last = pl.DataFrame({"l": last, "f": fallback}).select(
            pl.col("l").replace_strict(SIMILAR, default=pl.col("f"))
        )["l"]
        changed = concat(sub.str.slice(0, sub.str.len_chars() - 1), new_last)
        name = name.scatter(np.flatnonzero(bad), changed)
    spaced = (u >= typo) & (u < typo + space)
    if spaced.any():
        name = name.scatter(np.flatnonzero(spaced), concat(name.filter(pl.Series(spaced)), " "))
    return name


def phones(
    ctx: Context,
    rng: np.random.Generator,
    idx: I64,
    styles: Sequence[float],
    missing: float,
    invalid: float = 0.012,
) -> pl.Series:
    """A person's mobile as one system stores it. ``styles`` weighs the formats 0 13800138000,
    1 +86 138-0013-8000, 2 138 0013 8000, 3 0086 13800138000, 4 138-0013-8000, 5 +8613800138000;
    ``invalid`` is the share of the filled values that are broken (a digit short, or a landline)."""
    n = idx.size
    d = pl.Series(ctx.people.phone[idx]).cast(pl.String)
    style = pick(rng, n, styles)
    u = rng.random(n)
    bad = np.where(rng.random(n) < invalid, 1 + pick(rng, n, [1, 1]), 0)
    land = concat(
        lookup(CITY_TEL, ctx.people.city[idx]),
        "-",
        pl.Series(rng.integers(20_000_000, 89_999_999, n)).cast(pl.String),
    )
    df = pl.DataFrame({"d": d, "s": style, "u": u, "b": bad, "l": land})
    a, b, c, s = pl.col("d").str.slice(0, 3), pl.col("d").str.slice(3, 4), pl.col("d").str.slice(7, 4), pl.col("s")
    nice = (
        pl.when(s == 1)
        .then(pl.concat_str([pl.lit("+86 "), a, pl.lit("-"), b, pl.lit("-"), c]))
        .when(s == 2)
        .then(pl.concat_str([a, pl.lit(" "), b, pl.lit(" "), c]))
        .when(s == 3)
        .then(pl.concat_str([pl.lit("0086 "), pl.col("d")]))
        .when(s == 4)
        .then(pl.concat_str([a, pl.lit("-"), b, pl.lit("-"), c]))
        .when(s == 5)
        .then(pl.concat_str([pl.lit("+86"), pl.col("d")]))
        .otherwise(pl.col("d"))
    )
    return df.select(
        pl.when(pl.col("u") < missing)
        .then(pl.lit(None, dtype=pl.String))
        .when(pl.col("b") == 1)
        .then(pl.col("d").str.slice(0, 10))
        .when(pl.col("b") == 2)
        .then(pl.col("l"))
        .otherwise(nice)
        .alias("phone")
    )["phone"]


def emails(
    ctx: Context, rng: np.random.Generator, idx: I64, missing: float, upper: float = 0.08, invalid: float = 0.015
) -> pl.Series:
    """A person's email as one system stores it: ``missing`` of them empty; of the filled ones,
    ``invalid`` broken and ``upper`` in upper or capitalized case."""
    n = idx.size
    df = pl.DataFrame(
        {"e": ctx.people.email.gather(idx), "m": rng.random(n), "u": rng.random(n), "b": pick(rng, n, [1, 1, 1])}
    )
    u = pl.col("u")
    broken = (
        pl.when(pl.col("b") == 0)
        .then(pl.col("e").str.replace("@", "#", literal=True))
        .when(pl.col("b") == 1)
        .then(pl.col("e").str.replace(r"\.[a-z]+$", ""))
        .otherwise(pl.col("e").str.replace("@", "@@", literal=True))
    )
    cap = pl.concat_str([pl.col("e").str.slice(0, 1).str.to_uppercase(), pl.col("e").str.slice(1)])
    return df.select(
        pl.when(pl.col("m") < missing)
        .then(pl.lit(None, dtype=pl.String))
        .when(u < invalid)
        .then(broken)
        .when(u < invalid + upper / 2)
        .then(pl.col("e").str.to_uppercase())
        .when(u < invalid + upper)
        .then(cap)
        .otherwise(pl.col("e"))
        .alias("email")
    )["email"]


def companies(ctx: Context, rng: np.random.Generator, idx: I64, missing: float, short: float = 0.06) -> pl.Series:
    """A person's company: ``short`` of them without the city, ``missing`` of them empty."""
    u = rng.random(idx.size)
    full = ctx.people.company.gather(idx)
    full = full.scatter(np.flatnonzero(u < short), ctx.people.company_short.gather(idx[u < short]))
    return nulls(full, (u >= short) & (u < short + missing))


def opt(rng: np.random.Generator, s: pl.Series, missing: float) -> pl.Series:
    """An optional field: ``missing`` of the values left empty."""
    return nulls(s, rng.random(s.len()) < missing)


def channel_labels(rng: np.random.Generator, channel: I64, source: str) -> pl.Series:
    """Channel written the way each system's users write it; ~0.5 % left empty (but in spend)."""
    table = _CHANNEL_WRITING[source]
    flat: list[str | None] = []
    off = np.zeros(len(CHANNELS), dtype=np.int64)
    cnt = np.ones(len(CHANNELS), dtype=np.int64)
    for i, c in enumerate(CHANNELS):
        labels = table.get(c, CHANNEL_LABELS[c][:1])
        off[i], cnt[i] = len(flat), len(labels)
        flat.extend(labels)
    chosen = off[channel] + rng.integers(0, 1 << 20, channel.size) % cnt[channel]
    out = lookup(flat, chosen)
    if source == "spend":
        return out
    empty = np.zeros(channel.size, dtype=bool)
    empty[rng.choice(channel.size, size=channel.size // 200, replace=False)] = True
    return nulls(out, empty)
