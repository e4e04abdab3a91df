"""Numbers and times written for people: ¥ with thousands separators, percentages, months and dates in
the page's language, cron schedules in words, "—" for a missing value."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

NONE = "—"
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~$])")


_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def missing(x: object) -> bool:
    """None, NaN and NaT: nothing to show."""
    return x is None or (isinstance(x, float) and math.isnan(x)) or str(x) in ("NaT", "nan")


def text(x: object) -> str:
    """A cell's value as text, "—" when there is none."""
    return NONE if missing(x) else str(x)


# A unit's usual decimals (for pct: of the percentage, 0.1333 → 13.3%); a metric may fix its own.
PRECISION = {"count": 0, "money": 0, "pct": 1, "number": 2}
_COMPACT = {"zh": ((1e8, "亿"), (1e4, "万")), "en": ((1e9, "B"), (1e6, "M"), (1e3, "K"))}


def _places(unit: str, precision: int | None) -> int:
    if unit not in PRECISION:
        raise ValueError(f"no unit '{unit}' (units: {', '.join(PRECISION)})")
    return PRECISION[unit] if precision is None else precision


def number(x: object, unit: str, precision: int | None = None, lang: str = "zh", compact: bool = False) -> str:
    """The one formatter of a metric's value: ``unit`` is count, money (¥ and thousands separators), pct
    (a ratio as a percentage) or number; ``precision`` the decimals shown (the unit's usual when None);
    ``compact`` (the big screen) writes large money as ¥1.31亿 / ¥131M and counts past a million as 120万."""
    places = _places(unit, precision)
    if missing(x):
        return NONE
    v = float(x)  # type: ignore[arg-type]
    if unit == "pct":
        return f"{v * 100:,.{places}f}%"
    prefix = "¥" if unit == "money" else ""
    if compact and abs(v) >= (1e4 if unit == "money" else 1e6):
        for size, word in _COMPACT["zh" if lang == "zh" else "en"]:
            if abs(v) >= size:
                scaled = abs(v) / size
                digits = 2 if scaled < 10 else 1 if scaled < 100 else 0
                return f"{'-' if v < 0 else ''}{prefix}{scaled:,.{digits}f}{word}"
    return f"{'-' if v < 0 else ''}{prefix}{abs(v):,.{places}f}"


def rounded(x: object, unit: str, precision: int | None = None) -> int | float | None:
    """A metric's value as an export writes it: still a number, rounded to what is shown (13.3% → 0.133,
    ¥7,333 → 7333); None when missing."""
    places = _places(unit, precision)
    if missing(x):
        return None
    v = float(x)  # type: ignore[arg-type]
    if unit == "pct":
        return round(v, places + 2)
    return int(round(v, places)) if places == 0 else round(v, places)


def axis(unit: str, precision: int | None = None) -> dict[str, str]:
    """A Plotly axis (or colour bar) in ``unit`` as ``number`` writes it: hover at the metric's precision,
    ticks without trailing zeros (20%, 12.5%); money with ¥ and thousands separators."""
    places = _places(unit, precision)
    if unit == "pct":  # 1,250% as number() writes it, not 1250%
        return {"tickformat": f",.{places}~%", "hoverformat": f",.{places}%"}
    prefix = "¥" if unit == "money" else ""
    return {"tickprefix": prefix, "tickformat": f",.{places}~f", "hoverformat": f",.{places}f"}


def column_format(unit: str, precision: int | None = None) -> str:
    """st.column_config.NumberColumn's printf pattern for ``unit`` as ``number`` writes it, thousands separated
    in every browser's locale (its "localized" follows the browser's): 12,288, ¥21,856,180; a pct column holds
    percentage points (the ratio × 100): 1,250%."""
    places = _places(unit, precision)
    prefix, suffix = ("¥", "") if unit == "money" else ("", "%%") if unit == "pct" else ("", "")
    return f"{prefix}%,.{places}f{suffix}"


def percent_column(precision: int | None = None) -> str:
    """st.column_config's pattern for a share given in percentage points (the ratio × 100), written as
    ``number(ratio, "pct", precision)`` writes the ratio: 12.3%, 1,250%."""
    return column_format("pct", precision)


def count(n: int | None) -> str:
    return number(n, "count")


def money(x: float | None) -> str:
    """¥22,000 (whole yuan: a cockpit shows magnitudes, not cents)."""
    return number(x, "money")


def pct(x: float | None, digits: int = 1) -> str:
    """0.1333 → '13.3%'."""
    return number(x, "pct", digits)


