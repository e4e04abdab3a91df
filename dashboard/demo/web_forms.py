"""The web forms source: form submissions (官网 / H5 / 小程序) as an API export in JSON Lines."""

from __future__ import annotations

import numpy as np
import polars as pl

from dashboard.demo.common import fmt_ts, lookup, nulls, pick, with_dups
from dashboard.demo.context import Context
from dashboard.demo.dirty import channel_labels, companies, emails, names, opt, phones
from dashboard.demo.tables import PROVINCE, REGIONS

_FORMS = ("官网", "H5", "小程序")
_PAGES = ("/solutions/hotel", "/products/lock-x1", "/products/robot-r8", "/contact", "/campaign/618", "/")
_MESSAGES = ("想了解报价", "请联系我", "需要酒店方案", "门店地址在哪", "代理加盟咨询")


def write(ctx: Context) -> None:
    """form_submissions.jsonl: one submission per web lead."""
    rng = ctx.rng("web_forms")
    people, leads = ctx.people, ctx.leads
    idx = np.flatnonzero(leads.source == 1)
    p = leads.person[idx]
    n = idx.size
    form = pick(rng, n, [45, 25, 30])
    df = pl.DataFrame(
        {
            "id": leads.id.gather(idx),
            "submitted_at": fmt_ts(leads.created[idx], "%Y-%m-%dT%H:%M:%S+08:00"),
            "form": lookup(_FORMS, form),
            "page": nulls(lookup(_PAGES, rng.integers(0, len(_PAGES), n)), form == 2),
            "utm_source": channel_labels(rng, leads.channel[idx], "web"),
            "utm_campaign": leads.campaign.gather(idx),
            "name": names(ctx, rng, p, typo=0.02, space=0.01),
            "mobile": phones(ctx, rng, p, [80, 4, 6, 0, 4, 6], missing=0.005),
            "email": emails(ctx, rng, p, missing=0.45),
            "company": companies(ctx, rng, p, missing=0.2),
            "province": lookup(PROVINCE, people.city[p]),
            "region": lookup(REGIONS, people.region[p]),
            "message": opt(rng, lookup(_MESSAGES, rng.integers(0, 5, n)), 0.6),
        }
    )
    df = with_dups(df, rng)
    df.write_ndjson(ctx.out("web_forms", "form_submissions.jsonl"))
    ctx.count("web_forms.leads", df.height)
    ctx.add_truth("web_forms", leads.id.gather(idx), p)
    ctx.say(f"web_forms: {df.height:,} submissions")
