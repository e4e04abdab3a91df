"""The call center source: the 400 hotline's monthly call logs (``;``-separated), callers known by number."""

from __future__ import annotations

import numpy as np
import polars as pl

from dashboard.demo.common import DAY, I64, Bool, concat, fill_template, fmt_ts, ids, lookup, nulls, pick, with_dups
from dashboard.demo.context import Context
from dashboard.demo.dirty import opt
from dashboard.demo.tables import B2C_PRODUCTS, B2C_W, CH

_TYPES = ("Inquiry", "Complaint", "Service Request", "Installation", "Outbound Follow-up")
_QUEUE = ("400-Sales", "400-Complaint", "400-Service", "400-Service", "Outbound")
_RESULTS = ("Resolved", "Escalated", "Callback Scheduled", "Transferred", "No Answer")
_NOTES = (
    ("咨询{}价格及安装费用", "咨询{}功能", "咨询酒店客控方案报价"),
    ("投诉安装师傅迟到", "投诉{}故障未及时处理", "要求退货退款", "投诉售后态度差"),
    ("{}报修", "{}无法联网", "净水器漏水报修", "门锁电量低报警"),
    ("预约{}上门安装", "改约安装时间"),
    ("回访满意度:满意", "回访满意度:一般", "活动邀约", "续保提醒"),
)


def write(ctx: Context) -> None:
    """calls_<yyyymm>.csv; the numbers called from become customers in the ground truth."""
    rng = ctx.rng("call_center")
    person, ts, lead, inquiry = _call_times(ctx, rng)
    n = ts.size
    ctype, result = _types_and_results(ctx, rng, person, ts, inquiry)
    number = pl.Series(ctx.people.phone[person]).cast(pl.String)
    number = pl.select(
        pl.when(pl.lit(pl.Series(ctx.people.zero_prefix[person])))
        .then(pl.concat_str([pl.lit("0"), pl.lit(number)]))
        .otherwise(pl.lit(number))
    ).to_series()
    note = _notes(rng, ctype)
    dur = np.where(result == 4, 0, np.round(rng.lognormal(np.log(180), 0.7, n))).astype(np.int64)
    agents = max(20, ctx.n // 400)
    calls = pl.DataFrame(
        {
            "call_id": concat("CL", fmt_ts(ts, "%Y%m%d"), ids("", n, 7)),
            "direction": lookup(("IN", "OUT"), (ctype == 4).astype(np.int64)),
            "customer_number": number,
            "start_time": fmt_ts(ts, "%Y/%m/%d %H:%M:%S"),
            "duration_sec": dur,
            "queue": lookup(_QUEUE, ctype),
            "call_type": lookup(_TYPES, ctype),
            "disposition": lookup(_RESULTS, result),
            "agent_id": concat("A", pl.Series(1000 + rng.integers(0, agents, n)).cast(pl.String)),
            "lead_id": nulls(ctx.leads.id.gather(np.maximum(lead, 0)), lead < 0),
            "remark": opt(rng, note, 0.15),
        }
    )
    calls = with_dups(calls.with_columns(fmt_ts(ts, "%Y%m").alias("_m")), rng)
    for (key,), part in calls.partition_by("_m", as_dict=True, maintain_order=True).items():
        part.drop("_m").write_csv(ctx.out("call_center", f"calls_{key}.csv"), separator=";")
    ctx.count("call_center.interactions", calls.height)
    ctx.add_truth("call_center", number, person)
    ctx.say(f"call_center: {calls.height:,} calls")


def _call_times(ctx: Context, rng: np.random.Generator) -> tuple[I64, I64, I64, Bool]:
    """Calls of customers, prospects and number-only callers, the hotline call behind every CRM lead
    whose channel is the 400 line and the inquiries of journeys before a deal closes: person, time,
    lead (-1), whether a sales inquiry, in time order."""
    clock, customers, leads, people = ctx.clock, ctx.customers, ctx.leads, ctx.people
    who = np.flatnonzero(ctx.members.in_calls)
    first_lead = ctx.members.first_lead[who]
    is_cust = customers.is_cust[who]
    begin = np.where(is_cust, customers.since[who], np.minimum(first_lead, clock.cutoff - DAY))
    begin = np.where(people.block[who] == 3, rng.integers(clock.start, clock.today, who.size) * DAY, begin)
    rate = np.where(is_cust, 0.36, 0.18) / 30 * customers.intensity[who]
    owner, day = clock.spread(rng, begin, customers.end[who], rate, np.zeros(who.size, dtype=bool))
    person = who[owner]
    ts = clock.clip(rng, clock.ts(rng, day, "call"), begin[owner], customers.end[person])
    lead = np.full(person.size, -1, dtype=np.int64)
    cl = np.flatnonzero((leads.channel == CH["call_center"]) & (leads.source == 0))
    person = np.concatenate([person, leads.person[cl]])
    ts = np.concatenate([ts, leads.created[cl] - rng.integers(120, 1800, cl.size)])
    lead = np.concatenate([lead, cl])
    inquiry = lead >= 0
    journey = ctx.journeys.calls  # the caller is known by number only: no lead id
    person = np.concatenate([person, journey.person])
    ts = np.concatenate([ts, journey.ts])
    lead = np.concatenate([lead, np.full(journey.ts.size, -1, dtype=np.int64)])
    inquiry = np.concatenate([inquiry, np.ones(journey.ts.size, dtype=bool)])
    order = np.argsort(ts, kind="stable")
    return person[order], ts[order], lead[order], inquiry[order]


def _types_and_results(ctx: Context, rng: np.random.Generator, person: I64, ts: I64, inquiry: Bool) -> tuple[I64, I64]:
    """Call type (index into _TYPES; complaints grow before churn) and result (index into _RESULTS)."""
    customers = ctx.customers
    n = ts.size
    late = customers.churn[person] & (ts > customers.end[person] - 150 * DAY)
    ctype = np.where(
        inquiry,
        0,
        np.where(late, pick(rng, n, [15, 40, 30, 5, 10]), pick(rng, n, [30, 8, 30, 12, 20])),
    )
    outbound = ctype == 4
    result = np.where(
        ctype == 1,
        pick(rng, n, [40, 35, 20, 5, 0]),
        np.where(outbound, pick(rng, n, [50, 0, 15, 0, 35]), pick(rng, n, [70, 5, 10, 12, 3])),
    )
    return ctype, result


def _notes(rng: np.random.Generator, ctype: I64) -> pl.Series:
    """The agent's remark: a note of the call's type, naming a product where it has a ``{}``."""
    n = ctype.size
    flat: list[str] = []
    off = np.zeros(len(_TYPES), dtype=np.int64)
    cnt = np.zeros(len(_TYPES), dtype=np.int64)
    for i, notes in enumerate(_NOTES):
        off[i], cnt[i] = len(flat), len(notes)
        flat.extend(notes)
    ni = off[ctype] + rng.integers(0, 1 << 20, n) % cnt[ctype]
    prod = lookup([p[0] for p in B2C_PRODUCTS], pick(rng, n, B2C_W))
    return fill_template(lookup(flat, ni), prod)
