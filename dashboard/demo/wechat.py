"""The WeChat source: official-account fans and their events (messages, clicks, WeCom chats) as JSON arrays."""

from __future__ import annotations

import numpy as np
import polars as pl

from dashboard.demo.common import (
    DAY,
    I64,
    JSON_PAGE,
    NEVER,
    concat,
    fill_template,
    fmt_ts,
    lookup,
    nulls,
    pick,
    random_strings,
    with_dups,
)
from dashboard.demo.context import Context
from dashboard.demo.dirty import names, phones
from dashboard.demo.tables import CITY, PROVINCE

_EVENTS = ("subscribe", "text", "click", "view", "wecom_chat", "unsubscribe")
_CONTENT = {
    "text": ("在吗", "门锁怎么设置指纹", "有优惠吗", "售后电话多少", "滤芯多久换一次", "能开发票吗"),
    "click": ("MENU_PRODUCTS", "MENU_SERVICE", "MENU_MEMBER"),
    "view": ("https://m.zhilian-home.cn/article/{}", "https://m.zhilian-home.cn/act/618"),
    "wecom_chat": ("您好,安装师傅明天上午到", "已为您登记报修", "新品发布邀请", "这是您要的报价单"),
}
_NICK_A = ("快乐的", "安静的", "追风的", "爱吃鱼的", "努力的", "温柔的", "小小", "阿", "")
_NICK_B = ("小鱼", "少年", "猫", "太阳", "雨", "花开", "木子", "晴天", "蜗牛", "橙子", "Sunny", "Lucky")
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def write(ctx: Context) -> None:
    """fans.json and events_0001.json ... (one page per million events)."""
    rng = ctx.rng("wechat")
    begin = _subscribed(ctx, rng)
    journey = ctx.journeys.wechat
    np.minimum.at(begin, journey.person, journey.ts - 600)  # followed the account, then read or wrote
    who = np.flatnonzero(ctx.members.in_fans)
    who = who[np.argsort(begin[who], kind="stable")]
    openid = _fans(ctx, rng, who, begin[who])
    events, pages = _events(ctx, rng, who, begin[who], openid)
    ctx.say(f"wechat: {who.size:,} fans, {events:,} events in {pages} page(s)")


