"""What the Customer 360 search asks the warehouse: the typed text, its phone digits in any format,
and its pinyin (so 王玮 finds 王伟, and 'wangwei' finds both)."""

from __future__ import annotations

import re

import polars as pl

from dashboard.core.parse import pinyin

_PHONE_CHARS = re.compile(r"^[\d\s+\-().\u3000]+$")
_CJK = re.compile(r"[\u3400-\u9fff]")


def search_params(text: str, limit: int = 20) -> dict[str, str | int | None]:
    """Parameters of the ``customer_search`` query for what a user typed."""
    q = text.strip()
    digits = None
    if q and _PHONE_CHARS.match(q):
        d = re.sub(r"\D", "", q)
        digits = re.sub(r"^(0086|86)(?=1\d{10}$)", "", d) if len(d) >= 4 else None
    if _CJK.search(q):
        py: str | None = pinyin(pl.Series([re.sub(r"\s", "", q)]))[0].replace(" ", "")
    else:
        letters = re.sub(r"[^a-z]", "", q.lower())
        py = letters if len(letters) >= 2 and "@" not in q else None
    return {"q": q or None, "digits": digits, "pinyin": py, "limit": limit}
