"""Tables shown the way people read them: translated headers, ¥ and % formats, "—" for no value.

The cells keep their numbers (a click on a header sorts by value); only what is displayed is
formatted, through a pandas Styler.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, Literal

import pandas as pd
import polars as pl
import streamlit as st
from pandas.io.formats.style import Styler

from dashboard.components import fmt, labels
from dashboard.i18n import heading

Kind = Literal["text", "count", "money", "pct", "roi", "change", "days", "date", "datetime"]


def signed_pct(x: float | None) -> str:
    """A change: '+12.5%', '-6.9%', '—' when there was nothing to compare with."""
    return fmt.NONE if x is None else ("+" if x > 0 else "") + fmt.pct(x)


# A number kind's unit and precision: one rule for the screen (fmt.number) and the export (fmt.rounded).
UNITS: dict[str, tuple[str, int]] = {
    "count": ("count", 0),
    "money": ("money", 0),
    "pct": ("pct", 1),
    "roi": ("pct", 0),
    "change": ("pct", 1),
    "days": ("number", 1),
}


def _number(unit: str, precision: int) -> Callable[[Any], str]:
    return lambda v: fmt.number(v, unit, precision)


FORMATTERS: dict[str, Callable[[Any], str]] = {
    "text": str,
    **{kind: _number(unit, places) for kind, (unit, places) in UNITS.items()},
    "change": signed_pct,
}


def formatter(kind: Kind, lang: str) -> Callable[[Any], str]:
    """How a cell of ``kind`` is written; dates in the page's language (2025年1月3日 / 2025-01-03)."""
    if kind == "date":
        return lambda v: fmt.day(v, lang) if isinstance(v, date) else str(v)
    if kind == "datetime":
        return lambda v: fmt.day_time(v, lang) if isinstance(v, datetime) else str(v)
    return FORMATTERS[kind]


def kind_of(frame: pl.DataFrame, column: str, kinds: Mapping[str, Kind]) -> Kind:
    """The column's kind as given, else a date or time column's own (never an ISO string on the screen)."""
    if column in kinds:
        return kinds[column]
    dtype = frame[column].dtype
    return "datetime" if dtype == pl.Datetime else "date" if dtype == pl.Date else "text"


def rounded(frame: pl.DataFrame, kinds: Mapping[str, Kind]) -> pl.DataFrame:
    """``frame`` as an export writes it: each number column of ``kinds`` rounded to what the screen shows
    (a 5.8% conversion is 0.058), still numbers; whole counts and yuan as integers."""
    out = []
    for column, kind in kinds.items():
        if column in frame.columns and kind in UNITS and frame[column].dtype.is_numeric():
            unit, places = UNITS[kind]
            whole = places == 0 and unit != "pct"
            cells = [fmt.rounded(v, unit, places) for v in frame[column].to_list()]
            out.append(pl.Series(column, cells, dtype=pl.Int64 if whole else pl.Float64))
    return frame.with_columns(out) if out else frame


def headers(columns: Sequence[str], lang: str, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """An ``st.dataframe`` column_config: ``config``'s columns as given, every other column headed by its label."""
    return {c: heading(c, lang) for c in columns} | dict(config or {})


def pandas_frame(frame: pl.DataFrame) -> pd.DataFrame:
    """``frame`` in pandas (for a Styler), as Polars' ``to_pandas()`` makes it, but converted by pyarrow,
    which waits for its own threads with the GIL released; Polars' conversion may wait on Polars' pool
    while holding it (README, Development: no Python callbacks in Polars or DuckDB)."""
    return frame.to_arrow().to_pandas(date_as_object=False)


def styled(frame: pl.DataFrame, kinds: Mapping[str, Kind], lang: str, names: Mapping[str, str] | None = None) -> Styler:
    """The frame with translated headings (``names``' where given), coded values by their names and formatted
    cells (columns not in kinds are text)."""
    coded = {c: d for c, d in labels.COLUMNS.items() if kinds.get(c, "text") == "text"}
    frame = labels.frame(frame, lang, coded)
    heads = {c: (names or {}).get(c) or heading(c, lang) for c in frame.columns}
    shown = pandas_frame(frame).rename(columns=heads)
    formats = {heads[c]: formatter(kind_of(frame, c, kinds), lang) for c in frame.columns}
    return shown.style.format(formats, na_rep=fmt.NONE)


def table(
    frame: pl.DataFrame,
    kinds: Mapping[str, Kind],
    lang: str,
    height: int | Literal["auto"] = "auto",
    names: Mapping[str, str] | None = None,
) -> None:
    # the grid draws an empty cell with the placeholder, not with the Styler's "—"
    shown = styled(frame, kinds, lang, names)
    st.dataframe(shown, hide_index=True, width="stretch", height=height, placeholder=fmt.NONE)
