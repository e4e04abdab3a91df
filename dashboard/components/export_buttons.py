"""CSV and Excel downloads of the table behind a chart, with the filters in force written on top.

The files are built only when a button is clicked (deferred data), and a download does not rerun
the page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl
import streamlit as st

from dashboard.components import fmt
from dashboard.components.data import settings, user
from dashboard.components.filterbar import CHOICES, FIELDS, Filters
from dashboard.components.signin import client_address
from dashboard.components.tables import Kind, rounded
from dashboard.core import audit
from dashboard.i18n import heading, t
from dashboard.ops import export


def filter_rows(filters: Filters | None, lang: str, applies: Sequence[str] = FIELDS) -> list[tuple[str, str]]:
    """One (label, value) row per filter that applies to the table; unset filters say "all"."""
    if filters is None:
        return []
    rows = []
    if "period" in applies:
        period = f"{filters.start} – {filters.end}" if filters.start and filters.end else t("filter.all_time", lang)
        rows.append((t("filter.period", lang), period))
    for name in CHOICES:
        if name in applies:
            rows.append((t(f"filter.{name}", lang), getattr(filters, name) or t("filter.all", lang)))
    return rows


def export_header(
    title: str, filters: Filters | None, lang: str, tz: str, applies: Sequence[str]
) -> list[tuple[str, str]]:
    exported = fmt.day_time(datetime.now(ZoneInfo(tz)), lang)
    return [(t("export.table", lang), title), (t("export.at", lang), exported), *filter_rows(filters, lang, applies)]


def audited(build: Callable[[], bytes], file_name: str, rows: int) -> Callable[[], bytes]:
    """The download's deferred data, recording who exported what (and how many rows) when it is built."""
    who, cfg, client = user(), settings(), client_address()

    def make() -> bytes:
        audit.record(cfg, "export", who.username, who.role, client, target=file_name, rows=rows)
        return build()

    return make


def exported(
    frame: pl.DataFrame,
    lang: str,
    kinds: Mapping[str, Kind] | None = None,
    names: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The table as a download writes it: each number column of ``kinds`` rounded to the precision the page
    shows (still a number), every column headed by its label in the language (``names``' as the page heads it)."""
    out = rounded(frame, kinds or {})
    return out.rename({c: (names or {}).get(c) or heading(c, lang) for c in out.columns})


def export_buttons(
    frame: pl.DataFrame,
    name: str,
    title: str,
    filters: Filters | None,
    lang: str,
    applies: Sequence[str] = FIELDS,
    kinds: Mapping[str, Kind] | None = None,
    names: Mapping[str, str] | None = None,
) -> None:
    """Two small buttons; ``name`` is the file name (ASCII) and the widgets' key; ``kinds`` (as the table on
    the page has them) round each number column to the precision shown; ``names`` head columns as the page does."""
    tz = settings().timezone
    rows = export_header(title, filters, lang, tz, applies)
    out = exported(frame, lang, kinds, names)
    stamp = datetime.now(ZoneInfo(tz)).strftime("%Y%m%d")
    with st.container(horizontal=True, gap="small"):
        st.download_button(
            t("export.csv", lang),
            data=audited(lambda: export.to_csv(out, rows), f"{name}_{stamp}.csv", out.height),
            file_name=f"{name}_{stamp}.csv",
            mime="text/csv",
            key=f"export_csv_{name}",
            on_click="ignore",
            icon=":material/download:",
            type="tertiary",
        )
        st.download_button(
            t("export.excel", lang),
            data=audited(lambda: export.to_excel(out, rows, sheet=title), f"{name}_{stamp}.xlsx", out.height),
            file_name=f"{name}_{stamp}.xlsx",
            mime=export.XLSX_MIME,
            key=f"export_xlsx_{name}",
            on_click="ignore",
            icon=":material/table_view:",
            type="tertiary",
        )
