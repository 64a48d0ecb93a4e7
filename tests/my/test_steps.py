"""Each step of /my/ as a person meets it: its own title, the language switch that never
loses a page answered to a form, the way back that keeps a signed-in person signed in,
refusals said once and beside their field, and what was done said only by the server."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.requests import Request

from app.core.errors import RateLimited
from app.my import pages
from app.my.deps import problem_words
from app.my.texts import PROBLEMS, RECEIPT, TEXTS, WORDS
from app.subject import service
from tests.consent.helpers import consent, make_key, opted_in
from tests.fixtures.flows import sent_code
from tests.fixtures.subject import add_subscriber
from tests.ledger.conftest import POLICE, release
from tests.my.helpers import csrf_of, field_of, text_of
from tests.staff.helpers import rows, verified

NUMBER = "+819024681357"
NEW = "+819086429753"


def _switch(html: str) -> set[str]:
    """The addresses the language switch links to (empty: the page has no switch)."""
    return set(re.findall(r'href="([^"?]*)\?lang=(?:ja|ko|en)"', html))


def _alert(html: str) -> str:
    found = re.findall(r'<p role="alert" id="error" class="error">(.*?)</p>', html, re.S)
    assert len(found) == 1, html
    return found[0]


def _tag(html: str, element_id: str) -> str:
    found = re.search(rf'<[a-z]+ [^>]*(?<![-\w])id="{element_id}"[^>]*>', html)
    assert found, f"no #{element_id}"
    return found.group(0)


def _wrong(code: str) -> str:
    return "0" * len(code) if code != "0" * len(code) else "1" * len(code)


async def _code_page(client: httpx.AsyncClient, lang: str, phone: str) -> httpx.Response:
    page = await client.get(f"/my/?lang={lang}")
    posted = await client.post(
        "/my/code", data={"csrf": csrf_of(page.text), "phone": phone, "country": "JP"}
    )
    assert posted.status_code == 303, posted.text
    return await client.get("/my/code")


async def _registered_code_page(
    client, app, carrier, clock, lang: str
) -> tuple[str, httpx.Response]:
    """NUMBER registered through the API, and a minute later its /my/ code form: the
    subscriber id, and the form."""
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, NUMBER)
    clock.advance(minutes=1)
    return sid, await _code_page(client, lang, NUMBER)


async def _signed_in(client, app, carrier, clock, *, lang: str = "en") -> str:
    """A registered number, signed in on /my/: its subscriber id."""
    sid, sent = await _registered_code_page(client, app, carrier, clock, lang)
    opened = await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": await sent_code(app, carrier, NUMBER)},
    )  # fmt: skip
    assert opened.status_code == 303, opened.text
    return sid


async def _new_numbers_code(client, app, carrier, phone: str) -> httpx.Response:
    records = await client.get("/my/records")
    asked = await client.post(
        "/my/correction/code", data={"csrf": csrf_of(records.text), "phone": phone, "country": "JP"}
    )
    assert asked.status_code == 303, asked.text
    return await client.get("/my/correction/code")


# -- 1. the language switch never throws a page away ---------------------------------------


async def test_the_receipt_is_shown_again_in_another_language_and_on_reload(
    client, app, carrier, clock
):
    """The receipt, answered to the erasure's POST, said to keep its ID while its
    language links led to the start page: the session had ended, the receipt was lost."""
    await _signed_in(client, app, carrier, clock)
    confirm = await client.get("/my/erase")
    posted = await client.post("/my/erase", data={"csrf": csrf_of(confirm.text), "confirm": "yes"})
    assert posted.status_code == 303 and posted.headers["location"] == "/my/receipt"
    shown = await client.get("/my/receipt")
    assert shown.status_code == 200
    receipt_id = re.search(r'id="receipt-id">(sjr_[^<]+)<', shown.text).group(1)
    assert _switch(shown.text) == {"/my/receipt"}
    again = await client.get("/my/receipt?lang=ja")
    assert '<html lang="ja">' in again.text and RECEIPT["ja"]["done"] in again.text
    assert receipt_id in again.text
    # Not in another browser (the cookie is bound to this one's), nor 15 minutes later.
    cookie = client.cookies["smsreg_receipt"]
    with_other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=client.base_url)
    async with with_other:
        with_other.cookies.set("smsreg_receipt", cookie, path="/my")
        assert (await with_other.get("/my/receipt")).status_code == 303
    clock.advance(minutes=16)
    gone = await client.get("/my/receipt")
    assert gone.status_code == 303 and gone.headers["location"] == "/my/"


@pytest.mark.parametrize("lang", ["en", "ja"])
async def test_an_action_sent_after_the_session_ended_says_it_was_not_done(
    client, app, carrier, clock, lang
):
    """The page asked to sign in, as a visit does, without a word that the action was
    not carried out, and was not titled as the refusal it is."""
    await _signed_in(client, app, carrier, clock, lang=lang)
    records = await client.get("/my/records")
    clock.advance(minutes=16)
    answer = await client.post("/my/actions/stop-provision", data={"csrf": csrf_of(records.text)})
    assert answer.status_code == 401
    assert _alert(answer.text) == TEXTS[lang]["expired_action"]
    title = re.search(r"<title>(.*?)</title>", answer.text).group(1)
    assert title.startswith(TEXTS[lang]["error_title"] + TEXTS[lang]["h_expired"])
    visit = await client.get("/my/records")  # a visit is not refused: asked to sign in
    assert visit.status_code == 401 and 'id="error"' not in visit.text
    assert TEXTS[lang]["expired"] in visit.text


async def test_the_next_user_of_a_shared_browser_is_not_shown_the_receipt(
    client, app, carrier, clock
):
    """The receipt's cookie outlived the erasure for as long as the browser ran: the next
    person to sign in on a kiosk was shown the last one's receipt."""
    await _signed_in(client, app, carrier, clock)
    confirm = await client.get("/my/erase")
    posted = await client.post("/my/erase", data={"csrf": csrf_of(confirm.text), "confirm": "yes"})
    assert (await client.get(posted.headers["location"])).status_code == 200
    start = await client.get("/my/")  # the next person, at the start page
    assert start.status_code == 200
    assert "smsreg_receipt" not in client.cookies
    assert (await client.get("/my/receipt")).status_code == 303


