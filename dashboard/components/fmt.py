"""Numbers and times written for people: ¥ with thousands separators, percentages, local times."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

NONE = "—"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~$])")


def count(n: int | None) -> str:
    return NONE if n is None else f"{n:,}"


def money(x: float | None) -> str:
    """¥22,000 (whole yuan: a cockpit shows magnitudes, not cents)."""
    if x is None:
        return NONE
    return f"-¥{-x:,.0f}" if x < 0 else f"¥{x:,.0f}"


def pct(x: float | None, digits: int = 1) -> str:
    """0.1333 → '13.3%'."""
    return NONE if x is None else f"{x * 100:,.{digits}f}%"


def local_time(iso: str | None, tz: str) -> str:
    """An ISO timestamp shown in the company's time zone, to the minute."""
    if not iso:
        return NONE
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


def md_escape(text: str) -> str:
    """Text from data (file names, reasons) shown literally inside Markdown."""
    return _MD_SPECIAL.sub(r"\\\1", text)
