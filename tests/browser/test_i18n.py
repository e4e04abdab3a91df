"""A complete Chinese UI, and English: signed in as each role in each language on the medium demo, every
page of the role is opened from the sidebar (one customer's profile by its link) in chromium and its main
area read as a person sees it, chart text included. In Chinese no known code (a value the dictionary names, an
English column name) and no None/nan may show; in English no Chinese text of the UI's own tables. Data values
(names, companies, regions of the demo) are Chinese in both and are not UI text. Screenshots in test-artifacts/.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboard.access.auth import load_accounts
from dashboard.access.sessions import remember_language
from dashboard.core.config import Settings
from dashboard.core.entities import ENTITIES
from dashboard.i18n import CATALOG, t
from dashboard.i18n.values import VALUES
from dashboard.query.names import view_name
from dashboard.query.security import pages_for
from dashboard.query.warehouse import Warehouse
from tests.browser.conftest import PAGE_TIMEOUT_MS
from tests.browser.test_cockpit_and_channels import shot
from tests.test_source_add import maven

pytestmark = pytest.mark.slow
ROLES = ("admin", "manager", "analyst", "sales")
VIEWPORT = {"width": 1600, "height": 1000}
MISSING = frozenset({"None", "nan", "NaN", "NaT", "null"})
# code spans hold what is meant literally (identifiers to type in the SQL tab, sample values of a field)
TEXTS_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  const out = [];
  const walk = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    const p = n.parentElement;
    // an icon is a ligature ("paid", "insights") drawn as a symbol, not words; an SVG title (graphviz's node
    // id) is not drawn
    const skip = 'style, script, code, pre, textarea, title, [data-testid="stCode"], [data-testid="stIconMaterial"]';
    if (!p || p.closest(skip) || getComputedStyle(p).fontFamily.includes("Material")) continue;
    const s = n.textContent.trim();
    if (s) out.push(s);
  }
  // the grids draw on a canvas: their headers and visible cells are also in an accessible table
  for (const c of main.querySelectorAll('[role="gridcell"], [role="columnheader"]')) {
    const s = c.textContent.trim();
    if (s) out.push(s);
  }
  return out;
}"""
TOKEN = re.compile(r"[A-Za-z0-9_:+.-]+")


def _codes() -> frozenset[str]:
    """What must not show in Chinese: every code the dictionary names in Chinese, and canonical column names
    (with an underscore: source_system, customer_key ...)."""
    codes = {c for table in VALUES.values() for c, text in table.items() if text.get("zh") and text["zh"] != c}
    codes |= {c.name for e in ENTITIES.values() for c in e.columns if "_" in c.name}
    codes |= {"source_system", "snapshot_id", "(unassigned)", "variable", "value"}
    return frozenset(c for c in codes if c != c.upper())  # CRM, ERP, SQL are words in Chinese too


def _zh_ui() -> frozenset[str]:
    """The UI's own Chinese words (no placeholders), for the English check."""
    words = {v.strip() for v in CATALOG["zh"].values() if "{" not in v}
    # a source's Chinese name is the company's title for it (cockpit.toml), data rather than UI text
    words |= {text["zh"] for d, table in VALUES.items() if d != "source" for text in table.values() if text.get("zh")}
    english = {v.strip() for v in CATALOG["en"].values()}
    return frozenset(w for w in words if w and w not in english and re.search(r"[\u4e00-\u9fff]", w))


CODES, ZH_UI = _codes(), _zh_ui()


def problems(texts: list[str], lang: str) -> list[str]:
    """The text nodes a person would read as untranslated."""
    found = []
    for i, text in enumerate(texts):
        tokens = set(TOKEN.findall(text))
        tokens |= {part for token in tokens for part in re.split(r"[.:]", token) if part}  # interactions.channel, crm:
        if lang == "zh":
            bad = sorted((tokens & CODES) | (tokens & MISSING) | ({text} & CODES))
        else:
            bad = sorted((tokens & MISSING) | ({text} & ZH_UI))
        if bad:
            found.append(f"{bad} in {text[:120]!r} (after {' | '.join(texts[max(i - 3, 0) : i])[-160:]!r})")
    return found


