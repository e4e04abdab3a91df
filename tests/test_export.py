"""Exports: a spreadsheet never runs a cell as a formula, numbers stay numbers, the filters are on top."""

from __future__ import annotations

import csv
import datetime as dt
import io

import polars as pl
import pytest

from dashboard.components.export_buttons import filter_rows
from dashboard.components.filterbar import Filters
from dashboard.components.funnel import KINDS
from dashboard.components.tables import rounded
from dashboard.i18n import heading
from dashboard.ops.export import neutralize, sheet_name, to_csv, to_excel

FRAME = pl.DataFrame(
    {
        "campaign": ["=1+1", "@SUM(A1)", "+86 138", "-cmd|' /C calc'!A0", "\tTAB", "\rCR", "Spring show", None],
        "revenue": [21000.0, -500.0, 0.0, None, 1.5, 2.0, 3.0, 4.0],
        "leads": [30, -1, 0, 1, 2, 3, 4, None],
        "created_at": [dt.datetime(2026, 3, 1, 9, 30)] * 8,
    }
)
HEADER = [("Table", "Campaigns"), ("Lead creation date", "2026-03-01 – 2026-03-10"), ("Campaign", "=HYPERLINK(x)")]
NEUTRALIZED = ["'=1+1", "'@SUM(A1)", "'+86 138", "'-cmd|' /C calc'!A0", "'\tTAB", "'\rCR", "Spring show"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
        ("", ""),
        (-5, -5),
        (2.5, 2.5),
        (None, None),
    ],
)
def test_neutralize(value: object, expected: object) -> None:
    assert neutralize(value) == expected


def test_csv_neutralizes_text_keeps_numbers_and_starts_with_the_filters() -> None:
    data = to_csv(FRAME, HEADER)
    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel in China reads the UTF-8 text
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[:4] == [
        ["Table", "Campaigns"],
        ["Lead creation date", "2026-03-01 – 2026-03-10"],
        ["Campaign", "'=HYPERLINK(x)"],
        [],
    ]
    assert rows[4] == ["campaign", "revenue", "leads", "created_at"]
    body = rows[5:]
    assert [r[0] for r in body] == [*NEUTRALIZED, ""]
    assert [r[1] for r in body[:4]] == ["21000.0", "-500.0", "0.0", ""]  # numbers untouched, empty stays empty
    assert [r[2] for r in body[:2]] == ["30", "-1"]
    assert body[0][3] == "2026-03-01 09:30:00"


def test_csv_without_filters_is_just_the_table() -> None:
    rows = list(csv.reader(io.StringIO(to_csv(FRAME).decode("utf-8-sig"), newline="")))
    assert rows[0] == FRAME.columns and len(rows) == FRAME.height + 1


def test_excel_opens_with_the_filters_on_top_and_the_rows_below() -> None:
    data = to_excel(FRAME, HEADER, sheet="Campaigns")
    raw = pl.read_excel(io.BytesIO(data), engine="calamine", has_header=False)
    assert raw.row(0) == ("Table", "Campaigns", None, None)
    assert raw.row(2)[:2] == ("Campaign", "'=HYPERLINK(x)")
    table = pl.read_excel(io.BytesIO(data), engine="calamine", read_options={"header_row": len(HEADER) + 1})
    assert table.columns == FRAME.columns
    assert table.height == FRAME.height
    assert table["campaign"].to_list() == [*NEUTRALIZED, None]
    assert table["revenue"].dtype == pl.Float64
    assert table["revenue"].to_list() == [21000.0, -500.0, 0.0, None, 1.5, 2.0, 3.0, 4.0]
    assert table["leads"].to_list()[:3] == [30, -1, 0]
    assert table["created_at"][0] == dt.datetime(2026, 3, 1, 9, 30)


def test_excel_sheet_names_are_valid() -> None:
    assert sheet_name("Spend / revenue: [2026]?") == "Spend _ revenue_ _2026__"
    assert len(sheet_name("x" * 50)) == 31
    assert sheet_name("///") == "___" and sheet_name("") == "data"


def test_filter_rows_name_every_filter_that_applies() -> None:
    filters = Filters(start=dt.date(2026, 3, 1), end=dt.date(2026, 3, 10), channel="paid_search")
    assert filter_rows(filters, "en") == [
        ("Lead creation date", "2026-03-01 – 2026-03-10"),
        ("Channel", "paid_search"),
        ("Region", "All"),
        ("Owner", "All"),
        ("Campaign", "All"),
    ]
    assert filter_rows(Filters(), "zh", applies=("period",)) == [("线索创建日期", "全部时间")]


def test_a_page_export_rounds_each_number_to_what_the_table_shows() -> None:
    """The funnel's export: 5 of 86 is 5.8% on the screen and 0.058 in the file (not 0.05813953488372093),
    a median of 3.25 days is 3.2 days; counts stay whole numbers, a missing median an empty cell."""
    funnel = pl.DataFrame(
        {
            "stage": ["mql", "won"],
            "leads_reached": [86, 5],
            "step_conversion": [0.6515151515151515, 5 / 86],
            "median_days_in_stage": [3.25, None],
        }
    )
    out = rounded(funnel, KINDS)
    assert out.rows() == [("mql", 86, 0.652, 3.2), ("won", 5, 0.058, None)]
    lines = to_csv(out.rename({c: heading(c, "zh") for c in out.columns})).decode("utf-8-sig").split("\r\n")
    assert lines[2] == "won,5,0.058,"
    assert lines[0].split(",")[1:3] == [heading("leads_reached", "zh"), heading("step_conversion", "zh")]
    assert "leads_reached" not in lines[0] and "step_conversion" not in lines[0]
    sheet = pl.read_excel(io.BytesIO(to_excel(out)), engine="calamine")
    assert sheet.row(1) == ("won", 5, 0.058, None)
