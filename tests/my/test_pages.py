"""The self-service pages over HTTP (the browser tests drive the same pages in Chromium):
headers, CSRF, language, and the whole path from number to erasure receipt."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, get_args
from urllib.parse import urlencode

import pytest

from app.consent.schemas import SERVICE_SOURCES, SUGGESTED_SOURCES, Action
from app.ledger.rules import DATA_ITEMS, LEGAL_BASES
from app.my.pages import unbroken
from app.my.texts import PROBLEMS, RECEIPT, TEXTS, WORDS
from app.sms.outbox.messages import DeliveryState
from app.subject.erasure import KEPT_WHY
from app.verification.schemas import Purpose
from tests.consent.helpers import make_key
from tests.fixtures.flows import sent_code
from tests.ledger.conftest import add_subscriber, number, release
from tests.my.helpers import csrf_of, field_of, text_of
from tests.staff.helpers import rows, verified

NUMBER = "+819024681357"


async def test_pages_are_not_stored_and_run_no_script(client):
    response = await client.get("/my/")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "frame-ancestors 'none'" in csp and response.headers["x-frame-options"] == "DENY"
    assert "<script" not in response.text
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/my" in cookie


@pytest.mark.parametrize(
    ("header", "query", "lang", "word"),
    [
        ("ko-KR,ko;q=0.9", "", "ko", "휴대전화 번호"),
        ("fr,en;q=0.5,ja;q=0.9", "", "ja", "携帯電話番号"),
        ("fr", "", "ja", "携帯電話番号"),
        ("ja", "?lang=en", "en", "Mobile number"),
    ],
)
async def test_the_language_follows_the_switch_then_the_browser(client, header, query, lang, word):
    response = await client.get("/my/" + query, headers={"Accept-Language": header})
    assert f'<html lang="{lang}">' in response.text
    assert word in response.text


async def test_a_form_without_its_csrf_token_is_refused(client, app):
    await client.get("/my/")
    response = await client.post(
        "/my/code", data={"csrf": "0" * 64, "phone": NUMBER, "country": "JP"}
    )
    assert response.status_code == 403
    assert not rows(app, "SELECT id FROM verifications")
    # The right token from another browser (another cookie) does not pass either.
    token = csrf_of((await client.get("/my/")).text)
    client.cookies.clear()
    response = await client.post("/my/code", data={"csrf": token, "phone": NUMBER, "country": "JP"})
    assert response.status_code == 403


@pytest.mark.parametrize("form", [{}, {"csrf": ""}, {"csrf": "é" * 64}, {"csrf": "0" * 5000}])
async def test_a_missing_or_odd_csrf_token_is_refused_before_the_other_fields(client, app, form):
    """403 csrf-refused whether the token is missing, empty, not ASCII or long, even
    when the other fields are missing too: the token is looked at first."""
    await client.get("/my/")
    for path in ("/my/code", "/my/session", "/my/actions/stop-usage", "/my/erase", "/my/logout"):
        response = await client.post(path, data=form)
        assert response.status_code == 403, (path, response.text)
        assert response.headers["content-type"].startswith("text/html")
    assert not rows(app, "SELECT id FROM verifications")


async def test_a_csrf_token_that_decodes_to_a_lone_surrogate_is_refused(client, app):
    """A multipart form names its own charset: in UTF-7, ``+2AA-`` is U+D800, which no
    encoding takes. It is refused like any wrong token, never a 500."""
    await client.get("/my/")
    body = b'--B\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n+2AA-\r\n--B--\r\n'
    kind = "multipart/form-data; boundary=B; charset=utf-7"
    answer = await client.post("/my/code", content=body, headers={"Content-Type": kind})
    assert answer.status_code == 403, answer.text


@pytest.mark.parametrize(
    "form",
    [
        {"phone": NUMBER, "country": "XX"},  # a country the form does not offer
        {"phone": NUMBER},  # a field missing
        {"phone": "x" * 101, "country": "JP"},  # over its length
    ],
)
async def test_a_form_that_does_not_validate_answers_a_page_naming_the_field(client, app, form):
    """A browser gets a page in its language, never a JSON problem (which once even
    blamed the form's media type)."""
    token = csrf_of((await client.get("/my/")).text)
    response = await client.post("/my/code", data={"csrf": token, **form})
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    field = "country" if "country" not in form or form["country"] == "XX" else "phone"
    # Named in the page's words (Japanese by default), not the API's English.
    assert PROBLEMS["ja"][f"field_{field}"] in response.text and 'id="error"' in response.text
    assert not rows(app, "SELECT id FROM verifications")


async def test_a_refused_form_answers_a_page(client, app):
    await client.get("/my/?lang=ja")
    response = await client.post(
        "/my/actions/stop-provision", data={"csrf": "0" * 64}, headers={"Accept": "text/html"}
    )
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    # A stale form (an old tab, a cleared cookie) says so in the person's language.
    assert TEXTS["ja"]["csrf"] in response.text
    assert "CSRF" not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/my/code",  # without a verification sent from this browser
        "/my/session",
        "/my/correction",
        "/my/logout",
        "/my/nowhere",
    ],
)
async def test_an_address_that_is_no_page_leads_to_the_start_page(client, path):
    """A form's target opened again from the address bar, or a reloaded tab: the start
    page, never a JSON 405 or 404."""
    answer = await client.get(path)
    assert answer.status_code == 303 and answer.headers["location"] == "/my/"


