"""The self-service pages in a real browser (headless Chromium from the OS, Playwright),
against a real server: a person with no JavaScript needed finds their records, stops a
use, and erases everything after confirming."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.browser

NUMBER = "+819013572468"


def _api_key(live_server: Any) -> str:
    """A key made with the command line, as an operator would."""
    smsreg = str(Path(sys.executable).parent / "smsreg")
    out = subprocess.run(
        [smsreg, "api-keys", "create", "--name", "browser-test", "--scope", "verifications:write"],
        env=live_server.env, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def _verified(live_server: Any, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=live_server.url, headers=headers, timeout=10) as http:
        started = http.post("/v1/verifications", json={"phone": NUMBER, "purpose": "coupon_usage"})
        assert started.status_code == 201, started.text
        checked = http.post(
            f"/v1/verifications/{started.json()['id']}/check",
            json={"code": live_server.last_code()},
        )
        assert checked.status_code == 200, checked.text


def test_a_person_sees_stops_and_erases_in_a_browser(live_server, browser_page):
    _verified(live_server, _api_key(live_server))
    page = browser_page
    page.goto(live_server.url + "/my/?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    page.fill("#phone", "090-1357-2468")
    page.select_option("#country", "JP")
    page.click("#send")
    assert "+81 90-****-2468" in page.inner_text("#masked")
    page.fill("#code", live_server.last_code())
    page.click("#check")
    assert page.url.endswith("/my/records")
    assert "coupon_usage" in page.inner_text("#purposes")
    page.click("#stop-usage")
    assert page.inner_text("#done") == "Done."
    page.click("#erase")
    page.check("#confirm")
    page.click("#erase-now")
    assert page.inner_text("#receipt-id").startswith("sjr_")
    assert "ledger_entry_subjects" in page.inner_text("#kept")
    page.goto(live_server.url + "/my/records")
    assert "session has ended" in page.inner_text("#message")


def test_the_pages_follow_the_browser_language(live_server, browser_page):
    page = browser_page
    page.set_extra_http_headers({"Accept-Language": "ko-KR,ko;q=0.9"})
    page.goto(live_server.url + "/my/")
    assert page.locator("html").get_attribute("lang") == "ko"
    assert page.input_value("#country") == "KR"
    page.click("a[hreflang=ja]")
    assert page.locator("html").get_attribute("lang") == "ja"
