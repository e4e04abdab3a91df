"""A seeded, deterministic generator of a believable Chinese B2B/B2C company's CRM data.

The company (smart locks, smart-home systems and hotel room control) sells to businesses through
sales reps and trade shows, and to consumers through stores and the web. Nine raw sources are
written under ``<data_dir>/raw/demo/<source>/`` the way each real system exports them:

- ``crm``: crm_leads.csv, crm_accounts.csv, crm_activities.csv and crm_lead_stage_history.csv
  (the funnel history of every lead of every source), UTF-8 CSV with Chinese headers.
- ``erp``: kna1_customers / vbak_orders / contracts .parquet, an SAP-style nightly extract.
- ``web_forms``: form_submissions.jsonl, an API export (form 官网 / H5 / 小程序).
- ``wechat``: fans.json and events_0001.json ..., JSON arrays (official account and WeCom).
- ``call_center``: calls_<yyyymm>.csv, ``;``-separated; callers are known by their number.
- ``pos``: members.csv and sales.csv, UTF-8 with BOM.
- ``purchased_leads``: purchased_leads.xlsx, the import date partly as bare Excel serials.
- ``trade_show``: <yyyy-mm>_<show>.csv, saved by Excel: GBK, CRLF, dates like 2024/3/5 14:02.
- ``marketing``: spend_daily.csv, spend per channel, campaign and day (dates like 2024年3月5日).

The dirt is deliberate: the same person in several systems with differently written phones,
name typos and email case; missing optional fields; a few exact duplicate rows; some invalid
phones and emails; channel and stage labels written several ways; a cohort of customers whose
orders and interactions thin out, then stop. ``cockpit.toml`` maps every file.

Ground truth: ``<data_dir>/demo_truth/identity.csv`` (``source_system, source_record_id,
person_id``) for every customer record and every lead (by lead id) in every source, plus the
numbers the call center uses as ``customer_ref`` (they become customers).

Everything is vectorized (numpy + polars); Faker (zh_CN) only fills small pools of names and
words, which numpy then samples. The same (size, seed, as_of) gives byte-identical files.

Layout: ``pool`` makes the people, ``leads`` their leads, funnel and customer lives,
``memberships`` which systems hold whom; a ``context.Context`` carries that world to one module
per source system (``crm``, ``erp``, ``web_forms``, ``wechat``, ``call_center``, ``pos``,
``purchased``, ``trade_show``, ``marketing``), which write it out through ``dirty`` (how each
system writes a name, phone, e-mail, company or channel). ``tables``, ``clock`` and ``common``
hold the reference data, the time window and the numpy helpers. Each part draws from its own
named random stream, so the order of the draws within a part is what keeps the output stable.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from dashboard.core.errors import ConfigError
from dashboard.demo import call_center, crm, erp, marketing, pos, purchased, trade_show, web_forms, wechat
from dashboard.demo.clock import Clock
from dashboard.demo.common import rng_for
from dashboard.demo.context import Context
from dashboard.demo.journeys import make_journeys
from dashboard.demo.leads import make_leads
from dashboard.demo.memberships import make_members
from dashboard.demo.pool import make_people, make_words
from dashboard.demo.tables import CHANNEL_LABELS, STAGE_LABELS

__all__ = ["CHANNEL_LABELS", "SIZES", "STAGE_LABELS", "DemoResult", "generate"]

# size → number of customers (real people with at least one customer record, roughly).
# Leads ≈ 1.2 × customers, interactions ≈ 10 × customers.
SIZES: dict[str, int] = {"small": 2_000, "medium": 50_000, "large": 1_000_000}

# the source systems, in the order they are written (each draws from its own random stream)
_SYSTEMS = (crm, erp, web_forms, wechat, call_center, pos, purchased, trade_show, marketing)


@dataclass(frozen=True)
class DemoResult:
    raw_dir: Path
    truth_path: Path
    files: list[Path]
    counts: dict[str, int]  # rows written per "source.entity"


def generate(
    data_dir: Path,
    size: str = "small",
    seed: int = 42,
    as_of: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Write the demo sources under ``<data_dir>/raw/demo`` (replacing them) and the ground truth."""
    if size not in SIZES:
        raise ConfigError(f"unknown demo size '{size}' (expected one of: {', '.join(SIZES)})")
    data_dir = Path(data_dir)
    raw = data_dir / "raw" / "demo"
    if raw.exists():
        shutil.rmtree(raw)
    raw.mkdir(parents=True)
    ctx = _world(SIZES[size], seed, Clock.of(as_of or date.today()), raw, progress)
    for system in _SYSTEMS:
        system.write(ctx)
    truth_dir = data_dir / "demo_truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    truth_path = truth_dir / "identity.csv"
    truth = pl.concat(ctx.truth).unique(subset=["source_system", "source_record_id"], maintain_order=True)
    truth.write_csv(truth_path)
    ctx.say(f"truth: {truth.height:,} records of {truth['person_id'].n_unique():,} persons")
    return DemoResult(raw, truth_path, list(ctx.files), dict(ctx.counts))


def _world(n: int, seed: int, clock: Clock, raw: Path, progress: Callable[[str], None] | None) -> Context:
    """The people, their leads and which systems hold them: everything the systems then write out."""
    words = make_words(seed, n)
    people = make_people(rng_for(seed, "people"), n, clock, words)
    leads, customers = make_leads(rng_for(seed, "leads"), clock, people)
    members = make_members(rng_for(seed, "members"), people, leads, customers)
    journeys = make_journeys(rng_for(seed, "journeys"), clock, leads, members.in_fans, members.in_calls)
    ctx = Context(n, seed, clock, raw, progress, words, people, leads, customers, members, journeys)
    ctx.say(f"people: {people.m:,} persons, {int(customers.is_cust.sum()):,} customers, {leads.id.len():,} leads")
    return ctx
