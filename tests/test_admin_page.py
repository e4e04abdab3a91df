"""The admin page as an admin reads it, in Chinese: the audit log and the accounts table in the UI's words and the
company's time, not the log's codes (page_view, customer_360, sales) and UTC timestamps."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.access import auth
from dashboard.core import audit
from dashboard.core.config import Settings
from tests.fixture_data import open_app_page

pytestmark = pytest.mark.usefixtures("fresh_caches")


def _in_chinese(company: Settings, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = open_app_page(company, monkeypatch, "admin")
    at.sidebar.radio[0].set_value("zh").run()
    assert not at.exception, at.exception
    return at


def _table(at: AppTest, heading: str) -> pd.DataFrame:
    frames = [d.value for d in at.dataframe]
    frames = [f.data if hasattr(f, "data") else f for f in frames]  # a Styler's frame
    return next(f for f in frames if heading in f.columns)


def test_the_audit_log_names_actions_roles_and_pages_and_shows_the_companys_time(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = audit.record(company, "page_refused", "li", "sales", "10.0.0.7", target="data_quality")
    at = _in_chinese(company, monkeypatch)
    log = _table(at, "操作")
    assert list(log.columns) == ["时间", "操作", "用户", "角色", "来源地址", "对象", "行数", "详情"]
    row = log[log["用户"] == "li"].iloc[0]
    assert (row["操作"], row["角色"], row["对象"]) == ("拒绝打开页面", "销售", "数据质量")
    local = event["at"].astimezone(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)  # Asia/Shanghai
    assert row["时间"].to_pydatetime().replace(microsecond=0) == local.replace(microsecond=0)
    assert "page_view" not in set(log["操作"]) and "admin" not in set(log["角色"])


def test_an_events_details_are_written_in_words_not_the_logs_json(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit.record(company, "sign_in", "li", "sales", "10.0.0.7", method="password")
    audit.record(company, "privacy_retention", "ops", "admin", "cli", "retention", 12, removed={"leads": 12})
    at = _in_chinese(company, monkeypatch)
    log = _table(at, "操作")
    assert log[log["用户"] == "li"].iloc[0]["详情"] == "方式：密码"
    assert log[log["用户"] == "ops"].iloc[0]["详情"] == "删除的行：线索 12"


def test_the_accounts_show_when_they_were_made_in_the_companys_time(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    auth.add_user(company, "wang", "analyst", "a long enough password")
    made = auth.load_accounts(company)["wang"].created_at
    at = _in_chinese(company, monkeypatch)
    accounts = _table(at, "创建时间")
    shown = accounts[accounts["用户名"] == "wang"].iloc[0]
    local = dt.datetime.fromisoformat(made).astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert shown["创建时间"] == f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"  # as every zh time
    assert shown["角色"] == "分析师"


def test_no_privacy_request_yet_is_said_in_words_not_an_empty_grid(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = _in_chinese(company, monkeypatch)
    assert "没有记录。" in [c.value for c in at.caption]
    assert not [d for d in at.dataframe if "action" in d.value.columns]  # the log's own heading


def test_the_retention_preview_names_sources_entities_and_places(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = company.base_dir / "cockpit.toml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + '\n[privacy.retention]\nleads = "30d"\n', encoding="utf-8")
    at = _in_chinese(company, monkeypatch)
    at.toggle(key="privacy_preview").set_value(True).run()
    assert not at.exception, at.exception
    preview = _table(at, "已过留存期的行")
    assert list(preview.columns) == ["数据源", "数据实体", "位置", "文件数", "行数", "已过留存期的行"]
    assert set(preview["数据实体"]) <= {"线索", "线索阶段事件"} and "当前快照" in set(preview["位置"])
    assert not {"crm", "leads", "current"} & set(preview.stack())


def test_in_english_roles_and_sign_in_methods_read_as_words_and_a_missing_owner_as_a_dash(
    company: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk read "admin", "manager" and "method: password" in the English log as codes, and an account
    without an owner name as a blank cell."""
    audit.record(company, "sign_in", "li", "sales", "10.0.0.7", method="password")
    audit.record(company, "page_view", "zhao", "manager", "10.0.0.8", target="channels")
    auth.add_user(company, "wang", "analyst", "a long enough password")
    auth.add_user(company, "zhang", "sales", "a long enough password", "张伟")
    at = open_app_page(company, monkeypatch, "admin")
    log = _table(at, "Action")
    signed_in = log[log["User"] == "li"].iloc[0]
    assert (signed_in["Role"], signed_in["Detail"]) == ("Sales", "Sign-in method: Password")
    assert log[log["User"] == "zhao"].iloc[0]["Role"] == "Manager"
    assert not {"admin", "manager", "analyst", "sales", "system"} & set(log["Role"])
    accounts = _table(at, "Owner name").set_index("User name")
    assert (accounts.loc["wang", "Role"], accounts.loc["wang", "Owner name"]) == ("Analyst", "—")
    assert (accounts.loc["zhang", "Role"], accounts.loc["zhang", "Owner name"]) == ("Sales", "张伟")