MAIN_TEXT_JS = """() => document.querySelector('[data-testid="stMain"]').textContent"""


def read_texts(page: Any) -> list[str]:
    """The main area's text once it has not changed for a second: a grid redrawn in place (the same place on
    the page after a language switch or on the next page) updates its accessible table up to about half a
    second after the script has ended. Watched by its raw text (cheap), read once still."""
    before, same, started = page.evaluate(MAIN_TEXT_JS), 0, time.monotonic()
    while same < 4 and time.monotonic() - started < 15:
        page.wait_for_timeout(250)
        now = page.evaluate(MAIN_TEXT_JS)
        same, before = (same + 1 if now == before else 0), now
    texts: list[str] = page.evaluate(TEXTS_JS)
    return texts


def settled(page: Any, title: str) -> None:
    page.get_by_role("heading", name=title).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stStatusWidgetRunningIcon"]', state="hidden", timeout=PAGE_TIMEOUT_MS)
    page.wait_for_function(CHARTS_DRAWN_JS, timeout=PAGE_TIMEOUT_MS)  # drawn after the script ends


# Every chart in the main area drawn, so its text is read: plotly's SVG and graphviz's are made after the script
# ends, and while a chart's code is still loading Streamlit shows a skeleton in its place
CHARTS_DRAWN_JS = """() => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main || main.querySelector('[data-testid="stSkeleton"]')) return false;
  const drawn = (selector, svg) => [...main.querySelectorAll(selector)].every((c) => c.querySelector(svg));
  return drawn('[data-testid="stPlotlyChart"]', ".main-svg") && drawn('[data-testid="stGraphVizChart"]', "svg");
}"""


def sign_in(page: Any, url: str, role: str, lang: str) -> None:
    page.goto(url)
    page.get_by_label(t("auth.username", "zh")).fill(role, timeout=PAGE_TIMEOUT_MS)
    page.get_by_role("textbox", name=t("auth.password", "zh")).fill(f"{role}-demo")
    page.get_by_role("button", name=t("auth.submit", "zh")).click()
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text(t(f"page.{pages_for(role)[0]}", "zh"), exact=True).or_(
        sidebar.get_by_text(t(f"page.{pages_for(role)[0]}", "en"), exact=True)
    ).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)
    if sidebar.get_by_text(t(f"page.{pages_for(role)[0]}", lang), exact=True).count() == 0:
        sidebar.get_by_text({"zh": "中文", "en": "English"}[lang], exact=True).click()  # kept for this user
        sidebar.get_by_text(t(f"page.{pages_for(role)[0]}", lang), exact=True).first.wait_for(timeout=PAGE_TIMEOUT_MS)


@pytest.fixture(scope="module")
def customers(demo: Settings, secured_app_url: str) -> dict[str, str]:
    """For each role, a customer it may see (the riskiest one in its churn list)."""
    accounts = load_accounts(demo)
    wh = Warehouse(demo)
    out = {}
    for role in ROLES:
        who = accounts[role].principal
        if "customer_360" in pages_for(role):
            out[role] = wh.run_query("churn_list", {"limit": 1}, user=who)["customer_key"].item()
    return out


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    yield ctx
    ctx.close()


@pytest.fixture(autouse=True)
def _language_as_configured(demo: Settings) -> Iterator[None]:
    """Choosing a language here is remembered for the account (access/sessions.py); the browser tests
    after this module sign in with the same demo accounts and expect the configured language."""
    yield
    for role in ROLES:
        remember_language(demo, role, demo.language)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("role", ROLES)
