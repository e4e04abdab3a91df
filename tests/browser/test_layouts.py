"""Phone and tablet (issue 20, point 6): the cockpit, the churn list and a Customer 360 profile at 390×844
and 768×1024, in Chinese and in English, signed in on the served medium demo. The page never scrolls
sideways, no element reaches past the screen's edge (a table may scroll inside its own frame, but the churn
warning list may not: it shows as cards, the first naming the list's first customer and their reasons in
full), every heading is on screen and not covered by anything, no text field's placeholder is cut off,
and every chart's title is page text above it, where no toolbar can sit. Screenshots in
test-artifacts/layout_*.png.

The tests sign in with an account of their own, whose saved language they set: the demo accounts'
remembered languages are left as they were.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.access import auth, sessions
from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.query.security import Principal
from dashboard.query.warehouse import Warehouse
from tests.browser.conftest import PAGE_TIMEOUT_MS
from tests.browser.test_cockpit_and_channels import shot

pytestmark = pytest.mark.slow

USER = "layout_tester"
PASSWORD = f"{USER}-pass"
SIZES = {"phone": {"width": 390, "height": 844}, "tablet": {"width": 768, "height": 1024}}

# What reaches past the screen's side: the page or its main area scrolling sideways, an element past the
# viewport's edge that nothing but the page clips, a box of its own that scrolls sideways (a table,
# st.dataframe, scrolls inside its frame: allowed, its columns are the reader's to move), text cut off
# with "…" (a tile's number at tablet width did).
OUT_OF_BOUNDS = """() => {
  const main = document.querySelector('[data-testid="stMain"]'), width = document.documentElement.clientWidth;
  const name = (el) => `${el.tagName}.${el.getAttribute('data-testid') || ''} `
    + `"${(el.innerText || el.textContent || '').trim().slice(0, 40)}"`;
  const clipper = (el) => {
    for (let a = el.parentElement; a && a !== main; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return a;
    }
    return null;
  };
  const out = [];
  for (const el of main.querySelectorAll('*')) {
    if (el.closest('[data-testid="stDataFrame"]')) continue;
    const r = el.getBoundingClientRect();
    if (r.width && r.height && (r.left < -1 || r.right > width + 1) && !clipper(el)) {
      out.push(`past the edge ${Math.round(r.left)}..${Math.round(r.right)}: ${name(el)}`);
    }
    const style = getComputedStyle(el), o = style.overflowX;
    if ((o === 'auto' || o === 'scroll') && el.scrollWidth > el.clientWidth + 1) {
      out.push(`scrolls sideways ${el.scrollWidth} > ${el.clientWidth}: ${name(el)}`);
    }
    if (style.textOverflow === 'ellipsis' && o !== 'visible' && el.scrollWidth > el.clientWidth + 1) {
      out.push(`cut off with …: ${name(el)}`);
    }
  }
  return {page: document.documentElement.scrollWidth, main: main.scrollWidth, width, out: out.slice(0, 10)};
}"""
COVERED_HEADINGS = """() => [...document.querySelectorAll('[data-testid="stMain"] :is(h1, h2, h3)')]
    .filter(h => h.getBoundingClientRect().height > 0).flatMap(h => {
  h.scrollIntoView({block: 'center'});
  const r = h.getBoundingClientRect(), width = document.documentElement.clientWidth;
  const x = r.left + Math.min(r.width, 40) / 2, y = r.top + r.height / 2;
  const top = document.elementFromPoint(x, y);
  const ok = r.left >= 0 && r.right <= width + 1 && top && (h.contains(top) || top.contains(h));
  return ok ? [] : [`${h.innerText.trim().slice(0, 40)} (${top ? top.tagName : 'off screen'})`];
})"""

# Chart titles drawn inside a figure that its toolbar's box (shown on hover; none on a phone) overlaps.
TOOLBAR_OVER_TITLES = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')].flatMap(chart => {
  const bar = chart.querySelector('.modebar'), b = bar && bar.getBoundingClientRect();
  if (!b || !b.width) return [];
  return [...chart.querySelectorAll('.gtitle')].filter(el => { const r = el.getBoundingClientRect();
    return r.left < b.right && r.right > b.left && r.top < b.bottom && r.bottom > b.top; })
    .map(el => `toolbar over "${el.textContent}"`); })"""

