"""Signed in for real in chromium, as sales and as manager, on the same page: each sees what the data
layer gives their role (the sales rep their own leads, the manager all), and sales cannot open a page
outside their role by its URL."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.access.auth import load_accounts
from dashboard.components import fmt
from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.query.warehouse import Warehouse
from tests.browser.conftest import PAGE_TIMEOUT_MS
from tests.browser.test_cockpit_and_channels import metric, settled, shot

pytestmark = pytest.mark.slow


def sign_in(browser: Any, url: str, user: str, path: str = "") -> Any:
    page = browser.new_page(viewport={"width": 1600, "height": 1000}, locale="zh-CN")
    page.goto(f"{url}/{path}")
    page.get_by_label(t("auth.username", "zh")).fill(user)
    page.get_by_label(t("auth.password", "zh")).fill(f"{user}-demo")
    page.get_by_role("button", name=t("auth.submit", "zh")).click()
    return page


def test_sales_and_manager_see_their_own_numbers_on_the_cockpit(
    demo: Settings, secured_app_url: str, browser: Any, artifacts: Any
) -> None:
    wh = Warehouse(demo)
    shown = {}
    for user in ("sales", "manager"):
        page = sign_in(browser, secured_app_url, user)
        settled(page)
        shown[user] = metric(page, t("metric.leads", "zh"))
        caption = t("auth.signed_in", "zh", user=user, role=t(f"role.{user}", "zh"))
        assert page.get_by_text(caption).is_visible()
        shot(page, artifacts, f"cockpit_signed_in_{user}")
        page.close()
    accounts = load_accounts(demo)
    expected = {
        user: fmt.count(wh.run_query("channel_summary", user=accounts[user].principal)["leads"].sum())
        for user in ("sales", "manager")
    }
    assert shown == expected
    assert shown["sales"] != shown["manager"]  # one rep's leads are a part of the company's


def test_a_page_outside_the_role_is_refused_by_url(secured_app_url: str, browser: Any) -> None:
    page = sign_in(browser, secured_app_url, "sales", "data_quality")
    refusal = t("auth.refused", "zh", page=t("page.data_quality", "zh"), role=t("role.sales", "zh"))
    page.get_by_text(refusal).wait_for(timeout=PAGE_TIMEOUT_MS)
    assert page.get_by_role("link", name=t("page.data_quality", "zh")).count() == 0  # not in the navigation
    page.close()