def test_every_page_of_every_role_speaks_the_chosen_language(
    context: Any, secured_app_url: str, customers: dict[str, str], role: str, lang: str, artifacts: Path
) -> None:
    page = context.new_page()
    sign_in(page, secured_app_url, role, lang)
    found: dict[str, list[str]] = {}
    sidebar = page.locator('[data-testid="stSidebar"]')

    def read(shot_name: str, name: str) -> None:
        settled(page, t(f"page.{name}", lang))
        found[shot_name] = problems(read_texts(page), lang)
        shot(page, artifacts, f"i18n_{role}_{lang}_{shot_name}")
        page.set_viewport_size(VIEWPORT)

    # each page opened from the sidebar as a person does (the signed-in app stays loaded: a reload per page cost the
    # browser and the server the app's start again); the first is where sign-in lands; the profile by its link
    for i, name in enumerate(pages_for(role)):
        if i > 0:
            sidebar.get_by_text(t(f"page.{name}", lang), exact=True).first.click()
        read(name, name)
    if role in customers:
        page.goto(f"{secured_app_url}/customer_360?customer={customers[role]}")
        read("customer_360_profile", "customer_360")
    bad = {k: v[:12] for k, v in found.items() if v}
    assert not bad, f"{role} in {lang}: untranslated text on " + "\n".join(f"{k}: {v}" for k, v in bad.items())


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_import_preview_speaks_the_chosen_language(
    context: Any, secured_app_url: str, lang: str, artifacts: Path, tmp_path: Path
) -> None:
    """An admin uploads a Chinese CRM's opportunities export whose gaps the default gate would quarantine: the
    mapping editor (canonical fields by their dictionary names), the gate's findings, the settings that let it
    pass and their reasons are all in the chosen language."""
    (tmp_path / "imports").mkdir()
    export = maven(tmp_path, zh=True)[0]  # 销售商机.xlsx: 400 opportunities, 30 prospects without a date
    page = context.new_page()
    sign_in(page, secured_app_url, "admin", lang)
    page.goto(f"{secured_app_url}/import_source")
    settled(page, t("page.import_source", lang))
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(export)
    heading = t("import.table", lang, entity=VALUES["entity"]["leads"][lang], file=Path(export).name)
    page.get_by_text(heading).wait_for(timeout=PAGE_TIMEOUT_MS)
    page.get_by_role("button", name=t("import.preview", lang)).click()
    page.get_by_text(t("import.passes", lang)).wait_for(timeout=PAGE_TIMEOUT_MS)
    settled(page, t("page.import_source", lang))
    texts = read_texts(page)
    shot(page, artifacts, f"i18n_admin_{lang}_import_preview")
    assert t("import.accepted", lang) in texts
    created = {"zh": "线索 · 线索创建时间", "en": "Leads · When the lead was captured (created_at)"}[lang]
    assert any(s.startswith(f"• {created}") and "30" in s for s in texts), texts  # the 30 prospects' empty dates
    headers = set(pl.read_excel(export).columns)  # the file's own headers (客户, 销售阶段) are data in both
    bad = problems([s for s in texts if s not in headers], lang)
    assert not bad, f"import preview in {lang}: untranslated text:\n" + "\n".join(bad[:12])


