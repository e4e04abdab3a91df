"""The POS source: store members and their receipts, UTF-8 CSV with BOM."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from dashboard.demo.common import I64, concat, fmt_day, fmt_ts, ids, lookup, pick, with_dups
from dashboard.demo.context import Context
from dashboard.demo.dirty import emails, names, opt, phones
from dashboard.demo.memberships import second
from dashboard.demo.tables import B2C_PRODUCTS, B2C_W, CITIES, CITY, CITY_W

_MALLS = ("万象城店", "来福士店", "吾悦广场店", "万达广场店", "大悦城店", "银泰店", "龙湖天街店")


@dataclass(frozen=True)
class _Stores:
    names: list[str]
    city: I64  # per store
    first: I64  # per city: its first store
    count: I64  # per city: how many stores


def _stores() -> _Stores:
    """1-3 stores per city (more in bigger cities)."""
    stores: list[tuple[str, int]] = []
    for ci, (city, *_rest) in enumerate(CITIES):
        k = 1 + int(CITY_W[ci] >= 3) + int(CITY_W[ci] >= 6)
        stores.extend((f"{city}{_MALLS[(ci + j) % len(_MALLS)]}", ci) for j in range(k))
    store_city = np.array([c for _, c in stores], dtype=np.int64)
    first_store = np.array([np.flatnonzero(store_city == c)[0] for c in range(len(CITIES))], dtype=np.int64)
    n_store = np.bincount(store_city, minlength=len(CITIES))
    return _Stores([s for s, _ in stores], store_city, first_store, n_store)


_STORES = _stores()


@dataclass(frozen=True)
class _Cards:
    """One element per member card."""

    who: I64  # the person
    created: I64
    card: pl.Series  # the card number
    home: I64  # the store that issued it
    rows: int  # rows written to members.csv


def write(ctx: Context) -> None:
    """members.csv and sales.csv."""
    rng = ctx.rng("pos")
    cards = _members(ctx, rng)
    sales = _sales(ctx, rng, cards)
    ctx.say(f"pos: {cards.rows:,} members, {sales:,} sales")


def _members(ctx: Context, rng: np.random.Generator) -> _Cards:
    """members.csv."""
    people = ctx.people
    who, created = second(rng, ctx.clock, np.flatnonzero(ctx.members.in_pos), ctx.customers.since, 0.02)
    n = who.size
    card = ids("86", n, 10, start=1_000_000_001)
    home = _STORES.first[people.city[who]] + rng.integers(0, 1 << 20, n) % _STORES.count[people.city[who]]
    updated = ctx.clock.after(rng, created, "retail")
    members = pl.DataFrame(
        {
            "会员卡号": card,
            "会员姓名": names(ctx, rng, who, typo=0.03),
            "手机号": phones(ctx, rng, who, [85, 0, 10, 0, 5, 0], missing=0.01),
            "邮箱": emails(ctx, rng, who, missing=0.85),
            "性别": opt(rng, lookup(("男", "女"), (people.gender[who] == "女").astype(np.int64)), 0.2),
            "生日": opt(rng, fmt_day(people.birth[who], "%Y-%m-%d"), 0.5),
            "开卡门店": lookup(_STORES.names, home),
            "城市": lookup(CITY, people.city[who]),
            "开卡日期": fmt_ts(created, "%Y-%m-%d"),
            "最近更新": fmt_ts(updated, "%Y-%m-%d %H:%M:%S"),
        }
    )
    members = with_dups(members, rng)
    members.write_csv(ctx.out("pos", "members.csv"), include_bom=True)
    ctx.count("pos.customers", members.height)
    ctx.add_truth("pos", card, who)
    return _Cards(who, created, card, home, members.height)


def _sales(ctx: Context, rng: np.random.Generator, cards: _Cards) -> int:
    """sales.csv: receipts (sales and refunds) per member card; returns the rows written."""
    clock, customers = ctx.clock, ctx.customers
    who, created = cards.who, cards.created
    rate = 0.18 / 30 * customers.intensity[who]
    owner, day = clock.spread(rng, created, customers.end[who], rate, customers.churn[who])
    ts = clock.clip(rng, clock.ts(rng, day, "retail"), created[owner], customers.end[who[owner]])
    order = np.argsort(ts, kind="stable")
    owner, ts = owner[order], ts[order]
    k = ts.size
    store = np.where(rng.random(k) < 0.85, cards.home[owner], rng.integers(0, len(_STORES.names), k))
    prod = pick(rng, k, B2C_W)
    qty = 1 + pick(rng, k, [88, 9, 3])
    price = np.array([p[1] for p in B2C_PRODUCTS])[prod]
    amount = np.round(price * qty * np.where(rng.random(k) < 0.3, rng.uniform(0.7, 0.95, k), 1.0), 2)
    refund = rng.random(k) < 0.015
    sales = pl.DataFrame(
        {
            "小票号": concat("S", pl.Series(store + 101).cast(pl.String), fmt_ts(ts, "%Y%m%d"), ids("", k, 7)),
            "会员卡号": cards.card.gather(owner),
            "交易时间": fmt_ts(ts, "%Y-%m-%d %H:%M:%S"),
            "门店": lookup(_STORES.names, store),
            "商品名称": lookup([p[0] for p in B2C_PRODUCTS], prod),
            "数量": qty,
            "实收金额": amount,
            "交易类型": lookup(("销售", "退货"), refund.astype(np.int64)),
        }
    )
    sales = with_dups(sales, rng)
    sales.write_csv(ctx.out("pos", "sales.csv"), include_bom=True, float_precision=2)
    ctx.count("pos.orders", sales.height)
    return sales.height