def _subscribed(ctx: Context, rng: np.random.Generator) -> I64:
    """Per person, when they would follow the account: around becoming a customer or their first lead."""
    clock, customers, m = ctx.clock, ctx.customers, ctx.people.m
    first_lead = ctx.members.first_lead
    begin = np.where(
        customers.is_cust,
        customers.since - rng.integers(-30, 90, m) * DAY,
        np.where(
            first_lead < NEVER,
            first_lead - rng.integers(-20, 30, m) * DAY,
            (clock.today - rng.integers(30, 1100, m)) * DAY,
        ),
    )
    floor = clock.today - 6 * 365 + rng.integers(0, 200, m)
    return clock.ts(rng, np.minimum(np.maximum(begin // DAY, floor), clock.today), "online")


def _fans(ctx: Context, rng: np.random.Generator, who: I64, begin: I64) -> pl.Series:
    """fans.json; returns the fans' openids."""
    people = ctx.people
    n = who.size
    openid = concat("o", random_strings(rng, n, 27, _ALPHABET + "-_"))
    anon = people.block[who] == 2
    nick = concat(lookup(_NICK_A, rng.integers(0, len(_NICK_A), n)), lookup(_NICK_B, rng.integers(0, len(_NICK_B), n)))
    fans = pl.DataFrame(
        {
            "openid": openid,
            "unionid": concat("oU", random_strings(rng, n, 26, "abcdefghijklmnopqrstuvwxyz0123456789")),
            "nickname": nick,
            "remark": nulls(names(ctx, rng, who, typo=0.03), anon | (rng.random(n) < 0.3)),
            "mobile": nulls(phones(ctx, rng, who, [75, 10, 5, 5, 0, 5], missing=0.03), anon),
            "province": lookup(PROVINCE, people.city[who]),
            "city": nulls(lookup(CITY, people.city[who]), rng.random(n) < 0.1),
            "subscribe_time": fmt_ts(begin, "%Y-%m-%dT%H:%M:%S"),
            "subscribe_scene": lookup(
                ("ADD_SCENE_QR_CODE", "ADD_SCENE_SEARCH", "ADD_SCENE_PROFILE_CARD"), pick(rng, n, [6, 3, 1])
            ),
        }
    )
    fans.write_json(ctx.out("wechat", "fans.json"))
    ctx.count("wechat.customers", fans.height)
    ctx.add_truth("wechat", openid, who)
    return openid


def _event_times(ctx: Context, rng: np.random.Generator, who: I64, begin: I64) -> tuple[I64, I64, I64]:
    """The subscribe itself, then messages / menu clicks / article views / WeCom chats, and the
    unsubscribe of half the churners, and the touches of journeys before a deal closes: fan, time,
    event (index into _EVENTS), in time order."""
    clock, customers, b2b = ctx.clock, ctx.customers, ctx.people.b2b[who]
    n = who.size
    end, churn = customers.end[who], customers.churn[who]
    rate = np.where(b2b, 0.38, 0.6) / 30 * customers.intensity[who]
    owner, day = clock.spread(rng, begin, end, rate, churn)
    ev_fan = np.concatenate([np.arange(n, dtype=np.int64), owner])
    ev_ts = clock.clip(rng, clock.ts(rng, day, "online"), begin[owner], end[owner])
    ts = np.concatenate([begin, ev_ts])
    ev = np.concatenate([np.zeros(n, dtype=np.int64), 1 + pick(rng, owner.size, [40, 20, 25, 15])])
    quit_fan = np.flatnonzero(churn & (rng.random(n) < 0.5))
    j_fan, j_ts, j_ev = _journey_events(ctx, rng, who)
    ev_fan = np.concatenate([ev_fan, quit_fan, j_fan])
    ts = np.concatenate([ts, end[quit_fan] + 3600, j_ts])
    ev = np.concatenate([ev, np.full(quit_fan.size, 5, dtype=np.int64), j_ev])
    keep = ts >= clock.lo
    ev_fan, ts, ev = ev_fan[keep], ts[keep], ev[keep]
    ev = np.where((ev == 4) & ~b2b[ev_fan] & (rng.random(ev.size) < 0.5), 1, ev)
    order = np.argsort(ts, kind="stable")
    return ev_fan[order], ts[order], ev[order]


def _journey_events(ctx: Context, rng: np.random.Generator, who: I64) -> tuple[I64, I64, I64]:
    """Journey touches as events: a talk is a WeCom chat (mostly, for a business) or a message,
    anything else a menu click or an article view."""
    journey = ctx.journeys.wechat
    fan_of = np.full(ctx.people.m, -1, dtype=np.int64)
    fan_of[who] = np.arange(who.size, dtype=np.int64)
    fan = fan_of[journey.person]
    u = rng.random(fan.size)
    b2b = ctx.people.b2b[journey.person]
    ev = np.where(journey.talk, np.where(b2b & (u < 0.7), 4, 1), np.where(u < 0.5, 2, 3))
    return fan, journey.ts, ev.astype(np.int64)


def _content(rng: np.random.Generator, ev: I64) -> pl.Series:
    """What each event says or opens (empty for subscribe and unsubscribe)."""
    total = ev.size
    flat: list[str | None] = [None]
    off = np.zeros(len(_EVENTS), dtype=np.int64)
    cnt = np.ones(len(_EVENTS), dtype=np.int64)
    for i, e in enumerate(_EVENTS):
        if e in _CONTENT:
            off[i], cnt[i] = len(flat), len(_CONTENT[e])
            flat.extend(_CONTENT[e])
    ci = off[ev] + rng.integers(0, 1 << 20, total) % cnt[ev]
    return fill_template(lookup(flat, ci), pl.Series(rng.integers(1000, 9999, total)).cast(pl.String))


def _events(ctx: Context, rng: np.random.Generator, who: I64, begin: I64, openid: pl.Series) -> tuple[int, int]:
    """events_<page>.json; returns the events and pages written."""
    ev_fan, ts, ev = _event_times(ctx, rng, who, begin)
    total = ts.size
    content = _content(rng, ev)
    account = np.where(ev == 4, 1 + (rng.random(total) < 0.2), 0).astype(np.int64)
    events = pl.DataFrame(
        {
            "msg_id": pl.Series(7_100_000_000_000_000_000 + np.arange(total, dtype=np.int64) * 977).cast(pl.String),
            "openid": openid.gather(ev_fan),
            "account": lookup(("公众号", "企业微信", "WeCom"), account),
            "event": lookup(_EVENTS, ev),
            "create_time": fmt_ts(ts, "%Y-%m-%dT%H:%M:%S"),
            "content": content,
            "staff": nulls(lookup(ctx.words.reps, ctx.people.owner[who][ev_fan]), ev != 4),
        }
    )
    events = with_dups(events, rng)
    pages = max(1, -(-events.height // JSON_PAGE))
    for k in range(pages):
        events.slice(k * JSON_PAGE, JSON_PAGE).write_json(ctx.out("wechat", f"events_{k + 1:04d}.json"))
    ctx.count("wechat.interactions", events.height)
    return events.height, pages
