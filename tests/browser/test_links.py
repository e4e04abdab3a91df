"""Links in chromium, on a server of this module's own (started fresh, as after `cockpit serve` or a restart):
the sign-in form lists no pages, a bookmarked or typed page address opens that page after sign-in, and a
reload keeps the user on it, in the language they chose; the bare address opens the role's first page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.access import auth, sessions
from dashboard.core.config import Settings
from dashboard.i18n import t
from tests.browser.conftest import PAGE_TIMEOUT_MS, _served
from tests.browser.test_cockpit_and_channels import shot

pytestmark = pytest.mark.slow

USER = "link_tester"  # an account of its own: its saved language does not touch the other tests' accounts
VIEWPORT = {"width": 1400, "height": 900}
# What Streamlit's own pages would show: its English "page not found" dialog, and the pages/ folder's file
# names as a sidebar menu (its folder mode, before any session has named the pages).
NOT_FOUND = "Page not found"
FOLDER_MENU = '[data-testid="stSidebarNav"]'


@pytest.fixture(scope="module")
def fresh_url(demo: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    auth.add_user(demo, USER, "manager", f"{USER}-pass")
    sessions.remember_language(demo, USER, "zh")
    yield from _served(demo, tmp_path_factory.mktemp("fresh_server"), no_auth=False)
    auth.remove_user(demo, USER)


def _idle(page: Any) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(500)  # a dialog the run sent is drawn after the run ends


def _on(page: Any, name: str, lang: str) -> None:
    """The page ``name`` is shown in ``lang``, under its own address, with no dialog over it."""
    page.get_by_role("heading", name=t(f"page.{name}", lang)).first.wait_for(timeout=PAGE_TIMEOUT_MS)
    _idle(page)
    assert page.get_by_text(NOT_FOUND).count() == 0
    assert page.url.split("?", 1)[0].rstrip("/").endswith(f"/{name}"), page.url


def test_a_bookmarked_page_opens_after_sign_in_and_a_reload_keeps_it_in_the_chosen_language(
    browser: Any, fresh_url: str, artifacts: Path
) -> None:
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{fresh_url}/cockpit")
    page.get_by_role("textbox", name=t("auth.password", "zh")).wait_for(timeout=PAGE_TIMEOUT_MS)
    _idle(page)
    assert page.locator(FOLDER_MENU).count() == 0, page.locator(FOLDER_MENU).inner_text()
    page.get_by_label(t("auth.username", "zh")).fill(USER)
    page.get_by_role("textbox", name=t("auth.password", "zh")).fill(f"{USER}-pass")
    page.get_by_role("button", name=t("auth.submit", "zh")).click()
    _on(page, "cockpit", "zh")
    shot(page, artifacts, "links_bookmark_cockpit_zh")

    page.get_by_text("English", exact=True).click()
    _on(page, "cockpit", "en")
    page.reload()
    _on(page, "cockpit", "en")
    page.goto(f"{fresh_url}/churn")  # typed in the address bar
    _on(page, "churn", "en")
    page.reload()
    _on(page, "churn", "en")
    page.goto(fresh_url)  # the bare address: the role's first page, under its own address
    _on(page, "cockpit", "en")
    shot(page, artifacts, "links_reload_cockpit_en")
    context.close()
