"""The ERP source: an SAP-style nightly extract of customers (KNA1), orders (VBAK) and contracts, as Parquet."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from dashboard.demo.common import DAY, F64, I64, fmt_day, fmt_ts, ids, lookup, nulls, pick, pick_rows, with_dups
from dashboard.demo.context import Context
from dashboard.demo.dirty import companies, emails, names, phones
from dashboard.demo.memberships import first_rows, second
from dashboard.demo.tables import B2B_PRODUCTS, B2C_PRODUCTS, B2C_W, CITY, REGIONS


@dataclass(frozen=True)
class _Customers:
    kunnr: pl.Series  # per customer record
    first: I64  # per person: the row of their first customer record (-1: none)
    persons: I64  # the persons with a customer record, ascending
    rows: int


@dataclass(frozen=True)
class _Won:
    lead: I64  # the won leads whose person is an ERP customer, the order booked by now
    person: I64
    ts: I64  # when the order behind the deal was booked


def write(ctx: Context) -> None:
    """kna1_customers.parquet, vbak_orders.parquet and contracts.parquet."""
    rng = ctx.rng("erp")
    cust = _customers(ctx, rng)
    orders, won = _orders(ctx, rng, cust)
    contracts = _contracts(ctx, rng, cust, won)
    ctx.say(f"erp: {cust.rows:,} customers, {orders:,} orders, {contracts:,} contracts")


def _customers(ctx: Context, rng: np.random.Generator) -> _Customers:
    people = ctx.people
    who, created = second(rng, ctx.clock, np.flatnonzero(ctx.members.in_erp), ctx.customers.since, 0.01)
    kunnr = ids("00", who.size, 8, start=10_000_001)
    first = first_rows(people.m, who)
    b2b = people.b2b[who]
    updated = ctx.clock.after(rng, created, "office")
    customers = pl.DataFrame(
        {
            "KUNNR": kunnr,
            "NAME1": names(ctx, rng, who, typo=0.02),
            "NAME2": companies(ctx, rng, who, missing=0.02),
            "TELF1": phones(ctx, rng, who, [40, 35, 5, 10, 5, 5], missing=0.08),
            "SMTP_ADDR": emails(ctx, rng, who, missing=0.5),
            "STCD1": nulls(people.id_number.gather(who), b2b | (rng.random(who.size) < 0.6)),
            "BRSCH": people.industry.gather(who),
            "VKBUR_TXT": lookup(REGIONS, people.region[who]),
            "ORT01": lookup(CITY, people.city[who]),
            "SALES_REP": nulls(lookup(ctx.words.reps, people.owner[who]), ~b2b & (rng.random(who.size) < 0.7)),
            "ERDAT": fmt_ts(created, "%Y%m%d"),
            "AEDAT": fmt_ts(updated, "%Y%m%d"),
        }
    )
    customers = with_dups(customers, rng)
    customers.write_parquet(ctx.out("erp", "kna1_customers.parquet"))
    ctx.count("erp.customers", customers.height)
    ctx.add_truth("erp", kunnr, who)
    return _Customers(kunnr, first, np.unique(who), customers.height)


def _order_times(ctx: Context, rng: np.random.Generator, cust: _Customers) -> tuple[I64, I64, F64, _Won]:
    """Regular re-orders per customer, plus the order behind every won deal: person, time, amount
    (NaN: priced from the product), and the won deals."""
    clock, customers, leads, uniq = ctx.clock, ctx.customers, ctx.leads, cust.persons
    rate = np.where(ctx.people.b2b[uniq], 0.25, 0.08) / 30 * customers.intensity[uniq]
    owner, day = clock.spread(rng, customers.since[uniq], customers.end[uniq], rate, customers.churn[uniq])
    o_person = uniq[owner]
    o_ts = clock.clip(rng, clock.ts(rng, day, "office"), customers.since[o_person], customers.end[o_person])
    nl = leads.person.size
    w_ts = leads.t[:, 4] + rng.integers(1, 10, nl) * DAY + rng.integers(-3600, 3600, nl)
    won = np.flatnonzero(leads.reach[:, 4] & (cust.first[leads.person] >= 0) & (w_ts <= clock.cutoff))
    w_person, w_ts = leads.person[won], w_ts[won]
    person = np.concatenate([o_person, w_person])
    ts = np.concatenate([o_ts, w_ts])
    forced = np.concatenate([np.full(o_person.size, np.nan), leads.amount[won]])
    order = np.argsort(ts, kind="stable")
    return person[order], ts[order], forced[order], _Won(won, w_person, w_ts)


def _orders(ctx: Context, rng: np.random.Generator, cust: _Customers) -> tuple[int, _Won]:
    """vbak_orders.parquet; returns the rows written and the won deals."""
    person, ts, forced, won = _order_times(ctx, rng, cust)
    n = ts.size
    b2b = ctx.people.b2b[person]
    bp = rng.integers(0, len(B2B_PRODUCTS), n)
    lo = np.array([p[2] for p in B2B_PRODUCTS])[bp]
    hi = np.array([p[3] for p in B2B_PRODUCTS])[bp]
    b_qty = np.floor(np.exp(np.log(lo) + rng.random(n) * (np.log(hi + 1) - np.log(lo)))).astype(np.int64)
    b_price = np.array([p[1] for p in B2B_PRODUCTS])[bp]
    cp = pick(rng, n, B2C_W)
    c_qty = 1 + pick(rng, n, [90, 8, 2])
    c_price = np.array([p[1] for p in B2C_PRODUCTS])[cp]
    qty = np.where(b2b, b_qty, c_qty).astype(np.float64)
    listed = np.where(b2b, b_price * b_qty, c_price * c_qty) * rng.uniform(0.82, 1.0, n)
    amount = np.round(np.where(np.isnan(forced), listed, forced), 2)
    product = lookup([p[0] for p in B2B_PRODUCTS], bp).zip_with(
        pl.Series(b2b), lookup([p[0] for p in B2C_PRODUCTS], cp)
    )
    age = (ctx.clock.cutoff - ts) / DAY
    status = np.where(age < 7, pick(rng, n, [6, 3, 1]), np.where(age < 30, pick(rng, n, [1, 3, 6]), 2))
    status = np.where(rng.random(n) < 0.01, 3, status)
    orders = pl.DataFrame(
        {
            "VBELN": ids("00", n, 8, start=20_000_001),
            "KUNNR": cust.kunnr.gather(cust.first[person]),
            "ERDAT": fmt_ts(ts, "%Y%m%d"),
            "NETWR": amount,
            "WAERK": lookup(["CNY"], np.zeros(n, dtype=np.int64)),
            "ARKTX": product,
            "KWMENG": qty,
            "GBSTK": lookup(["A", "B", "C", "已取消"], status.astype(np.int64)),
        }
    )
    orders = with_dups(orders, rng)
    orders.write_parquet(ctx.out("erp", "vbak_orders.parquet"))
    ctx.count("erp.orders", orders.height)
    return orders.height, won


def _contract_signings(ctx: Context, rng: np.random.Generator, cust: _Customers, won: _Won) -> tuple[I64, I64, F64]:
    """Contracts of B2B customers: yearly framework contracts plus every won B2B deal; person,
    signing time, amount, in signing order."""
    clock, customers, leads, b2b = ctx.clock, ctx.customers, ctx.leads, ctx.people.b2b
    bb = cust.persons[b2b[cust.persons]]
    owner, day = clock.spread(
        rng, customers.since[bb], customers.end[bb], np.full(bb.size, 1 / 365), customers.churn[bb]
    )
    won_b2b = won.lead[b2b[won.person]]
    c_person = np.concatenate([bb[owner], won.person[b2b[won.person]]])
    c_sign = np.concatenate(
        [
            clock.clip(rng, clock.ts(rng, day, "office"), customers.since[bb[owner]], customers.end[bb[owner]]),
            leads.t[won_b2b, 4],
        ]
    )
    c_amt = np.concatenate([np.round(rng.lognormal(np.log(120_000), 0.7, owner.size), -2), leads.amount[won_b2b]])
    order = np.argsort(c_sign, kind="stable")
    return c_person[order], c_sign[order], c_amt[order]


def _contracts(ctx: Context, rng: np.random.Generator, cust: _Customers, won: _Won) -> int:
    """contracts.parquet with payment terms and payments; returns the rows written."""
    c_person, c_sign, c_amt = _contract_signings(ctx, rng, cust, won)
    today = ctx.clock.today
    n = c_sign.size
    term = np.array([30, 60, 90], dtype=np.int64)[pick(rng, n, [5, 3, 2])]
    due = c_sign // DAY + term
    # payment behaviour: on time, late, partly, never (churners pay worse)
    churn = ctx.customers.churn[c_person].astype(np.int64)
    behave = pick_rows(rng, np.array([[72.0, 18, 4, 6], [40, 25, 12, 23]]), churn)
    delay = np.where(behave == 0, -rng.integers(0, 20, n), rng.integers(5, 120, n))
    paid_day = due + delay
    paid_ok = (behave < 3) & (paid_day <= today)
    share = np.where(behave == 2, rng.uniform(0.3, 0.8, n), 1.0)
    paid_amt = np.where(paid_ok, np.round(c_amt * share, 2), 0.0)
    paid_at = nulls(fmt_day(np.minimum(paid_day, today), "%Y%m%d"), ~paid_ok)
    contracts = pl.DataFrame(
        {
            "VBELN": ids("00", n, 8, start=40_000_001),
            "KUNNR": cust.kunnr.gather(cust.first[c_person]),
            "VBEGDAT": fmt_ts(c_sign, "%Y%m%d"),
            "NETWR": c_amt,
            "ZTERM": lookup(["Z030", "Z060", "Z090"], (term // 30 - 1).astype(np.int64)),
            "NETDT": fmt_day(due, "%Y%m%d"),
            "ZPAID_AMT": paid_amt,
            "AUGDT": paid_at,
            "WAERK": lookup(["CNY"], np.zeros(n, dtype=np.int64)),
        }
    )
    contracts.write_parquet(ctx.out("erp", "contracts.parquet"))
    ctx.count("erp.contracts", contracts.height)
    return contracts.height
