"""Subject requests in the console: recorded and closed through the API's own services,
under the API's roles (operators and privacy officers handle them, auditors read the
register, admins see none of it); every form refused without its CSRF token or by a
role without the right, and every change audited as the API's is. Closing a request as
done carries it out exactly as POST /v1/subject-requests/{id}/close does; an erasure
only with its confirmation box ticked, and its answer shows the receipt."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any
from urllib.parse import urlencode

import pytest

from app.console import i18n
from app.ledger import provision
from app.my.texts import RECEIPT
from app.staff.roles import Role
from app.subject.erasure import KEPT_WHY
from app.subject.schemas import Channel, RequestKind
from tests.conftest import call
from tests.console.helpers import HTML, csrf_of, get, post, signed_in
from tests.staff.helpers import CHEAP_HASHING, rows, staff_auth, verified

E164 = "+819012345678"
OTHER = "+819087654321"
REASON = "Caller asked by phone; identity checked by a call back"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}


def requests_of(app) -> list[dict[str, Any]]:
    return rows(app, "SELECT id, subscriber_id, kind, status, recorded_by, done_by, note "
                     "FROM subject_requests ORDER BY received_at, id")  # fmt: skip


def audit(app, *tags: str) -> list[dict[str, Any]]:
    found = rows(app, "SELECT tag, actor, subject FROM audit_events ORDER BY id")
    return [event for event in found if not tags or event["tag"] in tags]


def actor(app, username: str) -> str:
    (found,) = rows(app, "SELECT id FROM staff_accounts WHERE username = :u", u=username)
    return f"staff:{found['id']}"


def record_form(sid: str | None, kind: str = "stop_provision", **changes: str) -> dict[str, Any]:
    form = {"subject_id": sid or "", "kind": kind, "channel": "phone", "reason": REASON}
    form.update(changes)
    return form


async def record(browser, sid: str | None, kind: str = "stop_provision") -> str:
    made = await post(
        browser, "/console/subject-requests", record_form(sid, kind),
        csrf_from="/console/subject-requests/new",
    )  # fmt: skip
    assert made.status_code == 303, made.text
    return str(made.headers["location"]).rsplit("/", 1)[1]


# -- recording ----------------------------------------------------------------------------


async def test_a_request_recorded_twice_by_one_form_is_refused_unless_meant(
    client, app, carrier, auth
):
    """Sent from two tabs (or again after Back), the form recorded two open requests for
    one call, each to be handled and answered. Sent again it is refused, shown as typed,
    naming the request recorded; sent once more from there, it records the second."""
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    page = await get(operator, "/console/subject-requests/new")
    made = re.search(r'name="made" value="(\d+)"', page.text).group(1)
    form = {**record_form(sid, "erase"), "csrf": csrf_of(page), "made": made}
    first = await post(operator, "/console/subject-requests", form)
    assert first.status_code == 303, first.text
    recorded = first.headers["location"].rsplit("/", 1)[1]
    again = await post(operator, "/console/subject-requests", form)
    assert again.status_code == 409, again.text
    assert f"Subject request {recorded} (erase) was recorded by you at" in again.text
    count = "SELECT count(*) AS n FROM subject_requests"
    assert rows(app, count) == [{"n": 1}]
    # Another operator's form is not refused for it.
    other = await signed_in(app, "operator", "jiro")
    assert (await record(other, sid, "access")).startswith("sjr_")
    meant = {**form, "made": re.search(r'name="made" value="(\d+)"', again.text).group(1)}
    assert (await post(operator, "/console/subject-requests", meant)).status_code == 303
    assert rows(app, count) == [{"n": 3}]


async def test_an_operator_records_a_request_for_a_subscriber_audited_as_the_api(
    client, app, carrier, auth
):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    form = await get(operator, f"/console/subject-requests/new?subject_id={sid}")
    assert form.status_code == 200 and f'value="{sid}"' in form.text
    made = await post(
        operator, "/console/subject-requests", {**record_form(sid), "csrf": csrf_of(form)}
    )
    assert made.status_code == 303, made.text
    request_id = made.headers["location"].rsplit("/", 1)[1]
    (stored,) = requests_of(app)
    assert stored["id"] == request_id and stored["status"] == "open"
    assert stored["subscriber_id"] == sid and stored["recorded_by"] == actor(app, "taro")
    assert audit(app, "subject:request:recorded") == [
        {"tag": "subject:request:recorded", "actor": actor(app, "taro"), "subject": request_id}
    ]
    logged = rows(app, "SELECT action, subscriber_id FROM access_log ORDER BY id")
    assert logged[-1] == {"action": "subject_request", "subscriber_id": sid}
    page = await get(operator, f"/console/subject-requests/{request_id}")
    assert page.status_code == 200 and REASON in page.text
    assert 'id="close"' in page.text and "Stop provision to third parties" in page.text
    assert E164 not in page.text


async def test_recording_needs_the_csrf_token_and_the_role(client, app, carrier, auth):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    no_token = await post(operator, "/console/subject-requests", record_form(sid))
    assert no_token.status_code == 400 and "security token" in no_token.text
    wrong = await post(
        operator, "/console/subject-requests", {**record_form(sid), "csrf": "0" * 64}
    )
    assert wrong.status_code == 400
    # Auditors read the register but record nothing, as on the API; admins see none of it.
    for role, username in (("auditor", "kenji"), ("admin", "root")):
        other = await signed_in(app, role, username)
        refused = await post(
            other, "/console/subject-requests", record_form(sid), csrf_from="/console/account"
        )
        assert refused.status_code == 403, (role, refused.text)
        assert (await get(other, "/console/subject-requests/new")).status_code == 403
    assert requests_of(app) == []
    assert audit(app, "subject:request:recorded") == []


async def test_a_reason_with_a_number_or_an_unknown_subscriber_is_refused(
    client, app, carrier, auth
):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    numbered = await post(
        operator, "/console/subject-requests",
        record_form(sid, reason="Caller from 090-1234-5678 asked to stop"),
        csrf_from="/console/subject-requests/new",
    )  # fmt: skip
    assert numbered.status_code == 422 and "reason" in numbered.text
    unknown = await post(
        operator, "/console/subject-requests", record_form("sub_nobody"),
        csrf_from="/console/subject-requests/new",
    )  # fmt: skip
    assert unknown.status_code == 404
    bad_kind = await post(
        operator, "/console/subject-requests", record_form(sid, kind="everything"),
        csrf_from="/console/subject-requests/new",
    )  # fmt: skip
    assert bad_kind.status_code == 422 and "kind" in bad_kind.text
    assert requests_of(app) == []


# -- the register ------------------------------------------------------------------------


async def test_the_register_lists_open_ones_first_and_says_which_are_overdue(
    client, app, carrier, auth, clock
):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    first = await record(operator, sid, "access")
    closed = await record(operator, sid, "disclosure_records")
    done = await post(
        operator, f"/console/subject-requests/{closed}/close",
        {"outcome": "done", "note": "Records sent by letter"},
        csrf_from=f"/console/subject-requests/{closed}",
    )  # fmt: skip
    assert done.status_code == 303, done.text
    clock.advance(days=6)  # staff sessions end long before: sign in again
    operator = await signed_in(app, "operator", "jiro")
    later = await record(operator, None, "erase")
    clock.advance(days=5)  # the first is overdue; the last due in five days
    auditor = await signed_in(app, "auditor", "kenji")
    page = await get(auditor, "/console/subject-requests?status=all")
    assert page.status_code == 200, page.text
    table = page.text.split('id="requests"')[1].split("</table>")[0]
    assert table.index(first) < table.index(later) < table.index(closed)
    row = table.split(f'id="row-{first}"')[1].split("</tr>")[0]
    assert "⚠ Overdue" in row  # in words, not in colour alone
    assert "Overdue" not in table.split(f'id="row-{later}"')[1].split("</tr>")[0]
    queue = await get(auditor, "/console/subject-requests")  # the open queue by default
    assert first in queue.text and later in queue.text and closed not in queue.text
    # Auditors read, never handle: no forms, and the detail has no close form.
    assert "/console/subject-requests/new" not in queue.text
    detail = await get(auditor, f"/console/subject-requests/{first}")
    assert detail.status_code == 200 and 'id="close"' not in detail.text
    assert "⚠ Overdue" in detail.text.split('id="due"')[1].split("</dd>")[0]
    mine = await get(auditor, f"/console/subject-requests?status=all&subject_id={sid}")
    assert first in mine.text and later not in mine.text
    bad = await get(auditor, "/console/subject-requests?status=lost")
    assert bad.status_code == 422
    admin = await signed_in(app, "admin", "root")
    assert (await get(admin, "/console/subject-requests")).status_code == 403
    assert (await get(admin, f"/console/subject-requests/{first}")).status_code == 403
    assert (await get(auditor, "/console/subject-requests/sjr_nothing")).status_code == 404


async def test_the_dashboard_links_each_open_request_with_its_subscriber(
    client, app, carrier, auth
):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    request_id = await record(operator, sid)
    officer = await signed_in(app, "privacy_officer", "hanako")
    section = (await get(officer, "/console/")).text.split('id="subject-requests"')[1]
    section = section.split("</section>")[0]
    assert f'href="/console/subject-requests/{request_id}"' in section and sid in section


# -- closing -----------------------------------------------------------------------------


async def test_closing_a_stop_as_done_carries_it_out_and_is_audited(client, app, carrier, auth):
    sid = await verified(client, app, carrier, auth, E164)
    officer = await signed_in(app, "privacy_officer", "hanako")
    request_id = await record(officer, sid, "stop_provision")
    path = f"/console/subject-requests/{request_id}"
    page = await get(officer, path)
    form = {"outcome": "done", "note": "Stopped as asked on the phone"}
    no_token = await post(officer, path + "/close", form)
    assert no_token.status_code == 400
    for role, username in (("auditor", "kenji"), ("admin", "root")):
        other = await signed_in(app, role, username)
        refused = await post(other, path + "/close", form, csrf_from="/console/account")
        assert refused.status_code == 403
    assert requests_of(app)[0]["status"] == "open"
    assert audit(app, "subject:provision:stopped", "subject:request:closed") == []
    closed = await post(officer, path + "/close", {**form, "csrf": csrf_of(page)})
    assert closed.status_code == 303 and closed.headers["location"] == path
    (stored,) = requests_of(app)
    assert stored["status"] == "done" and stored["done_by"] == actor(app, "hanako")
    who = actor(app, "hanako")
    assert audit(app, "subject:provision:stopped", "subject:request:closed") == [
        {"tag": "subject:provision:stopped", "actor": who, "subject": sid},
        {"tag": "subject:request:closed", "actor": who, "subject": request_id},
    ]
    subscriber = await get(officer, f"/console/subscribers/{sid}")
    assert "stopped by the subject since" in subscriber.text.split('id="provision"')[1]
    again = await post(officer, path + "/close", {**form, "csrf": csrf_of(page)})
    assert again.status_code == 409


async def test_a_refusal_carries_nothing_out(client, app, carrier, auth):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    request_id = await record(operator, sid, "erase")
    path = f"/console/subject-requests/{request_id}"
    short = await post(
        operator, path + "/close", {"outcome": "refused", "note": "no"}, csrf_from=path
    )
    assert short.status_code == 422 and "note" in short.text
    refused = await post(
        operator, path + "/close",
        {"outcome": "refused", "note": "The caller could not be identified"}, csrf_from=path,
    )  # fmt: skip
    assert refused.status_code == 303
    assert requests_of(app)[0]["status"] == "refused"
    assert rows(app, "SELECT id FROM subscribers") == [{"id": sid}]
    assert "Refused" in (await get(operator, path)).text


async def test_a_request_naming_no_subscriber_cannot_be_carried_out(client, app):
    operator = await signed_in(app, "operator", "taro")
    request_id = await record(operator, None, "withdraw_delivery")
    path = f"/console/subject-requests/{request_id}"
    page = await get(operator, path)
    assert "names no subscriber" in page.text
    done = await post(
        operator, path + "/close", {"outcome": "done", "note": "Withdrawn as asked"},
        csrf_from=path,
    )  # fmt: skip
    assert done.status_code == 422 and "outcome" in done.text
    assert requests_of(app)[0]["status"] == "open"


async def test_an_erasure_needs_its_confirmation_and_shows_the_receipt(client, app, carrier, auth):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    request_id = await record(operator, sid, "erase")
    path = f"/console/subject-requests/{request_id}"
    detail = await get(operator, path)
    # The detail page leads to the erasure's own page; it has no button that erases.
    assert f'href="{path}/erase"' in detail.text and 'value="done"' not in detail.text
    # The way to the erasure comes before the note, which is for refusing: a note typed
    # above the link was lost on the way to the erasure's page.
    assert detail.text.index('id="to-erase"') < detail.text.index('name="note"')
    step = await get(operator, path + "/erase")
    assert step.status_code == 200 and 'name="confirm" value="yes" required' in step.text
    form = {"outcome": "done", "note": "Erased after the call back", "csrf": csrf_of(step)}
    unconfirmed = await post(operator, path + "/close", form)
    assert unconfirmed.status_code == 422 and "confirm" in unconfirmed.text
    assert rows(app, "SELECT id FROM subscribers") == [{"id": sid}]
    assert requests_of(app)[0]["status"] == "open"
    auditor = await signed_in(app, "auditor", "kenji")
    assert (await get(auditor, path + "/erase")).status_code == 403
    done = await post(operator, path + "/close", {**form, "confirm": "yes"})
    # To the request's page, which a reload shows again (an answer to the form would post
    # the erasure again).
    assert done.status_code == 303 and done.headers["location"] == path, done.text
    erased = await get(operator, path)
    assert erased.status_code == 200, erased.text
    assert erased.headers["cache-control"] == "no-store"
    receipt = erased.text.split('id="receipt"')[1].split("</section>")[0]
    assert re.search(r"<code>subscribers</code></td><td>1<", receipt)
    # What there was none of is not listed (as /my/ words a receipt).
    assert "</code></td><td>0<" not in receipt
    assert E164 not in erased.text and "5678" not in receipt
    assert rows(app, "SELECT id FROM subscribers") == []
    who = actor(app, "taro")
    assert [e["actor"] for e in audit(app, "subject:erased", "subject:request:closed")] == [
        who,
        who,
    ]
    # The register keeps the receipt with the request, for the person who asks for it.
    kept = await get(auditor, path)
    assert 'id="receipt"' in kept.text
    # In the page's language, as /my/ words it for the person: the Japanese console's was
    # English, and named the erased rows by their tables only.
    japanese = await auditor.get(path, headers={**HTML, "Accept-Language": "ja"})
    assert RECEIPT["ja"]["why_subject_requests"] in japanese.text
    assert RECEIPT["ja"]["subscribers"] in japanese.text
    assert KEPT_WHY["subject_requests"] not in japanese.text
    # What there was none of (no disclosure named the person) is not listed.
    assert RECEIPT["ja"]["why_ledger_entry_subjects"] not in japanese.text
    assert re.search(r": \d{4}-\d\d-\d\d \d\d:\d\d UTC</p>", kept.text), "the console's time"
    # Closed, the erasure's page leads back to the request.
    assert (await get(operator, path + "/erase")).status_code == 303


def _tags(events: list[dict[str, Any]]) -> Counter[tuple[str, bool]]:
    """What was audited, and whether it named the subscriber (ids differ per case)."""
    return Counter((e["tag"], e["subject"] is not None and e["subject"].startswith("sub_"))
                   for e in events)  # fmt: skip


@pytest.mark.parametrize(
    "kind", [kind.value for kind in RequestKind if kind is not RequestKind.ERASE]
)
async def test_closing_as_done_does_what_the_api_does(client, app, carrier, auth, kind):
    """Each kind closed as done from the console writes the same audit events and access
    log entries as the same request closed through POST /v1/subject-requests/{id}/close."""
    by_api = await verified(client, app, carrier, auth, E164)
    by_console = await verified(client, app, carrier, auth, OTHER)
    if kind == "resume_provision":  # something for the resume to lift, on both
        for sid in (by_api, by_console):
            await call(app, provision.stop_provision, subscriber_id=sid, source="sms")
    api = await staff_auth(app, client, Role.OPERATOR, username="api-operator")
    body = {"subject_id": by_api, "kind": kind, "channel": "letter", "reason": REASON}
    made = await client.post("/v1/subject-requests", json=body, headers=api)
    assert made.status_code == 201, made.text
    before = len(audit(app))
    logged = len(rows(app, "SELECT id FROM access_log"))
    done = {"outcome": "done", "note": "Carried out as the letter asked"}
    closed = await client.post(
        f"/v1/subject-requests/{made.json()['id']}/close", json=done, headers=api
    )
    assert closed.status_code == 200, closed.text
    through_api = audit(app)[before:]
    api_access = [r["action"] for r in rows(app, "SELECT action FROM access_log ORDER BY id")]
    api_access = api_access[logged:]

    operator = await signed_in(app, "operator", "taro")
    request_id = await record(operator, by_console, kind)
    before = len(audit(app))
    logged = len(rows(app, "SELECT id FROM access_log"))
    path = f"/console/subject-requests/{request_id}"
    answer = await post(operator, path + "/close", done, csrf_from=path)
    assert answer.status_code == 303, answer.text
    through_console = audit(app)[before:]
    console_access = [r["action"] for r in rows(app, "SELECT action FROM access_log ORDER BY id")]
    assert _tags(through_console) == _tags(through_api)
    assert console_access[logged:] == api_access
    assert {e["actor"] for e in through_console} <= {actor(app, "taro"), f"subject:{by_console}"}
    if kind in ("stop_usage", "stop_provision", "resume_provision"):
        assert len(through_console) >= 2  # the act itself, and the closing


# -- provision from the subscriber's page --------------------------------------------------


async def test_stop_and_resume_of_provision_on_the_subscribers_page(client, app, carrier, auth):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    path = f"/console/subscribers/{sid}"
    page = await get(operator, path)
    assert 'id="provision-change"' in page.text and 'value="stop"' in page.text
    target = path + "/third-party-provision"
    assert (await post(operator, target, {"action": "stop", "source": "phone"})).status_code == 400
    bad = await post(
        operator, target, {"action": "stop", "source": "by phone!", "csrf": csrf_of(page)}
    )
    assert bad.status_code == 422 and "source" in bad.text
    stopped = await post(
        operator, target, {"action": "stop", "source": "phone", "csrf": csrf_of(page)}
    )
    assert stopped.status_code == 303
    page = await get(operator, path)
    assert "stopped by the subject since" in page.text.split('id="provision-state"')[1]
    assert 'value="resume"' in page.text.split('id="provision-change"')[1].split("</form>")[0]
    resumed = await post(
        operator, target, {"action": "resume", "source": "letter", "csrf": csrf_of(page)}
    )
    assert resumed.status_code == 303
    who = actor(app, "taro")
    assert audit(app, "subject:provision:stopped", "subject:provision:resumed") == [
        {"tag": "subject:provision:stopped", "actor": who, "subject": sid},
        {"tag": "subject:provision:resumed", "actor": who, "subject": sid},
    ]
    changes = rows(app, "SELECT reason FROM access_log WHERE action = 'provision_change'")
    assert [c["reason"] for c in changes] == [
        "stop third-party provision (source: phone)",
        "resume third-party provision (source: letter)",
    ]
    for role, username in (("auditor", "kenji"), ("admin", "root")):
        other = await signed_in(app, role, username)
        refused = await post(
            other, target, {"action": "stop", "source": "phone"}, csrf_from="/console/account"
        )
        assert refused.status_code == 403
    assert len(audit(app, "subject:provision:stopped")) == 1
    missing = await post(
        operator, "/console/subscribers/sub_nobody/third-party-provision",
        {"action": "stop", "source": "phone"}, csrf_from="/console/account",
    )  # fmt: skip
    assert missing.status_code == 404


async def test_a_consent_to_provide_is_recorded_and_withdrawn(client, app, carrier, auth):
    sid = await verified(client, app, carrier, auth, E164)
    officer = await signed_in(app, "privacy_officer", "hanako")
    path = f"/console/subscribers/{sid}"
    target = path + "/provision-consents"
    form = {"action": "give", "recipient": "Example Insurance K.K.", "source": "letter"}
    assert (await post(officer, target, form)).status_code == 400
    numbered = await post(
        officer, target, {**form, "recipient": "Shop at 090-1234-5678"}, csrf_from=path
    )
    assert numbered.status_code == 422 and "recipient" in numbered.text
    given = await post(officer, target, form, csrf_from=path)
    assert given.status_code == 303
    page = await get(officer, path)
    table = page.text.split('id="provision-consents"')[1].split("</table>")[0]
    assert "Example Insurance K.K." in table and 'value="withdraw"' in table
    withdrawn = await post(
        officer, target, {**form, "action": "withdraw", "source": "phone"}, csrf_from=path
    )
    assert withdrawn.status_code == 303
    table = (await get(officer, path)).text.split('id="provision-consents"')[1]
    assert 'value="withdraw"' not in table.split("</table>")[0]
    who = actor(app, "hanako")
    assert [(e["tag"], e["actor"]) for e in audit(app, "subject:provision_consent:given",
                                                   "subject:provision_consent:withdrawn")] == [
        ("subject:provision_consent:given", who),
        ("subject:provision_consent:withdrawn", who),
    ]  # fmt: skip
    auditor = await signed_in(app, "auditor", "kenji")
    refused = await post(auditor, target, form, csrf_from="/console/account")
    assert refused.status_code == 403


# -- words -------------------------------------------------------------------------------


def test_every_kind_channel_and_state_has_words_in_both_languages():
    from typing import get_args

    keys = [f"kind_{kind.value}" for kind in RequestKind]
    keys += [f"does_{kind.value}" for kind in RequestKind]
    keys += [f"channel_{channel}" for channel in get_args(Channel)]
    keys += [f"sr_{status}" for status in ("open", "done", "refused")]
    keys += [f"sr_filter_{status}" for status in ("open", "done", "refused", "all")]
    for lang in i18n.LANGUAGES:
        missing = [key for key in keys if key not in i18n.CATALOGUE[lang]]
        assert not missing, (lang, missing)


async def test_the_register_in_japanese(client, app, carrier, auth):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    request_id = await record(operator, sid, "erase")
    operator.cookies.set(i18n.LANG_COOKIE, "ja")
    page = await get(operator, f"/console/subject-requests/{request_id}")
    assert "すべての消去" in page.text and "電話" in page.text
    step = await get(operator, f"/console/subject-requests/{request_id}/erase")
    assert "元に戻せません" in step.text


async def test_a_form_giving_a_field_twice_is_refused_and_writes_nothing(
    client, app, carrier, auth
):
    """``kind=access&kind=erase`` recorded an erasure: FastAPI reads the last value, not
    the one the page showed filled in. As a JSON body naming a key twice, it is refused."""
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    form = record_form(sid, "access")
    form["csrf"] = csrf_of(await get(operator, "/console/subject-requests/new"))
    body = [*form.items(), ("kind", "erase")]
    twice = await operator.post(
        "/console/subject-requests",
        content=urlencode(body),
        headers={**HTML, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert twice.status_code == 400, twice.text
    assert twice.headers["content-type"].startswith("text/html") and "kind" in twice.text
    assert requests_of(app) == []


async def test_an_auditor_reads_who_recorded_a_request_by_name(client, app, carrier, auth):
    """The request's page named staff by id only; an auditor, who may read the staff list,
    had to look each one up. Others, who may not, still see the id."""
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    request_id = await record(operator, sid, "access")
    path = f"/console/subject-requests/{request_id}"
    auditor = await signed_in(app, "auditor", "kenji")
    by_auditor = await get(auditor, path)
    who = actor(app, "taro")
    assert f"taro <code>{who}</code>" in by_auditor.text
    by_operator = await get(operator, path)
    assert f"<code>{who}</code>" in by_operator.text and "taro <code>" not in by_operator.text
