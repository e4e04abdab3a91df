"""Channels deliver to real local servers: SMTP over STARTTLS with a login, and robots in their formats."""
# ruff: noqa: F811  (the server fixtures are imported)

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote_plus

import pytest

from dashboard.core.config import Settings
from dashboard.core.errors import ConfigError
from dashboard.ops.notify import Message, send
from tests.test_notify_servers import (  # noqa: F401  (fixtures)
    SMTP_PASSWORD,
    Hooks,
    Smtp,
    closed_port_url,
    http_server,
    notifications_toml,
    smtp_login,
    smtp_server,
    with_config,
)

CLI = "from dashboard.cli import main; main()"
MSG = Message("库存告警 Stock", "第一行\nline two", "warning", data={"rule": "r1"})


def test_email_goes_over_starttls_with_the_login_from_the_environment(
    fresh_company: Settings, smtp_server: Smtp, smtp_login: None
) -> None:
    settings = with_config(fresh_company, notifications_toml(smtp_server, None))
    delivery = send(settings, "ops_mail", MSG)
    assert delivery.ok and delivery.attempts == 1, delivery
    [mail] = smtp_server.box.messages
    assert smtp_server.box.tls_sessions == [True] and smtp_server.box.logins == ["cockpit-bot"]
    assert smtp_server.box.envelopes == [("cockpit@example.com", ["ops@example.com"])]
    assert str(mail["Subject"]) == "库存告警 Stock"
    text = mail.get_payload(decode=True)
    assert isinstance(text, bytes) and "第一行" in text.decode("utf-8")


def test_smtp_credentials_from_secrets_toml(fresh_company: Settings, smtp_server: Smtp) -> None:
    secrets = fresh_company.base_dir / ".streamlit" / "secrets.toml"
    secrets.parent.mkdir(exist_ok=True)
    secrets.write_text(f'[smtp]\nusername = "cockpit-bot"\npassword = "{SMTP_PASSWORD}"\n', encoding="utf-8")
    settings = with_config(fresh_company, notifications_toml(smtp_server, None))
    assert send(settings, "ops_mail", MSG).ok
    assert smtp_server.box.logins == ["cockpit-bot"]


def test_wrong_password_is_reported_without_printing_it(
    fresh_company: Settings, smtp_server: Smtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COCKPIT_SMTP_USERNAME", "cockpit-bot")
    monkeypatch.setenv("COCKPIT_SMTP_PASSWORD", "wrong-one-xyz")
    settings = with_config(fresh_company, notifications_toml(smtp_server, None))
    delivery = send(settings, "ops_mail", MSG, sleep=lambda _s: None)
    assert not delivery.ok and delivery.attempts == 3  # 1 + retries = 2
    assert "login refused" in (delivery.error or "")
    assert "wrong-one-xyz" not in delivery.describe()
    assert smtp_server.box.messages == []


def test_password_in_cockpit_toml_is_refused_naming_the_key(fresh_company: Settings, smtp_server: Smtp) -> None:
    toml = notifications_toml(smtp_server, None).replace('tls = "starttls"', 'tls = "starttls"\npassword = "x"')
    with pytest.raises(ConfigError, match=r"notifications\.smtp: 'password' does not belong in cockpit.toml"):
        with_config(fresh_company, toml)


def test_robot_formats_and_signatures(
    fresh_company: Settings, http_server: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COCKPIT_CHANNEL_OPS_DINGTALK_SECRET", "SECding")
    monkeypatch.setenv("COCKPIT_CHANNEL_OPS_FEISHU_SECRET", "feishu-key")
    settings = with_config(fresh_company, notifications_toml(None, http_server))
    for name in ("ops_wecom", "ops_dingtalk", "ops_feishu", "ops_webhook"):
        assert send(settings, name, MSG).ok, name

    [wecom] = http_server.bodies("/wecom")
    assert wecom["msgtype"] == "markdown" and "**库存告警 Stock**" in wecom["markdown"]["content"]

    [ding] = [r for r in http_server.received if r["path"] == "/dingtalk"]
    assert ding["body"]["msgtype"] == "markdown" and ding["body"]["markdown"]["title"] == "库存告警 Stock"
    assert ding["query"]["access_token"] == ["tok123"]
    stamp, sign = ding["query"]["timestamp"][0], ding["query"]["sign"][0]
    expected = base64.b64encode(hmac.new(b"SECding", f"{stamp}\nSECding".encode(), hashlib.sha256).digest())
    assert unquote_plus(sign) == expected.decode() or sign == expected.decode()

    [feishu] = http_server.bodies("/feishu")
    assert feishu["msg_type"] == "text" and feishu["content"]["text"].startswith("库存告警 Stock\n第一行")
    key = f"{feishu['timestamp']}\nfeishu-key".encode()
    assert feishu["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()

    [generic] = http_server.bodies("/hook")
    assert generic == {"title": "库存告警 Stock", "text": "第一行\nline two", "severity": "warning", "rule": "r1"}


def test_a_failing_webhook_is_retried_then_succeeds(fresh_company: Settings, http_server: Hooks) -> None:
    settings = with_config(fresh_company, notifications_toml(None, http_server))
    http_server.failures["/hook"] = 2
    waits: list[float] = []
    delivery = send(settings, "ops_webhook", MSG, sleep=waits.append)
    assert delivery.ok and delivery.attempts == 3
    assert len(http_server.bodies("/hook")) == 3 and len(waits) == 2


def test_an_unreachable_webhook_is_reported_after_the_retries_without_its_token(fresh_company: Settings) -> None:
    url = closed_port_url() + "?key=TOKEN-abc"
    toml = "[notifications]\nretries = 2\nretry_backoff_seconds = 0\n[[notifications.channels]]\n"
    toml += f'name = "down"\nkind = "wecom"\nurl = "{url}"\n'
    settings = with_config(fresh_company, toml)
    delivery = send(settings, "down", MSG)
    assert not delivery.ok and delivery.attempts == 3
    assert "127.0.0.1" in (delivery.error or "") and "TOKEN-abc" not in delivery.describe()


def test_robot_refusal_in_the_body_is_a_failure(fresh_company: Settings, http_server: Hooks) -> None:
    from tests import test_notify_servers

    settings = with_config(fresh_company, notifications_toml(None, http_server))
    refused = {"errcode": 93000, "errmsg": "invalid webhook url"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(test_notify_servers.REPLIES, "/wecom", refused)
        delivery = send(settings, "ops_wecom", MSG, sleep=lambda _s: None)
    assert not delivery.ok and "93000" in (delivery.error or "")


def test_notify_test_command(fresh_company: Settings, http_server: Hooks, tmp_path: Path) -> None:
    settings = with_config(fresh_company, notifications_toml(None, http_server))
    cfg = str(settings.base_dir / "cockpit.toml")
    ok = subprocess.run(
        [sys.executable, "-c", CLI, "--config", cfg, "notify", "test", "ops_feishu"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0, ok.stderr
    assert "ops_feishu: sent" in ok.stdout
    assert "test" in http_server.bodies("/feishu")[0]["content"]["text"]
    unknown = subprocess.run(
        [sys.executable, "-c", CLI, "--config", cfg, "notify", "test", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert unknown.returncode == 2 and "no notification channel named 'nope'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
