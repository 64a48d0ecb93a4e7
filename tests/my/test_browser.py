"""The self-service pages in a real browser (headless Chromium from the OS, Playwright),
against a real server: a person with no JavaScript needed finds their records, stops a
use, and erases everything after confirming."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from markupsafe import Markup

from app.my.pages import unbroken
from app.my.texts import RECEIPT, TEXTS
from tests.my.helpers import csrf_of, field_of

pytestmark = pytest.mark.browser

NUMBER = "+819013572468"


def _next_code(live_server: Any, sent_before: int) -> str:
    """The code of the first SMS after the ``sent_before`` already written (the outbox
    sends after the answer: the newest SMS may still be the previous code)."""
    deadline = time.monotonic() + 10
    while len(live_server.messages()) <= sent_before:
        assert time.monotonic() < deadline, "no new SMS arrived"
        time.sleep(0.05)
    return live_server.last_code()


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


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_person_sees_stops_and_erases_in_a_browser(live_server, chromium, javascript):
    _verified(live_server, live_server.api_key)
    context = chromium.new_context(locale="en-US", java_script_enabled=javascript)
    try:
        _erase_in(context.new_page(), live_server)
    finally:
        context.close()


def _erase_in(page: Any, live_server: Any) -> None:
    page.set_default_timeout(15_000)
    page.goto(live_server.url + "/my/?lang=en")
    assert page.locator("html").get_attribute("lang") == "en"
    page.fill("#phone", "090-1357-2468")
    page.select_option("#country", "JP")
    sent_before = len(live_server.messages())
    page.click("#send")
    assert "+81 90-****-2468" in page.inner_text("#masked")
    page.fill("#code", _next_code(live_server, sent_before))
    page.click("#check")
    page.wait_for_url("**/my/records")
    assert "tracking coupon use" in page.inner_text("#purposes")
    page.click("#stop-usage")
    assert page.inner_text("#done") == "Done: your number is no longer used for coupons."
    page.click("#erase")
    page.check("#confirm")
    page.click("#erase-now")
    assert page.inner_text("#receipt-id").startswith("sjr_")
    assert "proof that they were answered" in page.inner_text("#kept")
    assert "0 records" not in page.inner_text("#kept")  # what there is none of is left out
    receipt_id = page.inner_text("#receipt-id")
    page.goto(live_server.url + "/my/records")  # the session ended: the receipt, again
    page.wait_for_url("**/my/receipt")
    assert page.inner_text("#receipt-id") == receipt_id


def test_the_pages_follow_the_browser_language(live_server, chromium):
    context = chromium.new_context(locale="ko-KR")  # Accept-Language: ko-KR
    try:
        page = context.new_page()
        page.goto(live_server.url + "/my/")
        assert page.locator("html").get_attribute("lang") == "ko"
        assert page.input_value("#country") == "KR"
        page.click("a[hreflang=ja]")  # the switch wins over the browser, and is remembered
        assert page.locator("html").get_attribute("lang") == "ja"
        page.goto(live_server.url + "/my/")
        assert page.locator("html").get_attribute("lang") == "ja"
    finally:
        context.close()


_TARGETS = """() => [...document.querySelectorAll(
    'a, button, select, input:not([type=hidden]), label[for=confirm]')]
  .filter(e => e.offsetParent !== null && e.type !== 'checkbox')
  .map(e => ({what: e.id || e.textContent.trim().slice(0, 20),
              height: e.getBoundingClientRect().height,
              font: parseFloat(getComputedStyle(e).fontSize)}))"""


def _fits_a_phone(page: Any) -> None:
    """Every link and control at least 44 px high, form text at 16 px (iOS zooms into
    smaller), and nothing wider than the screen."""
    for target in page.evaluate(_TARGETS):
        assert target["height"] >= 44, target
        assert target["font"] >= 16, target
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_the_pages_fit_a_phone(live_server, chromium):
    """At 375 px the pages had no stylesheet: 17-21 px links, a 13 px checkbox, 13.3 px
    form text."""
    _verified(live_server, live_server.api_key)
    context = chromium.new_context(
        locale="ja-JP", viewport={"width": 375, "height": 812}, java_script_enabled=False
    )
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(live_server.url + "/my/")
        _fits_a_phone(page)
        page.fill("#phone", "03-1234-5678")  # a landline: refused, the number kept
        page.click("#send")
        assert page.input_value("#phone") == "03-1234-5678"
        assert page.evaluate("document.activeElement.id") == "phone"
        page.fill("#phone", "090-1357-2468")
        sent_before = len(live_server.messages())
        page.click("#send")
        _fits_a_phone(page)
        # The cursor is in the code field: the code is typed and sent, no Tab, no tap.
        assert page.evaluate("document.activeElement.id") == "code"
        page.keyboard.type(_next_code(live_server, sent_before))
        page.keyboard.press("Enter")
        page.wait_for_url("**/my/records")
        _fits_a_phone(page)
        page.click("#erase")
        _fits_a_phone(page)
        box = page.locator("#confirm").bounding_box()
        assert box["width"] >= 24 and box["height"] >= 24
        # Korean broke inside words on a phone ("최 / 종"): its lines break between words.
        page.goto(live_server.url + "/my/erase?lang=ko")
        assert page.evaluate("getComputedStyle(document.body).wordBreak") == "keep-all"
    finally:
        context.close()


_LINES = """(pattern) => {
  const found = [];
  const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
  for (let node; (node = walker.nextNode());) {
    for (const m of node.data.matchAll(new RegExp(pattern, 'g'))) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
      found.push({text: m[0], lines: tops.size});
    }
  }
  return found;
}"""


def test_a_date_or_a_number_and_its_counter_stays_on_one_line(live_server, chromium):
    """At 390 px the English records broke a date at its hyphen ("2026-12-" / "07"), the
    Japanese records a date between its parts, and the Japanese receipt's phrase breaking
    split 「1か月間」 after its か."""
    _verified(live_server, live_server.api_key)
    context = chromium.new_context(
        locale="en-US", viewport={"width": 390, "height": 844}, java_script_enabled=False
    )
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(live_server.url + "/my/?lang=en")
        page.fill("#phone", "090-1357-2468")
        sent_before = len(live_server.messages())
        page.click("#send")
        page.fill("#code", _next_code(live_server, sent_before))
        page.click("#check")
        page.wait_for_url("**/my/records")
        dates = page.evaluate(_LINES, r"\d{4}-\d\d-\d\d")
        assert len(dates) >= 3 and all(d["lines"] == 1 for d in dates), dates
        # In Japanese, phrase breaking split "2026年12月" / "7日" and "2026年" / "12月7日".
        page.goto(live_server.url + "/my/records?lang=ja")
        dates = page.evaluate(_LINES, r"\d{4}年\d{1,2}月\d{1,2}日")
        assert len(dates) >= 3 and all(d["lines"] == 1 for d in dates), dates
        # The kept consents' line of a Japanese receipt, as the receipt shows it.
        why = unbroken(RECEIPT["ja"]["why_erased_consent_events"])
        page.set_content(
            Markup(
                '<!doctype html><html lang="ja"><head><meta name="viewport" '
                'content="width=device-width, initial-scale=1"><link rel="stylesheet" '
                'href="{}/my/static/my.css"></head><body><main><ul><li>4件：{}</li></ul>'
                "</main></body></html>"
            ).format(live_server.url, why)
        )
        counted = page.evaluate(_LINES, "\\d+か月間")
        assert [c["text"] for c in counted] == ["1か月間"] and counted[0]["lines"] == 1, counted
    finally:
        context.close()


@contextmanager
def _page_on_another_port(html: str) -> Iterator[str]:
    """A page served from another port of the same host: the same site as the service
    (cookies are not kept apart by port), not its origin. Its address."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(html.encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_of_the_same_site_cannot_sign_a_visitor_in(live_server, chromium):
    """Login CSRF: a page on another port of the host (or a sibling host) planted its own
    CSRF cookie in a fresh browser and posted the matching token with its own
    verification and code: the visitor landed on the attacker's records, where
    everything they did acted on the attacker's entry. The browser says the post is
    same-site, not same-origin: refused as any stale form."""
    _verified(live_server, live_server.api_key)
    with httpx.Client(base_url=live_server.url, timeout=10) as attacker:
        token = csrf_of(attacker.get("/my/?lang=ja").text)
        planted = attacker.cookies["smsreg_csrf"]
        sent_before = len(live_server.messages())
        form = {"csrf": token, "phone": "090-1357-2468", "country": "JP"}
        assert attacker.post("/my/code", data=form).status_code == 303
        verification_id = field_of(attacker.get("/my/code").text, "verification_id")
        code = _next_code(live_server, sent_before)
    html = Markup(
        '<!doctype html><form id="f" method="post" action="{}/my/session">'
        '<input name="csrf" value="{}"><input name="verification_id" value="{}">'
        '<input name="code" value="{}"></form><script>document.cookie = "smsreg_csrf={}; '
        'path=/my"; document.getElementById("f").submit();</script>'
    ).format(live_server.url, token, verification_id, code, planted)
    context = chromium.new_context(locale="ja-JP")
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        with _page_on_another_port(str(html)) as address:
            with page.expect_navigation(url=re.compile(re.escape(live_server.url))):
                page.goto(address)
        assert page.inner_text("h1") == TEXTS["ja"]["h_csrf"]
        assert not [c for c in context.cookies() if c["name"] == "smsreg_subject"]
    finally:
        context.close()
