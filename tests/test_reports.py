"""Scheduled reports: the mail a real SMTP server receives has the numbers `cockpit query` gives,
masked phones for a manager list, the CSV of the channel table, charts (or a note why not)."""
# ruff: noqa: F811  (the server fixtures are imported)

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dashboard.core.config import Settings
from dashboard.ops.reports import BY_CHANNEL, find_browser, send_report
from tests.test_notify_servers import (  # noqa: F401  (fixtures)
    Smtp,
    attachments,
    html_part,
    notifications_toml,
    smtp_login,
    smtp_server,
    with_config,
)

CLI = "from dashboard.cli import main; main()"
FRIDAY = datetime(2026, 3, 20, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # last week: 9–15 March
REPORT = """
[[reports]]
name = "weekly_managers"
to = ["boss@example.com", "cmo@example.com"]
period = "week"
role = "manager"
leads = 50
"""
RAW_PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    cfg = str(settings.base_dir / "cockpit.toml")
    return subprocess.run(
        [sys.executable, "-c", CLI, "--config", cfg, *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def reporting(company: Settings, smtp_server: Smtp, smtp_login: None, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("COCKPIT_BROWSER", "none")  # charts have their own test: these stay fast
    return with_config(company, notifications_toml(smtp_server, None) + REPORT)


def test_weekly_report_has_the_numbers_of_cockpit_query(reporting: Settings, smtp_server: Smtp) -> None:
    sent = send_report(reporting, "weekly_managers", FRIDAY)
    assert sent.delivery is not None and sent.delivery.ok
    [mail] = smtp_server.box.messages
    assert smtp_server.box.envelopes[0][1] == ["boss@example.com", "cmo@example.com"]
    assert "Weekly digest 2026-03-09 – 2026-03-15" in str(mail["Subject"])
    body = html_part(mail)

    metrics = [a for m in BY_CHANNEL for a in ("--metric", m)]  # the semantic layer's, as the report asks
    week = cli(
        reporting, "query", *metrics, "--by", "channel", "-p", "start=2026-03-09", "-p", "end=2026-03-15", "-f", "csv"
    )
    before = cli(
        reporting, "query", *metrics, "--by", "channel", "-p", "start=2026-03-02", "-p", "end=2026-03-08", "-f", "json"
    )
    assert week.returncode == 0, week.stderr
    files = attachments(mail)
    assert files["weekly_managers_channels_2026-03-09.csv"].decode() == week.stdout  # the CSV is the query's

    rows, prev = _csv_rows(week.stdout), json.loads(before.stdout)
    leads, prev_leads = sum(int(r["leads"]) for r in rows), sum(r["leads"] for r in prev)
    revenue = sum(float(r["won_amount"]) for r in rows)
    change = (leads - prev_leads) / prev_leads * 100
    assert f"<td>Leads</td><td><b>{leads:,}</b></td><td>{prev_leads:,}</td><td>{change:+.1f}%</td>" in body
    assert f"<td>Won-deal amount</td><td><b>¥{revenue:,.0f}</b></td>" in body
    overdue = json.loads(cli(reporting, "query", "receivables_overdue", "-p", "as_of=2026-03-15", "-f", "json").stdout)
    assert f"<td>Receivables overdue</td><td><b>¥{overdue[0]['overdue_amount']:,.0f}</b>" in body
    health = json.loads(cli(reporting, "query", "data_health", "-f", "json").stdout)
    overall = next(h for h in health if h["source_system"] == "(all)")
    assert f"<td>Data health</td><td><b>{overall['health_score']:.1f}</b>" in body

    top = json.loads(cli(reporting, "query", "churn_list", "-p", "lang=en", "-p", "limit=1", "-f", "json").stdout)
    assert top and f"<td>{top[0]['customer_key']}</td>" in body  # the riskiest customer of `cockpit query`
    assert "<th>Order revenue</th>" in body and "<th>Revenue</th>" not in body  # one term (issue 19, point 3)
    # a manager's list is the whole company's: one rank, as the churn page shows it, not two equal columns
    assert "<th>Rank</th>" in body and "<th>Company rank</th>" not in body
    assert "Charts are not included: no Chrome/Chromium" in body  # and the report went out anyway
    assert "No data quality problems" in body or "Data quality problems" in body


def test_manager_report_masks_phones(reporting: Settings, smtp_server: Smtp) -> None:
    send_report(reporting, "weekly_managers", FRIDAY)
    [mail] = smtp_server.box.messages
    body = html_part(mail)
    leads_csv = attachments(mail)["weekly_managers_leads_2026-03-09.csv"].decode()
    assert "138****8008" in body and "138****8008" in leads_csv  # TS-8, created 9 March, +86 138-0013-8008
    whole = mail.as_string() + body + leads_csv
    assert RAW_PHONE.findall(whole) == []  # not one unmasked mobile anywhere in the message


def test_dry_run_renders_files_and_sends_nothing(reporting: Settings, smtp_server: Smtp, tmp_path: Path) -> None:
    out = tmp_path / "rendered"
    done = cli(reporting, "report", "send", "weekly_managers", "--dry-run", "--out", str(out))
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert any(n.endswith(".eml") for n in names) and any(n.endswith(".html") for n in names)
    assert any(n.endswith("_channels_" + n.split("_channels_")[-1]) for n in names if "_channels_" in n)
    assert smtp_server.box.messages == []
    html_file = next(out.glob("*.html")).read_text(encoding="utf-8")
    assert "<h3>Channels</h3>" in html_file and "note: Charts are not included" in done.stderr


def test_unknown_report_is_a_clear_error(reporting: Settings) -> None:
    done = cli(reporting, "report", "send", "nope")
    assert done.returncode == 2 and "no report named 'nope' (reports: weekly_managers)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("inside_event_loop", [False, True], ids=["plain", "inside-a-running-event-loop"])
def test_charts_are_drawn_by_the_servers_chromium(
    company: Settings, smtp_server: Smtp, smtp_login: None, monkeypatch: pytest.MonkeyPatch, inside_event_loop: bool
) -> None:
    monkeypatch.delenv("COCKPIT_BROWSER", raising=False)
    settings = with_config(company, notifications_toml(smtp_server, None) + REPORT)
    if inside_event_loop:  # a caller that already runs a loop (the full suite leaves one running here)

        async def caller() -> Any:
            return send_report(settings, "weekly_managers", FRIDAY)

        with ThreadPoolExecutor(max_workers=1) as pool:  # a thread of its own: this one may have a loop already
            sent = pool.submit(lambda: asyncio.run(caller())).result()
    else:
        sent = send_report(settings, "weekly_managers", FRIDAY)
    [mail] = smtp_server.box.messages
    images = [p for p in mail.walk() if p.get_content_type() == "image/png"]
    if find_browser() is None:  # a server without a browser: the report says so instead
        assert images == [] and "no Chrome/Chromium" in html_part(mail)
    else:
        assert len(images) == 2 and not any("Charts" in n for n in sent.notes), sent.notes
        for part in images:
            png = part.get_payload(decode=True)
            assert isinstance(png, bytes) and png.startswith(b"\x89PNG") and len(png) > 2000
            assert f'src="cid:{part["Content-ID"].strip("<>")}"' in html_part(mail)


def _csv_rows(text: str) -> list[dict[str, str]]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(text)))
