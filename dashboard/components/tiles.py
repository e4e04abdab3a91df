"""The cockpit's big tiles: new leads (today / this week / this month against the previous period),
the semantic layer's metrics (leads, conversion, won-deal amount, ROI), receivables overdue and the
data health score.

Each function returns tiles; ``show`` lays them out, so the office view and the big screen can
arrange the same tiles differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from dashboard.components import fmt, labels
from dashboard.components.kpi import Money, figures
from dashboard.components.tables import signed_pct
from dashboard.i18n import t
from dashboard.query.metrics import Answer
from dashboard.query.warehouse import list_queries

ALL_SOURCES = "(all)"  # data_health's row for the whole company


@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    delta: str | None = None  # a change ("+12.5%"), or a detail line when delta_color is "off"
    delta_color: Literal["normal", "off"] = "normal"
    delta_arrow: Literal["auto", "off"] = "auto"
    delta_description: str | None = None
    help: str | None = None


def detail(label: str, value: str, line: str | None, help: str | None = None) -> Tile:
    """A tile whose second line is plain information, not a change."""
    return Tile(label, value, line, delta_color="off", delta_arrow="off", help=help)


def show(tiles: Sequence[Tile], per_row: int) -> None:
    for i in range(0, len(tiles), per_row):
        for column, tile in zip(st.columns(per_row), tiles[i : i + per_row], strict=False):
            column.metric(**asdict(tile), border=True)


def today(tz: str) -> date:
    """The company's date now (its time zone, not the server's)."""
    return datetime.now(ZoneInfo(tz)).date()


def has_query(name: str) -> bool:
    return name in list_queries()


def compact_money(x: float | None, lang: str) -> str:
    """A magnitude readable from across the room: ¥1.31亿 / ¥131M (the exact figure is in the tables)."""
    return fmt.number(x, "money", lang=lang, compact=True)


def compact_count(n: int | None, lang: str) -> str:
    """Counts stay exact up to a million (60,000), then compact (120万 / 1.20M)."""
    return fmt.number(n, "count", lang=lang, compact=True)


def money_format(lang: str, compact: bool) -> Money:
    return (lambda x: compact_money(x, lang)) if compact else fmt.money


def new_leads_tiles(frame: pl.DataFrame, lang: str) -> list[Tile]:
    """``new_leads`` rows today, week, month: each against the same span of the previous period."""
    tiles = []
    for row in frame.iter_rows(named=True):
        rate, period = row["change_rate"], row["period"]
        previous = t(f"tiles.previous_{period}", lang, previous=fmt.count(row["previous_leads"]))
        label, value = t(f"tiles.new_{period}", lang), fmt.count(row["leads"])
        if rate is None:  # nothing to compare with: say so, without an arrow
            tiles.append(Tile(label, value, fmt.NONE, "off", "off", previous))
        else:
            tiles.append(Tile(label, value, signed_pct(rate), delta_description=previous))
    return tiles


def kpi_tiles(answer: Answer, names: Sequence[str], lang: str, compact: bool = False) -> list[Tile]:
    """The semantic layer's ``names`` as tiles: each labelled, formatted and explained by its definition
    (a figure the role sees only as the company's says so in its label); ``compact``: the big screen's forms."""
    return [Tile(f.label, f.text, help=f.help) for f in figures(answer, names, lang, compact)]


def receivables_tile(frame: pl.DataFrame, lang: str, money: Money = fmt.money) -> Tile:
    row = frame.row(0, named=True)
    line = t("tiles.overdue_detail", lang, contracts=fmt.count(row["contracts"]), customers=fmt.count(row["customers"]))
    return detail(t("tiles.overdue", lang), money(row["overdue_amount"]), line, t("tiles.overdue.help", lang))


def at_risk_tile(bands: pl.DataFrame, card: pl.DataFrame, lang: str, money: Money = fmt.money) -> Tile | None:
    """Customers in the high churn-risk band (``churn_bands``) and the revenue at risk; shown only when the
    serving scores passed their backtest (``churn_model_card``), never for unvalidated ones."""
    chosen = card.filter(pl.col("chosen"))
    if chosen.is_empty() or chosen["status"][0] != "validated":
        return None
    high = bands.filter(pl.col("risk_band") == "high").row(0, named=True)
    line = t("churn.at_risk_value", lang, value=money(high["expected_value_at_risk"]))
    return detail(t("tiles.at_risk", lang), fmt.count(high["customers"]), line, t("tiles.at_risk.help", lang))


def health_tile(frame: pl.DataFrame, lang: str) -> Tile:
    """The company-wide score out of 100, and the source that pulls it down most."""
    overall = frame.filter(pl.col("source_system") == ALL_SOURCES)["health_score"].drop_nulls()
    sources = frame.filter(pl.col("source_system") != ALL_SOURCES).drop_nulls("health_score").sort("health_score")
    label, help = t("tiles.health", lang), t("tiles.health.help", lang)
    if overall.is_empty():
        return detail(label, fmt.NONE, t("tiles.health_none", lang), help)
    line = None
    if sources.height:
        worst = sources.row(0, named=True)
        line = t(
            "tiles.health_worst",
            lang,
            source=labels.value("source", worst["source_system"], lang),
            score=fmt.number(worst["health_score"], "number", 0),
        )
    return detail(label, f"{fmt.number(overall[0], 'number', 0)} / 100", line, help)