async def test_the_pages_cookies_are_secure_outside_development(client, app):
    """Behind a proxy that ends TLS the service sees http: the cookies are Secure anyway."""
    ctx = app.state.ctx
    production = ctx.settings.model_copy(update={"environment": "production"})
    app.state.ctx = dataclasses.replace(ctx, settings=production)
    try:
        response = await client.get("/my/")
    finally:
        app.state.ctx = ctx
    assert "Secure" in response.headers["set-cookie"]
    client.cookies.clear()
    assert "Secure" not in (await client.get("/my/")).headers["set-cookie"]


async def test_a_csrf_pair_from_another_browser_does_not_pass_in_a_session(
    client, app, carrier, clock
):
    """A CSRF cookie and its token made in the attacker's browser, planted in a signed-in
    one (a sibling host can set a cookie), are refused: the token names the session too."""
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    attacker = csrf_of((await client.get("/my/")).text)
    planted = client.cookies["smsreg_csrf"]
    page = await client.get("/my/?lang=en")
    posted = await client.post(
        "/my/code", data={"csrf": csrf_of(page.text), "phone": NUMBER, "country": "JP"}
    )
    sent = await client.get(posted.headers["location"])
    opened = await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": await sent_code(app, carrier, NUMBER)},
    )  # fmt: skip
    assert opened.status_code == 303
    assert client.cookies["smsreg_csrf"] == planted  # the same browser: the same cookie
    refused = await client.post("/my/actions/stop-usage", data={"csrf": attacker})
    assert refused.status_code == 403
    assert rows(app, "SELECT purpose FROM subscriber_purposes WHERE subscriber_id = :s", s=sid)
    # The token of a page shown in the session passes.
    records = await client.get("/my/records")
    done = await client.post("/my/actions/stop-usage", data={"csrf": csrf_of(records.text)})
    assert done.status_code == 303
    assert not rows(app, "SELECT purpose FROM subscriber_purposes WHERE subscriber_id = :s", s=sid)


