"""The cockpit in big-screen mode and the channels page, served on the medium demo and looked at in
chromium: real charts and numbers on screen, the numbers equal to the named queries' results, and a
screenshot of each in test-artifacts/.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dashboard.components import fmt
from dashboard.components.tiles import compact_money
from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.i18n.values import ValueLabels
from dashboard.query.security import SYSTEM
from dashboard.query.warehouse import Warehouse
from tests.browser.conftest import PAGE_TIMEOUT_MS

pytestmark = pytest.mark.slow
KIOSK_VIEWPORT = {"width": 1920, "height": 1080}  # a wall screen
OFFICE_VIEWPORT = {"width": 1600, "height": 1000}


def settled(page: Any, charts: int = 1) -> None:
    """Wait until the script has finished, the charts are drawn and the running indicator is gone."""
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=\"stPlotlyChart\"] .main-svg').length >= n",
        arg=charts,
        timeout=PAGE_TIMEOUT_MS,
    )
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stStatusWidgetRunningIcon"]', state="hidden", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(500)  # let plotly finish its transition before the screenshot


def metric(page: Any, label: str) -> str:
    exact = page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
    value: str = (
        page.locator('[data-testid="stMetric"]', has=exact).locator('[data-testid="stMetricValue"]').inner_text()
    )
    return value.strip()


def shot(page: Any, artifacts: Path, name: str) -> Path:
    """The whole page: the viewport is stretched to the page's height first (Streamlit scrolls inside)."""
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": max(page.viewport_size["height"], min(height, 12_000))})
    page.wait_for_timeout(800)  # charts re-lay out at the new size
    path = artifacts / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="module")
def totals(demo: Settings) -> dict[str, Any]:
    """What ``cockpit query channel_summary`` says, summed over the channels."""
    summary = Warehouse(demo).run_query("channel_summary", user=SYSTEM)
    return {"leads": int(summary["leads"].sum()), "revenue": float(summary["revenue"].sum())}


def test_cockpit_in_kiosk_mode(
    browser: Any, app_url: str, demo: Settings, totals: dict[str, Any], artifacts: Path
) -> None:
    page = browser.new_page(viewport=KIOSK_VIEWPORT)
    try:
        page.goto(f"{app_url}/?kiosk=1", timeout=PAGE_TIMEOUT_MS)
        settled(page)
        lang = demo.language
        assert metric(page, t("metric.leads", lang)) == fmt.count(totals["leads"])
        assert metric(page, t("metric.won_amount", lang)) == compact_money(totals["revenue"], lang)  # ¥1.31亿
        assert metric(page, t("tiles.new_today", lang)).replace(",", "").isdigit()
        assert not page.locator('[data-testid="stSidebar"]').is_visible()  # no chrome on the big screen
        assert not page.locator('header[data-testid="stHeader"]').is_visible()
        background = page.evaluate("() => getComputedStyle(document.querySelector('.stApp')).backgroundColor")
        assert background == "rgb(11, 15, 23)"
        as_of = page.get_by_text(t("kiosk.as_of", lang)).first
        assert as_of.is_visible()
        # each source's name and time are kept whole on the wall (word joiners, no-break spaces)
        line = as_of.inner_text().replace("\u2060", "").replace("\u00a0", " ")
        names = ValueLabels(demo.label_texts())
        for source in demo.sources:
            assert f"{names.label('source', source.name, lang)} 20" in line, (source.name, line)
        shot(page, artifacts, "cockpit_kiosk")
    finally:
        page.close()


