"""The Import page in chromium on the medium demo: an order-lines export uploaded as a person would, the
proposed mapping shown in the editor, the quality gate's preview, saved to cockpit.toml; a screenshot in
test-artifacts/. The demo's cockpit.toml and imports/ are put back afterwards (other browser tests share it)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from dashboard.core.config import Settings
from dashboard.i18n import t
from dashboard.i18n.values import VALUES
from tests.browser.conftest import PAGE_TIMEOUT_MS
from tests.browser.test_cockpit_and_channels import OFFICE_VIEWPORT, shot
from tests.test_source_add import order_lines

pytestmark = pytest.mark.slow


def idle(page: Any) -> None:
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=PAGE_TIMEOUT_MS)


# The file picker as a person reads it: its visible text (the icon's ligature aside) and the words drawn after it.
PICKER_TEXT = """() => {
  const zone = document.querySelector('[data-testid="stFileUploaderDropzone"]');
  const text = [...zone.querySelectorAll('p, span:not(:has(*))')]
    .filter(e => !e.closest('[data-testid="stIconMaterial"]')).map(e => e.innerText.trim()).filter(Boolean);
  const drawn = [...zone.querySelectorAll('*')].map(e => getComputedStyle(e, '::after').content)
    .filter(c => c.startsWith('"')).map(c => JSON.parse(c));
  return {text, drawn};
}"""


def test_the_file_picker_speaks_the_page_language(browser: Any, app_url: str, demo: Settings) -> None:
    """Streamlit writes its picker's button and size limit in English only ("Upload", "200MB per file")."""
    lang = demo.language
    page = browser.new_page(viewport=OFFICE_VIEWPORT)
    try:
        page.goto(f"{app_url}/import_source", timeout=60_000)
        page.get_by_text(t("import.pick", lang)).wait_for(timeout=PAGE_TIMEOUT_MS)
        idle(page)
        shown = page.evaluate(PICKER_TEXT)
        assert shown["text"] == [], shown  # nothing of Streamlit's own words left to read
        assert shown["drawn"][0] == t("import.upload.button", lang), shown
        assert shown["drawn"][1].startswith(t("import.upload.limit", lang, mb=200, kinds="CSV, ")), shown
    finally:
        page.close()


def test_upload_preview_and_save(browser: Any, app_url: str, demo: Settings, artifacts: Path, tmp_path: Path) -> None:
    lang = demo.language
    (tmp_path / "imports").mkdir()
    export = Path(order_lines(tmp_path, zh=True))  # 订单明细.jsonl: 300 order lines, Chinese keys
    config = demo.base_dir / "cockpit.toml"
    before = config.read_bytes()
    saved = demo.base_dir / "imports" / export.name
    page = browser.new_page(viewport=OFFICE_VIEWPORT)
    try:
        page.goto(f"{app_url}/import_source", timeout=60_000)
        page.get_by_text(t("import.pick", lang)).wait_for(timeout=PAGE_TIMEOUT_MS)
        page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(export))
        heading = t("import.table", lang, entity=VALUES["entity"]["orders"][lang], file=export.name)
        page.get_by_text(heading).wait_for(timeout=PAGE_TIMEOUT_MS)
        idle(page)
        page.locator('[data-testid="stDataFrame"]').first.wait_for(timeout=PAGE_TIMEOUT_MS)  # the mapping editor
        page.get_by_role("button", name=t("import.preview", lang)).click()
        page.get_by_text(t("import.passes", lang)).wait_for(timeout=PAGE_TIMEOUT_MS)
        idle(page)
        code = page.locator('[data-testid="stCode"]').inner_text()
        assert 'entity = "orders"' in code and 'amount = "实付金额"' in code
        shot(page, artifacts, "import_preview")
        page.get_by_role("button", name=t("import.save", lang)).click()
        page.get_by_text(t("import.saved", lang, name="ding_dan_ming_xi")).wait_for(timeout=PAGE_TIMEOUT_MS)
        text = config.read_text(encoding="utf-8")
        assert text.startswith(before.decode("utf-8")) and 'name = "ding_dan_ming_xi"' in text
        assert saved.read_bytes() == export.read_bytes()
    finally:
        page.close()
        config.write_bytes(before)
        if saved.exists():
            saved.unlink()
        if (demo.base_dir / "imports").exists() and not any((demo.base_dir / "imports").iterdir()):
            shutil.rmtree(demo.base_dir / "imports")
