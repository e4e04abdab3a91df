"""Every cutoff's churn features from one read of the per-day rows (DuckDB's engine): the rows in customer and day
order as arrays, each cutoff's sums and counts over each customer's run of rows (features.FEATURES_SQL's columns and
values, LABELS_SQL's customers), not one aggregate statement per cutoff over every row.

At large (12.8M customer-days, 1.3M customers) a cutoff's statement took 3.8-4.9 CPU-s, the same from the arrays ~1.4
(docs/benchmarks.md, "Session 17"). The cutoffs share one pass over the rows: each count is a running sum made once at
the read, and a customer's rows on one side of a day are counted once for every cutoff that asks (the backtest's
cutoffs D − H and D − 2H, their labels and the served day D share their window edges), so a window's count is two
numbers taken from the running sum. Amounts are summed over each window's rows in another order than DuckDB's, and
rounded to the cent as the statement rounds them (the statement's own sums' last bits depend on the order rows arrive
in).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Rows = NDArray[np.signedinteger]  # row numbers: int32 while every row fits (half of int64's memory), else int64
COUNTS = ("contacts", "complaints", "unsubscribes", "service", "visits", "negative")  # churn_days' counts
ORDER_DAYS = "order_days"  # DayArrays.running's days with an order
NULLABLE = frozenset({"order_recency_days", "order_span", "contact_recency_days"})  # null without an order / a contact

_IDS = "SELECT cid, customer_key FROM churn_ids ORDER BY cid"
# each contract of a keyed customer, for its receivables at any cutoff (features._RECEIVABLES_SQL's rows)
_CONTRACTS = """
SELECT k.cid, epoch(c.due_date) / 86400.0 AS due_d, c.amount, epoch(c.paid_at) / 86400.0 AS paid_d,
    coalesce(c.paid_amount, 0) AS paid, epoch(coalesce(c.signed_at, c.due_date)) / 86400.0 AS start_d
FROM contracts AS c
JOIN churn_keys AS k ON k.source_system = c.source_system AND k.source_record_id = c.customer_ref
WHERE c.due_date IS NOT NULL AND c.amount IS NOT NULL
"""


def round_cents(x: F64) -> F64:
    """DuckDB's round(x, 2) on a double: round(x * 100) / 100, halves away from zero."""
    y = x * 100.0
    r = np.rint(y)
    with np.errstate(invalid="ignore"):  # inf - inf: not a tie
        tie = np.abs(y - np.trunc(y)) == 0.5
    r[tie] = np.trunc(y[tie]) + np.sign(y[tie])
    return np.asarray(r / 100.0, dtype=np.float64)


def _f64(table: pa.Table, name: str) -> F64:
    """A double column, NaN where null."""
    return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64)


def _int(table: pa.Table, name: str) -> NDArray[np.int32]:
    return np.asarray(table.column(name).to_numpy(), dtype=np.int32)


def _rows_type(size: int) -> type[np.signedinteger]:
    return np.int32 if size < 2**31 - 1 else np.int64


def _running(rows: NDArray[np.generic], at: I64 | None = None) -> Rows:
    """The sum of ``rows`` over the rows before each one, and over all: rows [i, j) sum to the difference of two of
    these; only at the indices ``at`` when given."""
    kind = _rows_type(rows.size)
    total = np.zeros(rows.size + 1, dtype=kind)
    np.cumsum(rows, dtype=kind, out=total[1:])
    return total if at is None else total[at]


def _last_at_or_before(valid: NDArray[np.bool_]) -> Rows:
    """Each row's last row at or before it where ``valid`` (-1: none), across customers (checked against the
    customer's first row where read)."""
    return np.maximum.accumulate(np.where(valid, np.arange(valid.size, dtype=_rows_type(valid.size)), -1))