async def test_a_wrong_code_can_be_read_in_another_language_without_a_new_sms(
    client, app, carrier, clock
):
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    sent = await _code_page(client, "en", NUMBER)
    wrong = await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": _wrong(await sent_code(app, carrier, NUMBER))},
    )  # fmt: skip
    # To the code form's own address (a reload there sends no code again), saying why.
    assert wrong.status_code == 303 and wrong.headers["location"] == "/my/code"
    wrong = await client.get("/my/code")
    assert wrong.status_code == 200
    assert _alert(wrong.text) == PROBLEMS["en"]["invalid-code"].format(attempts_left=4)
    # The switch shows the same code form, not the start page (which meant a new SMS).
    assert _switch(wrong.text) == {"/my/code"}
    # Where the code went is still said, and the field is marked, described and focused.
    assert "+81 90-****-1357" in wrong.text
    code = _tag(wrong.text, "code")
    assert 'aria-invalid="true"' in code and 'aria-describedby="error"' in code
    assert "autofocus" in code
    messages = rows(app, "SELECT id FROM outbox_messages")
    switched = await client.get("/my/code?lang=ja")
    assert switched.status_code == 200 and '<html lang="ja">' in switched.text
    assert field_of(switched.text, "verification_id") == field_of(sent.text, "verification_id")
    assert rows(app, "SELECT id FROM outbox_messages") == messages


async def test_no_records_held_is_said_on_the_start_page_and_other_answers_switch_in_place(
    client, app, carrier, clock
):
    """The answer that no data is held is to a code now spent: the start page says it once
    (answered in place, a reload posted the used code again and showed a dead form)."""
    sent = await _code_page(client, "en", "+819011112222")  # not in the registry
    nothing = await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": await sent_code(app, carrier, "+819011112222")},
    )  # fmt: skip
    assert nothing.status_code == 303 and nothing.headers["location"] == "/my/"
    said = await client.get("/my/")
    assert TEXTS["en"]["nothing"] in said.text and 'name="phone"' in said.text
    assert TEXTS["en"]["nothing"] not in (await client.get("/my/")).text  # said once
    # A refused number: the switch shows the form again, the number as it was typed.
    page = await client.get("/my/")
    refused = await client.post(
        "/my/code", data={"csrf": csrf_of(page.text), "phone": "03-1234-5678", "country": "JP"}
    )
    assert refused.status_code == 422
    assert _switch(refused.text) == {"/my/"}
    phone = _tag(refused.text, "phone")
    assert 'value="03-1234-5678"' in phone and 'aria-invalid="true"' in phone
    assert 'aria-describedby="error"' in phone and "autofocus" in phone
    # An erasure not confirmed: its confirmation page.
    await _signed_in(client, app, carrier, clock)
    confirm = await client.get("/my/erase")
    unchecked = await client.post("/my/erase", data={"csrf": csrf_of(confirm.text)})
    assert unchecked.status_code == 422 and _switch(unchecked.text) == {"/my/erase"}


# -- 2. the way back keeps a signed-in person signed in ------------------------------------


async def test_a_signed_in_person_is_never_sent_back_to_the_number_form(
    client, app, carrier, clock
):
    await _signed_in(client, app, carrier, clock)
    start = await client.get("/my/")
    assert start.status_code == 303 and start.headers["location"] == "/my/records"
    switched = await client.get("/my/?lang=ko")
    assert switched.headers["location"] == "/my/records?lang=ko"
    asked = await _new_numbers_code(client, app, carrier, NEW)
    assert 'href="/my/records" id="back"' in asked.text
    assert 'href="/my/" id="back"' not in asked.text
    # A refused new number: the records again (signed in, with the way out), not a page
    # whose only link led to the number form.
    records = await client.get("/my/records")
    refused = await client.post(
        "/my/correction/code",
        data={"csrf": csrf_of(records.text), "phone": "03-1234-5678", "country": "JP"},
    )
    assert refused.status_code == 422
    assert 'id="logout"' in refused.text and 'id="purposes"' in refused.text
    new_phone = _tag(refused.text, "new-phone")
    assert 'value="03-1234-5678"' in new_phone and 'aria-invalid="true"' in new_phone
    # Signed out, the start page is the start page again.
    await client.post("/my/logout", data={"csrf": csrf_of(records.text)})
    assert (await client.get("/my/")).status_code == 200


# -- 3. a refusal is said once --------------------------------------------------------------


async def test_a_code_form_of_a_request_not_known_offers_no_code_field(client):
    """A code page left open past the purge (or an id not ours) was answered with its
    code field again, into which no code could ever work."""
    start = await client.get("/my/?lang=en")
    answer = await client.post(
        "/my/session",
        data={"csrf": csrf_of(start.text), "verification_id": "ver_" + "x" * 26, "code": "123456"},
    )
    assert answer.status_code == 404
    assert _alert(answer.text) == PROBLEMS["en"]["verification-not-found"]
    assert 'name="code"' not in answer.text and 'id="back"' in answer.text


async def test_a_refusal_is_said_once_with_no_stray_words(client, app, carrier, clock):
    """Every refusal ended with a lone "確認してください" / "Please check", and the English
    ones said "Please check: Check the number"."""
    await _signed_in(client, app, carrier, clock, lang="ja")
    records = await client.get("/my/records")
    refused = await client.post(
        "/my/correction/code",
        data={"csrf": csrf_of(records.text), "phone": "03-1234-5678", "country": "JP"},
    )
    assert _alert(refused.text) == PROBLEMS["ja"]["field_phone"]
    assert refused.text.count("確認してください") == 1  # the problem's own words
    unknown = await client.post(
        "/my/actions/erase-everything", data={"csrf": csrf_of(records.text)}
    )
    assert unknown.status_code == 422, unknown.text
    assert _alert(unknown.text) == PROBLEMS["ja"]["other"]
    assert 'id="message"' not in unknown.text
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    big = await client.post("/my/code", content=b"phone=" + b"9" * 2_000_000, headers=form)
    assert big.status_code == 413
    assert _alert(big.text) == PROBLEMS["ja"]["payload-too-large"]
    page = await client.get("/my/records?lang=en")
    refused = await client.post(
        "/my/correction/code",
        data={"csrf": csrf_of(page.text), "phone": "03-1234-5678", "country": "JP"},
    )
    assert _alert(refused.text) == PROBLEMS["en"]["field_phone"]
    assert "Please check" not in refused.text


