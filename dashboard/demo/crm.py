"""The CRM source: accounts, sales-entered leads, follow-up activities and every lead's stage history."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from dashboard.demo.common import (
    DAY,
    I64,
    NEVER,
    Bool,
    fill_template,
    fmt_ts,
    ids,
    lookup,
    nulls,
    pick,
    with_dups,
)
from dashboard.demo.context import Context
from dashboard.demo.dirty import channel_labels, companies, emails, names, opt, phones
from dashboard.demo.memberships import first_rows, second
from dashboard.demo.tables import B2B_PRODUCTS, B2C_PRODUCTS, CITY, REGIONS, STAGE_LABELS

_KINDS = ("上门拜访", "电话沟通", "微信沟通", "邮件", "方案演示")
_KIND_W = np.array([30, 35, 24, 5, 6], dtype=np.float64)
_OUTCOMES = ("有意向", "待跟进", "已报价", "无意向", "已成交", "暂无预算")
_NOTES = (
    "客户关注{}价格,约下周复访",
    "已发送{}方案及报价单",
    "演示{},客户反馈良好",
    "对方负责人出差,改期沟通{}",
    "客户比较{}与竞品,需提供案例",
    "{}项目预算待审批",
)
_TIME = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class _Accounts:
    id: pl.Series  # per account
    of: I64  # per person: the row of their first account (-1: none)
    created: I64  # per person: when their first account was created (NEVER: none)
    rows: int


def write(ctx: Context) -> None:
    """crm_accounts.csv, crm_leads.csv, crm_activities.csv and crm_lead_stage_history.csv (UTF-8 CSV)."""
    rng = ctx.rng("crm")
    acc = _accounts(ctx, rng)
    leads = _leads(ctx, rng, acc)
    acts = _activities(ctx, rng, acc)
    events = _stage_history(ctx, rng)
    ctx.say(f"crm: {acc.rows:,} accounts, {leads:,} leads, {acts:,} activities, {events:,} stage events")


def _accounts(ctx: Context, rng: np.random.Generator) -> _Accounts:
    """Accounts (客户档案): B2B customers; activities and leads refer to a person's first account."""
    people, since = ctx.people, ctx.customers.since
    created = np.where(
        people.block == 0, since - rng.integers(0, 30, people.m) * DAY, since + rng.integers(0, 3600, people.m)
    )
    who, created_acc = second(rng, ctx.clock, np.flatnonzero(ctx.members.in_crm), created, 0.01)
    order = np.argsort(created_acc, kind="stable")
    who, created_acc = who[order], created_acc[order]
    acc_id = ids("KH", who.size, 8, start=100001)
    acc_of = first_rows(people.m, who)
    acc_created = np.where(acc_of >= 0, created_acc[np.maximum(acc_of, 0)], NEVER)
    updated = ctx.clock.after(rng, created_acc, "office")
    accounts = pl.DataFrame(
        {
            "客户编号": acc_id,
            "客户名称": companies(ctx, rng, who, missing=0.01),
            "联系人": names(ctx, rng, who, typo=0.03, space=0.01),
            "手机": phones(ctx, rng, who, [70, 5, 10, 0, 15, 0], missing=0.04),
            "邮箱": emails(ctx, rng, who, missing=0.45),
            "行业": opt(rng, people.industry.gather(who), 0.15),
            "所属区域": lookup(REGIONS, people.region[who]),
            "城市": lookup(CITY, people.city[who]),
            "负责人": lookup(ctx.words.reps, people.owner[who]),
            "创建时间": fmt_ts(created_acc, _TIME),
            "最后修改时间": fmt_ts(updated, _TIME),
        }
    )
    accounts = with_dups(accounts, rng)
    accounts.write_csv(ctx.out("crm", "crm_accounts.csv"))
    ctx.count("crm.customers", accounts.height)
    ctx.add_truth("crm", acc_id, who)
    return _Accounts(acc_id, acc_of, acc_created, accounts.height)


