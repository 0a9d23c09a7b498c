"""Headless Chromium (Debian's chromium + chromium-driver) and an in-process emulator for the chat page's tests.

`make test` installs Chromium through scripts/install-system-deps.sh, so its absence is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from tgm.tools.telegram_emulator import EmulatorServer

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")
# The machine is slow and shared: generous, but every wait ends as soon as its condition holds.
WAIT = 30.0

CHROME_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",  # the tests may run as root (CI containers)
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A fresh headless Chromium with its own profile (empty localStorage)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(path) or shutil.which(path))]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not found: the browser tests need Debian's chromium and chromium-driver "
            "(run scripts/install-system-deps.sh as root, or apt-get install -y chromium chromium-driver)"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in CHROME_ARGUMENTS:
        options.add_argument(argument)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    # An explicit chromedriver: Selenium Manager never goes to the network to look for one.
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield browser
    finally:
        browser.quit()


def wait(
    browser: webdriver.Chrome, condition: Callable[[webdriver.Chrome], Any], what: str, timeout: float = WAIT
) -> Any:
    """Waits until `condition(browser)` is truthy; the page re-renders lists, so a stale element just means retry."""
    return WebDriverWait(
        browser, timeout, poll_frequency=0.2, ignored_exceptions=(StaleElementReferenceException,)
    ).until(condition, f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    # Flood control off: these tests send several messages a second to one chat as the bot.
    with EmulatorServer(flood_control=False) as server:
        yield server


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> Iterator[httpx.Client]:
    """A client of a freshly reset in-process emulator (base URL = the emulator's)."""
    client = httpx.Client(base_url=emulator_server.base_url, timeout=10)
    client.post("/_emulator/reset").raise_for_status()
    yield client
    client.post("/_emulator/reset")
    client.close()
