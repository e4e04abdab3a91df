"""The demo's time window (24 months up to noon on as_of) and how events are placed in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from dashboard.demo.common import DAY, EPOCH, F64, I64, Bool, norm, weekday

# share of events per hour of the day, by the kind of place they happen at
HOURS: dict[str, tuple[int, ...]] = {
    "office": (0, 0, 0, 0, 0, 0, 0, 1, 4, 9, 10, 9, 5, 7, 9, 9, 8, 6, 3, 2, 1, 1, 0, 0),
    "retail": (0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 5, 7, 8, 7, 7, 7, 8, 9, 9, 9, 8, 5, 2, 0),
    "online": (2, 1, 1, 0, 0, 0, 1, 2, 4, 6, 7, 7, 6, 6, 7, 7, 7, 7, 7, 8, 9, 10, 8, 5),
    "call": (0, 0, 0, 0, 0, 0, 0, 0, 4, 9, 10, 9, 6, 7, 9, 9, 8, 6, 4, 3, 2, 1, 0, 0),
    "show": (0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 10, 10, 6, 8, 10, 9, 6, 1, 0, 0, 0, 0, 0, 0),
}


@dataclass(frozen=True)
class Clock:
    as_of: date
    today: int  # as_of, in days since the epoch
    start: int  # the first day of the window
    cutoff: int  # nothing happens after this second (noon on as_of)
    lo: int  # the first second of the window

    @classmethod
    def of(cls, as_of: date) -> Clock:
        today = (as_of - EPOCH).days
        start = today - 730  # the data covers the 24 months before as_of
        return cls(as_of, today, start, today * DAY + 12 * 3600, start * DAY)

    def ts(self, rng: np.random.Generator, days: I64, profile: str) -> I64:
        """Seconds since epoch: a day plus a time of day drawn from an hourly profile."""
        n = days.size
        hour = rng.choice(24, size=n, p=norm(HOURS[profile])).astype(np.int64)
        tod = hour * 3600 + rng.integers(0, 3600, size=n)
        tod = np.where(days == self.today, 7 * 3600 + tod % (5 * 3600), tod)  # as_of: the morning
        return days * DAY + tod

    def spread(self, rng: np.random.Generator, begin: I64, end: I64, rate: F64, decay: Bool) -> tuple[I64, I64]:
        """Poisson events per owner in [max(begin, window start), end); decaying owners thin out.

        Returns (owner index, day) per event.
        """
        lo = np.maximum(begin, self.lo)
        span = np.maximum(end - lo, 0)
        k = rng.poisson(rate * span / DAY)
        owner = np.repeat(np.arange(begin.size, dtype=np.int64), k)
        u = rng.random(owner.size)
        u = np.where(decay[owner], 1.0 - np.cbrt(1.0 - u), u)  # density ∝ (1 - x)²: thins to nothing
        t = lo[owner] + (u * span[owner]).astype(np.int64)
        return owner, np.minimum(t // DAY, self.today)

    def clip(self, rng: np.random.Generator, ts: I64, lo: I64, hi: I64) -> I64:
        """Fold times that fell outside [lo, hi] (first/last day of a window) back inside."""
        hi = np.minimum(hi, self.cutoff)
        jitter = rng.integers(600, 7200, ts.size)
        ts = np.where(ts > hi, hi - jitter, ts)
        return np.where(ts < lo, np.minimum(lo + jitter, hi), ts)

    def after(self, rng: np.random.Generator, created: I64, profile: str) -> I64:
        """A time between ``created`` and as_of (e.g. last modified)."""
        cday = np.minimum(created // DAY, self.today)
        day = cday + (rng.random(created.size) * (self.today - cday + 1)).astype(np.int64)
        return np.maximum(self.ts(rng, np.minimum(day, self.today), profile), created)

    def weekdays(self, rng: np.random.Generator, day: I64, profile: str) -> I64:
        """Sales work on weekdays: most weekend days move to the Friday before."""
        wd = weekday(day)
        move = (wd >= 5) & (rng.random(day.size) < 0.85)
        return self.ts(rng, np.where(move, day - (wd - 4), day), profile)
