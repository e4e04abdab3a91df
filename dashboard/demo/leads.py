"""Every lead of every source with its funnel, and who becomes a customer when (and who churns)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import polars as pl

from dashboard.demo.clock import Clock
from dashboard.demo.common import (
    DAY,
    EPOCH,
    F64,
    I64,
    NEVER,
    PURCHASED_CAP,
    Bool,
    concat,
    ids,
    lookup,
    norm,
    nulls,
    pick_rows,
    weekday,
)
from dashboard.demo.pool import People
from dashboard.demo.tables import CH, CHANNEL_CN, CHANNELS, SHOWS, THEMES, VENDORS

# share of the leads that become MQL, per channel
_P_MQL = np.array([0.40, 0.30, 0.35, 0.45, 0.45, 0.12, 0.65, 0.55])
# source per kind of lead (rows: fresh B2B, fresh B2C, repeat or upsell)
_SOURCE_TABLE = np.array([[0.30, 0.33, 0.22, 0.15], [0.20, 0.75, 0.05, 0.0], [0.45, 0.45, 0.10, 0.0]])


def _channel_table() -> F64:
    """Channel weights per source (rows: crm, web_forms, trade_show, purchased_leads)."""
    table = np.zeros((4, len(CHANNELS)))
    table[0, [CH[c] for c in CHANNELS]] = [0.10, 0.05, 0.10, 0.07, 0.08, 0.0, 0.30, 0.30]
    table[1, :4] = [0.35, 0.20, 0.15, 0.30]
    table[2, CH["trade_show"]] = 1
    table[3, CH["purchased_list"]] = 1
    return table


_CHANNEL_TABLE = _channel_table()


@dataclass(frozen=True)
class Leads:
    """Every lead in time order, one element per lead in each array."""

    person: I64
    source: I64  # 0 crm, 1 web_forms, 2 trade_show, 3 purchased_leads
    channel: I64  # index into CHANNELS
    created: I64
    reach: Bool  # (lead, stage): stage reached; stages lead, mql, sql, opportunity, won, lost
    t: I64  # (lead, stage): when
    amount: F64  # the deal's amount if won
    show_of: I64  # index into shows (-1: not a trade show lead)
    batch_of: I64  # purchased list batch (-1: not a purchased lead)
    id: pl.Series
    campaign: pl.Series
    shows: list[tuple[int, int, int, int]]  # (index into SHOWS, first day, length, year)
    batch_day: I64  # the day each purchased list batch was bought

    def show_names(self) -> pl.Series:
        return pl.Series([f"{year}{SHOWS[i][0]}" for i, _, _, year in self.shows], dtype=pl.String)

    def batch_names(self) -> pl.Series:
        names = []
        for k, d in enumerate(self.batch_day.tolist()):
            day = EPOCH.toordinal() + d
            when = date.fromordinal(day)
            names.append(f"{when.year}Q{(when.month - 1) // 3 + 1}-{VENDORS[k % len(VENDORS)]}-批次{k + 1}")
        return pl.Series(names, dtype=pl.String)


@dataclass(frozen=True)
class Customers:
    """Who is a customer since when, and how their activity runs out (one element per person)."""

    since: I64  # seconds; NEVER for persons who never become customers
    is_cust: Bool
    churn: Bool  # goes quiet, then stops
    end: I64  # the last second of their activity
    intensity: F64  # some customers are simply busier


def make_leads(rng: np.random.Generator, clock: Clock, people: People) -> tuple[Leads, Customers]:
    """The leads, then the customers (won prospects become customers; the same stream continues)."""
    leads = _leads(rng, clock, people)
    return leads, _customers(rng, clock, people, leads)


def _leads(rng: np.random.Generator, clock: Clock, people: People) -> Leads:
    person, kind, source = _persons_and_sources(rng, people)
    channel = pick_rows(rng, _CHANNEL_TABLE, source)
    created = _created(rng, clock, source)
    shows = _shows_in_window(clock)
    created, show_of = _at_shows(rng, clock, source, created, shows)
    created, batch_day, batch_of = _purchase_batches(rng, clock, source, created)
    reach, t = _funnel(rng, clock, kind, channel, created)
    b2b = people.b2b[person]
    nl = person.size
    b2b_amount = rng.lognormal(np.log(60_000), 0.8, nl)
    b2c_amount = rng.lognormal(np.log(4_000), 0.5, nl)
    amount: F64 = np.where(b2b, b2b_amount, b2c_amount).round(-1)
    order = np.argsort(created, kind="stable")
    leads = Leads(
        person=person[order],
        source=source[order],
        channel=channel[order],
        created=created[order],
        reach=reach[order],
        t=t[order],
        amount=amount[order],
        show_of=show_of[order],
        batch_of=batch_of[order],
        id=_lead_ids(source[order]),
        campaign=pl.Series(dtype=pl.String),
        shows=shows,
        batch_day=batch_day,
    )
    return replace(leads, campaign=_campaigns(rng, leads))


def _persons_and_sources(rng: np.random.Generator, people: People) -> tuple[I64, I64, I64]:
    """Whose leads they are (fresh prospects, repeats, upsells of base customers), and their source."""
    nl, nf, nb, block = people.nl, people.nf, people.nb, people.block
    nr = round(nl * 0.15)
    nu = nl - nf - nr
    prospects = np.arange(nb, nb + nf, dtype=np.int64)
    base_b2b = np.flatnonzero((block == 0) & people.b2b)
    base_all = np.flatnonzero(block == 0)
    upsell = np.where(
        rng.random(nu) < 0.8,
        base_b2b[rng.integers(0, max(1, base_b2b.size), nu)],
        base_all[rng.integers(0, base_all.size, nu)],
    )
    person = np.concatenate([prospects, prospects[rng.integers(0, nf, nr)], upsell])
    kind = np.repeat(np.arange(3), [nf, nr, nu])  # fresh / repeat / upsell
    # source: 0 crm, 1 web_forms, 2 trade_show, 3 purchased_leads
    row = np.where(kind == 0, np.where(people.b2b[person], 0, 1), 2)
    source = pick_rows(rng, _SOURCE_TABLE, row)
    pl_idx = np.flatnonzero(source == 3)
    if pl_idx.size > PURCHASED_CAP:
        source[pl_idx[PURCHASED_CAP:]] = 1
    return person, kind, source


def _created(rng: np.random.Generator, clock: Clock, source: I64) -> I64:
    """When each lead came in: growth trend, quiet weekends, 618 and 双11 bumps; some of today."""
    days = np.arange(clock.start, clock.today + 1, dtype=np.int64)
    month = pl.Series(days).cast(pl.Int32).cast(pl.Date).dt.month().to_numpy()
    w = (1 + 0.6 * (days - clock.start) / 730) * np.array([1, 1, 1, 1, 0.95, 0.55, 0.45])[weekday(days)]
    w = w * np.where(np.isin(month, [6, 11]), 1.25, 1.0)
    day = days[rng.choice(days.size, size=source.size, p=norm(w))]
    profile_ts = clock.ts(rng, day, "online")
    office_ts = clock.ts(rng, day, "office")
    created: I64 = np.where(source == 1, profile_ts, office_ts)
    for s in (0, 1):  # some leads of today, so "today" tiles are never empty
        idx = np.flatnonzero(source == s)
        k = min(idx.size, max(2, idx.size // 600))
        chosen = rng.choice(idx, size=k, replace=False)
        created[chosen] = clock.ts(rng, np.full(k, clock.today, dtype=np.int64), "office")
    return created


def _shows_in_window(clock: Clock) -> list[tuple[int, int, int, int]]:
    """The trade shows in the window (ended at least 3 days ago): (index, first day, length, year)."""
    shows: list[tuple[int, int, int, int]] = []
    for year in range(clock.as_of.year - 2, clock.as_of.year + 1):
        for i, (_, mo, dd, length, _city) in enumerate(SHOWS):
            first = (date(year, mo, dd) - EPOCH).days
            if clock.start <= first and first + length <= clock.today - 3:
                shows.append((i, first, length, year))
    return shows


def _at_shows(
    rng: np.random.Generator, clock: Clock, source: I64, created: I64, shows: list[tuple[int, int, int, int]]
) -> tuple[I64, I64]:
    """Trade show leads move to a day of their show; returns the times and each lead's show (-1: none)."""
    created = created.copy()
    ts_idx = np.flatnonzero(source == 2)
    which = rng.integers(0, len(shows), ts_idx.size)
    sh = np.array(shows, dtype=np.int64)
    sday = sh[which, 1] + rng.integers(0, 1 << 20, ts_idx.size) % sh[which, 2]
    created[ts_idx] = clock.ts(rng, sday, "show")
    show_of = np.full(source.size, -1, dtype=np.int64)
    show_of[ts_idx] = which
    return created, show_of