# A text field whose placeholder is wider than the room inside it (the browser cuts it without a "…").
PLACEHOLDERS_CUT = """() => [...document.querySelectorAll('[data-testid="stMain"] input[placeholder]')]
    .filter(i => i.placeholder && i.getBoundingClientRect().width).flatMap(i => {
  const style = getComputedStyle(i), ctx = document.createElement('canvas').getContext('2d');
  ctx.font = style.font;
  const room = i.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const wide = ctx.measureText(i.placeholder).width;
  return wide > room + 1 ? [`placeholder cut ${Math.round(wide)} > ${Math.round(room)}: "${i.placeholder}"`] : [];
})"""
# Chart titles drawn inside a figure (charts.show puts them above it as page text).
TITLES_IN_FIGURES = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .gtitle')]
    .filter(el => el.textContent.trim()).map(el => `title inside a figure: "${el.textContent}"`)"""
# The churn warning list as the screen shows it: the grid's box and whether it scrolls sideways, the cards.
CHURN_LIST = """() => {
  const grid = document.querySelector('.st-key-churn_grid'), cards = document.querySelector('.st-key-churn_cards');
  const scroller = grid && grid.querySelector('.dvn-scroller');
  const shown = (el) => !!el && el.getBoundingClientRect().height > 0;
  return {grid: shown(grid), gridScrolls: !!scroller && scroller.scrollWidth > scroller.clientWidth + 1,
          cards: shown(cards), firstCard: shown(cards) ? cards.querySelector('.st-key-churn_card_1').innerText : ''};
}"""


@pytest.fixture(scope="module")
def account(demo: Settings, secured_app_url: str) -> Iterator[str]:
    auth.add_user(demo, USER, "manager", PASSWORD)
    yield USER
    auth.remove_user(demo, USER)


@pytest.fixture(scope="module")
def customer(demo: Settings) -> str:
    """The churn list's first customer, as a manager sees it."""
    key: str = Warehouse(demo).run_query("churn_list", {"limit": 1}, user=Principal(USER, "manager"))["customer_key"][0]
    return key


def first_warning(demo: Settings, lang: str) -> dict[str, Any]:
    """The warning list's first customer in ``lang``, as a manager sees it (who said no to marketing is apart)."""
    ranked = Warehouse(demo).run_query("churn_list", {"limit": 100, "lang": lang}, user=Principal(USER, "manager"))
    return ranked.filter(pl.col("consent") != "no").row(0, named=True)


def settled(page: Any, title: str) -> None:
    page.get_by_role("heading", name=title).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stStatusWidgetRunningIcon"]', state="hidden", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(800)  # charts and tables lay out after the run


def signed_in(browser: Any, url: str, demo: Settings, lang: str, viewport: dict[str, int]) -> tuple[Any, Any]:
    """A fresh browser at ``viewport``, signed in as the test account with ``lang`` as its saved language."""
    sessions.remember_language(demo, USER, lang)
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(url, timeout=PAGE_TIMEOUT_MS)
    page.get_by_label(t("auth.username", demo.language)).fill(USER, timeout=PAGE_TIMEOUT_MS)
    page.get_by_role("textbox", name=t("auth.password", demo.language)).fill(PASSWORD)
    page.get_by_role("button", name=t("auth.submit", demo.language)).click()
    return context, page


def churn_list_problems(shown: dict[str, Any], first: dict[str, Any]) -> list[str]:
    """The warning list read without sideways scrolling: cards, not the grid, and the first card names the
    list's first customer with each of their reasons in full."""
    problems = []
    if shown["grid"] and shown["gridScrolls"]:
        problems.append("the churn list's grid scrolls sideways")
    if not shown["cards"]:
        problems.append("no churn cards")
    card = " ".join(shown["firstCard"].split())
    for part in (first["name"], first["reason_1"], first["reason_2"], first["reason_3"]):
        if part and " ".join(part.split()) not in card:
            problems.append(f"the first card lacks {part!r}: {card[:200]!r}")
    return problems


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("size", list(SIZES))
def test_cockpit_churn_and_profile_fit_the_screen(
    browser: Any, secured_app_url: str, demo: Settings, account: str, customer: str, size: str, lang: str,
    artifacts: Path,
) -> None:  # fmt: skip
    context, page = signed_in(browser, secured_app_url, demo, lang, SIZES[size])
    problems: dict[str, Any] = {}
    try:
        pages = (("cockpit", "/"), ("churn", "/churn"), ("customer_360", f"/customer_360?customer={customer}"))
        for name, path in pages:
            if name != "cockpit":
                page.goto(f"{secured_app_url}{path}", timeout=PAGE_TIMEOUT_MS)
            settled(page, t(f"page.{name}", lang))
            bounds = page.evaluate(OUT_OF_BOUNDS)
            covered = page.evaluate(COVERED_HEADINGS) + page.evaluate(TOOLBAR_OVER_TITLES)
            covered += page.evaluate(PLACEHOLDERS_CUT) + page.evaluate(TITLES_IN_FIGURES)
            if name == "churn":
                first = first_warning(demo, lang)
                covered += churn_list_problems(page.evaluate(CHURN_LIST), first)
            if max(bounds["page"], bounds["main"]) > bounds["width"] or bounds["out"] or covered:
                problems[name] = {**bounds, "covered headings": covered}
            shot(page, artifacts, f"layout_{size}_{lang}_{name}")
            if name == "churn":  # a tap on the first card's name opens that customer's profile in this tab
                page.locator(".st-key-churn_card_1 a").first.click()
                page.wait_for_url(f"**/customer_360?customer={first['customer_key']}", timeout=PAGE_TIMEOUT_MS)
            page.set_viewport_size(SIZES[size])
    finally:
        context.close()
    assert not problems, f"{size} in {lang}: {problems}"
