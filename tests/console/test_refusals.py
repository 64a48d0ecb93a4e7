"""A refused console form leads back to the page the form is on: Back led to the
dashboard (a refused disclosure request, a close note, a reveal reason), and a person
refused on the enrolment page to the sign-in page, with no account to sign in with."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.console.helpers import get, post, signed_in
from tests.console.test_disclosures import request_form
from tests.staff.helpers import CHEAP_HASHING, rows, verified

E164 = "+819012345678"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}


def back_of(html: str) -> str:
    found = re.search(r'<a href="([^"]+)" id="back">', html)
    assert found, html
    return found.group(1)


async def test_a_refused_form_leads_back_to_the_page_it_is_on(client, app, carrier, auth):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    numbered = await post(
        operator, "/console/subject-requests",
        {"subject_id": sid, "kind": "access", "channel": "phone",
         "reason": "Asked by phone, call back on 090-1111-2204"},
        csrf_from="/console/subject-requests/new",
    )  # fmt: skip
    # The form again, as typed, the field at fault named above it.
    assert numbered.status_code == 422 and 'id="refused"' in numbered.text
    assert "<code>reason</code>" in numbered.text
    assert ">Asked by phone, call back on 090-1111-2204</textarea>" in numbered.text
    assert '<option value="access" selected>' in numbered.text
    assert '<option value="phone" selected>' in numbered.text
    assert not rows(app, "SELECT id FROM subject_requests")
    unknown = await post(
        operator, "/console/subject-requests",
        {"subject_id": "sub_nobody", "kind": "erase", "channel": "letter",
         "reason": "Letter received; identity checked by a call back"},
        csrf_from="/console/subject-requests/new",
    )  # fmt: skip
    assert unknown.status_code == 404 and 'id="refused"' in unknown.text
    assert ">Letter received; identity checked by a call back</textarea>" in unknown.text
    made = await post(
        operator, "/console/subject-requests",
        {"subject_id": sid, "kind": "access", "channel": "phone",
         "reason": "Asked by phone; identity checked by a call back"},
        csrf_from="/console/subject-requests/new",
    )  # fmt: skip
    page = made.headers["location"]
    short = await post(operator, page + "/close", {"status": "done", "note": "ok"}, csrf_from=page)
    assert short.status_code == 422 and back_of(short.text) == page
    # Signed in, the refusal keeps the menu and who is signed in (it looked signed out).
    assert '<a href="/console/subscribers">Subscribers</a>' in short.text
    assert 'action="/console/logout"' in short.text
    unknown = await post(
        operator, "/console/disclosures", {"legal_basis": "law"}, csrf_from="/console/"
    )
    assert unknown.status_code == 422 and back_of(unknown.text) == "/console/disclosures/new"
    officer = await signed_in(app, "privacy_officer", "hanako")
    revealed = await post(
        officer, f"/console/subscribers/{sid}/reveal", {"reason": "x"}, csrf_from="/console/"
    )
    assert revealed.status_code == 422 and back_of(revealed.text) == f"/console/subscribers/{sid}"
    searched = await post(
        operator, "/console/subscribers/search", {"phone": "abc"}, csrf_from="/console/"
    )
    assert searched.status_code == 422 and back_of(searched.text) == "/console/subscribers"
    # A page that is not there: the page above it, not the same address again.
    missing = await get(operator, "/console/subscribers/sub_nobody")
    assert missing.status_code == 404 and back_of(missing.text) == "/console/subscribers"


async def test_an_invitation_refused_leads_back_to_the_enrolment_page(client):
    form = await get(client, "/console/enrol")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    answer = await post(
        client, "/console/enrol",
        {"token": "smsreg_inv_madeup", "password": "a long own passphrase 2026",
         "repeat_password": "a long own passphrase 2026", "csrf": token},
    )  # fmt: skip
    assert answer.status_code == 401
    assert back_of(answer.text) == "/console/enrol"
    assert 'href="/console/login"' not in answer.text.split("<main")[-1]


async def test_a_disclosure_request_its_schema_refuses_is_shown_again_as_typed(
    client, app, carrier, auth
):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    form = request_form(sid, request_reference="")  # compelled: a reference is required
    refused = await post(
        operator, "/console/disclosures", form, csrf_from="/console/disclosures/new"
    )
    assert refused.status_code == 422 and 'id="refused"' in refused.text
    assert "<code>request_reference</code>" in refused.text
    assert f">{form['necessity_review']}</textarea>" in refused.text
    assert 'value="Inspector Sato"' in refused.text
    assert '<option value="investigation_compelled" selected>' in refused.text
    assert 'value="phone_number" checked>' in refused.text
    assert 'value="subscriber_id" checked>' in refused.text
    assert not rows(app, "SELECT id FROM disclosure_requests")


async def test_a_disclosure_request_its_service_refuses_is_shown_again_as_typed(
    client, app, carrier, auth
):
    """An unknown subject, or a subscriber's number in the contact, threw the form away
    with its necessity review."""
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    unknown = await post(
        operator, "/console/disclosures", request_form("sub_nobody"),
        csrf_from="/console/disclosures/new",
    )  # fmt: skip
    assert unknown.status_code == 422 and 'id="refused"' in unknown.text
    assert "<code>subject_ids</code>" in unknown.text and ">sub_nobody\n</textarea>" in unknown.text
    numbered = await post(
        operator, "/console/disclosures", request_form(sid, recipient_contact="090-1234-5678"),
        csrf_from="/console/disclosures/new",
    )  # fmt: skip
    assert numbered.status_code == 422 and "<code>recipient.contact</code>" in numbered.text
    assert 'value="090-1234-5678"' in numbered.text  # what was typed, on this page only
    # The refusal said the number is registered: kept as the operator's search.
    assert rows(app, "SELECT subscriber_id FROM access_log WHERE action = 'search_number'") == [
        {"subscriber_id": sid}
    ]
    assert not rows(app, "SELECT id FROM disclosure_requests")


async def test_a_form_refused_as_forbidden_leads_back_to_its_page(client, app):
    """A 403 refusal of a form ended with "My account · Dashboard" and no Back, though a
    refused form leads back to the page it is on; a page refused to the role still offers
    the account and the dashboard (the page above it would be refused too)."""
    root = await signed_in(app, "admin", "root")
    await signed_in(app, "operator", "taro")
    (taro,) = rows(app, "SELECT id FROM staff_accounts WHERE username = 'taro'")
    proposed = await post(
        root, f"/console/staff/{taro['id']}/role", {"role": "privacy_officer"},
        csrf_from="/console/staff",
    )  # fmt: skip
    assert proposed.status_code == 303
    ((grant,),) = [tuple(r.values()) for r in rows(app, "SELECT id FROM staff_role_grants")]
    own = await post(root, f"/console/staff/grants/{grant}/confirm", {}, csrf_from="/console/staff")
    assert own.status_code == 403 and back_of(own.text) == "/console/staff"
    (me,) = rows(app, "SELECT id FROM staff_accounts WHERE username = 'root'")
    mine = await post(
        root, f"/console/staff/{me['id']}/disable", {"confirm": "yes"}, csrf_from="/console/staff"
    )
    assert mine.status_code == 403 and back_of(mine.text) == "/console/staff"
    page = await get(root, "/console/ledger/verify")  # auditors' and officers' only
    assert page.status_code == 403 and 'id="back"' not in page.text
    assert '<a href="/console/account">My account</a>' in page.text