def month(d: date | None, lang: str) -> str:
    """2025年1月 / Jan 2025."""
    if d is None or missing(d):
        return NONE
    return f"{d.year}年{d.month}月" if lang == "zh" else f"{_MONTHS_EN[d.month - 1]} {d.year}"


def period(d: date | None, grain: str, lang: str) -> str:
    """A date truncated to ``grain`` as people name it: 2025年1月 / Jan 2025, 2025年第1季度 / Q1 2025,
    2025年 / 2025; a day or a week (its Monday) as its date."""
    if d is None or missing(d):
        return NONE
    if grain == "month":
        return month(d, lang)
    if grain == "quarter":
        q = (d.month - 1) // 3 + 1
        return f"{d.year}年第{q}季度" if lang == "zh" else f"Q{q} {d.year}"
    if grain == "year":
        return f"{d.year}年" if lang == "zh" else str(d.year)
    return day(d, lang)


def day(d: date | None, lang: str) -> str:
    """2025年1月5日 / 2025-01-05 (a datetime: its date)."""
    if d is None or missing(d):
        return NONE
    return f"{d.year}年{d.month}月{d.day}日" if lang == "zh" else f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def data_through(as_of: date | None, lang: str) -> str:
    """The last day a churn score read (its as-of date is the day after: "data before that day"): the day a reader
    checks the score against, never tomorrow's date on today's page."""
    return day(None if as_of is None or missing(as_of) else as_of - timedelta(days=1), lang)


def day_time(d: datetime | None, lang: str) -> str:
    """2025年1月5日 14:05 / 2025-01-05 14:05 (as given: local times are converted before)."""
    if d is None or missing(d):
        return NONE
    return f"{day(d, lang)} {d.hour:02d}:{d.minute:02d}"


# st.column_config.DatetimeColumn's pattern (moment.js) for the same: a grid draws its own cells
DATETIME_COLUMN = {"zh": "YYYY年M月D日 HH:mm", "en": "YYYY-MM-DD HH:mm"}


_WEEKDAYS = {"zh": "日一二三四五六日", "en": ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")}


def cron(expr: str | None, lang: str) -> str:
    """A schedule in words for the common patterns ("0 2 * * *" → 每天 02:00 / daily at 02:00); any other
    cron string is shown as it is."""
    if not expr:
        return NONE
    parts = expr.split()
    if len(parts) != 5:
        return expr
    minute, hour, dom, mon, dow = parts
    zh = lang == "zh"
    if minute.isdigit() and hour.isdigit() and mon == "*":
        at = f"{int(hour):02d}:{int(minute):02d}"
        if dom == "*" and dow == "*":
            return f"每天 {at}" if zh else f"daily at {at}"
        if dom == "*" and dow.isdigit() and int(dow) <= 7:
            names = _WEEKDAYS["zh" if zh else "en"]
            return f"每周{names[int(dow)]} {at}" if zh else f"weekly on {names[int(dow)]} at {at}"
        if dow == "*" and dom.isdigit():
            return f"每月{int(dom)}日 {at}" if zh else f"monthly on day {int(dom)} at {at}"
    if minute.isdigit() and hour == "*" and dom == mon == dow == "*":
        if int(minute) == 0:
            return "每小时整点" if zh else "hourly on the hour"
        return f"每小时第 {int(minute)} 分" if zh else f"hourly at :{int(minute):02d}"
    if minute.startswith("*/") and minute[2:].isdigit() and hour == dom == mon == dow == "*":
        return f"每 {int(minute[2:])} 分钟" if zh else f"every {int(minute[2:])} minutes"
    if minute.isdigit() and hour.startswith("*/") and hour[2:].isdigit() and dom == mon == dow == "*":
        return f"每 {int(hour[2:])} 小时" if zh else f"every {int(hour[2:])} hours"
    return expr


def local_time(iso: str | None, tz: str, lang: str) -> str:
    """An ISO timestamp in the company's time zone, to the minute, as ``day_time`` writes it in ``lang``
    (2026年3月1日 09:00 / 2026-03-01 09:00): one form with the grids' DATETIME_COLUMN."""
    if not iso:
        return NONE
    return day_time(datetime.fromisoformat(iso).astimezone(ZoneInfo(tz)), lang)


def md_escape(text: str) -> str:
    """Text from data (file names, reasons) shown literally inside Markdown."""
    return _MD_SPECIAL.sub(r"\\\1", text)
