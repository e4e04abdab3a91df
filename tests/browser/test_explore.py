"""Explore in chromium on the medium demo: a view built by clicking (a measure added, a dimension
changed), the total shown equal to the warehouse's own answer, and a screenshot in test-artifacts/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dashboard.components import fmt
from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.browser.conftest import PAGE_TIMEOUT_MS
from tests.browser.test_cockpit_and_channels import metric, settled, shot

pytestmark = pytest.mark.slow


def pick(page: Any, label: str, option: str) -> None:
    """Open a multiselect by its label and click one of its options."""
    box = page.locator('[data-testid="stMultiSelect"]', has=page.get_by_text(label, exact=True))
    box.locator("input").click()
    page.get_by_role("option", name=option, exact=True).click()
    page.keyboard.press("Escape")


def test_build_a_view_by_clicking(browser: Any, app_url: str, demo: Settings, artifacts: Path) -> None:
    lang = demo.language
    revenue = Warehouse(demo).sql("SELECT coalesce(sum(won_amount), 0) AS r FROM lead_facts", user=SYSTEM).item()
    regions = Warehouse(demo).sql("SELECT count(DISTINCT region) AS n FROM lead_facts", user=SYSTEM).item()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    try:
        page.goto(f"{app_url}/explore", timeout=PAGE_TIMEOUT_MS)
        settled(page)
        pick(page, t("explore.measures", lang), t("explore.measure.revenue", lang))
        settled(page)
        total = f"{t('explore.total', lang)} · {t('explore.measure.revenue', lang)}"
        page.wait_for_function(
            "label => [...document.querySelectorAll('[data-testid=\"stMetricLabel\"]')]"
            ".some(e => e.innerText.trim() === label)",
            arg=total,
            timeout=PAGE_TIMEOUT_MS,
        )
        settled(page)
        assert metric(page, total) == fmt.money(revenue)
        # a second dimension by clicking: the table grows to channel × region rows
        pick(page, t("explore.dims", lang), t("col.region", lang))
        settled(page)
        assert metric(page, total) == fmt.money(revenue)  # the total does not depend on the grouping
        assert re.search(r"view=[A-Za-z0-9_-]+", page.url), page.url  # the view is in the address
        assert regions > 1
        shot(page, artifacts, "explore")
    finally:
        page.close()
