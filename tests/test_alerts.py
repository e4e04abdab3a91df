"""Alert rules on the refreshed company: what fires, what a real server receives, and the cool-down."""
# ruff: noqa: F811  (the server fixtures are imported)

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dashboard.core.config import Settings
from dashboard.core.errors import ConfigError
from dashboard.ops.alerts import evaluate, run_alerts
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.test_notify_servers import (  # noqa: F401  (fixtures)
    Hooks,
    Smtp,
    closed_port_url,
    http_server,
    notifications_toml,
    smtp_login,
    smtp_server,
    with_config,
)

TZ = ZoneInfo("Asia/Shanghai")
FRIDAY = datetime(2026, 3, 20, 9, 0, tzinfo=TZ)  # last complete week: Mon 9 – Sun 15 March


def rule(name: str, kind: str, channels: str, extra: str = "") -> str:
    return f'[[alerts]]\nname = "{name}"\nkind = "{kind}"\nchannels = [{channels}]\n{extra}\n'


def test_stale_source_alert_is_sent_once_per_cool_down(company: Settings, http_server: Hooks) -> None:
    toml = notifications_toml(None, http_server) + rule(
        "late", "source", '"ops_webhook"', 'severity = "critical"\ncooldown_minutes = 60'
    )
    settings = with_config(company, toml)
    later = datetime.now(TZ) + timedelta(days=3)  # trade_show runs daily at 02:00: three days late is stale

    first = run_alerts(settings, later)
    assert [f.subject for f in first.findings] == ["trade_show"] and all(d.ok for d in first.deliveries)
    [body] = http_server.bodies("/hook")
    assert body["severity"] == "critical" and body["rule"] == "late"
    assert "trade_show stale" in body["text"]

    again = run_alerts(settings, later + timedelta(minutes=30))  # inside the cool-down: nothing sent
    assert again.findings == [] and [f.subject for f in again.suppressed] == ["trade_show"]
    assert len(http_server.bodies("/hook")) == 1

    after = run_alerts(settings, later + timedelta(minutes=61))
    assert [f.subject for f in after.findings] == ["trade_show"]
    assert len(http_server.bodies("/hook")) == 2
    state = json.loads((settings.data_path / "runs" / "alerts_state.json").read_text(encoding="utf-8"))
    assert state == {"late|trade_show": (later + timedelta(minutes=61)).isoformat()}
    history = (settings.data_path / "runs" / "alerts.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(h)["sent"] for h in history] == [True, False, True]


def test_cool_down_holds_for_email_too(
    company: Settings, smtp_server: Smtp, smtp_login: None, http_server: Hooks
) -> None:
    toml = notifications_toml(smtp_server, None) + rule("late", "source", '"ops_mail"', 'sources = ["trade_show"]')
    settings = with_config(company, toml)
    later = datetime.now(TZ) + timedelta(days=3)
    for minutes in (0, 5, 60):
        run_alerts(settings, later + timedelta(minutes=minutes))
    [mail] = smtp_server.box.messages  # default cool-down 360 minutes
    assert "[WARNING] CRM Cockpit: late" in str(mail["Subject"])


def test_data_health_below_threshold_names_the_sources_the_query_scores_low(
    company: Settings, http_server: Hooks
) -> None:
    scores = Warehouse(company).run_query("data_health", user=SYSTEM)
    by_source = dict(zip(scores["source_system"], scores["health_score"], strict=True))
    lowest = min(by_source.values())
    threshold = lowest + 0.05  # only the lowest-scoring source(s) are below
    toml = notifications_toml(None, http_server) + rule("health", "data_health", '"ops_wecom"', f"below = {threshold}")
    settings = with_config(company, toml)

    run = run_alerts(settings)
    assert {f.subject for f in run.findings} == {s for s, v in by_source.items() if v < threshold}
    [body] = http_server.bodies("/wecom")
    assert f"{lowest:.1f} (below {threshold:g})" in body["markdown"]["content"]


def test_metric_change_against_the_previous_week(company: Settings, http_server: Hooks) -> None:
    extra = 'query = "channel_summary"\ncolumn = "leads"\nby = ["channel"]\nchange_pct = 10\nperiod = "week"'
    settings = with_config(
        company, notifications_toml(None, http_server) + rule("leads", "metric_change", '"ops_dingtalk"', extra)
    )
    run = run_alerts(settings, FRIDAY)
    # week 2–8 March against 9–15 March, counted in tests/fixture_data.py:
    # paid_search 7 → 7 (no alert); trade_show 6 → 7 (+16.7%); website 7 → 2 (−71.4%); unknown 1 → 0 (−100%)
    texts = {f.subject: f.text for f in run.findings}
    assert set(texts) == {"channel=trade_show", "channel=website", "channel=unknown"}
    assert "6 → 7 (+16.7%" in texts["channel=trade_show"] and "7 → 2 (-71.4%" in texts["channel=website"]
    w = Warehouse(settings)
    for start, end, n in (("2026-03-02", "2026-03-08", 6), ("2026-03-09", "2026-03-15", 7)):
        df = w.run_query("channel_summary", {"start": start, "end": end}, user=SYSTEM)
        assert df.filter(df["channel"] == "trade_show")["leads"].item() == n  # the numbers the cockpit shows
    [body] = http_server.bodies("/dingtalk")
    assert "trade_show" in body["markdown"]["text"]


def test_a_query_with_a_previous_column_compares_in_one_run(company: Settings) -> None:
    extra = 'query = "new_leads"\ncolumn = "leads"\nby = ["period"]\nchange_pct = 50\nparams = { as_of = "2026-03-10" }'
    toml = '[notifications]\n[[notifications.channels]]\nname = "x"\nkind = "webhook"\nurl = "http://127.0.0.1:9/x"\n'
    settings = with_config(company, toml + rule("new", "metric_change", '"x"', extra))
    run = evaluate(settings)
    frame = Warehouse(settings).run_query("new_leads", {"as_of": "2026-03-10"}, user=SYSTEM)
    expected = {
        f"period={r['period']}"
        for r in frame.iter_rows(named=True)
        if r["previous_leads"] and abs(r["leads"] - r["previous_leads"]) / r["previous_leads"] > 0.5
    }
    assert {f.subject for f in run.findings} == expected and run.errors == []


def test_churn_rule_without_the_churn_table_is_not_available_yet(company: Settings, http_server: Hooks) -> None:
    extra = 'above = 5\nquery = "churn_watchlist_not_built"'
    settings = with_config(
        company, notifications_toml(None, http_server) + rule("churn", "churn_risk", '"ops_webhook"', extra)
    )
    run = run_alerts(settings)
    assert run.findings == [] and run.errors == []
    assert run.unavailable and "not available yet" in run.unavailable[0]
    assert http_server.received == []


def test_unreachable_channel_is_reported_and_retried_after_the_next_refresh(company: Settings) -> None:
    toml = "[notifications]\nretries = 1\nretry_backoff_seconds = 0\n[[notifications.channels]]\n"
    toml += f'name = "down"\nkind = "feishu"\nurl = "{closed_port_url()}"\n' + rule("late", "source", '"down"')
    settings = with_config(company, toml)
    later = datetime.now(TZ) + timedelta(days=3)
    first = run_alerts(settings, later)
    [delivery] = first.deliveries
    assert not delivery.ok and delivery.attempts == 2 and "FAILED" in delivery.describe()
    second = run_alerts(settings, later + timedelta(minutes=1))  # nothing got through: no cool-down started
    assert [f.subject for f in second.findings] == ["trade_show"]


def test_alert_config_errors_name_the_key(company: Settings) -> None:
    cfg = company.base_dir / "cockpit.toml"
    original = cfg.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match=r"alerts\[0\] \(x\).*metric_change alert needs query, column, change_pct"):
        with_config(company, rule("x", "metric_change", ""))
    cfg.write_text(original, encoding="utf-8")
    with pytest.raises(ConfigError, match="alert 'y': no channel or source named 'nowhere'"):
        with_config(company, rule("y", "source", '"nowhere"'))