def _purchase_batches(rng: np.random.Generator, clock: Clock, source: I64, created: I64) -> tuple[I64, I64, I64]:
    """Purchased leads come in 6 batches; returns the times, each batch's day and each lead's batch."""
    created = created.copy()
    nbatch = 6
    batch_day = np.sort(rng.choice(np.arange(clock.start + 20, clock.today - 10), size=nbatch, replace=False))
    pl_idx = np.flatnonzero(source == 3)
    bw = rng.integers(0, nbatch, pl_idx.size)
    created[pl_idx] = batch_day[bw] * DAY + rng.integers(10 * 3600, 18 * 3600, pl_idx.size)
    batch_of = np.full(source.size, -1, dtype=np.int64)
    batch_of[pl_idx] = bw
    return created, batch_day.astype(np.int64), batch_of


def _funnel(rng: np.random.Generator, clock: Clock, kind: I64, channel: I64, created: I64) -> tuple[Bool, I64]:
    """The stage each lead reached and when (gamma-distributed durations, nothing after the cutoff)."""
    nl = created.size
    u = rng.random((nl, 6))
    reach = np.zeros((nl, 6), dtype=bool)  # lead, mql, sql, opportunity, won, lost
    t = np.zeros((nl, 6), dtype=np.int64)
    reach[:, 0] = True
    t[:, 0] = created
    p_mql = np.where(kind == 2, 0.6, _P_MQL[channel])
    reach[:, 1] = u[:, 0] < p_mql
    reach[:, 2] = reach[:, 1] & (u[:, 1] < 0.5)
    reach[:, 3] = reach[:, 2] & (u[:, 2] < 0.55)
    reach[:, 4] = reach[:, 3] & (u[:, 3] < 0.42)
    reach[:, 5] = (reach[:, 3] & ~reach[:, 4]) | (reach[:, 2] & ~reach[:, 3] & (u[:, 4] < 0.3))
    dur = np.stack(
        [
            rng.gamma(1.5, 3.0, nl),
            rng.gamma(2.0, 5.0, nl),
            rng.gamma(2.0, 8.0, nl),
            rng.gamma(2.5, 12.0, nl),
        ],
        axis=1,
    )
    for k in (1, 2, 3):
        t[:, k] = t[:, k - 1] + ((0.1 + dur[:, k - 1]) * DAY).astype(np.int64)
    close = np.where(reach[:, 3], t[:, 3], t[:, 2]) + ((1 + dur[:, 3]) * DAY).astype(np.int64)
    t[:, 4] = close
    t[:, 5] = close
    reach &= t <= clock.cutoff
    reach[:, 0] = True
    for k in (2, 3):
        reach[:, k] &= reach[:, k - 1]
    reach[:, 4] &= reach[:, 3]
    reach[:, 5] &= reach[:, 2]
    return reach, t


