"""The churn warning list after a language switch (issue 20): switched from Chinese to English on the page,
the list is drawn exactly as when the page is opened in English from the start (the grid learns its letter
widths once per browser page; before the fix it kept the Chinese ones and cut English reasons at the cell's
edge until a reload). Screenshots in test-artifacts/churn_switched_en.png and churn_opened_en.png.

The test signs in with an account of its own, whose saved language it sets: the demo accounts' remembered
languages are left as they were.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from dashboard.access import auth, sessions
from dashboard.core.config import Settings
from dashboard.i18n import t
from tests.browser.conftest import PAGE_TIMEOUT_MS
from tests.browser.test_cockpit_and_channels import OFFICE_VIEWPORT
from tests.browser.test_layouts import settled

pytestmark = pytest.mark.slow

USER = "churn_language_tester"
PASSWORD = f"{USER}-pass"
GRID = ".st-key-churn_grid [data-testid='stDataFrame']"


@pytest.fixture
def account(demo: Settings, secured_app_url: str) -> Iterator[str]:
    auth.add_user(demo, USER, "manager", PASSWORD)
    sessions.remember_language(demo, USER, "zh")
    yield USER
    auth.remove_user(demo, USER)


def _grid(page: Any) -> bytes:
    """The warning list's first rows as drawn on screen (the pointer kept off them)."""
    page.mouse.move(0, 0)
    grid = page.locator(GRID).first
    grid.wait_for(timeout=PAGE_TIMEOUT_MS)
    page.wait_for_timeout(800)  # the canvas draws after the run
    shot: bytes = grid.screenshot()
    return shot


def _rows_differing(a: bytes, b: bytes) -> list[int]:
    """The pixel rows in which two screenshots of the same size differ. Chromium may anti-alias one row of a
    border line differently between two drawings of the same grid (seen under load: the header's bottom edge);
    text cut at a cell's edge or drawn with other letter widths differs over a whole line of text."""
    x = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), dtype=np.int16)
    y = np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), dtype=np.int16)
    assert x.shape == y.shape, f"the grid is {x.shape} after the switch and {y.shape} when opened in English"
    return [int(r) for r in np.flatnonzero(np.abs(x - y).max(axis=(1, 2)) > 0)]


def test_switching_to_english_draws_the_list_as_opening_it_in_english(
    browser: Any, secured_app_url: str, demo: Settings, account: str, artifacts: Path
) -> None:
    context = browser.new_context(viewport=OFFICE_VIEWPORT)
    try:
        page = context.new_page()
        page.goto(f"{secured_app_url}/churn", timeout=PAGE_TIMEOUT_MS)
        page.get_by_label(t("auth.username", demo.language)).fill(USER, timeout=PAGE_TIMEOUT_MS)
        page.get_by_role("textbox", name=t("auth.password", demo.language)).fill(PASSWORD)
        page.get_by_role("button", name=t("auth.submit", demo.language)).click()
        settled(page, t("page.churn", "zh"))
        _grid(page)  # drawn in Chinese first
        page.evaluate("window.drawnInChinese = true")
        page.locator('[data-testid="stSidebar"]').get_by_text("English", exact=True).click()
        settled(page, t("page.churn", "en"))
        switched = _grid(page)
        assert page.evaluate("window.drawnInChinese === undefined"), "the page was not drawn afresh"
        (artifacts / "churn_switched_en.png").write_bytes(switched)

        fresh = context.new_page()  # the same browser, signed in, English remembered for the account
        fresh.goto(f"{secured_app_url}/churn", timeout=PAGE_TIMEOUT_MS)
        settled(fresh, t("page.churn", "en"))
        opened = _grid(fresh)
        (artifacts / "churn_opened_en.png").write_bytes(opened)
        rows = _rows_differing(switched, opened)
        assert len(rows) <= 1, f"after the switch the list is drawn otherwise than when opened in English (rows {rows})"
    finally:
        context.close()