async def test_number_code_records_action_and_erasure(client, app, carrier, clock):
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    other = await add_subscriber(app, number(1))
    await release(app, [sid, other], legal_basis="emergency_life_body_property",
                  request_reference="ER-2026-7")  # fmt: skip
    clock.advance(minutes=1)
    page = await client.get("/my/?lang=en")
    posted = await client.post(
        "/my/code", data={"csrf": csrf_of(page.text), "phone": "090-2468-1357", "country": "JP"}
    )
    # The code form is a page of its own: reloading it (or going back to it) sends no
    # second SMS, as reloading the form's POST did.
    assert posted.status_code == 303, posted.text
    # Its verification in a cookie, not in the address a shared browser's history keeps.
    assert posted.headers["location"] == "/my/code"
    assert "HttpOnly" in posted.headers["set-cookie"]
    sent = await client.get(posted.headers["location"])
    assert sent.status_code == 200, sent.text
    assert "+81 90-****-1357" in sent.text
    messages = rows(app, "SELECT id FROM outbox_messages")
    assert (await client.get(posted.headers["location"])).status_code == 200
    assert rows(app, "SELECT id FROM outbox_messages") == messages
    code = await sent_code(app, carrier, NUMBER)
    full_width = code.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    opened = await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": full_width},  # as a Japanese input method types it
    )  # fmt: skip
    assert opened.status_code == 303
    cookies = opened.headers.get_list("set-cookie")
    (session,) = [cookie for cookie in cookies if cookie.startswith("smsreg_subject=")]
    assert "HttpOnly" in session
    # A session cookie: it goes when the browser closes (a shared phone), not 15 minutes on.
    assert "max-age" not in session.lower() and "expires" not in session.lower()
    records = await client.get("/my/records")
    assert records.status_code == 200
    assert "coupon_usage" in records.text and NUMBER not in records.text
    # Each purpose since when and last verified when; a disclosure not compelled by law
    # shows its reference, and counts its other subjects without naming them.
    # In words, and in the time a person in Japan or Korea reads (to the minute).
    shown = text_of(records.text)
    assert "tracking coupon use (since 2026-" in shown
    assert re.search(r"; last verified 2026-\d\d-\d\d \d\d:\d\d \(UTC\+9\)", shown)
    assert "request reference: ER-2026-7; 1 other person in this disclosure" in shown
    assert other not in records.text
    stopped = await client.post("/my/actions/stop-usage", data={"csrf": csrf_of(records.text)})
    assert stopped.status_code == 303
    # The page says what was done, not only "Done."
    after = await client.get(stopped.headers["location"])
    assert TEXTS["en"]["done_stop-usage"] in after.text
    assert not rows(app, "SELECT purpose FROM subscriber_purposes WHERE subscriber_id = :s", s=sid)

    confirm = await client.get("/my/erase")
    assert confirm.status_code == 200 and 'name="confirm"' in confirm.text
    unconfirmed = await client.post("/my/erase", data={"csrf": csrf_of(confirm.text)})
    assert unconfirmed.status_code == 422
    assert rows(app, "SELECT id FROM subscribers WHERE id = :s", s=sid) == [{"id": sid}]
    posted = await client.post("/my/erase", data={"csrf": csrf_of(confirm.text), "confirm": "yes"})
    # The receipt at an address of its own: a reload does not post the erasure again.
    assert posted.status_code == 303 and posted.headers["location"] == "/my/receipt"
    erased = await client.get("/my/receipt")
    assert erased.status_code == 200, erased.text
    # The receipt in the page's words: what went and why the rest is kept, no table names.
    assert RECEIPT["en"]["done"] in erased.text
    assert RECEIPT["en"]["why_ledger_entry_subjects"] in erased.text
    assert RECEIPT["en"]["subscribers"] in erased.text
    assert not re.search(r"<li>[a-z_]+: \d", erased.text), "a table's name is shown"
    assert rows(app, "SELECT id FROM subscribers") == [{"id": other}]
    # The session ended with the erasure: the records lead to the receipt, and without
    # it (another browser, or later) the page says the session has ended.
    assert (await client.get("/my/records")).headers["location"] == "/my/receipt"
    client.cookies.delete("smsreg_receipt", path="/my")
    assert (await client.get("/my/records")).status_code == 401


async def test_the_records_move_to_a_new_number_from_the_page(client, app, carrier, clock):
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    clock.advance(minutes=1)
    page = await client.get("/my/?lang=en")
    posted = await client.post(
        "/my/code", data={"csrf": csrf_of(page.text), "phone": NUMBER, "country": "JP"}
    )
    sent = await client.get(posted.headers["location"])
    code = await sent_code(app, carrier, NUMBER)
    await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": code},
    )  # fmt: skip
    records = await client.get("/my/records")
    new = "+819086429753"
    asked = await client.post(
        "/my/correction/code", data={"csrf": csrf_of(records.text), "phone": new, "country": "JP"}
    )
    # A page of its own, as the first code's: a reload sends no second SMS.
    assert asked.status_code == 303, asked.text
    assert asked.headers["location"] == "/my/correction/code"
    messages = rows(app, "SELECT id FROM outbox_messages")
    asked = await client.get("/my/correction/code")
    assert asked.status_code == 200, asked.text
    assert 'action="/my/correction"' in asked.text and "+81 90-****-9753" in asked.text
    assert (await client.get("/my/correction/code")).status_code == 200
    assert rows(app, "SELECT id FROM outbox_messages") == messages
    moved = await client.post(
        "/my/correction",
        data={"csrf": csrf_of(asked.text),
              "verification_id": field_of(asked.text, "verification_id"),
              "code": await sent_code(app, carrier, new)},
    )  # fmt: skip
    assert moved.status_code == 303, moved.text
    assert "+81 90-****-9753" in (await client.get("/my/records")).text
    index = app.state.ctx.keys.blind_index(new, kind="number")
    assert rows(app, "SELECT id FROM subscribers WHERE phone_index = :i", i=index) == [{"id": sid}]


