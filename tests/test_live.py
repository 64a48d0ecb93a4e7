"""The live-server and browser fixtures work end to end (tests/fixtures/live.py)."""

import json

import httpx
import pytest

pytestmark = pytest.mark.browser


def test_a_live_server_sends_a_code_that_a_test_can_read(live_server):
    answer = httpx.post(
        f"{live_server.url}/v1/verifications",
        headers={"Authorization": f"Bearer {live_server.api_key}"},
        json={"phone": "090-1234-5678", "purpose": "coupon_usage", "locale": "ja"},
    )
    assert answer.status_code == 201, answer.text
    assert len(live_server.last_code("+819012345678")) == 6


def test_the_browser_reaches_the_live_server(live_server, browser_page):
    browser_page.goto(f"{live_server.url}/healthz")
    assert json.loads(browser_page.inner_text("body")) == {"status": "ok"}
