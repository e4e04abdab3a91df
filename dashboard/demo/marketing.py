"""The marketing source: daily spend per channel and campaign (dates like 2024年3月5日)."""

from __future__ import annotations

import numpy as np
import polars as pl

from dashboard.demo.common import DAY, F64, I64, concat, fmt_day, lookup, nulls
from dashboard.demo.context import Context
from dashboard.demo.dirty import channel_labels
from dashboard.demo.tables import CH, CHANNEL_CN, CHANNELS, THEMES

# cost per lead, yuan: ads, SEO / content team, booths, (lists: per record), referral rewards, 400 line + agents
_CPL = np.array([260.0, 190.0, 210.0, 150.0, 900.0, 0.0, 400.0, 250.0])
_CPC = np.array([4.5, 1.8, 2.2, 0.0, 0.0, 0.0, 0.0, 0.0])  # cost per click; 0 = no click data


def write(ctx: Context) -> None:
    """spend_daily.csv: channel spend following the leads, trade show budgets, list purchases."""
    rng = ctx.rng("marketing")
    frames = [*_channel_spend(ctx, rng), *_show_spend(ctx, rng), *_list_spend(ctx, rng)]
    spend = pl.concat(frames).sort("_d", "_c", maintain_order=True).drop("_d", "_c")
    spend.write_csv(ctx.out("marketing", "spend_daily.csv"), float_precision=2)
    ctx.count("marketing.marketing_spend", spend.height)
    ctx.say(f"marketing: {spend.height:,} spend rows")


def _channel_spend(ctx: Context, rng: np.random.Generator) -> list[pl.DataFrame]:
    """Per channel, theme and day up to yesterday: spend that follows the leads (14-day smoothed)."""
    clock, leads = ctx.clock, ctx.leads
    days = np.arange(clock.start, clock.today, dtype=np.int64)  # spend is reported up to yesterday
    nd = days.size
    lead_day = leads.created // DAY - clock.start
    frames: list[pl.DataFrame] = []
    for c, name in enumerate(CHANNELS):
        if name in ("trade_show", "purchased_list"):
            continue
        sel = (leads.channel == c) & (lead_day < nd)
        count = np.bincount(lead_day[sel], minlength=nd).astype(np.float64)
        smooth = pl.Series(count).rolling_mean(14, min_samples=1).to_numpy()
        themes = THEMES[c] or ("",)
        k = len(themes)
        d = np.repeat(days, k)
        th = np.tile(np.arange(k), nd)
        cost = np.round(_CPL[c] * np.maximum(np.repeat(smooth, k), 0.2) / k * rng.lognormal(0, 0.25, d.size), 2)
        dd = pl.Series(d).cast(pl.Int32).cast(pl.Date)
        quarter = concat(dd.dt.year().cast(pl.String), "Q", dd.dt.quarter().cast(pl.String))
        camp = concat(quarter, "-", CHANNEL_CN[c], "-", lookup(themes, th))
        if not THEMES[c]:
            camp = nulls(camp, np.ones(d.size, dtype=bool))
        clicks = np.where(_CPC[c] > 0, np.round(cost / max(_CPC[c], 1e-9) * rng.uniform(0.8, 1.2, d.size)), np.nan)
        frames.append(_spend_frame(rng, d, c, camp, cost, clicks))
    return frames


def _show_spend(ctx: Context, rng: np.random.Generator) -> list[pl.DataFrame]:
    """Trade shows: booth, build and travel, booked over the show days."""
    leads = ctx.leads
    names = leads.show_names()
    frames: list[pl.DataFrame] = []
    for i, (_si, first, length, _year) in enumerate(leads.shows):
        leads_here = int((leads.show_of == i).sum())
        total = _CPL[CH["trade_show"]] * max(leads_here, 5) * rng.lognormal(0, 0.2)
        share = np.array([0.6] + [0.4 / (length - 1)] * (length - 1))
        d = first + np.arange(length, dtype=np.int64)
        camp = names.gather(np.full(length, i, dtype=np.int64))
        cost = np.round(total * share, 2)
        frames.append(_spend_frame(rng, d, CH["trade_show"], camp, cost, np.full(length, np.nan)))
    return frames


def _list_spend(ctx: Context, rng: np.random.Generator) -> list[pl.DataFrame]:
    """Purchased lists: paid per record on the purchase day."""
    leads = ctx.leads
    names = leads.batch_names()
    frames: list[pl.DataFrame] = []
    for k, d0 in enumerate(leads.batch_day.tolist()):
        rows = int((leads.batch_of == k).sum())
        cost = np.array([round(rows * float(rng.uniform(35, 70)) + 2000, 2)])  # priced per record
        day = np.array([d0], dtype=np.int64)
        frames.append(_spend_frame(rng, day, CH["purchased_list"], names.gather([k]), cost, np.array([np.nan])))
    return frames


def _spend_frame(rng: np.random.Generator, d: I64, c: int, camp: pl.Series, cost: F64, clicks: F64) -> pl.DataFrame:
    n = d.size
    ch = np.full(n, c, dtype=np.int64)
    return pl.DataFrame(
        {
            "日期": fmt_day(d, "%Y年%-m月%-d日"),
            "渠道": channel_labels(rng, ch, "spend"),
            "推广计划": camp,
            "展现量": pl.Series(np.round(clicks * rng.uniform(20, 60, n))).fill_nan(None).cast(pl.Int64),
            "点击量": pl.Series(clicks).fill_nan(None).cast(pl.Int64),
            "消耗(元)": cost,
            "_d": d,
            "_c": ch,
        }
    )