# An empty date field's parts as drawn: a part's own text unless it is hidden (no size), and what is drawn after it
DATE_PARTS_DRAWN = """() => [...document.querySelectorAll(
    '[data-testid="stMain"] [data-testid="stDateInputField"] [role="spinbutton"][data-placeholder="true"]')]
  .map(s => {
    const own = parseFloat(getComputedStyle(s).fontSize) > 0 ? s.innerText.trim() : '';
    const after = getComputedStyle(s, '::after').content;
    return own + (after.startsWith('"') ? JSON.parse(after) : '');
  })"""


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_an_empty_period_names_its_parts_in_the_chosen_language(
    context: Any, secured_app_url: str, lang: str, artifacts: Path
) -> None:
    """The channels page opens on all time: its empty period field read yyyy-mm-dd in Chinese (Streamlit's own
    placeholder); it reads 年-月-日 there, yyyy-mm-dd in English."""
    page = context.new_page()
    sign_in(page, secured_app_url, "manager", lang)
    page.goto(f"{secured_app_url}/channels")
    settled(page, t("page.channels", lang))
    drawn = page.evaluate(DATE_PARTS_DRAWN)
    shot(page, artifacts, f"i18n_manager_{lang}_empty_period")
    parts = [t(f"date.part.{p}", lang) for p in ("year", "month", "day")]
    assert drawn == parts * 2, drawn  # the period's start and end


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_period_calendar_offers_no_english_ranges_on_a_chinese_page(
    context: Any, secured_app_url: str, lang: str, artifacts: Path
) -> None:
    """Session 23's walk: the Chinese period calendar offered Streamlit's own English quick ranges (Date range,
    Select..., Past Week), which it writes in no other language: a Chinese page's calendar has none, an English
    page's keeps them."""
    page = context.new_page()
    sign_in(page, secured_app_url, "manager", lang)
    page.goto(f"{secured_app_url}/channels")
    settled(page, t("page.channels", lang))
    page.get_by_test_id("stDateInputCalendarButton").first.click()
    calendar = page.get_by_test_id("stDateInputCalendar")
    calendar.get_by_role("grid").first.wait_for(timeout=PAGE_TIMEOUT_MS)
    shot(page, artifacts, f"i18n_manager_{lang}_period_calendar")
    assert ("Date range" in calendar.inner_text()) == (lang == "en"), calendar.inner_text()


# The catalog's fields grid: each row's cells as the grid's accessible table has them (the rows drawn on screen)
GRID_ROWS = """header => {
  const grid = [...document.querySelectorAll('[data-testid="stDataFrame"]')]
    .find(g => [...g.querySelectorAll('[role="columnheader"]')].some(h => h.textContent.trim() === header));
  if (!grid) return null;  // the tab's grid not drawn yet
  const heads = [...grid.querySelectorAll('[role="columnheader"]')].map(h => h.textContent.trim());
  const rows = [...grid.querySelectorAll('[role="row"]')]
    .map(r => [...r.querySelectorAll('[role="gridcell"]')].map(c => c.textContent.trim())).filter(r => r.length);
  return {heads, rows};
}"""


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_views_and_fields_are_named_beside_their_identifiers(
    context: Any, secured_app_url: str, lang: str, artifacts: Path
) -> None:
    """The walk read the catalog's `leads` and `lead_id` as bare identifiers in Chinese: the SQL tab's list and
    the catalog's fields name each view and field in the page's language beside the identifier a query types."""
    page = context.new_page()
    sign_in(page, secured_app_url, "analyst", lang)
    page.goto(f"{secured_app_url}/explore")
    settled(page, t("page.explore", lang))
    page.get_by_role("tab", name=t("explore.tab.sql", lang)).click()
    title = t("explore.sql.tables", lang, n=0).removesuffix("（0）").removesuffix(" (0)")
    block = page.locator('[data-testid="stExpander"]', has_text=title)
    block.locator("summary").click()
    block.get_by_text("lead_facts", exact=True).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    shot(page, artifacts, f"i18n_analyst_{lang}_sql_tables")
    text = block.inner_text()
    lead = "线索编号" if lang == "zh" else "Lead ID"
    for named in (f"{view_name('leads', lang)} leads", f"{view_name('lead_facts', lang)} lead_facts"):
        assert named in text, text[:400]
    assert f"lead_id{'（' if lang == 'zh' else ' ('}{lead}" in text, text[:400]
    page.goto(f"{secured_app_url}/catalog")
    settled(page, t("page.catalog", lang))
    page.get_by_role("tab", name=t("cat.tab.fields", lang)).click()
    grid = page.wait_for_function(GRID_ROWS, arg=t("cat.col.field_name", lang), timeout=PAGE_TIMEOUT_MS).json_value()
    shot(page, artifacts, f"i18n_analyst_{lang}_catalog_fields")
    at = grid["heads"].index(t("col.field", lang))
    assert grid["heads"][at + 1] == t("cat.col.field_name", lang)
    named = {r[at]: r[at + 1] for r in grid["rows"] if len(r) > at + 1}
    assert named.get("lead_id") == lead, named
