"""Tables as files to download: CSV and Excel bytes from a polars frame, no streamlit.

Both formats carry the active filters as header rows above the table, and every text cell a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return) gets a leading apostrophe. Numbers, dates and empty cells are written as what they are;
nested values (lists, structs) as JSON text.

``neutralize`` is the one rule, and every path that writes data for a spreadsheet or another system
goes through this module: page downloads (``to_csv``, ``to_excel``), ``cockpit query/sql --format
csv`` and the e-mailed report attachments (``csv_text``), webhook payloads (``neutralize_payload``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Sequence
from datetime import date, datetime, time
from typing import Any

import polars as pl
import xlsxwriter
from xlsxwriter.worksheet import Worksheet

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Header = Sequence[tuple[str, str]]  # (label, value) rows written above the table
_SHEET_UNSAFE = re.compile(r"[\[\]:*?/\\']")


def neutralize(value: Any) -> Any:
    """Text that would start a formula gets a leading apostrophe; anything else is returned as is."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def neutralize_payload(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, text, numbers) with every text in it neutralized, keys too."""
    if isinstance(value, dict):
        return {neutralize(k): neutralize_payload(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [neutralize_payload(v) for v in value]
    return neutralize(value)


def nested_text(value: Any) -> str:
    """A list or struct cell as JSON text (dates and other values as their text)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def safe_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` as a spreadsheet may open it: nested columns as JSON text, and every text cell and
    column name that would start a formula neutralized (``neutralize``'s rule, column by column)."""
    nested = [
        pl.Series(name, [None if v is None else nested_text(v) for v in frame[name].to_list()], pl.String)
        for name, dtype in frame.schema.items()
        if dtype.is_nested()
    ]
    out = frame.with_columns(nested) if nested else frame
    texts = [n for n, d in out.schema.items() if isinstance(d, pl.String | pl.Categorical | pl.Enum)]
    starts = [pl.any_horizontal(pl.col(n).cast(pl.String).str.starts_with(c) for c in FORMULA_START) for n in texts]
    out = out.with_columns(
        pl.when(start).then(pl.lit("'") + pl.col(n).cast(pl.String)).otherwise(pl.col(n).cast(pl.String)).alias(n)
        for n, start in zip(texts, starts, strict=True)
    )
    return out.rename({c: neutralize(c) for c in out.columns if neutralize(c) != c})


def csv_text(frame: pl.DataFrame) -> str:
    """Plain CSV (UTF-8, no BOM, LF lines) of ``safe_frame(frame)``: what ``cockpit query --format csv``
    prints and the reports attach."""
    return safe_frame(frame).write_csv()


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def _csv_cell(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | dict):
        return str(neutralize(nested_text(value)))
    return str(neutralize(str(value)))


def to_csv(frame: pl.DataFrame, header: Header = ()) -> bytes:
    """UTF-8 with a BOM (so Excel in China reads the Chinese text), CRLF lines."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    for label, value in header:
        writer.writerow([neutralize(label), neutralize(value)])
    if header:
        writer.writerow([])
    writer.writerow([neutralize(c) for c in frame.columns])
    for row in frame.iter_rows():
        writer.writerow([_csv_cell(v) for v in row])
    return buf.getvalue().encode("utf-8-sig")


def sheet_name(title: str) -> str:
    """Excel allows 31 characters and none of []:*?/\\ in a sheet name."""
    return _SHEET_UNSAFE.sub("_", title).strip()[:31] or "data"


def to_excel(frame: pl.DataFrame, header: Header = (), sheet: str = "data") -> bytes:
    """One sheet: the header rows, a blank row, then the table with its column names in bold."""
    buf = io.BytesIO()
    options = {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
    with xlsxwriter.Workbook(buf, options) as book:
        ws = book.add_worksheet(sheet_name(sheet))
        formats = {
            "bold": book.add_format({"bold": True}),
            "date": book.add_format({"num_format": "yyyy-mm-dd"}),
            "datetime": book.add_format({"num_format": "yyyy-mm-dd hh:mm"}),
        }
        row = 0
        for label, value in header:
            ws.write_string(row, 0, neutralize(label), formats["bold"])
            ws.write_string(row, 1, neutralize(value))
            row += 1
        row += 1 if header else 0
        for col, name in enumerate(frame.columns):
            ws.write_string(row, col, neutralize(name), formats["bold"])
        ws.freeze_panes(row + 1, 0)
        for values in frame.iter_rows():
            row += 1
            for col, value in enumerate(values):
                _write(ws, row, col, value, formats)
        for col, name in enumerate(frame.columns):
            ws.set_column(col, col, max(10, min(40, len(name) * 2 + 2)))
    return buf.getvalue()


def _write(ws: Worksheet, row: int, col: int, value: Any, formats: dict[str, Any]) -> None:
    if _missing(value):
        return
    if isinstance(value, bool):
        ws.write_boolean(row, col, value)
    elif isinstance(value, int | float):
        ws.write_number(row, col, value)
    elif isinstance(value, datetime):
        ws.write_datetime(row, col, value.replace(tzinfo=None), formats["datetime"])
    elif isinstance(value, date):
        ws.write_datetime(row, col, datetime.combine(value, time()), formats["date"])
    elif isinstance(value, list | dict):
        ws.write_string(row, col, neutralize(nested_text(value)))
    else:
        ws.write_string(row, col, neutralize(str(value)))
