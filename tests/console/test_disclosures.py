"""Disclosures and the ledger in the console: the request form checked by the API's schema,
independent approval with a note, one release with its package downloaded as JSON and
formula-safe CSV, and the auditors' verification, checkpoint and export."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest
import sqlalchemy as sa

from app.ledger import provision
from app.subject import erasure
from tests.conftest import call
from tests.console.helpers import csrf_of, get, post, signed_in
from tests.ledger.conftest import tampering
from tests.staff.helpers import CHEAP_HASHING, rows, verified

E164 = "+819012345678"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {**CHEAP_HASHING}


def request_form(sid: str, **changes: str) -> dict[str, Any]:
    form: dict[str, Any] = {
        "recipient_organisation": "Shibuya Police Station",
        "recipient_officer": "Inspector Sato",
        "recipient_contact": "sato@police.example.jp",
        "legal_basis": "investigation_compelled",
        "request_reference": "CCP197-2026-0042",
        "purpose": "Fraud investigation into case 2026-118",
        "data_items": ["phone_number", "subscriber_id"],
        "subject_ids": f"{sid}\n",
        "necessity_review": "The inquiry names this subscriber; no other means exist.",
    }
    form.update(changes)
    return form


def downloads(page: str) -> dict[str, bytes]:
    found = re.findall(
        r'id="download-(\w+)" download="[^"]+" href="data:[^;]+(?:;charset=utf-8)?;base64,([^"]+)"',
        page,
    )
    return {kind: base64.b64decode(data) for kind, data in found}


async def requested(operator, sid: str) -> str:
    """A request made on the console's form by ``operator``: its page's address."""
    made = await post(
        operator, "/console/disclosures", request_form(sid), csrf_from="/console/disclosures/new"
    )
    assert made.status_code == 303, made.text
    return made.headers["location"]


async def approved(officer, path: str) -> None:
    """The request at ``path`` approved by ``officer``."""
    page = await get(officer, path)
    await post(officer, path + "/approve", {"note": "Inquiry checked.", "csrf": csrf_of(page)})


async def test_a_request_form_sent_again_makes_one_request_unless_meant(client, app, carrier, auth):
    """The same form sent from a second tab, or again after Back, made a second request
    with the same recipient and subjects, which could be approved and released on its
    own: two disclosures for one. Sent again, it is refused and shown as typed, naming
    the request made; sent once more from there, it makes the second request meant."""
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    page = await get(operator, "/console/disclosures/new")
    form = {**request_form(sid), "csrf": csrf_of(page)}
    form["made"] = re.search(r'name="made" value="(\d+)"', page.text).group(1)
    first = await post(operator, "/console/disclosures", form)
    assert first.status_code == 303, first.text
    made_id = first.headers["location"].rsplit("/", 1)[1]
    again = await post(operator, "/console/disclosures", form)
    assert again.status_code == 409, again.text
    assert (
        f"Disclosure request {made_id} (to Shibuya Police Station) was made by you at" in again.text
    )
    assert 'value="Inspector Sato"' in again.text  # as typed
    count = "SELECT count(*) AS n FROM disclosure_requests"
    assert rows(app, count) == [{"n": 1}]
    meant = {**form, "made": re.search(r'name="made" value="(\d+)"', again.text).group(1)}
    assert (await post(operator, "/console/disclosures", meant)).status_code == 303
    assert rows(app, count) == [{"n": 2}]


async def test_a_consent_request_without_consent_comes_back_as_typed(client, app, carrier, auth):
    """Refused for a missing consent (or a subject's stop), the request form was a bare
    error page: the necessity review and everything else typed were gone."""
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    review = "Asked for by the coupon programme of the subscriber; reviewed line by line."
    refused = await post(
        operator, "/console/disclosures",
        request_form(sid, legal_basis="consent", request_reference="", necessity_review=review),
        csrf_from="/console/disclosures/new",
    )  # fmt: skip
    assert refused.status_code == 409, refused.text
    assert "have no live consent to this recipient" in refused.text
    assert 'id="request-form"' in refused.text
    assert review in refused.text and 'value="Inspector Sato"' in refused.text
    assert rows(app, "SELECT count(*) AS n FROM disclosure_requests") == [{"n": 0}]


async def test_a_request_is_decided_by_another_officer_and_released_once(
    client, app, carrier, auth
):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    officer = await signed_in(app, "privacy_officer", "hanako")
    bad = await post(
        operator, "/console/disclosures", request_form(sid, request_reference=""),
        csrf_from="/console/disclosures/new",
    )  # fmt: skip
    assert bad.status_code == 422 and "request_reference" in bad.text
    made = await post(
        operator, "/console/disclosures", request_form(sid), csrf_from="/console/disclosures/new"
    )
    assert made.status_code == 303, made.text
    path = made.headers["location"]
    # The requester may not decide; the officer sees the request waiting.
    assert 'id="decide"' not in (await get(operator, path)).text
    dashboard = await get(officer, "/console/")
    assert path.rsplit("/", 1)[1] in dashboard.text
    page = await get(officer, path)
    approved = await post(officer, path + "/approve", {"note": "ok", "csrf": csrf_of(page)})
    assert approved.status_code == 422 and "note" in approved.text  # 3 characters at least
    approved = await post(
        officer, path + "/approve", {"note": "Inquiry checked.", "csrf": csrf_of(page)}
    )
    assert approved.status_code == 303
    page = await get(officer, path)
    assert 'id="release"' in page.text
    # Numbers leave for a third party only with the box ticked: a slip sends nothing.
    slip = await post(officer, path + "/release", {"csrf": csrf_of(page)})
    assert slip.status_code == 422 and "confirm" in slip.text
    assert 'id="release"' in (await get(officer, path)).text
    released = await post(officer, path + "/release", {"csrf": csrf_of(page), "confirm": "yes"})
    assert released.status_code == 200, released.text
    assert released.headers["cache-control"] == "no-store"
    files = downloads(released.text)
    assert E164.encode() in files["json"]
    # Formula-safe, the number kept as text (a leading ', which readers drop).
    assert f"'{E164}" in files["csv"].decode().splitlines()[1]
    # Each copy's hash, as the ledger entry holds it, to check a handed-over file against.
    for kind in ("json", "csv"):
        shown = re.search(rf'id="sha-{kind}">([0-9a-f]{{64}})<', released.text).group(1)
        assert shown == hashlib.sha256(files[kind]).hexdigest(), kind
    again = await post(officer, path + "/release", {"csrf": csrf_of(page), "confirm": "yes"})
    assert again.status_code == 409
    assert E164 not in (await get(officer, path)).text


async def test_auditors_verify_sign_a_checkpoint_and_export(client, app, carrier, auth):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    officer = await signed_in(app, "privacy_officer", "hanako")
    path = await requested(operator, sid)
    await approved(officer, path)
    page = await get(officer, path)
    await post(officer, path + "/release", {"csrf": csrf_of(page), "confirm": "yes"})
    auditor = await signed_in(app, "auditor", "kenji")
    ledger = await get(auditor, "/console/ledger")
    assert ledger.status_code == 200 and "Shibuya Police Station" in ledger.text
    # The legal basis in words, as the request's own page has it (not its code name).
    assert "Compelled investigation (CCP" in ledger.text.split('id="entries"')[-1]
    assert E164 not in ledger.text
    assert "No witness is configured" in ledger.text.split('id="witness"')[1]
    verified_page = await get(auditor, "/console/ledger/verify")
    assert 'id="verify-status"' in verified_page.text and "verifies" in verified_page.text
    assert re.search(r"\(\d+ entries, \d+ checkpoints\)", verified_page.text)  # mid-sentence
    signed = await post(auditor, "/console/ledger/checkpoints", {}, csrf_from="/console/ledger")
    assert signed.status_code == 303
    said = await get(auditor, signed.headers["location"])  # it said nothing: signed or not?
    assert "head" in said.text and re.search(
        r'id="signed">Checkpoint signed: .* entry #1, ', said.text
    )
    assert 'id="signed"' not in (await get(auditor, "/console/ledger")).text
    # Only the newest checkpoint is ever said to be signed: an address cannot claim one.
    assert 'id="signed"' not in (await get(auditor, "/console/ledger?signed=999")).text
    export = await auditor.get("/console/ledger/export?format=csv&since=&recipient=")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "Shibuya Police Station" in export.text and E164 not in export.text
    admin = await signed_in(app, "admin", "root")
    assert (await get(admin, "/console/ledger")).status_code == 200
    assert (await get(admin, "/console/ledger/verify")).status_code == 403
    # A changed entry: the verification names the first broken position.
    with tampering(app) as conn:
        conn.execute(sa.text("UPDATE ledger_entries SET purpose = 'nothing' WHERE seq = 1"))
    broken = await get(auditor, "/console/ledger/verify")
    status = broken.text.split('id="verify-status"')[1].split("</p>")[0]
    assert "Broken at entry #1: changed" in status


async def test_those_who_may_read_the_staff_list_see_who_requested_and_decided_by_name(
    client, app, carrier, auth
):
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    officer = await signed_in(app, "privacy_officer", "hanako")
    auditor = await signed_in(app, "auditor", "kenji")
    path = await requested(operator, sid)
    await approved(officer, path)
    read = (await get(auditor, path)).text
    assert "taro <code>" in read and "hanako <code>" in read
    # Those who may not read the staff list keep seeing ids only.
    for who in (operator, officer):
        text = (await get(who, path)).text
        assert "taro <code>" not in text and "hanako <code>" not in text


async def test_the_decider_sees_a_subjects_stop_of_provision_before_deciding(
    client, app, carrier, auth
):
    """The stop showed only once the approval had recorded overriding it, and the ledger's
    ⚑ had no legend."""
    sid = await verified(client, app, carrier, auth, E164)
    await call(app, provision.stop_provision, subscriber_id=sid, source="phone")
    operator = await signed_in(app, "operator", "taro")
    officer = await signed_in(app, "privacy_officer", "hanako")
    path = await requested(operator, sid)
    page = await get(officer, path)
    assert 'id="decide"' in page.text
    notice = page.text.split('id="stopped-now"')[1].split("</p>")[0]
    assert sid in notice
    await approved(officer, path)
    page = await get(officer, path)
    await post(officer, path + "/release", {"csrf": csrf_of(page), "confirm": "yes"})
    ledger = await get(officer, "/console/ledger")
    assert 'id="legend">⚑ Despite a stop of provision' in ledger.text
    assert 'id="stopped-now"' not in (await get(officer, path)).text  # released: done


async def test_an_approved_request_whose_subject_was_erased_says_so_and_offers_no_release(
    client, app, carrier, auth
):
    """Its Release button stayed, and could only answer 409 disclosure-subject-gone."""
    sid = await verified(client, app, carrier, auth, E164)
    operator = await signed_in(app, "operator", "taro")
    officer = await signed_in(app, "privacy_officer", "hanako")
    path = await requested(operator, sid)
    await approved(officer, path)
    assert 'id="release"' in (await get(officer, path)).text
    await call(app, erasure.erase, subscriber_id=sid, actor="test", channel="letter")
    page = await get(officer, path)
    assert 'id="release"' not in page.text
    assert sid in page.text.split('id="gone-now"')[1].split("</p>")[0]
