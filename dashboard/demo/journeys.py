"""The journeys of engaged prospects: before a deal closes, the same person reads the WeChat account,
chats on WeCom and calls the hotline — systems other than the one holding the lead, so only identity
resolution ties these touches to the deal (what multi-touch attribution is about)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dashboard.demo.clock import Clock
from dashboard.demo.common import DAY, I64, Bool
from dashboard.demo.leads import Leads

# chance that a person with a lead that reached the opportunity stage follows the account / calls
FAN_P = 0.6
CALLER_P = 0.5


@dataclass(frozen=True)
class Touches:
    """One element per touch, in no particular order."""

    person: I64
    ts: I64
    talk: Bool  # a conversation (a message, a WeCom chat) rather than reading an article or a menu


@dataclass(frozen=True)
class Journeys:
    wechat: Touches
    calls: Touches


def engaged(leads: Leads) -> Bool:
    """Leads that reached the opportunity stage: their persons shop around before the close."""
    reached: Bool = leads.reach[:, 3]
    return reached


def make_journeys(rng: np.random.Generator, clock: Clock, leads: Leads, in_fans: Bool, in_calls: Bool) -> Journeys:
    """Per engaged lead: a third of the fans found us on WeChat 2-45 days before the lead, and fans
    write or chat about once more before the close; most callers call the hotline once or twice
    between three weeks before the lead and the close."""
    idx = np.flatnonzero(engaged(leads))
    person, start, close = leads.person[idx], leads.created[idx], leads.t[idx, 4]
    fan = in_fans[person]
    first = fan & (rng.random(idx.size) < 0.35)
    talks = np.where(fan, rng.poisson(1.2, idx.size), 0)
    calls = np.where(in_calls[person] & (rng.random(idx.size) < 0.7), 1 + rng.poisson(0.4, idx.size), 0)
    found = _between(rng, clock, start[first] - 45 * DAY, start[first] - 2 * DAY, "online")
    talked = _spread(rng, clock, talks, start, close, "online")
    called = _spread(rng, clock, calls, start - 21 * DAY, close, "call")
    wechat = Touches(
        np.concatenate([person[first], np.repeat(person, talks)]),
        np.concatenate([found, talked]),
        np.concatenate([np.zeros(found.size, dtype=bool), np.ones(talked.size, dtype=bool)]),
    )
    return Journeys(wechat, Touches(np.repeat(person, calls), called, np.ones(called.size, dtype=bool)))


def _spread(rng: np.random.Generator, clock: Clock, k: I64, lo: I64, hi: I64, profile: str) -> I64:
    """``k[i]`` times in [lo[i], hi[i]) per element."""
    return _between(rng, clock, np.repeat(lo, k), np.repeat(hi, k), profile)


def _between(rng: np.random.Generator, clock: Clock, lo: I64, hi: I64, profile: str) -> I64:
    """A time of ``profile`` on a day in [lo, hi), folded back inside, never after the cutoff."""
    day = (lo + (rng.random(lo.size) * np.maximum(hi - lo, 0)).astype(np.int64)) // DAY
    return clock.clip(rng, clock.ts(rng, np.minimum(day, clock.today), profile), lo, hi - 60)