# -- 4, 5. a correction that cannot go on goes back to the records -------------------------


async def test_a_new_number_someone_else_holds_goes_back_to_the_records_saying_so(
    client, app, carrier, clock
):
    """After 409 subject-number-taken the code form came back for a code already used."""
    await add_subscriber(app, NEW)
    await _signed_in(client, app, carrier, clock)
    asked = await _new_numbers_code(client, app, carrier, NEW)
    answer = await client.post(
        "/my/correction",
        data={"csrf": csrf_of(asked.text),
              "verification_id": field_of(asked.text, "verification_id"),
              "code": await sent_code(app, carrier, NEW)},
    )  # fmt: skip
    assert answer.status_code == 303 and answer.headers["location"] == "/my/records"
    assert 'smsreg_pending=""' in answer.headers["set-cookie"]  # its code form is gone
    records = await client.get("/my/records")
    assert TEXTS["en"]["correction_taken"] in records.text
    assert 'role="alert" id="done"' in records.text
    assert TEXTS["en"]["correction_taken"] not in (await client.get("/my/records")).text


async def test_the_number_the_records_are_under_is_refused_before_any_sms(
    client, app, carrier, clock
):
    sid = await _signed_in(client, app, carrier, clock)
    records = await client.get("/my/records")
    messages = rows(app, "SELECT id FROM outbox_messages")
    refused = await client.post(
        "/my/correction/code",
        data={"csrf": csrf_of(records.text), "phone": "090-2468-1357", "country": "JP"},
    )
    assert refused.status_code == 409, refused.text
    assert _alert(refused.text) == PROBLEMS["en"]["subject-number-unchanged"]
    assert rows(app, "SELECT id FROM outbox_messages") == messages
    assert not rows(app, "SELECT id FROM subject_requests WHERE subscriber_id = :s "
                    "AND kind = 'correct'", s=sid)  # fmt: skip


# -- 6. what was done is said by the server only -------------------------------------------


async def test_what_was_done_is_said_once_and_only_after_the_action(client, app, carrier, clock):
    """``?done=resume-provision`` said provision had resumed whatever the state (a
    phisher's link could say so), and a reload said it again."""
    await _signed_in(client, app, carrier, clock)
    claimed = await client.get("/my/records?done=resume-provision")
    assert TEXTS["en"]["done_resume-provision"] not in claimed.text
    assert 'id="done"' not in claimed.text
    stopped = await client.post("/my/actions/stop-provision", data={"csrf": csrf_of(claimed.text)})
    assert stopped.status_code == 303 and stopped.headers["location"] == "/my/records"
    flash = client.cookies["smsreg_flash"]
    said = await client.get("/my/records")
    assert TEXTS["en"]["done_stop-provision"] in said.text
    assert TEXTS["en"]["done_stop-provision"] not in (await client.get("/my/records")).text
    # The same cookie in another session of the same browser says nothing.
    await client.post("/my/logout", data={"csrf": csrf_of(said.text)})
    await _signed_in(client, app, carrier, clock)
    client.cookies.set("smsreg_flash", flash, path="/my")
    assert TEXTS["en"]["done_stop-provision"] not in (await client.get("/my/records")).text


# -- 7, 8. each step its own; words a person reads -----------------------------------------


async def test_each_step_has_its_own_title_and_heading(client, app, carrier, clock):
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    clock.advance(minutes=1)
    start = await client.get("/my/?lang=ja")
    sent = await _code_page(client, "ja", NUMBER)
    await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": await sent_code(app, carrier, NUMBER)},
    )  # fmt: skip
    records = await client.get("/my/records")
    erase = await client.get("/my/erase")
    await client.post("/my/erase", data={"csrf": csrf_of(erase.text), "confirm": "yes"})
    receipt = await client.get("/my/receipt")
    client.cookies.delete("smsreg_receipt", path="/my")  # else: back to the receipt
    expired = await client.get("/my/records")
    answers = [start, sent, records, erase, receipt, expired]
    titles = [re.search(r"<title>(.*?)</title>", p.text).group(1) for p in answers]
    headings = [re.search(r"<h1>(.*?)</h1>", p.text).group(1) for p in answers]
    assert len(set(titles)) == len(answers) and len(set(headings)) == len(answers), titles
    assert all(title.endswith(" – smsreg") for title in titles)
    assert headings[4] == "消去完了のお知らせ"
    # The switch named in the page's language; each country in it (with its code).
    assert '<nav aria-label="言語">' in start.text
    assert "日本（+81）" in start.text and "韓国（+82）" in start.text
    assert "Korea" not in start.text
    # Times in words a person in Japan reads.
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d（日本時間）", text_of(records.text))
    # The receipt: what there was none of is left out; every count has its unit.
    items = text_of(receipt.text).splitlines()
    for item in items:
        assert "：0件" not in item and not item.startswith("0件")
    assert [i for i in items if re.match(r"\d+件：", i)] and [
        i for i in items if re.search(r"：\d+件$", i)
    ]
    assert "サインイン" not in receipt.text and "受領書" not in receipt.text


async def test_an_unconfirmed_erasure_says_what_to_do(client, app, carrier, clock):
    """It said "Please check: I understand; erase my data", as if erasing had begun."""
    await _signed_in(client, app, carrier, clock, lang="ko")
    confirm = await client.get("/my/erase")
    unchecked = await client.post("/my/erase", data={"csrf": csrf_of(confirm.text)})
    assert _alert(unchecked.text) == TEXTS["ko"]["erase_unchecked"]
    box = _tag(unchecked.text, "confirm")
    assert 'aria-invalid="true"' in box and 'aria-describedby="error"' in box
    records = await client.get("/my/records")
    assert re.search(r"\d{4}년 \d{1,2}월 \d{1,2}일 \d\d:\d\d \(한국 시간\)", text_of(records.text))


