"""Request -> review -> release, and every refusal on the way (both databases)."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
import sqlalchemy as sa

from app.core.db import Database
from app.core.errors import AppError
from app.ledger import chain, provision, workflow
from app.ledger.rules import DATA_ITEMS
from app.registry.free_text import NumberInText
from app.staff.roles import Role
from app.subject import erasure
from tests.conftest import call, count_rows, sync_engine
from tests.fixtures.flows import PHONE_E164, check, sent_code, start
from tests.fixtures.staff import staff_auth
from tests.ledger.conftest import (
    IP,
    OFFICER_A,
    OFFICER_B,
    OPERATOR,
    POLICE,
    approved,
    number,
    release,
    request_body,
    request_data,
    requested,
)
from tests.staff.helpers import rows

WRITTEN = (
    "disclosure_requests",
    "ledger_entries",
    "ledger_entry_subjects",
    "audit_events",
    "access_log",
)


def _counts(app):
    return {table: count_rows(app, table) for table in WRITTEN}


async def _refused(app, fn, **kwargs) -> AppError:
    """The refusal, which wrote nothing but, for a subscriber's number found in a staff
    member's text, the access-log row of that lookup (a search by number like any other)."""
    before = _counts(app)
    searches = _searches(app)
    with pytest.raises(AppError) as caught:
        await call(app, fn, **kwargs)
    assert 400 <= caught.value.status < 500
    after = _counts(app)
    if isinstance(caught.value, NumberInText):  # the search: its log row and its event
        assert len(_searches(app)) == len(searches) + 1
        after["access_log"] -= 1
        after["audit_events"] -= 1
    assert after == before, "a refusal must write nothing"
    return caught.value


def _searches(app) -> list[dict]:
    return rows(app, "SELECT staff_id, subscriber_id, reason FROM access_log "
                     "WHERE action = 'search_number' ORDER BY id")  # fmt: skip


async def test_release_of_a_verified_number_builds_the_package_and_one_entry(
    app, client, auth, carrier
):
    verification = (await start(client, auth)).json()
    checked = await check(client, auth, verification["id"], await sent_code(app, carrier))
    subject = checked.json()["subscriber_id"]

    released = await release(
        app, [subject], data_items=["phone_number", "verified_purposes", "registered_at"]
    )

    package = orjson.loads(released.package_json)
    assert package["records"] == [
        {
            "phone_number": PHONE_E164,
            "verified_purposes": ["coupon_usage"],
            "registered_at": "2026-11-22T00:00:00.000000+00:00",
        }
    ]
    assert package["ledger_seq"] == 1 and package["legal_basis"] == "investigation_compelled"
    assert released.package_csv.decode().splitlines() == [
        "phone_number,verified_purposes,registered_at",
        # The number stays text in a spreadsheet (a leading ', which readers drop).
        f"'{PHONE_E164},coupon_usage,2026-11-22T00:00:00.000000+00:00",
    ]
    entry = released.entry
    assert entry.seq == 1 and entry.prev_hash == "0" * 64
    assert entry.subject_ids == [subject]
    assert entry.requested_by == OPERATOR.id
    assert entry.approved_by == OFFICER_A.id
    assert entry.released_by == OFFICER_B.id
    assert entry.package_sha256 == hashlib.sha256(released.package_json).hexdigest()
    assert entry.package_csv_sha256 == hashlib.sha256(released.package_csv).hexdigest()
    state = await call(app, workflow.get, request_id=released.request_id)
    assert state.status == "released" and state.ledger_seq == 1
    # The package left with the number: the release is in the access log, by whom.
    with sync_engine(app).connect() as conn:
        logged = conn.execute(
            sa.text("SELECT staff_id, subscriber_id, action, source_ip FROM access_log")
        ).all()
    assert [tuple(row) for row in logged] == [(OFFICER_B.id, subject, "disclosure_release", IP)]


async def test_a_release_without_numbers_is_not_an_access(app, subjects):
    await release(app, subjects, data_items=["subscriber_id", "registered_at"])
    assert count_rows(app, "access_log") == 0