def test_a_date_or_a_number_and_its_counter_is_kept_on_one_line():
    """A line broke an English date at its hyphen ("2026-12-" / "07"), a Japanese date
    between its parts and a Japanese number from its counter (「1か / 月間」): each is kept
    in a span my.css does not wrap (the browser test measures the lines)."""
    kept = unbroken(RECEIPT["ja"]["why_erased_consent_events"])
    assert '最後の配信から<span class="nb">1か月間</span>保存し' in kept
    assert unbroken("since 2026-12-07 11:56") == 'since <span class="nb">2026-12-07</span> 11:56'
    # Nor a Japanese or Korean date between its parts (Chromium split "2026年12月" / "7日").
    assert unbroken("開始 2026年12月7日 11:56（日本時間）") == (
        '開始 <span class="nb">2026年12月7日</span> 11:56（日本時間）'
    )
    assert unbroken("2026년 12월 7일 11:56") == '<span class="nb">2026년 12월 7일</span> 11:56'
    assert unbroken("<b>3年間</b>") == '&lt;b&gt;<span class="nb">3年間</span>&lt;/b&gt;'


def test_the_receipt_has_every_word_in_every_language():
    """Every kept table's reason and every language's words: a receipt never falls back
    to a table's name or to English on a Japanese or Korean page."""
    assert {f"why_{name}" for name in KEPT_WHY} <= set(RECEIPT["en"])
    for words in RECEIPT.values():
        assert set(words) == set(RECEIPT["en"])


