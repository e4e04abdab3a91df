"""The data-quality page on the medium demo in chromium: the heatmap drawn, the overall health score on
screen equal to the data_health query, a screenshot in test-artifacts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.browser.test_cockpit_and_channels import OFFICE_VIEWPORT, metric, settled, shot

pytestmark = pytest.mark.slow


def test_quality_heatmap_and_health_score(browser: Any, app_url: str, demo: Settings, artifacts: Path) -> None:
    health = Warehouse(demo).run_query("data_health", user=SYSTEM)
    overall = float(health.filter(health["source_system"] == "(all)")["health_score"][0])
    page = browser.new_page(viewport=OFFICE_VIEWPORT)
    try:
        page.goto(f"{app_url}/data_quality", timeout=60_000)
        settled(page)
        heatmap = page.locator('[data-testid="stPlotlyChart"] .main-svg g.hm')
        assert heatmap.count() >= 1, "the heatmap layer is drawn"
        assert metric(page, t("dq.health.overall", demo.language)) == f"{overall:.0f}"
        shot(page, artifacts, "data_quality_heatmap")
    finally:
        page.close()