def _dump(app) -> str:
    text = []
    with sync_engine(app).connect() as conn:
        for table in (*WRITTEN, "ledger_checkpoints"):
            text.extend(repr(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}")))  # noqa: S608
    return "\n".join(text)


async def test_no_number_is_ever_stored_in_the_workflow_or_ledger_tables(app, subjects):
    await release(app, subjects, data_items=list(DATA_ITEMS))
    dump = _dump(app)
    for i in range(1, 4):
        e164 = number(i)
        for form in (e164, e164[1:], "0" + e164[3:]):
            assert form not in dump


@pytest.mark.parametrize(
    "contact",
    [
        "090-0000-0001",
        "desk ０９０－００００－０００１",  # full width
        "〇九〇 〇〇〇〇 〇〇〇一",  # kanji digits
        "+81 90 0000 0001",
        "090_0000_0001 (mobile)",
        # After an international access code, or other digits.
        "0081 90 0000 0001",
        "00 81 90 0000 0001",
        "011-81-90-0000-0001",
        "+0081 90 0000 0001",
        "0011 81 90 0000 0001",
        "tel 12-090-0000-0001",
        # Groups joined by marks that change from one to the next.
        "090/0000,0001",
        "+81:90/0000,0001",
        "090、0000。0001",
        "0081-90/0000,0001",
    ],
)
async def test_a_contact_holding_a_subscribers_number_is_refused(app, subjects, contact):
    recipient = {"organisation": POLICE, "officer": "Inspector Sato", "contact": contact}
    data = request_data(subjects, recipient=recipient)
    error = await _refused(app, workflow.request, ip=IP, staff=OPERATOR, data=data)
    assert error.errors[0].field == "recipient.contact"
    # The recipient's own line, nobody's in the registry, is what the contact is for.
    recipient["contact"] = "03-3498-0110 (desk)"
    ok = request_data(subjects, recipient=recipient)
    assert (await call(app, workflow.request, ip=IP, staff=OPERATOR, data=ok)).status == "requested"


async def test_a_contact_with_a_very_long_run_of_digits_is_refused(app, subjects):
    """Each stretch of a run is read as a number: hundreds of digits held the event loop
    for a fifth of a second. No contact needs more than 30 in a row."""
    recipient = {"organisation": POLICE, "officer": "Inspector Sato", "contact": "1" * 31}
    error = await _refused(
        app,
        workflow.request,
        ip=IP,
        staff=OPERATOR,
        data=request_data(subjects, recipient=recipient),
    )
    assert error.errors[0].field == "recipient.contact"


async def test_a_reference_holding_a_subscribers_number_is_refused(app, subjects):
    data = request_data(subjects, request_reference="Inquiry re 090-0000-0001")
    error = await _refused(app, workflow.request, ip=IP, staff=OPERATOR, data=data)
    assert error.errors[0].field == "request_reference"


async def test_a_decision_note_holding_a_subscribers_number_is_refused(app, subjects):
    request_id = await requested(app, subjects)
    error = await _refused(
        app,
        workflow.decide,
        ip=IP,
        staff=OFFICER_A,
        request_id=request_id,
        note="Approved for 090-0000-0002 only",
        approve=True,
    )
    assert error.errors[0].field == "note"


@pytest.mark.parametrize("approve", [True, False])
async def test_self_approval_is_refused(app, subjects, approve):
    found = await call(app, workflow.request, ip=IP, staff=OFFICER_A, data=request_data(subjects))
    error = await _refused(
        app,
        workflow.decide,
        ip=IP,
        staff=OFFICER_A,
        request_id=found.id,
        note="fine",
        approve=approve,
    )
    assert error.status == 403 and error.slug == "disclosure-self-approval"


async def test_the_requester_may_not_release_their_own_request(app, subjects):
    """A privacy officer who asked for a disclosure, approved by another, does not take the
    package (it may hold full numbers) into their own hands: another officer releases."""
    found = await call(app, workflow.request, ip=IP, staff=OFFICER_A, data=request_data(subjects))
    await call(
        app, workflow.decide, ip=IP, staff=OFFICER_B, request_id=found.id, note="ok", approve=True
    )
    error = await _refused(app, workflow.release, staff=OFFICER_A, request_id=found.id, ip=IP)
    assert error.status == 403 and error.slug == "disclosure-self-approval"


@pytest.mark.parametrize(
    ("role", "step"),
    [
        (Role.AUDITOR, "request"),
        (Role.ADMIN, "request"),
        (Role.OPERATOR, "approve"),
        (Role.OPERATOR, "reject"),
        (Role.OPERATOR, "release"),
        (Role.AUDITOR, "release"),
    ],
)
async def test_roles_outside_the_workflow_are_refused(app, client, subjects, role, step):
    headers = await staff_auth(app, client, role)
    if step == "request":
        answer = await client.post("/v1/disclosures", json=request_body(subjects), headers=headers)
    else:
        request_id = await (requested if step != "release" else approved)(app, subjects)
        body = {"note": "looks fine"} if step != "release" else None
        answer = await client.post(
            f"/v1/disclosures/{request_id}/{step}", json=body, headers=headers
        )
    assert answer.status_code == 403, answer.text
    # Nothing moved on: the request stayed where the refused step found it.
    expected = {
        "requested": 1 if step in ("approve", "reject") else 0,
        "approved": 1 if step == "release" else 0,
    }
    rows = {status: 0 for status in ("requested", "approved", "released")}
    with sync_engine(app).connect() as conn:
        for (status,) in conn.execute(sa.text("SELECT status FROM disclosure_requests")):
            rows[status] += 1
    assert rows == {**expected, "released": 0}


@pytest.mark.parametrize("basis", ["law", "investigation_compelled"])
async def test_missing_reference_is_refused_for_law_and_investigation(app, client, subjects, basis):
    headers = await staff_auth(app, client, Role.OPERATOR)
    for reference in (None, "", "   "):
        body = request_body(subjects, legal_basis=basis, request_reference=reference)
        answer = await client.post("/v1/disclosures", json=body, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == "request_reference"
    assert count_rows(app, "disclosure_requests") == 0


async def test_emergency_needs_no_reference(app, subjects):
    data = request_data(
        subjects, legal_basis="emergency_life_body_property", request_reference=None
    )
    assert (
        await call(app, workflow.request, ip=IP, staff=OPERATOR, data=data)
    ).request_reference is None


async def test_stopped_subjects_are_refused_under_consent(app, subjects):
    await call(app, provision.stop_provision, subscriber_id=subjects[1], source="web")
    for subject in subjects:
        await call(
            app, provision.give_consent, subscriber_id=subject, recipient=POLICE, source="web"
        )
    data = request_data(subjects, legal_basis="consent", request_reference=None)
    error = await _refused(app, workflow.request, ip=IP, staff=OPERATOR, data=data)
    assert error.status == 409 and error.slug == "disclosure-provision-stopped"
    assert error.extra["subject_ids"] == [subjects[1]]


@pytest.mark.parametrize(
    "basis", ["law", "investigation_compelled", "emergency_life_body_property"]
)
async def test_bases_without_consent_go_on_despite_a_stop_flagged(app, subjects, basis):
    # APPI Art. 27(1): law, a compelled investigation and an emergency need no consent, so
    # a stop of third-party provision does not hold them back; the request and the ledger
    # entry name whose stop was overridden.
    await call(app, provision.stop_provision, subscriber_id=subjects[0], source="web")
    reference = None if basis == "emergency_life_body_property" else "CCP 197(2) #1"
    data = request_data(subjects, legal_basis=basis, request_reference=reference)
    asked = await call(app, workflow.request, ip=IP, staff=OPERATOR, data=data)
    assert asked.stop_overridden == [subjects[0]]
    await call(
        app, workflow.decide, ip=IP, staff=OFFICER_A, request_id=asked.id, note="ok", approve=True
    )
    released = await call(app, workflow.release, staff=OFFICER_B, request_id=asked.id, ip=IP)
    assert released.entry.legal_basis == basis
    assert released.entry.stop_overridden == [subjects[0]]
    # The flag is hashed: the chain verifies as stored, and not with the flag removed.
    assert released.entry.entry_hash == chain.hash_entry(released.entry)
    unflagged = released.entry.model_copy(update={"stop_overridden": None})
    assert chain.hash_entry(unflagged) != released.entry.entry_hash
    records = await call(app, provision.subject_records, subscriber_id=subjects[0])
    assert records[-1].stop_overridden is True
    others = await call(app, provision.subject_records, subscriber_id=subjects[1])
    assert others[-1].stop_overridden is False


async def test_an_entry_without_an_overridden_stop_is_hashed_as_before(app, subjects):
    released = await release(app, subjects)
    assert released.entry.stop_overridden is None
    assert "stop_overridden" not in chain.content_of(released.entry)


async def test_a_stop_after_approval_is_flagged_at_release(app, subjects):
    request_id = await approved(app, subjects, legal_basis="emergency_life_body_property")
    await call(app, provision.stop_provision, subscriber_id=subjects[2], source="sms")
    released = await call(app, workflow.release, staff=OFFICER_B, request_id=request_id, ip=IP)
    assert released.entry.stop_overridden == [subjects[2]]
    stored = await call(app, workflow.get, request_id=request_id)
    assert stored.stop_overridden == [subjects[2]]


async def test_a_subject_erased_before_release_is_gone_whatever_the_basis(app, subjects):
    """Under consent too: the consent went with the erasure, and 'no consent' would say
    the wrong thing about someone no longer in the registry."""
    await call(
        app, provision.give_consent, subscriber_id=subjects[0], recipient=POLICE, source="web"
    )
    request_id = await approved(app, subjects[:1], legal_basis="consent", request_reference=None)
    await call(app, erasure.erase, subscriber_id=subjects[0], actor="test", channel="letter")
    error = await _refused(app, workflow.release, staff=OFFICER_B, request_id=request_id, ip=IP)
    assert error.slug == "disclosure-subject-gone"


async def test_a_stop_before_approval_is_honoured_under_consent(app, subjects):
    await call(
        app, provision.give_consent, subscriber_id=subjects[0], recipient=POLICE, source="web"
    )
    request_id = await requested(app, subjects[:1], legal_basis="consent", request_reference=None)
    await call(app, provision.stop_provision, subscriber_id=subjects[0], source="sms")
    error = await _refused(
        app,
        workflow.decide,
        ip=IP,
        staff=OFFICER_A,
        request_id=request_id,
        note="fine",
        approve=True,
    )
    assert error.slug == "disclosure-provision-stopped"


async def test_consent_needs_each_subjects_consent_to_this_recipient(app, subjects):
    await call(
        app, provision.give_consent, subscriber_id=subjects[0], recipient=POLICE, source="web"
    )
    await call(
        app,
        provision.give_consent,
        subscriber_id=subjects[1],
        recipient="Other Co.",
        source="web",
    )
    data = request_data(subjects[:2], legal_basis="consent", request_reference=None)
    error = await _refused(app, workflow.request, ip=IP, staff=OPERATOR, data=data)
    assert error.slug == "disclosure-consent-missing"
    assert error.extra["subject_ids"] == [subjects[1]]
    # The recipient matches however it is typed (width, case, spaces).
    await call(
        app,
        provision.give_consent,
        subscriber_id=subjects[1],
        recipient="ＳＨＩＢＵＹＡ  police station",
        source="web",
    )
    released = await release(app, subjects[:2], legal_basis="consent", request_reference=None)
    consent = released.entry.consent
    assert set(consent) == set(subjects[:2])
    assert consent[subjects[0]] == {
        "granted_at": "2026-11-22T00:00:00.000000+00:00",
        "source": "web",
    }


async def test_withdrawn_consent_stops_a_pending_consent_release(app, subjects):
    await call(
        app, provision.give_consent, subscriber_id=subjects[0], recipient=POLICE, source="web"
    )
    request_id = await approved(app, subjects[:1], legal_basis="consent", request_reference=None)
    assert await call(
        app, provision.withdraw_consent, subscriber_id=subjects[0], recipient=POLICE, source="web"
    )
    error = await _refused(app, workflow.release, staff=OFFICER_B, request_id=request_id, ip=IP)
    assert error.slug == "disclosure-consent-missing"


async def test_a_request_is_released_once(app, subjects):
    released = await release(app, subjects)
    for officer in (OFFICER_B, OFFICER_A):
        error = await _refused(
            app, workflow.release, staff=officer, request_id=released.request_id, ip=IP
        )
        assert error.status == 409 and error.slug == "disclosure-already-released"


async def test_concurrent_releases_of_one_request_release_it_once(app, ctx, subjects):
    request_id = await approved(app, subjects)
    ready = threading.Barrier(8)

    def one(_: int) -> int:
        async def attempt() -> int:
            db = Database(app.state.db.url)  # its own connection, as another process
            try:
                async with db.transaction() as tx:
                    await workflow.release(tx, ctx, staff=OFFICER_B, request_id=request_id, ip=IP)
                return 200
            except AppError as exc:
                return exc.status
            finally:
                await db.dispose()

        ready.wait(timeout=30)
        return asyncio.run(attempt())

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    assert results.count(200) == 1 and set(results) == {200, 409}, results
    assert count_rows(app, "ledger_entries") == 1


async def test_rejected_and_pending_requests_are_not_released(app, subjects):
    pending = await requested(app, subjects)
    error = await _refused(app, workflow.release, staff=OFFICER_B, request_id=pending, ip=IP)
    assert error.slug == "disclosure-wrong-state"
    await call(
        app,
        workflow.decide,
        ip=IP,
        staff=OFFICER_A,
        request_id=pending,
        note="Not necessary",
        approve=False,
    )
    error = await _refused(app, workflow.release, staff=OFFICER_B, request_id=pending, ip=IP)
    assert error.slug == "disclosure-wrong-state"
    error = await _refused(
        app,
        workflow.decide,
        ip=IP,
        staff=OFFICER_B,
        request_id=pending,
        note="now yes",
        approve=True,
    )
    assert error.slug == "disclosure-wrong-state"
    assert (await call(app, workflow.get, request_id=pending)).decision_note == "Not necessary"


async def test_unknown_request_is_not_found(app):
    for fn, kwargs in (
        (workflow.decide, {"staff": OFFICER_A, "ip": IP, "note": "fine", "approve": True}),
        (workflow.release, {"staff": OFFICER_A, "ip": IP}),
        (workflow.get, {}),
    ):
        error = await _refused(app, fn, request_id="dsr_nope", **kwargs)
        assert error.status == 404 and error.slug == "disclosure-not-found"


BAD_REQUESTS = [
    ("legal_basis", {"legal_basis": "curiosity"}),
    ("legal_basis", {"legal_basis": ""}),
    (
        "recipient.organisation",
        {"recipient": {"organisation": " ", "officer": "x", "contact": "y"}},
    ),
    ("recipient.officer", {"recipient": {"organisation": "x", "officer": "", "contact": "y"}}),
    (
        "recipient.contact",
        {"recipient": {"organisation": "x", "officer": "y", "contact": "z" * 301}},
    ),
    ("purpose", {"purpose": "short"}),
    ("purpose", {"purpose": "x" * 2001}),
    ("purpose", {"purpose": "ten chars plus \u0007 bell"}),
    # Free text holds no number at all, a subscriber's or not, however it is written.
    ("purpose", {"purpose": "Call back on 03-3498-0110 for the case file"}),
    ("purpose", {"purpose": "Fraud on 090_1234_5679 reported by the bank"}),
    ("necessity_review", {"necessity_review": "Only 〇九〇一二三四五六七九 is needed here."}),
    (
        "recipient.officer",
        {"recipient": {"organisation": "x", "officer": "０９０１２３４５６７９", "contact": "y"}},
    ),
    (
        "recipient.organisation",
        {"recipient": {"organisation": "Desk 9012345679", "officer": "x", "contact": "y"}},
    ),
    # The contact may hold the recipient's own number, never a subscriber's.
    (
        "recipient.contact",
        {"recipient": {"organisation": "x", "officer": "y", "contact": "090-0000-0002"}},
    ),
    ("request_reference", {"request_reference": "x" * 201}),
    ("necessity_review", {"necessity_review": ""}),
    ("data_items", {"data_items": []}),
    ("data_items.1", {"data_items": ["phone_number", "home_address"]}),
    ("data_items", {"data_items": ["phone_number", "phone_number"]}),
    ("subject_ids", {"subject_ids": []}),
    ("subject_ids", {"subject_ids": ["sub_unknown"]}),
    ("subject_ids.0", {"subject_ids": ["bad id!"]}),
    ("subject_ids", {"subject_ids": ["s"] * 1001}),
    ("subject_ids", {"subject_ids": "REPEATED"}),
]


@pytest.mark.parametrize(("field", "overrides"), BAD_REQUESTS)
async def test_bad_requests_name_the_field_and_write_nothing(
    app, client, subjects, field, overrides
):
    headers = await staff_auth(app, client, Role.OPERATOR)
    overrides = dict(overrides)
    if overrides.get("subject_ids") == "REPEATED":
        overrides = {"subject_ids": [subjects[0], subjects[0]]}
    body = request_body(overrides.pop("subject_ids", subjects), **overrides)
    before, searches = _counts(app), _searches(app)
    answer = await client.post("/v1/disclosures", json=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field
    after = _counts(app)
    found = len(_searches(app)) - len(searches)  # a number found: a search, and its event
    after["access_log"] -= found
    after["audit_events"] -= found
    assert after == before


async def test_a_subscribers_number_typed_in_a_request_is_kept_as_a_search(app, client, subjects):
    """Refusing a subscriber's number in a request's contact told an operator that the
    number is registered, and left no trace: numbers could be tested by the batch, outside
    the access log that records every search by number."""
    headers = await staff_auth(app, client, Role.OPERATOR, username="curious")
    recipient = {"organisation": POLICE, "officer": "Inspector Sato", "contact": "090-0000-0001"}
    answer = await client.post(
        "/v1/disclosures", json=request_body(subjects, recipient=recipient), headers=headers
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "recipient.contact"
    [search] = _searches(app)
    (staff,) = rows(app, "SELECT id FROM staff_accounts WHERE username = 'curious'")
    assert search == {
        "staff_id": staff["id"],
        "subscriber_id": subjects[0],
        "reason": "a subscriber's number typed in recipient.contact",
    }
    assert not rows(app, "SELECT id FROM disclosure_requests")


@pytest.mark.parametrize("note", ["", "  ", "no", "x" * 2001])
async def test_a_decision_needs_a_note(app, client, subjects, note):
    request_id = await requested(app, subjects)
    headers = await staff_auth(app, client, Role.PRIVACY_OFFICER)
    before = _counts(app)
    for step in ("approve", "reject"):
        answer = await client.post(
            f"/v1/disclosures/{request_id}/{step}", json={"note": note}, headers=headers
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == "note"
    assert _counts(app) == before


async def test_a_subject_erased_before_release_is_refused(app, subjects):
    request_id = await approved(app, subjects)
    with sync_engine(app).begin() as conn:
        conn.execute(
            sa.text("DELETE FROM subscriber_purposes WHERE subscriber_id = :s"), {"s": subjects[0]}
        )
        conn.execute(sa.text("DELETE FROM subscribers WHERE id = :s"), {"s": subjects[0]})
    error = await _refused(app, workflow.release, staff=OFFICER_B, request_id=request_id, ip=IP)
    assert error.slug == "disclosure-subject-gone"


async def test_list_requests_filters_and_bounds(app, client, subjects):
    await release(app, subjects)
    await requested(app, subjects)
    released = await call(app, workflow.list_requests, status="released")
    assert [r.status for r in released] == ["released"]
    assert len(await call(app, workflow.list_requests)) == 2
    headers = await staff_auth(app, client, Role.AUDITOR)
    for params, field in (({"status": "bogus"}, "status"), ({"limit": 0}, "limit")):
        answer = await client.get("/v1/disclosures", params=params, headers=headers)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == field
    listed = await client.get("/v1/disclosures", params={"status": "requested"}, headers=headers)
    assert [r["status"] for r in listed.json()["requests"]] == ["requested"]


async def test_a_new_request_says_where_it_is_read(app, client, subjects):
    headers = await staff_auth(app, client, Role.OPERATOR)
    answer = await client.post("/v1/disclosures", json=request_body(subjects), headers=headers)
    assert answer.status_code == 201, answer.text
    assert answer.headers["Location"] == f"/v1/disclosures/{answer.json()['id']}"
    read = await client.get(answer.headers["Location"], headers=headers)
    assert read.status_code == 200
    assert read.json() == answer.json()
