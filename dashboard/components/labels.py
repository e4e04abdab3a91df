"""Coded values shown by their names: the value dictionary (dashboard/i18n/values.py) with the company's
own ``[labels]`` and source titles from cockpit.toml. Only what is drawn is labelled; data and exports
keep the codes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import polars as pl

from dashboard.components import data
from dashboard.core.errors import CockpitError
from dashboard.i18n.values import BUILT_IN, ValueLabels

# a result column → the dimension its values are codes of (where the column's name says it)
COLUMNS: dict[str, str] = {
    "channel": "channel",
    "stage": "stage",
    "furthest_stage": "stage",
    "lifecycle_stage": "lifecycle",
    "rfm_segment": "rfm",
    "value_tier": "value_tier",
    "risk_band": "risk_band",
    "consent": "consent",
    "segment": "segment",
    "category": "category",
    "source_system": "source",
    "source": "source",
    "record_kind": "record_kind",
    "match_rule": "match_rule",
    "entity": "entity",
    "outcome": "outcome",
    "region": "region",
    "industry": "industry",
    "campaign": "campaign",
}


def labels() -> ValueLabels:
    try:
        return ValueLabels(data.settings().label_texts())
    except CockpitError:  # no readable config: the page says why; the built-in names still apply
        return BUILT_IN


def value(dimension: str, code: object, lang: str) -> str:
    return labels().label(dimension, code, lang)


def expr(dimension: str, column: str, lang: str, codes: Iterable[str] = ()) -> pl.Expr:
    """``column``'s codes as their labels (one vectorised replace; an unnamed code stays, a null is "—")."""
    table = labels().table(dimension, lang, codes)
    return (
        pl.col(column)
        .cast(pl.String)
        .replace_strict(table, default=pl.col(column).cast(pl.String), return_dtype=pl.String)
        .fill_null("—")
    )


def frame(rows: pl.DataFrame, lang: str, dims: Mapping[str, str] | None = None) -> pl.DataFrame:
    """``rows`` with every coded column (``dims``: column → dimension; by default by the column's name)
    shown by its labels."""
    dims = COLUMNS if dims is None else dims
    present = [(c, d) for c, d in dims.items() if c in rows.columns and rows[c].dtype == pl.String]
    return rows.with_columns(expr(d, c, lang).alias(c) for c, d in present) if present else rows
