"""The trade show source: one registration list per show, saved by Excel (GBK, CRLF, dates like 2024/3/5 14:02)."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from dashboard.demo.common import EPOCH, fmt_ts, lookup, pick, with_dups
from dashboard.demo.context import Context
from dashboard.demo.dirty import channel_labels, companies, emails, names, opt, phones
from dashboard.demo.tables import B2B_PRODUCTS, B2C_PRODUCTS, B2C_W, PROVINCE, REGIONS, SHOW_SLUG


def write(ctx: Context) -> None:
    """<yyyy-mm>_<show>.csv per show that had visitors."""
    rng = ctx.rng("trade_show")
    people, leads = ctx.people, ctx.leads
    idx = np.flatnonzero(leads.source == 2)
    p = leads.person[idx]
    n = idx.size
    interest = np.where(people.b2b[p], rng.integers(0, len(B2B_PRODUCTS), n), len(B2B_PRODUCTS) + pick(rng, n, B2C_W))
    df = pl.DataFrame(
        {
            "登记编号": leads.id.gather(idx),
            "登记时间": fmt_ts(leads.created[idx], "%Y/%-m/%-d %H:%M"),
            "展会名称": leads.campaign.gather(idx),
            "来源": channel_labels(rng, leads.channel[idx], "show"),
            "姓名": names(ctx, rng, p, typo=0.04),
            "手机": phones(ctx, rng, p, [60, 0, 25, 0, 15, 0], missing=0.05),
            "邮箱": emails(ctx, rng, p, missing=0.6),
            "单位名称": companies(ctx, rng, p, missing=0.08),
            "职务": opt(rng, people.title.gather(p), 0.25),
            "所在省份": lookup(PROVINCE, people.city[p]),
            "区域": lookup(REGIONS, people.region[p]),
            "意向产品": lookup([x[0] for x in B2B_PRODUCTS] + [x[0] for x in B2C_PRODUCTS], interest),
            "接待人": opt(rng, lookup(ctx.words.reps, people.owner[p]), 0.1),
        }
    )
    df = with_dups(df.with_columns(pl.Series("_s", leads.show_of[idx])), rng)
    _write_per_show(ctx, df)
    ctx.count("trade_show.leads", df.height)
    ctx.add_truth("trade_show", leads.id.gather(idx), p)
    ctx.say(f"trade_show: {df.height:,} registrations at {len(leads.shows)} shows")


def _write_per_show(ctx: Context, df: pl.DataFrame) -> None:
    """One file per show (column ``_s``), saved by Excel on Windows: GBK, CRLF."""
    for i, (si, first, _len, _year) in enumerate(ctx.leads.shows):
        part = df.filter(pl.col("_s") == i).drop("_s")
        if part.height == 0:
            continue
        when = date.fromordinal(EPOCH.toordinal() + first)
        text = part.write_csv(line_terminator="\r\n")
        ctx.out("trade_show", f"{when:%Y-%m}_{SHOW_SLUG[si]}.csv").write_bytes(text.encode("gbk"))