def _leads(ctx: Context, rng: np.random.Generator, acc: _Accounts) -> int:
    """Leads entered in the CRM by sales (CRM-...); returns the rows written."""
    people, leads = ctx.people, ctx.leads
    idx = np.flatnonzero(leads.source == 0)
    p = leads.person[idx]
    frame = pl.DataFrame(
        {
            "线索编号": leads.id.gather(idx),
            "创建时间": fmt_ts(leads.created[idx], _TIME),
            "线索来源": channel_labels(rng, leads.channel[idx], "crm"),
            "市场活动": leads.campaign.gather(idx),
            "客户编号": nulls(acc.id.gather(np.maximum(acc.of[p], 0)), acc.of[p] < 0),
            "姓名": names(ctx, rng, p, typo=0.03, space=0.01),
            "手机": phones(ctx, rng, p, [70, 5, 10, 0, 15, 0], missing=0.03),
            "邮箱": emails(ctx, rng, p, missing=0.55),
            "公司名称": companies(ctx, rng, p, missing=0.1),
            "所属区域": opt(rng, lookup(REGIONS, people.region[p]), 0.02),
            "负责人": lookup(ctx.words.reps, people.owner[p]),
            "线索状态": _current_stage(leads.reach[idx]),
        }
    )
    frame = with_dups(frame, rng)
    frame.write_csv(ctx.out("crm", "crm_leads.csv"))
    ctx.count("crm.leads", frame.height)
    ctx.add_truth("crm", leads.id.gather(idx), p)
    return frame.height


