"""The console's browser test starts Playwright inside the test, not for the session.

Playwright's synchronous API keeps its event loop running in the main thread for as long
as it is started: with the session-wide ``chromium`` fixture, every async test that ran
after a browser test in the same worker failed ("Runner.run() cannot be called from a
running event loop"). Started and stopped around the one test, it leaves none behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.live import CHROMIUM


@pytest.fixture
def chromium_for_test() -> Iterator[Any]:
    """Headless Chromium from the operating system's packages, for this test only."""
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install -y chromium"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()
