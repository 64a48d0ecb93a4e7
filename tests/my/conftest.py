from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fixtures.live import CHROMIUM
from tests.staff.helpers import CHEAP_HASHING


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Headless Chromium for one test only. Playwright's synchronous API keeps an event
    loop running in the thread while it is started; a session-long browser would leave
    it running under the async tests that follow in the same worker, and every
    ``asyncio.run`` there would fail. Started and stopped per test, it never outlives
    its test."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "no Chromium: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()