# The funnel's figures: each one's text and drawn height.
FUNNEL_FIGURES = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .funnellayer .bartext')].map(
    e => [e.textContent, Math.round(e.getBoundingClientRect().height)])"""


def test_channels_page(browser: Any, app_url: str, demo: Settings, totals: dict[str, Any], artifacts: Path) -> None:
    page = browser.new_page(viewport=OFFICE_VIEWPORT)
    try:
        page.goto(f"{app_url}/channels", timeout=PAGE_TIMEOUT_MS)
        settled(page, charts=4)  # volume, funnel, economics, attribution
        lang = demo.language
        assert metric(page, t("metric.leads", lang)) == fmt.count(totals["leads"])
        # attribution: every model hands out the won revenue (all time: the summary's revenue)
        sums = page.get_by_text(re.compile(rf"^✓ .*{re.escape(fmt.money(totals['revenue']))}"))
        assert sums.count() == 1 and sums.is_visible()
        shot(page, artifacts, "channels")
        # every stage's figures at one size: Plotly squeezed a narrow stage's into its bar (the purchased list's
        # 462 · 11.8% was 8 px high against 16)
        for channel in (None, "purchased_list"):
            if channel:
                page.goto(f"{app_url}/channels?channel={channel}", timeout=PAGE_TIMEOUT_MS)
                settled(page, charts=5)
            figures = page.evaluate(FUNNEL_FIGURES)
            assert len(figures) == 5 and len({h for _, h in figures}) == 1, (channel, figures)
    finally:
        page.close()


def test_channels_drill_down_from_the_url(browser: Any, app_url: str, demo: Settings, artifacts: Path) -> None:
    economics = Warehouse(demo).run_query("channel_economics", {"channel": "trade_show"}, user=SYSTEM)
    page = browser.new_page(viewport=OFFICE_VIEWPORT)
    try:
        page.goto(f"{app_url}/channels?channel=trade_show&grain=week", timeout=PAGE_TIMEOUT_MS)
        settled(page, charts=5)  # and the campaigns chart
        lang = demo.language
        assert metric(page, t("metric.leads", lang)) == fmt.count(int(economics["leads"].sum()))
        shown = ValueLabels(demo.label_texts()).label("channel", "trade_show", lang)  # by its name (展会)
        assert page.get_by_text(t("drill.campaigns", lang, channel=shown)).is_visible()
        assert "channel=trade_show" in page.url and "grain=week" in page.url  # the URL still says what is shown
        shot(page, artifacts, "channels_trade_show")
    finally:
        page.close()


def test_a_click_on_a_channel_bar_drills_down(browser: Any, app_url: str, demo: Settings, artifacts: Path) -> None:
    page = browser.new_page(viewport=OFFICE_VIEWPORT)
    try:
        page.goto(f"{app_url}/channels", timeout=PAGE_TIMEOUT_MS)
        settled(page, charts=4)
        economics = page.locator('[data-testid="stPlotlyChart"]').nth(2)
        economics.scroll_into_view_if_needed()
        bar = economics.locator(".barlayer .trace").first.locator(".point path").first.bounding_box()
        assert bar is not None
        # plotly reads clicks on its drag layer, above the bars: move there like a person, then click
        page.mouse.move(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
        page.wait_for_timeout(300)
        page.mouse.click(bar["x"] + bar["width"] / 2, bar["y"] + bar["height"] / 2)
        channel = Warehouse(demo).run_query("channel_economics", user=SYSTEM)["channel"][0]  # the chart's first channel
        page.wait_for_url(re.compile(rf"channel={channel}"), timeout=PAGE_TIMEOUT_MS)
        settled(page, charts=5)
        shown = ValueLabels(demo.label_texts()).label("channel", channel, demo.language)  # by its name
        assert page.get_by_text(t("drill.campaigns", demo.language, channel=shown)).is_visible()
        chosen = page.get_by_role("combobox", name=t("filter.channel", demo.language), exact=True)
        assert chosen.input_value() == shown  # the filter bar says what the click chose
    finally:
        page.close()


def test_cockpit_office_view(
    browser: Any, app_url: str, demo: Settings, totals: dict[str, Any], artifacts: Path
) -> None:
    page = browser.new_page(viewport=OFFICE_VIEWPORT)
    try:
        page.goto(app_url, timeout=PAGE_TIMEOUT_MS)
        settled(page, charts=2)  # the leaderboard and the channels
        assert metric(page, t("metric.leads", demo.language)) == fmt.count(totals["leads"])
        assert page.locator('[data-testid="stSidebar"]').is_visible()
        shot(page, artifacts, "cockpit")
    finally:
        page.close()
