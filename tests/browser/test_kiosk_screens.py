"""The big screen (issue 20, point 7) on the served medium demo: at 1920×1080 and at 3840×2160 every
tile's number is whole on screen, the 30-day leads trend and the funnel are drawn beside the
leaderboard, all of it on one screen; and through its timed refreshes the wall never shows fewer
filled tiles than before (a server of its own, refreshing every 5 s). Screenshots in test-artifacts/.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.core.config import Settings, load_settings
from dashboard.i18n import t
from tests.browser.conftest import PAGE_TIMEOUT_MS, _served
from tests.browser.test_cockpit_and_channels import settled
from tests.browser.test_layouts import account, signed_in

__all__ = ["account"]  # the test account's fixture, shared with the phone and tablet tests

pytestmark = pytest.mark.slow
SCREENS = {"1080p": ({"width": 1920, "height": 1080}, ""), "4k": ({"width": 3840, "height": 2160}, "&scale=2")}

# Each tile's number: its text, whether it is cut (wider than its box) and whether it is on screen.
TILE_VALUES = """() => [...document.querySelectorAll('[data-testid="stMetricValue"] > div')].map(e => {
    const r = e.getBoundingClientRect();
    return {text: e.innerText.trim(), cut: e.scrollWidth > e.clientWidth + 1,
            visible: r.top >= 0 && r.bottom <= innerHeight + 1 && r.left >= 0 && r.right <= innerWidth + 1}; })"""
# Each figure drawn on or beside a bar (the funnel's and the leaderboard's): its text and drawn height.
BAR_FIGURES = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .bartext')].map(e =>
    [e.textContent, Math.round(e.getBoundingClientRect().height)])"""
# The leads trend (the wall's first chart): its date and count labels' and its points' boxes, and the chart's.
TREND_BOXES = """() => {
  const chart = document.querySelector('[data-testid="stMain"] [data-testid="stPlotlyChart"]');
  const box = (e) => { const r = e.getBoundingClientRect();
    return {text: e.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const all = (selector) => [...chart.querySelectorAll(selector)].map(box);
  return {dates: all('.xtick text'), counts: all('.ytick text'), points: all('.scatterlayer .point'),
          chart: box(chart)};
}"""


def trend_problems(boxes: dict[str, Any]) -> list[str]:
    """What a person at the wall would misread on the trend: a date touching a count, a date cut off at the
    chart's edge, or the last day (today) without its date under it."""

    def meet(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]

    dates, chart, last = boxes["dates"], boxes["chart"], boxes["points"][-1]
    found = [f"{d['text']} touches {c['text']}" for d in dates for c in boxes["counts"] if meet(d, c)]
    found += [
        f"{d['text']} cut at the chart's edge"
        for d in dates
        if d["left"] < chart["left"] or d["right"] > chart["right"]
    ]
    middle = (last["left"] + last["right"]) / 2
    if not any(abs((d["left"] + d["right"]) / 2 - middle) < 2 for d in dates):
        found.append(f"the last day has no date under it: {[d['text'] for d in dates]}")
    return found


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("screen", list(SCREENS))
@pytest.mark.usefixtures("account")
def test_every_tile_whole_and_the_charts_on_one_screen(
    browser: Any, secured_app_url: str, demo: Settings, screen: str, lang: str, artifacts: Path
) -> None:
    viewport, scale = SCREENS[screen]
    context, page = signed_in(browser, f"{secured_app_url}/?kiosk=1{scale}", demo, lang, viewport)
    try:
        settled(page, charts=3)  # the leads trend, the funnel, the leaderboard
        tiles = page.evaluate(TILE_VALUES)
        assert len(tiles) >= 8, tiles
        assert [v for v in tiles if v["cut"] or not v["visible"]] == [], tiles
        for title in (
            t("kiosk.trend", lang, days=30),
            t("funnel.chart", lang, scope=t("funnel.overall", lang)),
            t("tiles.leaderboard", lang, top=10),
        ):
            assert page.get_by_text(title, exact=True).is_visible(), title
        assert trend_problems(page.evaluate(TREND_BOXES)) == []
        figures = page.evaluate(BAR_FIGURES)
        assert len(figures) >= 10 and len({h for _, h in figures}) == 1, figures  # one size, inside or beside
        height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
        assert height <= viewport["height"], f"the wall scrolls: {height} px on a {viewport['height']} px screen"
        page.screenshot(path=str(artifacts / f"kiosk_{screen}_{lang}.png"))
    finally:
        context.close()


@pytest.fixture(scope="module")
def fast_wall(demo: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same demo served with a 5 s big-screen refresh and sign-in off."""
    folder = tmp_path_factory.mktemp("fast_wall")
    text = (demo.base_dir / "cockpit.toml").read_text(encoding="utf-8")
    text = re.sub(r"(?m)^kiosk_refresh_seconds\s*=.*$", "kiosk_refresh_seconds = 5", text)
    text = re.sub(r"(?m)^data_dir\s*=.*$", f"data_dir = {json.dumps(str(demo.data_path))}", text)
    (folder / "cockpit.toml").write_text(text, encoding="utf-8")
    yield from _served(load_settings(folder / "cockpit.toml"), folder, no_auth=True)


def _finished_runs(url: str) -> int:
    with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
        finished: int = json.load(response)["finished"]
        return finished


# Every animation frame: how many tile numbers are drawn, non-empty and fully opaque (a stale element
# that Streamlit fades counts as missing).
WATCH = """() => { window.__fewest = Infinity; window.__frames = 0;
  const look = () => {
    const shown = [...document.querySelectorAll('[data-testid="stMetricValue"]')].filter(e => {
      if (!e.innerText.trim() || !e.getBoundingClientRect().height) return false;
      for (let a = e; a; a = a.parentElement) if (parseFloat(getComputedStyle(a).opacity) < 0.99) return false;
      return true; }).length;
    window.__fewest = Math.min(window.__fewest, shown); window.__frames += 1; requestAnimationFrame(look); };
  requestAnimationFrame(look); }"""


def test_the_wall_stays_filled_through_its_refreshes(browser: Any, fast_wall: str, artifacts: Path) -> None:
    page = browser.new_page(viewport=SCREENS["1080p"][0])
    try:
        page.goto(f"{fast_wall}/?kiosk=1", timeout=PAGE_TIMEOUT_MS)
        settled(page, charts=3)
        tiles = page.locator('[data-testid="stMetricValue"]').count()
        before = _finished_runs(fast_wall)
        page.evaluate(WATCH)
        deadline = time.monotonic() + 60
        while _finished_runs(fast_wall) < before + 3 and time.monotonic() < deadline:
            page.wait_for_timeout(500)
        ticks = _finished_runs(fast_wall) - before
        fewest, frames = page.evaluate("() => [window.__fewest, window.__frames]")
        page.screenshot(path=str(artifacts / "kiosk_after_refreshes.png"))
    finally:
        page.close()
    assert ticks >= 3, "the wall did not refresh on its timer"
    assert frames > 50
    assert fewest == tiles, f"{tiles} tiles, but only {fewest} shown whole at one moment of {ticks} refreshes"
