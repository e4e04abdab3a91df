"""Which person has records in which source system, and how a system comes to hold a person twice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dashboard.demo.clock import Clock
from dashboard.demo.common import DAY, I64, NEVER, Bool
from dashboard.demo.journeys import CALLER_P, FAN_P, engaged
from dashboard.demo.leads import Customers, Leads
from dashboard.demo.pool import People
from dashboard.demo.tables import CH


@dataclass(frozen=True)
class Members:
    """Per person: in which systems they are, and their first lead (prospects' activity starts there)."""

    in_erp: Bool
    in_crm: Bool
    in_pos: Bool
    in_fans: Bool
    in_calls: Bool
    first_lead: I64  # seconds; NEVER for persons without a lead


def make_members(rng: np.random.Generator, people: People, leads: Leads, customers: Customers) -> Members:
    m, block, b2b = people.m, people.block, people.b2b
    u = rng.random((m, 5))
    base = block == 0
    won_new = (block == 1) & customers.is_cust
    in_erp = (base & np.where(b2b, u[:, 0] < 0.95, u[:, 0] < 0.15)) | won_new
    in_crm = (base & b2b & (u[:, 1] < 0.85)) | (won_new & b2b)
    in_pos = base & ~b2b & ((u[:, 2] < 0.8) | ~in_erp)
    shopping = np.zeros(m, dtype=bool)  # persons about to close a deal: they look around (journeys)
    shopping[leads.person[engaged(leads)]] = True
    fan_p = np.where(base, np.where(b2b, 0.2, 0.35), np.where(block == 1, 0.15, 0.0))
    in_fans = (u[:, 3] < np.where(shopping, np.maximum(fan_p, FAN_P), fan_p)) | (block == 2)
    call_p = np.where(base, np.where(b2b, 0.22, 0.14), np.where(block == 1, 0.05, 0.0))
    call_p = np.where(shopping, np.maximum(call_p, CALLER_P), call_p)
    call_lead = np.zeros(m, dtype=bool)
    call_lead[leads.person[(leads.channel == CH["call_center"]) & (leads.source == 0)]] = True
    in_calls = (u[:, 4] < call_p) | (block == 3) | call_lead
    first_lead = np.full(m, NEVER, dtype=np.int64)
    np.minimum.at(first_lead, leads.person, leads.created)
    return Members(in_erp, in_crm, in_pos, in_fans, in_calls, first_lead)


def first_rows(m: int, who: I64) -> I64:
    """Per person (of ``m``), the row of their first record in a system (-1: not in it)."""
    row = np.full(m, -1, dtype=np.int64)
    persons, first = np.unique(who, return_index=True)
    row[persons] = first
    return row


def second(rng: np.random.Generator, clock: Clock, who: I64, created: I64, rate: float) -> tuple[I64, I64]:
    """Add a second record for ``rate`` of persons (registered twice); returns persons, created."""
    k = round(who.size * rate)
    again = who[rng.choice(who.size, size=k, replace=False)] if k else who[:0]
    later = np.minimum(created[again] + rng.integers(30, 400, k) * DAY, clock.cutoff)
    allp = np.concatenate([who, again])
    allc = np.concatenate([created[who], later])
    order = np.argsort(allc, kind="stable")
    return allp[order], allc[order]