def test_a_manual_refresh_evaluates_the_alerts(company: Settings, http_server: Hooks) -> None:
    import subprocess
    import sys

    settings = with_config(company, notifications_toml(None, http_server) + rule("q", "source", '"ops_feishu"'))
    (settings.base_dir / "imports" / "crm" / "leads.csv").write_bytes(b"")  # the CRM batch is empty: quarantined
    cfg = str(settings.base_dir / "cockpit.toml")
    done = subprocess.run(
        [sys.executable, "-c", "from dashboard.cli import main; main()", "--config", cfg, "refresh", "crm", "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 3, done.stderr  # the alert does not change the refresh's exit code
    [body] = http_server.bodies("/feishu")
    assert "crm quarantined" in body["content"]["text"]
    assert "notify ops_feishu: sent" in done.stderr


def test_churn_rule_counts_the_high_risk_band_of_churn_list(company: Settings, http_server: Hooks) -> None:
    high = Warehouse(company).run_query("churn_list", {"band": "high"}, user=SYSTEM).height
    assert high > 0
    cfg = company.base_dir / "cockpit.toml"
    original = cfg.read_text(encoding="utf-8")
    for above, fires in ((high - 1, True), (high, False)):
        cfg.write_text(original, encoding="utf-8")
        churn_rule = rule(f"churn{above}", "churn_risk", '"ops_webhook"', f"above = {above}")
        run = run_alerts(with_config(company, notifications_toml(None, http_server) + churn_rule))
        expected = [f"{high} churn-risk customers (more than {above})"] if fires else []
        assert [f.text for f in run.findings] == expected