async def code_form(client, app, carrier, lang: str) -> tuple[Any, str]:
    """A registered number's /my/ code form in ``lang``, and the code its SMS holds."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    page = await client.get(f"/my/?lang={lang}")
    posted = await client.post(
        "/my/code", data={"csrf": csrf_of(page.text), "phone": "090-2468-1357", "country": "JP"}
    )
    sent = await client.get(posted.headers["location"])
    return sent, await sent_code(app, carrier, NUMBER)


async def test_a_wrong_code_is_told_in_the_pages_language(client, app, carrier):
    """The API's English ("the code is not correct; 4 attempt(s) left") was shown on the
    Japanese and Korean pages."""
    sent, code = await code_form(client, app, carrier, "ko")
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    answer = await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": wrong},
    )  # fmt: skip
    assert answer.status_code == 303
    answer = await client.get(answer.headers["location"])
    assert PROBLEMS["ko"]["invalid-code"].format(attempts_left=4) in answer.text
    assert "attempt(s)" not in answer.text


def test_every_problem_is_worded_in_every_language():
    for words in PROBLEMS.values():
        assert set(words) == set(PROBLEMS["en"])


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "service_name": "Digirou Coupons",
            "privacy_contact": "Digirou Inc., privacy desk, 03-1234-5678",
            "privacy_policy_url": "https://digirou.example.co.jp/privacy",
        }
    ],
)
async def test_the_pages_say_who_runs_them(client):
    """A person arriving from an SMS can tell the operator's pages from a phishing one,
    and knows where else to ask."""
    page = await client.get("/my/?lang=en")
    assert "<title>See your data – Digirou Coupons</title>" in page.text
    assert '<p id="service">Digirou Coupons</p>' in page.text
    assert "privacy desk, 03-1234-5678" in page.text
    assert 'href="https://digirou.example.co.jp/privacy"' in page.text


def test_every_name_the_records_page_shows_is_a_word_in_every_language():
    """No purpose, legal basis, data item, message state or source the service records
    itself shows as the service's name for it (coupon_usage, law, phone_number, sms...),
    nor a source the API suggests to frontends (web showed as "（web）" on a Japanese
    page)."""
    names = {
        *SERVICE_SOURCES,
        *SUGGESTED_SOURCES,
        *get_args(Purpose),
        *get_args(Action),
        *LEGAL_BASES,
        *DATA_ITEMS,
        *get_args(DeliveryState),
    }
    for words in WORDS.values():
        assert names <= set(words)
        assert set(words) == set(WORDS["en"])


async def test_a_form_giving_a_field_twice_is_refused_and_sends_nothing(client, app):
    """A second ``phone`` was read in place of the first; now the form is refused."""
    token = csrf_of((await client.get("/my/")).text)
    body = [("csrf", token), ("phone", "+819011112222"), ("phone", NUMBER), ("country", "JP")]
    response = await client.post(
        "/my/code",
        content=urlencode(body),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert not rows(app, "SELECT id FROM verifications")


async def test_a_code_of_the_wrong_length_is_said_so_and_not_counted(client, app, carrier):
    """It was "digits only", which did not say what was wrong with five digits typed."""
    sent, code = await code_form(client, app, carrier, "ja")
    answer = await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": code[:-1]},
    )  # fmt: skip
    assert answer.status_code == 422, answer.text
    assert PROBLEMS["ja"]["code_length"].format(digits=len(code)) in answer.text
    right = await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": code},
    )  # fmt: skip
    assert right.status_code == 303 and right.headers["location"] == "/my/records"


async def _sign_in_with(client, app, carrier, headers):
    """The right code posted from the code form, with these request headers."""
    sent, code = await code_form(client, app, carrier, "ja")
    return await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": code},
        headers=headers,
    )  # fmt: skip


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-site"},  # another port of the host, a sibling host
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://testserver:8149"},
        {"Origin": "http://coupons.testserver"},
        {"Origin": "https://testserver"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://evil.example"},
    ],
)
async def test_a_sign_in_posted_from_a_page_not_our_own_is_refused(client, app, carrier, headers):
    """A page of the same site planted its own CSRF cookie and posted the matching token
    with its own verification and code: the visitor was signed in to its session (login
    CSRF). The browser says where a form comes from; only our own origin passes."""
    answer = await _sign_in_with(client, app, carrier, headers)
    assert answer.status_code == 403 and TEXTS["ja"]["csrf"] in answer.text
    assert "smsreg_subject" not in client.cookies
    assert not rows(app, "SELECT id FROM subject_sessions")


@pytest.mark.parametrize(
    "headers",
    [
        {},  # not a browser, or one that says nothing: the token alone
        {"Sec-Fetch-Site": "same-origin", "Origin": "http://testserver"},
        {"Sec-Fetch-Site": "none"},  # the person's own doing: no page can send it
        {"Origin": "http://TESTSERVER:80"},
    ],
)
async def test_a_sign_in_from_our_own_page_passes(client, app, carrier, headers):
    answer = await _sign_in_with(client, app, carrier, headers)
    assert answer.status_code == 303 and answer.headers["location"] == "/my/records"


async def test_our_own_forms_send_their_origin(client):
    """Under ``Referrer-Policy: no-referrer`` a browser sends ``Origin: null`` with a form,
    which the origin check could not tell from another page's."""
    page = await client.get("/my/")
    assert page.headers["referrer-policy"] == "same-origin"
    assert '<meta name="referrer" content="same-origin">' in page.text


@pytest.mark.parametrize("settings_overrides", [{"public_base_url": "https://sms.example.co.jp"}])
async def test_the_public_base_urls_origin_is_our_own_too(client, app, carrier):
    """Behind a proxy that passes on a Host of its own (nginx's default), the request's
    own origin is not the one people open the pages under: that one is configured."""
    sent, code = await code_form(client, app, carrier, "ja")
    form = {"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
            "code": code}  # fmt: skip
    elsewhere = await client.post(
        "/my/session", data=form, headers={"Origin": "https://coupons.example.co.jp"}
    )
    assert elsewhere.status_code == 403
    answer = await client.post(
        "/my/session", data=form, headers={"Origin": "https://sms.example.co.jp:443"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/my/records"
