"""Metric tiles: the few big numbers a manager reads first, each asked of the semantic layer by name
(dashboard/metrics.toml) and labelled, formatted and explained by its definition."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl
import streamlit as st

from dashboard.components import fmt
from dashboard.components.data import metrics
from dashboard.components.filterbar import Filters
from dashboard.query.metrics import TOTAL, Answer, Request, help_text, label, layer, value

Money = Callable[[float | None], str]


@dataclass(frozen=True)
class Figure:
    """One metric's value as a tile shows it: its label (the company's, when read at that scope) and help."""

    name: str
    label: str
    text: str
    help: str
    value: float | None


def show_value(name: str, v: float | None, lang: str = "zh", compact: bool = False) -> str:
    """A metric's value in its unit and precision (``compact``: the big screen's ¥1.31亿 / ¥131M)."""
    m = layer().metric(name)
    return fmt.number(v, m.unit, m.precision, lang, compact)


def figures(answer: Answer, names: Sequence[str], lang: str, compact: bool = False) -> list[Figure]:
    """``names`` from ``answer`` (a total, or the total row of a split), in order; a hidden one is left out."""
    out = []
    for name in names:
        scope = answer.scopes.get(name, "none")
        if scope == "none" or name not in answer.frame.columns:
            continue
        v = value(answer, name)
        text = show_value(name, v, lang, compact)
        out.append(Figure(name, label(name, scope, lang), text, help_text(name, scope, lang), v))
    return out


def totals(split: Answer, names: Sequence[str], filters: Filters) -> Answer:
    """The totals of ``names``: the total row of ``split`` (asked with_total) where the role sees a metric
    over its own rows; one more question for those it sees only as the company's figure."""
    missing = [n for n in names if split.scopes.get(n) != "rows"]
    if not missing:
        return split
    company = metrics(Request.of(missing, filters=_filters(filters), start=filters.start, end=filters.end))
    frame = split.frame.filter(pl.col(TOTAL)).select([n for n in names if n not in missing])
    return Answer(
        pl.concat([frame, company.frame], how="horizontal"),
        {**split.scopes, **company.scopes},
        company.hidden,
        tuple(dict.fromkeys([*split.unsplit, *company.unsplit])),
    )


def _filters(filters: Filters) -> dict[str, str | None]:
    return {"channel": filters.channel, "region": filters.region, "owner": filters.owner, "campaign": filters.campaign}


def split_request(names: Sequence[str], filters: Filters, by: Sequence[str] = ("channel",)) -> Request:
    return Request.of(names, by, _filters(filters), filters.start, filters.end, with_total=True)


def kpi_row(answer: Answer, names: Sequence[str], lang: str) -> None:
    shown = figures(answer, names, lang)
    for column, f in zip(st.columns(len(shown) or 1), shown, strict=False):
        column.metric(f.label, f.text, help=f.help)
