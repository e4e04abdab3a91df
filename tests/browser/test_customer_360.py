"""Customer 360 in chromium on the medium demo: opened by its deep link, the merged customer's golden phone
is on screen in full for an admin (sign-in off) and masked like 138****8000 for a manager; opened by a click
on the churn list, a sales rep's customer shows the revenue terms, the churn risk and the timeline by day."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from dashboard.access.auth import load_accounts
from dashboard.components import fmt, labels
from dashboard.core.config import Settings
from dashboard.i18n import NO_BREAK, t
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.browser.conftest import PAGE_TIMEOUT_MS
from tests.browser.test_cockpit_and_channels import OFFICE_VIEWPORT, metric, shot
from tests.browser.test_sign_in import sign_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def merged(demo: Settings) -> dict[str, Any]:
    """A top customer that several systems know, whose golden phone more than one system gave."""
    w = Warehouse(demo)
    top = w.run_query("customer_profile", user=SYSTEM).filter(
        (pl.col("sources").list.len() >= 2) & pl.col("phone").is_not_null()
    )
    for customer in top.iter_rows(named=True):
        phone = w.run_query(
            "customer_attributes", {"customer_key": customer["customer_key"], "attribute": "phone"}, user=SYSTEM
        )
        chosen = phone.filter(pl.col("chosen")).row(0, named=True)
        if len(chosen["sources"]) >= 2:
            return customer
    pytest.fail("the medium demo has no top customer whose phone two sources give")


def _profile(page: Any, customer: dict[str, Any]) -> None:
    """Wait for the profile's header and for the script to finish."""
    page.get_by_role("heading", name=customer["name"]).wait_for(timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stStatusWidgetRunningIcon"]', state="hidden", timeout=PAGE_TIMEOUT_MS)


def test_deep_link_shows_the_merged_phone_to_an_admin(
    merged: dict[str, Any], app_url: str, browser: Any, artifacts: Any
) -> None:
    page = browser.new_page(viewport=OFFICE_VIEWPORT, locale="zh-CN")
    page.goto(f"{app_url}/customer_360?customer={merged['customer_key']}")
    _profile(page, merged)
    phone = page.get_by_text(merged["phone"], exact=True)
    assert phone.count() >= 1 and phone.first.is_visible()
    caption = t("c360.key", "zh", customer=merged["customer_key"], records=merged["records"])
    assert page.get_by_text(caption).is_visible()
    shot(page, artifacts, "customer_360_admin")
    page.close()


def test_deep_link_shows_the_phone_masked_to_a_manager(
    merged: dict[str, Any], secured_app_url: str, browser: Any, artifacts: Any
) -> None:
    page = sign_in(browser, secured_app_url, "manager", f"customer_360?customer={merged['customer_key']}")
    _profile(page, merged)
    full = merged["phone"]
    masked = page.get_by_text(f"{full[:3]}****{full[-4:]}", exact=True)
    assert masked.count() >= 1 and masked.first.is_visible()
    assert full not in page.locator('[data-testid="stMain"]').inner_text()
    shot(page, artifacts, "customer_360_manager")
    page.close()


def test_a_churn_row_opens_the_profile_with_its_revenue_terms_risk_and_days(
    demo: Settings, secured_app_url: str, browser: Any, artifacts: Any
) -> None:
    """A sales rep clicks the first row of the churn list and lands on that customer's profile in the same
    tab: the four revenue terms with the profile query's figures, the risk band with the list's reasons,
    and the timeline's newest day with the number of events on it (issue 20, point 3)."""
    who = load_accounts(demo)["sales"].principal
    w = Warehouse(demo)
    top = w.run_query("churn_list", {"limit": 1, "lang": "zh"}, user=who).row(0, named=True)
    profile = w.run_query("customer_profile", {"customer_key": top["customer_key"]}, user=who).row(0, named=True)
    events = w.run_query("customer_timeline", {"customer_key": top["customer_key"]}, user=who)
    page = sign_in(browser, secured_app_url, "sales", "churn")
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for(timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)
    shot(page, artifacts, "churn_list_sales_zh")
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + 36 + 36)  # the first row's selector (header 35 px, rows 72 px)
    page.wait_for_url(f"**/customer_360?customer={top['customer_key']}", timeout=PAGE_TIMEOUT_MS)
    _profile(page, profile)
    for term in ("won_amount", "contract_value", "payments_received", "order_revenue"):
        assert metric(page, t(f"metric.{term}", "zh")) == fmt.money(profile[term]), term
    main = page.locator('[data-testid="stMain"]')
    text = main.inner_text()
    assert f"{labels.value('risk_band', top['risk_band'], 'zh')} · 流失概率" in text
    # the rep's own list's place, as the grid numbers it, and the company's (tests/test_churn_page.py)
    assert top["rank"] == 1 and f"你的预警名单第 1 位（全公司第 {top['company_rank']:,} 位" in text
    for reason in (top["reason_1"], top["reason_2"], top["reason_3"]):
        if reason:
            # the list's reasons, in full, on the profile, read as a person reads them (a number and its unit are
            # joined by a no-break space where reasons are shown: i18n.units_kept)
            assert reason in text.replace(NO_BREAK, " ")
    newest = events.select(pl.col("occurred_at").dt.date().max()).item()  # the timeline's first day
    on_day = events.filter(pl.col("occurred_at").dt.date() == newest).height
    heading = t(
        "c360.timeline.day" if on_day > 1 else "c360.timeline.day.one", "zh", day=fmt.day(newest, "zh"), n=on_day
    )
    assert main.get_by_text(heading, exact=True).first.is_visible()
    shot(page, artifacts, "customer_360_from_churn_sales_zh")
    page.close()