async def test_the_stylesheet_is_the_pages_own_and_nothing_is_inline(client):
    page = await client.get("/my/")
    assert '<link rel="stylesheet" href="/my/static/my.css">' in page.text
    assert "style-src 'self'" in page.headers["content-security-policy"]
    assert "<style" not in page.text and " style=" not in page.text and "<script" not in page.text
    css = await client.get("/my/static/my.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert css.headers["x-content-type-options"] == "nosniff"


def test_no_japanese_text_says_sign_in_where_the_button_says_log_out():
    """One word for the session: the button's ログアウト, so its records are ログイン."""
    assert TEXTS["ja"]["logout"] == "ログアウト"
    for words in (TEXTS["ja"], RECEIPT["ja"], PROBLEMS["ja"]):
        assert not [key for key, text in words.items() if "サインイン" in text]


def test_the_minutes_to_wait_are_said_as_english_counts_them():
    """A send limit said "Try again in 56 minute(s)"."""
    request = Request({"type": "http", "query_string": b"lang=en", "headers": []})
    said = [
        problem_words(request, RateLimited("limited", retry_after=seconds, limit="send"))
        for seconds in (30, 60, 61, 3360)
    ]
    assert said == [f"Too many codes were sent. Try again in {n}." for n in
                    ("1 minute", "1 minute", "2 minutes", "56 minutes")]  # fmt: skip
    assert not [text for words in PROBLEMS.values() for text in words.values() if "(s)" in text]


def test_the_note_on_kept_coupon_uses_is_in_plain_sentences():
    """The English note was one 45-word sentence ("..., also by someone who had the number
    before, how often is kept apart, ..."). It says the same: what is kept, of whose uses,
    without whom, why, until when, and that it is never shown."""
    note = TEXTS["en"]["kept_note"].format(days=365)
    sentences = [part for part in re.split(r"[.;] ", note) if part]
    assert max(len(sentence.split()) for sentence in sentences) <= 30, sentences
    for said in ("how often each coupon was used with this number in the past 365 days",
                 "anyone who had the number before you", "does not say who used",
                 "allowed once per number is not allowed again", "365 days after the last use",
                 "never show"):  # fmt: skip
        assert said in note


def test_the_use_of_the_number_for_coupons_is_named_as_its_purpose():
    """「クーポン利用での番号の利用」 said 利用 twice (and Korean 쿠폰 사용에 번호 이용 read
    alike): the label names the purpose as the records do, and its button stops it."""
    for lang in ("ja", "ko"):
        words = TEXTS[lang]
        assert words["usage_now"].startswith(WORDS[lang]["coupon_usage"])
        assert words["stop_usage"].startswith(words["usage_now"])
    assert TEXTS["ja"]["usage_now"].count("利用") == 1
    assert TEXTS["ja"]["stop_usage"] == "クーポン利用の管理への番号の使用を停止する"


def test_every_page_text_is_in_every_language():
    for words in TEXTS.values():
        assert set(words) == set(TEXTS["en"])


async def test_the_pages_say_coupon_uses_may_be_kept_and_show_none_of_them(
    client, app, carrier, clock
):
    """After an erasure the pages said no data was held while the number's coupon uses
    were kept for a year; now they say such uses may be kept, and never show them (they
    may be a former holder's of the number)."""
    sid = await _signed_in(client, app, carrier, clock, lang="ja")
    auth = await make_key(app, ["coupons:write"])
    used = await client.post(
        "/v1/coupons/spring/redemptions", json={"subscriber_id": sid}, headers=auth
    )
    assert used.status_code == 201, used.text
    erase = await client.get("/my/erase")
    erased = await client.post("/my/erase", data={"csrf": csrf_of(erase.text), "confirm": "yes"})
    assert erased.status_code == 303, erased.text
    clock.advance(minutes=1)
    sent = await _code_page(client, "ja", NUMBER)
    nothing = await client.post(
        "/my/session",
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": await sent_code(app, carrier, NUMBER)},
    )  # fmt: skip
    assert nothing.status_code == 303, nothing.text
    said = await client.get("/my/")
    days = app.state.ctx.settings.coupon_limit_memory_days
    assert TEXTS["ja"]["kept_note"].format(days=days) in text_of(said.text)
    assert "spring" not in said.text


@pytest.mark.parametrize(
    ("lang", "purpose", "redeemed", "disclosed"),
    [
        (
            "ja",
            "クーポン利用の管理（開始 ",
            "spring：1回（",
            f"{POLICE}（生命・身体・財産の保護のための緊急時）：電話番号、匿名ID。"
            "依頼の参照番号：ER-2026-7。同じ提供に含まれる他の方：1人",
        ),
        (
            "ko",
            "쿠폰 사용 관리 (시작 ",
            "spring: 1회 (",
            f"{POLICE} (생명·신체·재산 보호를 위한 긴급 상황): 전화번호, 익명 ID. "
            "요청 참조: ER-2026-7. 같은 제공에 포함된 다른 사람: 1명",
        ),
        (
            "en",
            "tracking coupon use (since ",
            "spring: used once (",
            f"{POLICE} (an emergency (life, body or property)): phone number, your anonymous "
            "id; request reference: ER-2026-7; 1 other person in this disclosure",
        ),
    ],
)
async def test_the_records_are_punctuated_and_counted_in_the_pages_language(
    client, app, carrier, clock, lang, purpose, redeemed, disclosed
):
    """The records page joined every line with ASCII ``( ; : ,`` around Japanese, and
    gave counts with no unit ("spring: 1", "...: 1"), as the receipt did not."""
    sid = await _signed_in(client, app, carrier, clock, lang=lang)
    auth = await make_key(app, ["coupons:write"])
    used = await client.post(
        "/v1/coupons/spring/redemptions", json={"subscriber_id": sid}, headers=auth
    )
    assert used.status_code == 201, used.text
    other = await add_subscriber(app, "+819011112222")
    await release(app, [sid, other], legal_basis="emergency_life_body_property",
                  request_reference="ER-2026-7")  # fmt: skip
    shown = text_of((await client.get("/my/records")).text)
    lines = shown.splitlines()
    assert [line for line in lines if line.startswith(purpose)], shown
    assert [line for line in lines if line.startswith(redeemed)], shown
    assert [line for line in lines if line.endswith(disclosed)], shown
    if lang == "ja":  # no ASCII punctuation but a time's colon
        listed = [line for line in lines if "（日本時間）" in line]
        assert listed and not [line for line in listed if re.search(r"[(),;]|: ", line)]


async def test_the_new_numbers_country_is_first_that_of_the_records_number(
    client, app, carrier, clock
):
    """On the Korean page the correction offered Korea first for a Japanese number."""
    await _signed_in(client, app, carrier, clock, lang="ko")
    records = await client.get("/my/records?lang=ko")
    select = records.text.split('id="new-country"')[1].split("</select>")[0]
    assert '<option value="JP" selected>' in select and 'KR" selected' not in select


# -- 9. a code that can do nothing more is not offered again -------------------------------


async def _check(client, sent: httpx.Response, code: str, path: str = "/my/session", headers=None):
    return await client.post(
        path,
        data={"csrf": csrf_of(sent.text), "verification_id": field_of(sent.text, "verification_id"),
              "code": code},
        headers=headers,
    )  # fmt: skip


async def test_a_reload_after_a_wrong_code_uses_up_no_try(client, app, carrier, clock):
    """A wrong code's page was the answer to the POST: a reload sent the code again and
    used up a try, and Back found no page."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    sent = await _code_page(client, "en", NUMBER)
    wrong = _wrong(await sent_code(app, carrier, NUMBER))
    assert (await _check(client, sent, wrong)).headers["location"] == "/my/code"
    said = await client.get("/my/code")
    assert _alert(said.text) == PROBLEMS["en"]["invalid-code"].format(attempts_left=4)
    reloaded = await client.get("/my/code")  # said once; the form itself stays
    assert 'id="error"' not in reloaded.text and 'name="code"' in reloaded.text
    (left,) = rows(app, "SELECT max_attempts - attempts AS left FROM verifications "
                        "WHERE id = :v", v=field_of(sent.text, "verification_id"))  # fmt: skip
    assert left["left"] == 4
    # Said for that code only: a new code's form (the number sent again) says nothing.
    assert (await _check(client, said, wrong)).headers["location"] == "/my/code"
    clock.advance(minutes=1)
    sent_again = await client.post(  # straight from the code form's page: a new code
        "/my/code", data={"csrf": csrf_of(said.text), "phone": NUMBER, "country": "JP"}
    )
    assert sent_again.status_code == 303, sent_again.text
    again = await client.get("/my/code")
    assert 'id="error"' not in again.text
    assert field_of(again.text, "verification_id") != field_of(sent.text, "verification_id")


async def test_the_last_wrong_code_leads_to_the_start_page(client, app, carrier, clock):
    """After the fifth wrong code the page said "Tries left: 0" and offered the form again,
    focused, for a code that could only be refused."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    sent = await _code_page(client, "ja", NUMBER)
    wrong = _wrong(await sent_code(app, carrier, NUMBER))
    for _ in range(4):
        assert (await _check(client, sent, wrong)).status_code == 303
    last = await _check(client, sent, wrong)
    assert last.status_code == 303 and last.headers["location"] == "/my/"
    assert 'smsreg_pending=""' in last.headers["set-cookie"]
    start = await client.get("/my/")
    assert _alert(start.text) == PROBLEMS["ja"]["start_again_exhausted"]
    assert 'action="/my/code"' in start.text and 'name="code"' not in start.text
    assert 'id="error"' not in (await client.get("/my/")).text  # said once
    gone = await client.get("/my/code")  # the language switch, or Back: no dead form
    assert gone.status_code == 303 and gone.headers["location"] == "/my/"


async def test_an_expired_code_leads_to_the_start_page(client, app, carrier, clock):
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    sent = await _code_page(client, "en", NUMBER)
    code = await sent_code(app, carrier, NUMBER)
    clock.advance(minutes=11)
    late = await _check(client, sent, code)
    assert late.status_code == 303 and late.headers["location"] == "/my/"
    assert _alert((await client.get("/my/")).text) == PROBLEMS["en"]["start_again_expired"]
    assert (await client.get("/my/code")).headers["location"] == "/my/"


async def test_a_double_submitted_code_shows_the_records_or_says_it_was_used(
    client, app, carrier, clock
):
    """A double click posts the right code twice, both with the cookies from before the
    sign-in: the second answer said "code used" over the session the first had opened,
    or, when the browser dropped the first answer, left the person at a dead form."""
    _, sent = await _registered_code_page(client, app, carrier, clock, "en")
    before = httpx.Cookies(client.cookies)
    code = await sent_code(app, carrier, NUMBER)
    first = await _check(client, sent, code)
    assert first.headers["location"] == "/my/records"
    signed_in = httpx.Cookies(client.cookies)
    client.cookies = httpx.Cookies(before)
    second = await _check(client, sent, code)
    assert second.status_code == 303 and second.headers["location"] == "/my/"
    after_second = httpx.Cookies(client.cookies)
    # The first answer's cookie arrived: the start page leads to the records, which say
    # nothing of the second.
    client.cookies = httpx.Cookies(after_second)
    for cookie in signed_in.jar:
        if cookie.name == pages.SESSION_COOKIE:
            client.cookies.jar.set_cookie(cookie)
    start = await client.get("/my/")
    assert start.status_code == 303 and start.headers["location"] == "/my/records"
    records = await client.get("/my/records")
    assert records.status_code == 200 and 'id="error"' not in records.text
    # It did not: the start page says the code was used, once.
    client.cookies = after_second
    alone = await client.get("/my/")
    assert _alert(alone.text) == PROBLEMS["en"]["start_again_used"]
    assert 'id="error"' not in (await client.get("/my/")).text


async def test_the_code_field_is_focused_from_the_first_showing(client, app, carrier, clock):
    """Only a refused code's form focused its field: on first showing a keyboard user
    needed four Tabs, and a phone opened no keyboard (nor offered the SMS's code). The
    correction's code form is the same page."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    code = _tag((await _code_page(client, "ja", NUMBER)).text, "code")
    assert "autofocus" in code and "aria-invalid" not in code
    client.cookies.clear()
    await _signed_in(client, app, carrier, clock)
    code = _tag((await _new_numbers_code(client, app, carrier, NEW)).text, "code")
    assert "autofocus" in code and "aria-invalid" not in code


async def test_a_code_form_says_until_when_and_is_not_offered_once_expired(
    client, app, carrier, clock
):
    """The form was offered after its code expired (a reload, a tab come back to): the
    person learnt it only after typing the code. Nor did any page say how long it lived."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    sent = await _code_page(client, "en", NUMBER)
    until = re.search(r'<p id="valid-until">It can be used until (.*?)\.</p>', sent.text)
    assert until and until.group(1).endswith("(UTC+9)"), sent.text
    clock.advance(minutes=10)
    gone = await client.get("/my/code")
    assert gone.status_code == 303 and gone.headers["location"] == "/my/"
    assert _alert((await client.get("/my/")).text) == PROBLEMS["en"]["start_again_expired"]
    assert (await client.get("/my/code")).headers["location"] == "/my/"  # forgotten


async def test_the_last_wrong_code_for_a_new_number_goes_back_to_the_records(
    client, app, carrier, clock
):
    await _signed_in(client, app, carrier, clock)
    asked = await _new_numbers_code(client, app, carrier, NEW)
    wrong = _wrong(await sent_code(app, carrier, NEW))
    for _ in range(4):
        again = await _check(client, asked, wrong, "/my/correction")
        assert again.headers["location"] == "/my/correction/code"
        said = await client.get("/my/correction/code")
        assert 'id="error"' in said.text
    last = await _check(client, asked, wrong, "/my/correction")
    assert last.status_code == 303 and last.headers["location"] == "/my/records"
    assert TEXTS["en"]["correction_code_gone"] in (await client.get("/my/records")).text


async def test_a_missing_number_is_refused_beside_its_field(client):
    """A form without the field (a browser that ignores `required`) got a page with no
    form at all, where an empty one gets the form back with the field marked."""
    page = await client.get("/my/?lang=en")
    refused = await client.post("/my/code", data={"csrf": csrf_of(page.text), "country": "JP"})
    assert refused.status_code == 422
    assert _alert(refused.text) == PROBLEMS["en"]["field_phone"]
    assert 'aria-invalid="true"' in _tag(refused.text, "phone")


# -- 10. the records say what is in effect, and offer only what changes it -----------------


def _now_said(html: str) -> dict[str, str]:
    return dict(re.findall(r'<dd id="(messages-now|usage-now)">(.*?)</dd>', html))


async def test_the_records_say_what_is_on_and_offer_only_a_stop_that_changes_something(
    client, app, carrier, clock
):
    """Both stops were offered whatever the state ("Nothing to change." after the second
    click), and whether coupon messages were on was never said."""
    auth = await make_key(app, ["verifications:write", "consents:write"])
    sid = await verified(client, app, carrier, auth, NUMBER, purpose="coupon_delivery")
    await opted_in(client, auth, sid)
    await _signed_in(client, app, carrier, clock)  # verified for coupon use as well
    words = TEXTS["en"]
    records = await client.get("/my/records")
    assert _now_said(records.text) == {
        "messages-now": words["messages_on"], "usage-now": words["usage_on"]
    }  # fmt: skip
    assert 'id="withdraw-delivery"' in records.text and 'id="stop-usage"' in records.text
    for action in ("withdraw-delivery", "stop-usage"):
        page = await client.get("/my/records")
        done = await client.post(f"/my/actions/{action}", data={"csrf": csrf_of(page.text)})
        assert done.status_code == 303
    records = await client.get("/my/records")
    assert _now_said(records.text) == {
        "messages-now": words["messages_off"], "usage-now": words["usage_off"]
    }  # fmt: skip
    assert 'id="withdraw-delivery"' not in records.text and 'id="stop-usage"' not in records.text
    assert 'id="stop-provision"' in records.text


async def test_back_from_the_receipt_shows_the_receipt_not_a_sign_in_prompt(
    client, app, carrier, clock
):
    """Back from the receipt to the erasure's page said "Please sign in again" to someone
    with nothing left to sign in to."""
    await _signed_in(client, app, carrier, clock)
    confirm = await client.get("/my/erase")
    # What is kept, for as long as this deployment keeps it (it said "a year" whatever).
    days = app.state.ctx.settings.coupon_limit_memory_days
    assert f"each coupon (for {days} days after the last use" in confirm.text
    await client.post("/my/erase", data={"csrf": csrf_of(confirm.text), "confirm": "yes"})
    for page in ("/my/erase", "/my/records"):
        back = await client.get(page)
        assert back.status_code == 303 and back.headers["location"] == "/my/receipt", page
    # The erasure's form sent again, once done (a second tap on a slow phone): its
    # receipt, not "the form has expired", which read as a failed erasure.
    again = await client.post("/my/erase", data={"csrf": csrf_of(confirm.text), "confirm": "yes"})
    assert again.status_code == 303 and again.headers["location"] == "/my/receipt"
    clock.advance(minutes=16)  # the receipt is no longer shown: the start page
    assert (await client.get("/my/receipt")).headers["location"] == "/my/"


async def test_signing_out_is_said_once_on_the_start_page(client, app, carrier, clock):
    """After signing out the start page appeared with no word that it had worked."""
    await _signed_in(client, app, carrier, clock)
    records = await client.get("/my/records")
    out = await client.post("/my/logout", data={"csrf": csrf_of(records.text)})
    assert out.status_code == 303 and out.headers["location"] == "/my/"
    start = await client.get("/my/")
    assert TEXTS["en"]["signed_out"] in start.text and 'role="status"' in start.text
    assert TEXTS["en"]["signed_out"] not in (await client.get("/my/")).text  # said once


async def test_a_number_of_the_other_country_is_named_as_such(client):
    """A Korean number with Japan chosen got only "check the number", though the service
    knew it was valid in Korea."""
    page = await client.get("/my/?lang=ja")
    refused = await client.post(
        "/my/code", data={"csrf": csrf_of(page.text), "phone": "010-2345-6789", "country": "JP"}
    )
    assert refused.status_code == 422
    assert _alert(refused.text) == PROBLEMS["ja"]["field_phone_in_KR"]
    assert 'aria-invalid="true"' in _tag(refused.text, "phone")


# -- what the outside tester found on a phone ------------------------------------------------


@pytest.mark.parametrize(
    "settings_overrides", [{"privacy_contact": "テスト株式会社 個人情報窓口 privacy@example.jp"}]
)
async def test_the_footer_and_the_code_form_join_japanese_with_its_own_colon(
    client, app, carrier, clock
):
    """The footer said 「…ご請求: テスト株式会社」 (an ASCII colon), and the code form
    「コードを送信しました： +81…」 (a full-width colon, then a space: a wide gap)."""
    _, sent = await _registered_code_page(client, app, carrier, clock, "ja")
    assert "<p>お問い合わせ・電話や書面でのご請求：テスト株式会社 個人情報窓口" in sent.text
    assert '<p>コードを送信しました：<span id="masked">+81 90-****-1357</span></p>' in sent.text
    english = await client.get("/my/code?lang=en")
    assert '<p>Code sent to: <span id="masked">+81 90-****-1357</span></p>' in english.text


async def test_the_right_code_sent_again_once_signed_in_leads_to_the_records(
    client, app, carrier, clock
):
    """A double tap whose second submission carried the first answer's session cookie
    was refused as "The form has expired", though the session was open."""
    _, sent = await _registered_code_page(client, app, carrier, clock, "ja")
    code = await sent_code(app, carrier, NUMBER)
    first = await _check(client, sent, code)
    assert first.status_code == 303 and pages.SESSION_COOKIE in client.cookies
    second = await _check(client, sent, code)
    assert second.status_code == 303 and second.headers["location"] == "/my/records"
    records = await client.get("/my/records")
    assert records.status_code == 200 and TEXTS["ja"]["csrf"] not in records.text
    assert len(rows(app, "SELECT id FROM subject_sessions")) == 1  # nothing opened again
    # A page of another site sending it gets the refusal, never the records.
    third = await _check(client, sent, code, headers={"Sec-Fetch-Site": "same-site"})
    assert third.status_code == 403 and TEXTS["ja"]["csrf"] in third.text


async def test_signing_out_twice_says_signed_out(client, app, carrier, clock):
    """A double tap on Sign out ended on "The form has expired" (its token named the
    session the first tap had ended): the person could not tell whether they were out."""
    await _signed_in(client, app, carrier, clock, lang="ja")
    records = await client.get("/my/records")
    first = await client.post("/my/logout", data={"csrf": csrf_of(records.text)})
    assert first.status_code == 303 and pages.SESSION_COOKIE not in client.cookies
    second = await client.post("/my/logout", data={"csrf": csrf_of(records.text)})
    assert second.status_code == 303 and second.headers["location"] == "/my/"
    start = await client.get("/my/")
    assert TEXTS["ja"]["signed_out"] in start.text and 'role="status"' in start.text
    # Signed in again, an old tab's sign-out form is still refused: it is not this session's.
    await _signed_in(client, app, carrier, clock, lang="ja")
    stale = await client.post("/my/logout", data={"csrf": csrf_of(records.text)})
    assert stale.status_code == 403
    assert (await client.get("/my/records")).status_code == 200


@pytest.mark.parametrize("typed", ["1", "12", "123", "１２３"])
async def test_a_code_of_too_few_digits_is_said_to_be_short_and_not_counted(
    client, app, carrier, clock, typed
):
    """1 to 3 digits got "digits only" (and no word that the try was not counted), though
    the person had typed digits only."""
    _, sent = await _registered_code_page(client, app, carrier, clock, "en")
    code = await sent_code(app, carrier, NUMBER)
    short = await _check(client, sent, typed)
    assert short.status_code == 422
    assert _alert(short.text) == PROBLEMS["en"]["code_length"].format(digits=len(code))
    verification = field_of(sent.text, "verification_id")
    assert rows(app, "SELECT attempts FROM verifications WHERE id = :i", i=verification) == [
        {"attempts": 0}
    ]
    assert (await _check(client, sent, code)).headers["location"] == "/my/records"


async def test_the_records_can_be_taken_away_as_a_file(client, app, carrier, clock):
    """The records page was the only way to see the data: no file to keep, though the
    API's /v1/subject/data needs a token the pages never give the person."""
    sid = await _signed_in(client, app, carrier, clock)
    records = await client.get("/my/records")
    assert 'href="/my/records.json" id="download" download' in records.text
    before = rows(app, "SELECT COUNT(*) AS n FROM audit_events")[0]["n"]
    answer = await client.get("/my/records.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-disposition"].startswith('attachment; filename="my-records-')
    assert answer.headers["cache-control"] == "no-store"
    document = answer.json()
    assert document["data"]["subject_id"] == sid
    assert document["data"]["phone_masked"] == "+81 90-****-1357"
    assert [p["purpose"] for p in document["data"]["purposes"]] == ["coupon_usage"]
    assert document["disclosures"] == []
    assert NUMBER not in answer.text and NUMBER[3:] not in answer.text
    # Read as the API's two reads are: each recorded.
    assert rows(app, "SELECT COUNT(*) AS n FROM audit_events")[0]["n"] == before + 2
    client.cookies.clear()
    gone = await client.get("/my/records.json")
    assert gone.status_code == 401 and gone.headers["content-type"].startswith("text/html")


async def test_over_https_the_session_is_a_cookie_no_other_host_can_plant(
    client, app, carrier, clock
):
    """Another host of the site (the coupon site can set a cookie for the whole domain)
    planted its own session in a visitor's browser: the visitor's pages showed its
    records and their forms passed, so the visitor could move them to their own number.
    Over https the session's cookie is __Host- prefixed, which only this host can set."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as tls:
        await _signed_in(tls, app, carrier, clock)
        (cookie,) = [c for c in tls.cookies.jar if c.name.endswith(pages.SESSION_COOKIE)]
        assert cookie.name == pages.HOST_SESSION_COOKIE == "__Host-smsreg_subject"
        assert cookie.secure and cookie.path == "/" and not cookie.domain_specified
        records = await tls.get("/my/records")
        assert records.status_code == 200
        planted = {pages.SESSION_COOKIE: cookie.value}
        async with httpx.AsyncClient(
            transport=transport, base_url="https://testserver", cookies=planted
        ) as visitor:
            assert (await visitor.get("/my/")).status_code == 200  # not led to the records
            assert (await visitor.get("/my/records")).status_code == 401
        out = await tls.post("/my/logout", data={"csrf": csrf_of(records.text)})
        assert out.status_code == 303
        assert not [c for c in tls.cookies.jar if c.name == pages.HOST_SESSION_COOKIE]
        assert (await tls.get("/my/records")).status_code == 401


@pytest.mark.parametrize("between", [" ", "-", "\u3000", "\uff0d", "\u30fc"])
async def test_a_code_typed_in_groups_is_taken(client, app, carrier, clock, between):
    """A code typed as people write numbers (123 456, 123-456, or a Japanese input
    method's full-width space, dash or long-vowel mark) was refused as "digits only"."""
    _, sent = await _registered_code_page(client, app, carrier, clock, "en")
    code = await sent_code(app, carrier, NUMBER)
    grouped = f" {code[:3]}{between}{code[3:]} "
    assert (await _check(client, sent, grouped)).headers["location"] == "/my/records"


async def test_a_code_with_a_letter_inside_is_still_not_a_code(client, app, carrier, clock):
    _, sent = await _registered_code_page(client, app, carrier, clock, "en")
    code = await sent_code(app, carrier, NUMBER)
    answer = await _check(client, sent, f"{code[:3]}a{code[3:]}")
    assert answer.status_code == 422
    assert _alert(answer.text) == PROBLEMS["en"]["field_code"]


async def test_an_older_tabs_code_form_says_what_works_once_a_newer_code_was_sent(
    client, app, carrier, clock
):
    """Tab 1's form, after tab 2 sent a newer code, said "use the newest SMS": typed into
    that form, the newest code could never work."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    clock.advance(minutes=1)
    older = await _code_page(client, "en", NUMBER)
    clock.advance(minutes=1)
    await _code_page(client, "en", NUMBER)  # another tab of the same browser
    newest = await sent_code(app, carrier, NUMBER)
    answer = await _check(client, older, newest)
    assert answer.status_code == 410
    assert _alert(answer.text) == PROBLEMS["en"]["verification-superseded"]
    assert "<form" not in answer.text.split("</header>")[1]  # no code typed here can work
    assert 'href="/my/code" id="newest"' in answer.text and not _switch(answer.text)
    # The newest page takes the newest code.
    newest_form = await client.get("/my/code")
    assert (await _check(client, newest_form, newest)).headers["location"] == "/my/records"


async def test_a_browser_left_on_the_older_of_two_sends_is_shown_the_newest_code(
    client, app, carrier, clock
):
    """The number's form sent twice at once: the browser can keep the older answer's
    cookie, and its code page said "code sent" for a code never sent (the newer start
    superseded it), refused the code that came as out of date, and a reload changed
    nothing: only a new SMS got out of it. It now shows the newest code's form."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, NUMBER)
    clock.advance(minutes=1)
    older = field_of((await _code_page(client, "en", NUMBER)).text, "verification_id")
    newer = field_of((await _code_page(client, "en", NUMBER)).text, "verification_id")
    assert older != newer
    kept = [c for c in client.cookies.jar if c.name == pages.PENDING_COOKIE]
    for cookie in kept:
        client.cookies.delete(cookie.name, domain=cookie.domain, path=cookie.path)
    client.cookies.set(pages.PENDING_COOKIE, older, domain=kept[0].domain, path=kept[0].path)
    page = await client.get("/my/code")  # the older answer's cookie, kept by the browser
    assert page.status_code == 200 and field_of(page.text, "verification_id") == newer
    assert [c.value for c in client.cookies.jar if c.name == pages.PENDING_COOKIE] == [newer]
    code = await sent_code(app, carrier, NUMBER)
    assert (await _check(client, page, code)).headers["location"] == "/my/records"


def test_a_wait_of_hours_is_said_in_hours():
    """A day's send limit said "Try again in 1440 minutes" (1440分後)."""
    said = {
        lang: [
            problem_words(
                Request({"type": "http", "query_string": f"lang={lang}".encode(), "headers": []}),
                RateLimited("limited", retry_after=seconds, limit="send"),
            )
            for seconds in (7199, 7200, 7201, 86400)
        ]
        for lang in ("en", "ja", "ko")
    }
    assert said["en"] == [f"Too many codes were sent. Try again in {n}." for n in
                          ("120 minutes", "2 hours", "3 hours", "24 hours")]  # fmt: skip
    assert said["ja"][3] == "コードの送信が多すぎます。24時間後にもう一度お試しください。"
    assert said["ko"][3] == "인증번호 발송이 너무 많습니다. 24시간 후에 다시 시도하세요."


async def test_the_records_say_when_only_the_newest_changes_are_shown(
    client, app, carrier, clock, monkeypatch
):
    """The page showed the newest 200 consent changes of 206 and said nothing of the
    rest (the first opt-in among them)."""
    auth = await make_key(app, ["verifications:write", "consents:write"])
    sid = await verified(client, app, carrier, auth, NUMBER, "coupon_delivery")
    for action in ("opt_in", "opt_out", "opt_in"):
        clock.advance(minutes=1)
        changed = await consent(client, auth, sid, action)
        assert changed.status_code == 201, changed.text
    monkeypatch.setattr(service, "HISTORY_LIMIT", 2)
    clock.advance(minutes=1)
    sent = await _code_page(client, "ja", NUMBER)
    await _check(client, sent, await sent_code(app, carrier, NUMBER))
    records = await client.get("/my/records")
    assert text_of(records.text).count("クーポン配信：") == 2
    more = re.search(r'<dd id="consents-more">(.*?)</dd>', records.text, re.S)
    assert more and text_of(more.group(1)) == TEXTS["ja"]["more"].format(shown=2, total=3)
    assert 'id="deliveries-more"' not in records.text  # none held: nothing left out
    for words in TEXTS.values():
        assert "{shown}" in words["more"] and "{total}" in words["more"]