def _activity_times(ctx: Context, rng: np.random.Generator, acc: _Accounts) -> tuple[I64, I64, I64]:
    """Follow-ups on accounts (decaying for churners) and on qualified leads: person, time, lead (-1)."""
    clock, customers, leads = ctx.clock, ctx.customers, ctx.leads
    holders = np.flatnonzero(acc.of >= 0)
    owner, day = clock.spread(
        rng,
        acc.created[holders],
        customers.end[holders],
        0.45 / 30 * customers.intensity[holders],
        customers.churn[holders],
    )
    a_person = holders[owner]
    a_ts = clock.clip(rng, clock.weekdays(rng, day, "office"), acc.created[a_person], customers.end[a_person])
    q = np.flatnonzero(leads.reach[:, 1])
    nact = 1 + rng.poisson(np.where(leads.reach[q, 3], 3.0, 1.0))
    lq = np.repeat(q, nact)
    lo = leads.t[lq, 1] + 600
    last = np.minimum(np.where(leads.reach[lq, 3], leads.t[lq, 3], leads.t[lq, 1]) + 14 * DAY, clock.cutoff)
    l_ts = lo + (rng.random(lq.size) * (last - lo)).astype(np.int64)
    l_ts = clock.clip(rng, clock.weekdays(rng, l_ts // DAY, "office"), lo, last)
    person = np.concatenate([a_person, leads.person[lq]])
    ts = np.concatenate([a_ts, l_ts])
    lead_ref = np.concatenate([np.full(a_person.size, -1, dtype=np.int64), lq])
    order = np.argsort(ts, kind="stable")
    return person[order], ts[order], lead_ref[order]


def _activities(ctx: Context, rng: np.random.Generator, acc: _Accounts) -> int:
    """crm_activities.csv; returns the rows written."""
    person, ts, lead_ref = _activity_times(ctx, rng, acc)
    people, customers = ctx.people, ctx.customers
    n = ts.size
    has_acc = (acc.of[person] >= 0) & (acc.created[person] <= ts)
    kind = pick(rng, n, _KIND_W)
    outcome = np.where(
        customers.churn[person] & (ts > customers.end[person] - 120 * DAY),
        pick(rng, n, [1, 3, 0, 4, 0, 3]),
        pick(rng, n, [5, 4, 3, 2, 1, 1]),
    )
    note_t = rng.integers(0, len(_NOTES), n)
    b2b = people.b2b[person]
    product = np.where(b2b, rng.integers(0, len(B2B_PRODUCTS), n), 0)
    prod_name = lookup([p[0] for p in B2B_PRODUCTS], np.minimum(product, len(B2B_PRODUCTS) - 1)).zip_with(
        pl.Series(b2b), lookup([p[0] for p in B2C_PRODUCTS], rng.integers(0, 10, n))
    )
    note = fill_template(lookup(_NOTES, note_t), prod_name)
    acts = pl.DataFrame(
        {
            "跟进记录编号": ids("GJ", n, 9, start=1),
            "客户编号": nulls(acc.id.gather(np.maximum(acc.of[person], 0)), ~has_acc),
            "线索编号": nulls(ctx.leads.id.gather(np.maximum(lead_ref, 0)), lead_ref < 0),
            "跟进方式": lookup(_KINDS, kind),
            "跟进时间": fmt_ts(ts, "%Y-%m-%d %H:%M"),
            "跟进结果": lookup(_OUTCOMES, outcome),
            "跟进内容": opt(rng, note, 0.2),
            "跟进人": lookup(ctx.words.reps, people.owner[person]),
        }
    )
    acts = with_dups(acts, rng)
    acts.write_csv(ctx.out("crm", "crm_activities.csv"))
    ctx.count("crm.interactions", acts.height)
    return acts.height


def _stage_history(ctx: Context, rng: np.random.Generator) -> int:
    """The funnel history of every lead, from every source (the CRM imports them all)."""
    leads = ctx.leads
    ev_lead, ev_stage = np.nonzero(leads.reach)
    ev_ts = leads.t[ev_lead, ev_stage]
    order = np.lexsort((ev_stage, ev_ts))
    ev_lead, ev_stage, ev_ts = ev_lead[order].astype(np.int64), ev_stage[order].astype(np.int64), ev_ts[order]
    english = leads.created[ev_lead] < (ctx.clock.start + 200) * DAY
    labels = _stage_labels(rng, ev_stage, english)
    amount = pl.Series(np.where(ev_stage == 4, leads.amount[ev_lead], np.nan)).fill_nan(None)
    events = pl.DataFrame(
        {
            "线索编号": leads.id.gather(ev_lead),
            "阶段": labels,
            "变更时间": fmt_ts(ev_ts, _TIME),
            "金额(元)": amount,
        }
    )
    events.write_csv(ctx.out("crm", "crm_lead_stage_history.csv"), float_precision=2)
    ctx.count("crm.lead_events", events.height)
    return events.height


def _current_stage(reach: Bool) -> pl.Series:
    cur = np.where(reach[:, 4], 4, np.where(reach[:, 5], 5, np.argmax(reach[:, :4] * np.arange(1, 5), axis=1)))
    return lookup(["新线索", "MQL", "SQL", "商机", "赢单", "输单"], cur.astype(np.int64))


def _stage_labels(rng: np.random.Generator, stage: I64, english: Bool) -> pl.Series:
    """Stage labels: leads of the old (Salesforce) CRM mostly in English, the rest in Chinese."""
    flat: list[str] = []
    en_off, zh_off, en_n, zh_n = [], [], [], []
    for en, zh in STAGE_LABELS.values():
        en_off.append(len(flat))
        en_n.append(len(en))
        flat.extend(en)
        zh_off.append(len(flat))
        zh_n.append(len(zh))
        flat.extend(zh)
    r = rng.integers(0, 1 << 20, stage.size)
    use_en = english & (rng.random(stage.size) < 0.8)
    eo, zo, en_k, zh_k = (np.array(a, dtype=np.int64) for a in (en_off, zh_off, en_n, zh_n))
    i = np.where(use_en, eo[stage] + r % en_k[stage], zo[stage] + r % zh_k[stage])
    return lookup(flat, i)
