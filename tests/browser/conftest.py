"""The app served for real on the medium demo, and Debian's chromium-headless-shell (or chromium) driven by Playwright.

Without either (or the playwright package) the browser tests skip with a message; in CI
(the ``CI`` environment variable is set) that is a failure instead: CI must run them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboard.core.config import CONFIG_ENV, Settings, load_settings
from tests.conftest import demo_template

ROOT = Path(__file__).resolve().parents[2]
# Debian's chromium-headless-shell (Chromium's old headless mode, the one Playwright itself runs headless tests
# with): the same Blink and V8 as /usr/bin/chromium without the full browser around them, which cost the browser
# tests' CPU (make browser installs it beside chromium). Debian's chromium when it is missing.
HEADLESS_SHELL = Path("/usr/lib/chromium/chromium-headless-shell")
CHROMIUM = HEADLESS_SHELL if HEADLESS_SHELL.exists() else Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
CHROMIUM_ARGS.append("--disable-sync")
SERVER_START_TIMEOUT = 90  # seconds until the server answers its health check
PAGE_TIMEOUT_MS = 60_000  # a page's charts and numbers, first load included


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (make test: -n 2 --dist loadgroup) every browser test runs on one worker, so
    the medium demo is generated and served once, while the other worker takes the rest of the suite."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.xdist_group("browser"))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}: CI must run the browser tests (make test installs chromium as root)")
    pytest.skip(f"{reason}: browser tests skipped (install Debian's chromium-headless-shell, fonts-noto-cjk)")


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} not found")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    return CHROMIUM


@pytest.fixture(scope="session")
def demo(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The medium demo generated and refreshed with the repository's config (made once per run, shared with
    tests/test_incremental.py: tests/conftest.py demo_template), copied to a folder of the browser tests' own."""
    root = tmp_path_factory.mktemp("medium_demo") / "demo"
    shutil.copytree(demo_template(tmp_path_factory, "medium"), root, symlinks=True)
    return load_settings(root / "cockpit.toml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"streamlit exited with {server.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"streamlit did not answer within {SERVER_START_TIMEOUT} s:\n{log.read_text(errors='replace')[-3000:]}")


def _served(demo: Settings, folder: Path, no_auth: bool) -> Iterator[str]:
    """``streamlit run dashboard/server.py`` (what `cockpit serve` runs) on a free local port; stopped when
    the fixture ends."""
    port = _free_port()
    log = folder / "streamlit.log"
    env = {k: v for k, v in os.environ.items() if k != "COCKPIT_NO_AUTH"}
    env[CONFIG_ENV] = str(demo.base_dir / "cockpit.toml")
    if no_auth:
        env["COCKPIT_NO_AUTH"] = "1"
    command = [sys.executable, "-m", "streamlit", "run", "dashboard/server.py", "--server.port", str(port)]
    command += ["--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


@pytest.fixture(scope="session")
def app_url(demo: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Served as `cockpit serve --no-auth` does: no sign-in, everything unmasked (the page tests)."""
    yield from _served(demo, tmp_path_factory.mktemp("server"), no_auth=True)


@pytest.fixture(scope="session")
def secured_app_url(demo: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Served with sign-in on and `cockpit demo`'s accounts (user = role, password "<role>-demo")."""
    from dashboard.access.auth import demo_accounts, load_accounts

    if not load_accounts(demo):
        demo_accounts(demo)
    yield from _served(demo, tmp_path_factory.mktemp("secured_server"), no_auth=False)


@pytest.fixture(scope="session")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS, timeout=30_000)
        yield launched
        launched.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
