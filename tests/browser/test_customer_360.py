"""Customer 360 opened by its deep link in chromium on the medium demo: the merged customer's golden
phone is on screen in full for an admin (sign-in off) and masked like 138****8000 for a manager."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.browser.conftest import PAGE_TIMEOUT_MS
from tests.browser.test_cockpit_and_channels import OFFICE_VIEWPORT, shot
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