def _lead_ids(source: I64) -> pl.Series:
    """Lead ids: per-source prefixes, numbered in time order."""
    lead_id = pl.Series([""] * source.size, dtype=pl.String)
    for s, prefix in enumerate(("CRM-", "WEB-", "TS-", "PL-")):
        idx = np.flatnonzero(source == s)
        lead_id = lead_id.scatter(idx, ids(prefix, idx.size, 8, start=10001 if s == 0 else 1))
    return lead_id


def _campaigns(rng: np.random.Generator, leads: Leads) -> pl.Series:
    """Campaign per lead: "2024Q3-百度-品牌词" by channel theme; trade shows and lists name their own."""
    nl = leads.id.len()
    day = leads.created // DAY
    d = pl.Series(day).cast(pl.Int32).cast(pl.Date)
    quarter = concat(d.dt.year().cast(pl.String), "Q", d.dt.quarter().cast(pl.String))
    nthemes = np.array([len(t) for t in THEMES], dtype=np.int64)
    theme_flat = [t for themes in THEMES for t in themes]
    offset = np.concatenate([[0], np.cumsum(nthemes)[:-1]])
    ch = leads.channel
    has = nthemes[ch] > 0
    ti = offset[ch] + rng.integers(0, 1 << 20, nl) % np.maximum(nthemes[ch], 1)
    camp = concat(quarter, "-", lookup(CHANNEL_CN, ch), "-", lookup(theme_flat, np.where(has, ti, 0)))
    camp = nulls(camp, ~has)
    shows = np.flatnonzero(leads.show_of >= 0)
    if shows.size:
        camp = camp.scatter(shows, leads.show_names().gather(leads.show_of[shows]))
    batches = np.flatnonzero(leads.batch_of >= 0)
    if batches.size:
        camp = camp.scatter(batches, leads.batch_names().gather(leads.batch_of[batches]))
    return camp


def _customers(rng: np.random.Generator, clock: Clock, people: People, leads: Leads) -> Customers:
    """Won prospects become customers at their first win; 15 % of customers older than a year
    go quiet, then stop 1.5-11 months before as_of."""
    m = people.m
    won_ts = np.where(leads.reach[:, 4], leads.t[:, 4], NEVER)
    first_win = np.full(m, NEVER, dtype=np.int64)
    np.minimum.at(first_win, leads.person, won_ts)
    since = np.where(people.block == 1, first_win, people.since)
    is_cust = since < NEVER
    old = is_cust & (since < (clock.today - 365) * DAY)
    churn = old & (rng.random(m) < 0.15)
    churn_day = rng.integers(clock.today - 330, clock.today - 45, m)
    end = np.where(churn, churn_day * DAY + 18 * 3600, clock.cutoff)
    return Customers(since, is_cust, churn, end, rng.gamma(1.3, 1 / 1.3, m))