@dataclass
class DayArrays:
    """churn_days in (cid, day) order, a row's columns as arrays; the customers' runs of rows (``starts``), their
    channels' days and contracts, and the keys of the ids."""

    starts: I64  # each customer's first row
    ids: NDArray[np.int32]  # each customer's cid, ascending
    day: F64
    last_d: F64
    amount: F64  # and a 0.0 after the last row (a window may end there)
    # per column (ORDER_DAYS: days with an order, and each of COUNTS): its sum over the rows before each row, one more
    # value for all of them: rows [i, j) sum to running[j] - running[i], whatever the window
    running: dict[str, Rows]
    first_d: F64  # per customer: the first activity
    first_order_d: F64  # per customer: the first order (NaN: none)
    prev_order: Rows  # per row: the last row at or before it with an order
    prev_contact: Rows  # ... with a contact
    last_order_d: F64
    last_contact_d: F64
    channel_cid: NDArray[np.int32]  # the interactions' customers, channels (numbered) and days
    channel: NDArray[np.int32]  # its channel's number
    channel_day: F64
    channels: int
    contracts: pa.Table  # _CONTRACTS
    key_ids: NDArray[np.int32]  # churn_ids by cid
    keys: pa.ChunkedArray
    # per day number: each customer's first row on or after that day (its rows before it end there), made once for
    # every cutoff, window edge and label asking
    edges: dict[float, Rows] = field(default_factory=dict)

    @classmethod
    def read(cls, con: duckdb.DuckDBPyConnection, events: str, params: dict[str, int | str]) -> DayArrays:
        """``events``: features.EVENTS_SQL's rows (the events with their cid, an interaction's channel by number, no
        day column: features.KEYED_SQL's otherwise) in (cid, d) order. Their per-day rows are features.DAYS_SQL's (a
        day's amounts summed in another order), the channels' days are theirs."""
        ev = con.sql(events, params=params).to_arrow_table()
        cid, d = _int(ev, "cid"), _f64(ev, "d")
        day = np.floor(d)
        cat = _int(ev, "cat")
        amount = _f64(ev, "amount")
        amount = np.where(np.isnan(amount), 0.0, amount)  # only orders have one (interactions: 0.0); null: 0.0
        negative = np.asarray(ev.column("negative").to_numpy(zero_copy_only=False), dtype=np.bool_)
        order, contact = cat == 0, cat > 0
        # the channels of interactions only (features.CHANNEL_DAYS_SQL: an order is no channel)
        channel = np.asarray(ev.column("channel").filter(pa.array(contact)).to_numpy(), dtype=np.int32)
        del ev
        new_day = np.ones(cid.size, dtype=bool)
        new_day[1:] = (cid[1:] != cid[:-1]) | (day[1:] != day[:-1])
        at = np.flatnonzero(new_day)  # each day's first event: the days in (cid, day) order

        def per_day(values: NDArray[np.generic], ufunc: np.ufunc = np.add) -> NDArray[np.generic]:
            return ufunc.reduceat(values, at) if at.size else np.zeros(0, dtype=values.dtype)

        ends = np.append(at, cid.size)  # each day's first event, then the end: the running sums' points
        kinds = (contact, cat == 1, cat == 2, cat == 3, cat == 4, negative)  # COUNTS' events

        day_cid = cid[at]
        starts = np.flatnonzero(np.diff(day_cid, prepend=np.int32(-1))).astype(np.int64)
        order_d = np.where(order, d, np.nan)
        last_order_d = np.asarray(per_day(order_d, np.fmax), dtype=np.float64)
        first_order = np.asarray(per_day(order_d, np.fmin), dtype=np.float64)
        del order_d
        last_contact_d = np.asarray(per_day(np.where(contact, d, np.nan), np.fmax), dtype=np.float64)
        ids = con.sql(_IDS).to_arrow_table()
        return cls(
            starts=starts,
            ids=day_cid[starts],
            day=day[at],
            last_d=d[ends[1:] - 1],  # each day's last event
            amount=np.append(per_day(amount), 0.0),
            running={
                ORDER_DAYS: _running(~np.isnan(last_order_d)),  # a day with an order has its last order's time
                **{name: _running(rows, ends) for name, rows in zip(COUNTS, kinds, strict=True)},
            },
            first_d=d[at][starts],
            first_order_d=np.fmin.reduceat(first_order, starts) if starts.size else np.zeros(0),
            prev_order=_last_at_or_before(~np.isnan(last_order_d)),
            prev_contact=_last_at_or_before(~np.isnan(last_contact_d)),
            last_order_d=last_order_d,
            last_contact_d=last_contact_d,
            channel_cid=cid[contact],
            channel=channel,
            channel_day=day[contact],
            channels=int(channel.max(initial=0)) + 1,
            contracts=con.sql(_CONTRACTS).to_arrow_table(),
            key_ids=_int(ids, "cid"),
            keys=ids.column("customer_key"),
        )

    def activity_range(self) -> tuple[float | None, float | None]:
        """features.RANGE_SQL: the first and last activity."""
        if not self.starts.size:
            return None, None
        return float(self.first_d.min()), float(self.last_d.max())

    def _edge(self, day: float) -> Rows:
        """Per customer: its first row on or after ``day`` (after its last row when none); counted once per day."""
        got = self.edges.get(day)
        if got is None:
            before = np.add.reduceat(self.day < day, self.starts, dtype=np.int64) if self.starts.size else self.starts
            got = self.edges[day] = (self.starts + before).astype(_rows_type(self.day.size))
        return got

    def _count(self, name: str, lo: Rows, hi: Rows) -> I64:
        """Per customer (of ``lo``/``hi``'s): the sum of the per-day column ``name`` over its rows [lo, hi)."""
        running = self.running[name]
        return (running[hi] - running[lo]).astype(np.int64)

    def _cells(self, edges: list[Rows]) -> F64:
        """Per customer (a row) and each pair of consecutive ``edges`` (rows, ascending for each customer): the day
        amounts summed over its rows between them, all by one pass over the rows (0.0 where none)."""
        bounds = np.stack(edges, axis=1)
        if not bounds.size:
            return np.zeros((bounds.shape[0], max(bounds.shape[1] - 1, 0)))
        # reduceat sums from each bound to the next (the amount at the bound when they are equal; past the last row
        # one 0.0, where a customer's last bound may be)
        sums = np.add.reduceat(self.amount, bounds.ravel()).reshape(bounds.shape)[:, :-1]
        return np.where(bounds[:, 1:] > bounds[:, :-1], sums, 0.0)

    def _channels(self, since: float, t: int, size: int) -> I64:
        """Per cid (indexed by it): how many channels it was active in on a day in [since, t)."""
        cd = self.channel_day
        rows = (cd >= since) & (cd < t)
        seen = np.zeros(size * self.channels, dtype=bool)
        seen[self.channel_cid[rows].astype(np.int64) * self.channels + self.channel[rows]] = True
        return seen.reshape(size, self.channels).sum(axis=1)

    def _receivables(self, t: int, size: int) -> tuple[F64, I64, F64]:
        """Per cid (indexed by it): _RECEIVABLES_SQL's overdue amount, contracts and days at ``t`` (0: none)."""
        c = self.contracts
        due, start, paid_d = _f64(c, "due_d"), _f64(c, "start_d"), _f64(c, "paid_d")
        open_ = _f64(c, "amount") - np.where(paid_d < t, _f64(c, "paid"), 0.0)
        rows = (start < t) & (due < t) & (open_ > 0.005)
        who = np.asarray(c.column("cid").to_numpy(), dtype=np.int64)[rows]
        amount = round_cents(np.asarray(np.bincount(who, weights=open_[rows], minlength=size), dtype=np.float64))
        contracts = np.bincount(who, minlength=size).astype(np.int64)
        first_due = np.full(size, np.inf)
        np.minimum.at(first_due, who, due[rows])
        return amount, contracts, np.where(contracts > 0, t - first_due, 0.0)

    def features(self, t: int, h: int) -> pl.DataFrame:
        """features.FEATURES_SQL at ``t`` with horizon ``h``: its rows (customers active before ``t``, by cid, with
        their keys) and columns."""
        end = self._edge(t)
        n_before = end - self.starts
        has = n_before > 0
        first, end = self.starts[has], end[has]
        last = end - 1  # a customer's last row before t: its rows are in day order
        recent, previous = self._edge(t - h)[has], self._edge(t - 2 * h)[has]  # an earlier day's edge: not after t's
        # amounts between the windows' edges, summed per window: [first row, cuts[0]), [cuts[0], cuts[1]), ... t
        cuts = sorted({t - 730, t - 365, t - 2 * h, t - h})
        cells = self._cells([first, *(self._edge(c)[has] for c in cuts), end])

        def spend(since: int | None, until: int = t) -> F64:
            """Amounts summed over days in [since, until) (None: from the first), to the cent."""
            after = 0 if since is None else cuts.index(since) + 1
            return round_cents(cells[:, after : len(cuts) + 1 if until == t else cuts.index(until) + 1].sum(axis=1))

        def latest(prev: Rows, values: F64) -> F64:
            at = prev[last] if last.size else np.zeros(0, np.int64)
            return np.where(at >= first, values[np.maximum(at, 0)], np.nan)

        last_order = latest(self.prev_order, self.last_order_d)
        last_contact = latest(self.prev_contact, self.last_contact_d)
        first_order = self.first_order_d[has]
        first_order = np.where(first_order < t, first_order, np.nan)
        first_d, last_d = self.first_d[has], self.last_d[last]

        cols: dict[str, NDArray[np.generic]] = {
            "recency_days": t - last_d,
            "tenure_days": t - first_d,
            "order_recency_days": t - last_order,
            "order_days": self._count(ORDER_DAYS, first, end),
            "order_span": last_order - first_order,
            "orders_recent": self._count(ORDER_DAYS, recent, end),
            "orders_previous": self._count(ORDER_DAYS, previous, recent),
            "monetary": spend(None),
            "spend_recent": spend(t - h),
            "spend_previous": spend(t - 2 * h, t - h),
            "spend_2y": spend(t - 730),
            "spend_year": spend(t - 365),
            "contacts_recent": self._count("contacts", recent, end),
            "contacts_previous": self._count("contacts", previous, recent),
            "contact_recency_days": t - last_contact,
            **{f"{c}_recent": self._count(c, recent, end) for c in COUNTS[1:]},
            "active_days": n_before[has].astype(np.int64),
            "active_span": last_d - first_d,
            "last_d": last_d,
        }
        ids = self.ids[has].astype(np.int64)
        size = int(max(self.ids.max(initial=0), self.key_ids.max(initial=0))) + 1
        cols["channels_recent"] = self._channels(t - h, t, size)[ids]
        cols["channels_year"] = self._channels(t - 365, t, size)[ids]
        overdue = self._receivables(t, size)
        for name, values in zip(("overdue_amount", "overdue_contracts", "overdue_days"), overdue, strict=True):
            cols[name] = values[ids]
        keys = self.keys.take(pa.array(np.searchsorted(self.key_ids, ids)))
        return pl.DataFrame(
            [
                pl.Series("customer_key", keys, dtype=pl.String),
                *(pl.Series(name, v, nan_to_null=name in NULLABLE) for name, v in cols.items()),
            ]
        )

    def customers(self, t: int) -> pl.DataFrame:
        """The customers (customer_key) with a row before ``t``: features(t, ...)'s, in its order."""
        ids = self.ids[np.floor(self.first_d) < t]
        keys = self.keys.take(pa.array(np.searchsorted(self.key_ids, ids)))
        return pl.DataFrame([pl.Series("customer_key", keys, dtype=pl.String)])

    def active(self, t: int, h: int) -> pl.DataFrame:
        """features.LABELS_SQL: the customers (customer_key) with a row in [t, t + h)."""
        if not self.starts.size:
            return pl.DataFrame({"customer_key": pl.Series([], dtype=pl.String)})
        ids = self.ids[self._edge(t + h) > self._edge(t)]
        keys = self.keys.take(pa.array(np.searchsorted(self.key_ids, ids)))
        return pl.DataFrame([pl.Series("customer_key", keys, dtype=pl.String)])
