"""Request -> review -> release, and every refusal on the way (both databases)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest

from app.core.errors import AppError
from app.ledger import provision, workflow
from app.ledger.workflow import Actor, RecipientIn
from tests.conftest import count_rows, sync_engine
from tests.fixtures.flows import PHONE_E164, check, sent_code, start
from tests.ledger.conftest import (
    AUDITOR,
    OFFICER_A,
    OFFICER_B,
    OPERATOR,
    POLICE,
    approved,
    number,
    release,
    request_data,
)

WRITTEN = ("disclosure_requests", "ledger_entries", "ledger_entry_subjects", "audit_events")


def _counts(app):
    return {table: count_rows(app, table) for table in WRITTEN}


def _refused(app, db, fn, *args, **kwargs) -> AppError:
    before = _counts(app)
    with pytest.raises(AppError) as caught:
        db.call(fn, *args, **kwargs)
    assert 400 <= caught.value.status < 500
    assert _counts(app) == before, "a refusal must write nothing"
    return caught.value


async def test_release_of_a_verified_number_builds_the_package_and_one_entry(
    app, client, auth, carrier, db, ctx
):
    verification = (await start(client, auth)).json()
    checked = await check(client, auth, verification["id"], await sent_code(app, carrier))
    subject = checked.json()["subscriber_id"]

    released = release(
        db, ctx, [subject], data_items=["phone_number", "verified_purposes", "registered_at"]
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
        f"{PHONE_E164},coupon_usage,2026-11-22T00:00:00.000000+00:00",
    ]
    entry = released.entry
    assert entry["seq"] == 1 and entry["prev_hash"] == "0" * 64
    assert orjson.loads(entry["subject_ids"]) == [subject]
    assert entry["requested_by"] == OPERATOR.staff_id
    assert entry["approved_by"] == OFFICER_A.staff_id
    assert entry["released_by"] == OFFICER_B.staff_id
    import hashlib

    assert entry["package_sha256"] == hashlib.sha256(released.package_json).hexdigest()
    assert entry["package_csv_sha256"] == hashlib.sha256(released.package_csv).hexdigest()
    state = db.call(workflow.get, request_id=released.request_id)
    assert state.status == "released" and state.ledger_seq == 1


def _dump(app) -> str:
    import sqlalchemy as sa

    text = []
    with sync_engine(app).connect() as conn:
        for table in (*WRITTEN, "ledger_checkpoints"):
            text.extend(repr(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}")))  # noqa: S608
    return "\n".join(text)


def test_no_number_is_ever_stored_in_the_workflow_or_ledger_tables(app, db, ctx, subjects):
    release(db, ctx, subjects, data_items=list(workflow.DATA_ITEMS))
    dump = _dump(app)
    for i in range(1, 4):
        e164 = number(i)
        for form in (e164, e164[1:], "0" + e164[3:]):
            assert form not in dump


def test_free_text_holding_a_subscribers_number_is_refused(app, db, ctx, subjects):
    data = request_data(subjects, purpose="Please provide 090-0000-0001 urgently now")
    error = _refused(app, db, workflow.request, ctx, actor=OPERATOR, data=data)
    assert error.errors[0].field == "purpose"
    # A number that is nobody's (the station's own desk line) is fine.
    ok = request_data(subjects, purpose="Call back on 03-3498-0110 for the case file")
    assert db.call(workflow.request, ctx, actor=OPERATOR, data=ok).status == "requested"


def test_self_approval_is_refused(app, db, ctx, subjects):
    row = db.call(workflow.request, ctx, actor=OFFICER_A, data=request_data(subjects))
    error = _refused(
        app, db, workflow.approve, ctx, actor=OFFICER_A, request_id=row.id, note="looks fine"
    )
    assert error.status == 403 and error.slug == "disclosure-self-approval"
    error = _refused(
        app, db, workflow.reject, ctx, actor=OFFICER_A, request_id=row.id, note="not needed"
    )
    assert error.slug == "disclosure-self-approval"


@pytest.mark.parametrize(
    ("step", "actor"),
    [("request", AUDITOR), ("request", Actor("stf_admin", "admin")), ("approve", OPERATOR)],
)
def test_roles_outside_the_workflow_are_refused(app, db, ctx, subjects, step, actor):
    if step == "request":
        error = _refused(app, db, workflow.request, ctx, actor=actor, data=request_data(subjects))
    else:
        row = db.call(workflow.request, ctx, actor=OFFICER_B, data=request_data(subjects))
        error = _refused(app, db, workflow.approve, ctx, actor=actor, request_id=row.id, note="ok!")
    assert error.status == 403


def test_only_a_privacy_officer_releases(app, db, ctx, subjects):
    request_id = approved(db, ctx, subjects)
    error = _refused(app, db, workflow.release, ctx, actor=OPERATOR, request_id=request_id)
    assert error.status == 403


@pytest.mark.parametrize("basis", ["law", "investigation_compelled"])
def test_missing_reference_is_refused_for_law_and_investigation(app, db, ctx, subjects, basis):
    for reference in (None, "", "   "):
        data = request_data(subjects, legal_basis=basis, request_reference=reference)
        error = _refused(app, db, workflow.request, ctx, actor=OPERATOR, data=data)
        assert error.status == 422 and error.errors[0].field == "request_reference"


def test_emergency_needs_no_reference(db, ctx, subjects):
    data = request_data(
        subjects, legal_basis="emergency_life_body_property", request_reference=None
    )
    assert db.call(workflow.request, ctx, actor=OPERATOR, data=data).request_reference is None


@pytest.mark.parametrize("basis", ["consent", "emergency_life_body_property"])
def test_stopped_subjects_are_refused_unless_compelled(app, db, ctx, subjects, basis):
    db.call(provision.stop_provision, ctx, subscriber_id=subjects[1], source="web")
    for subject in subjects:
        db.call(provision.give_consent, ctx, subscriber_id=subject, recipient=POLICE, source="web")
    data = request_data(subjects, legal_basis=basis)
    error = _refused(app, db, workflow.request, ctx, actor=OPERATOR, data=data)
    assert error.status == 409 and error.slug == "disclosure-provision-stopped"
    assert error.extra["subject_ids"] == [subjects[1]]


@pytest.mark.parametrize("basis", ["law", "investigation_compelled"])
def test_stopped_subjects_may_be_disclosed_when_compelled(db, ctx, subjects, basis):
    db.call(provision.stop_provision, ctx, subscriber_id=subjects[0], source="web")
    released = release(db, ctx, subjects, legal_basis=basis)
    assert released.entry["legal_basis"] == basis


def test_a_stop_after_approval_is_still_honoured_at_release(app, db, ctx, subjects):
    request_id = approved(db, ctx, subjects, legal_basis="emergency_life_body_property")
    db.call(provision.stop_provision, ctx, subscriber_id=subjects[2], source="sms")
    error = _refused(app, db, workflow.release, ctx, actor=OFFICER_B, request_id=request_id)
    assert error.slug == "disclosure-provision-stopped"


def test_consent_needs_each_subjects_consent_to_this_recipient(app, db, ctx, subjects):
    db.call(provision.give_consent, ctx, subscriber_id=subjects[0], recipient=POLICE, source="web")
    db.call(
        provision.give_consent, ctx, subscriber_id=subjects[1], recipient="Other Co.", source="web"
    )
    data = request_data(subjects[:2], legal_basis="consent", request_reference=None)
    error = _refused(app, db, workflow.request, ctx, actor=OPERATOR, data=data)
    assert error.slug == "disclosure-consent-missing"
    assert error.extra["subject_ids"] == [subjects[1]]
    # The recipient matches however it is typed (width, case, spaces).
    db.call(
        provision.give_consent,
        ctx,
        subscriber_id=subjects[1],
        recipient="ＳＨＩＢＵＹＡ  police station",
        source="web",
    )
    released = release(db, ctx, subjects[:2], legal_basis="consent", request_reference=None)
    consent = orjson.loads(released.entry["consent"])
    assert set(consent) == set(subjects[:2])
    assert consent[subjects[0]] == {
        "granted_at": "2026-11-22T00:00:00.000000+00:00",
        "source": "web",
    }


def test_withdrawn_consent_stops_a_pending_consent_release(app, db, ctx, subjects):
    db.call(provision.give_consent, ctx, subscriber_id=subjects[0], recipient=POLICE, source="web")
    request_id = approved(db, ctx, subjects[:1], legal_basis="consent", request_reference=None)
    assert db.call(
        provision.withdraw_consent, ctx, subscriber_id=subjects[0], recipient=POLICE, source="web"
    )
    error = _refused(app, db, workflow.release, ctx, actor=OFFICER_B, request_id=request_id)
    assert error.slug == "disclosure-consent-missing"


def test_a_request_is_released_once(app, db, ctx, subjects):
    released = release(db, ctx, subjects)
    error = _refused(
        app, db, workflow.release, ctx, actor=OFFICER_B, request_id=released.request_id
    )
    assert error.status == 409 and error.slug == "disclosure-already-released"
    error = _refused(
        app, db, workflow.release, ctx, actor=OFFICER_A, request_id=released.request_id
    )
    assert error.slug == "disclosure-already-released"


def test_concurrent_releases_of_one_request_release_it_once(app, db, ctx, subjects):
    request_id = approved(db, ctx, subjects)

    def one(_: int) -> int:
        try:
            db.call(workflow.release, ctx, actor=OFFICER_B, request_id=request_id)
            return 200
        except AppError as exc:
            return exc.status

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    assert results.count(200) == 1 and set(results) == {200, 409}, results
    assert count_rows(app, "ledger_entries") == 1


def test_rejected_and_pending_requests_are_not_released(app, db, ctx, subjects):
    pending = db.call(workflow.request, ctx, actor=OPERATOR, data=request_data(subjects))
    error = _refused(app, db, workflow.release, ctx, actor=OFFICER_B, request_id=pending.id)
    assert error.slug == "disclosure-wrong-state"
    db.call(workflow.reject, ctx, actor=OFFICER_A, request_id=pending.id, note="Not necessary")
    error = _refused(app, db, workflow.release, ctx, actor=OFFICER_B, request_id=pending.id)
    assert error.slug == "disclosure-wrong-state"
    error = _refused(
        app, db, workflow.approve, ctx, actor=OFFICER_B, request_id=pending.id, note="now yes"
    )
    assert error.slug == "disclosure-wrong-state"
    assert db.call(workflow.get, request_id=pending.id).decision_note == "Not necessary"


def test_unknown_request_is_not_found(app, db, ctx):
    for fn, kwargs in (
        (workflow.approve, {"actor": OFFICER_A, "note": "fine"}),
        (workflow.release, {"actor": OFFICER_A}),
    ):
        error = _refused(app, db, fn, ctx, request_id="dsr_nope", **kwargs)
        assert error.status == 404


BAD_REQUESTS = [
    ("legal_basis", {"legal_basis": "curiosity"}),
    ("legal_basis", {"legal_basis": ""}),
    (
        "recipient.organisation",
        {"recipient": RecipientIn(organisation=" ", officer="x", contact="y")},
    ),
    ("recipient.officer", {"recipient": RecipientIn(organisation="x", officer="", contact="y")}),
    (
        "recipient.contact",
        {"recipient": RecipientIn(organisation="x", officer="y", contact="z" * 301)},
    ),
    ("purpose", {"purpose": "short"}),
    ("purpose", {"purpose": "x" * 2001}),
    ("purpose", {"purpose": "ten chars plus \u0007 bell"}),
    ("request_reference", {"request_reference": "x" * 201}),
    ("necessity_review", {"necessity_review": ""}),
    ("data_items", {"data_items": []}),
    ("data_items", {"data_items": ["phone_number", "home_address"]}),
    ("data_items", {"data_items": ["phone_number", "phone_number"]}),
    ("subject_ids", {"subject_ids": []}),
    ("subject_ids", {"subject_ids": ["sub_unknown"]}),
    ("subject_ids", {"subject_ids": ["bad id!"]}),
    ("subject_ids", {"subject_ids": ["s"] * 1001}),
]


@pytest.mark.parametrize(("field", "overrides"), BAD_REQUESTS)
def test_bad_requests_name_the_field_and_write_nothing(app, db, ctx, subjects, field, overrides):
    overrides = dict(overrides)
    data = request_data(overrides.pop("subject_ids", subjects), **overrides)
    error = _refused(app, db, workflow.request, ctx, actor=OPERATOR, data=data)
    assert error.status == 422
    assert error.errors and error.errors[0].field == field


def test_repeated_subject_is_refused(app, db, ctx, subjects):
    data = request_data([subjects[0], subjects[0]])
    assert _refused(app, db, workflow.request, ctx, actor=OPERATOR, data=data).status == 422


@pytest.mark.parametrize("note", ["", "  ", "no", "x" * 2001])
def test_a_decision_needs_a_note(app, db, ctx, subjects, note):
    row = db.call(workflow.request, ctx, actor=OPERATOR, data=request_data(subjects))
    error = _refused(app, db, workflow.approve, ctx, actor=OFFICER_A, request_id=row.id, note=note)
    assert error.errors[0].field == "note"


def test_a_subject_erased_before_release_is_refused(app, db, ctx, subjects):
    import sqlalchemy as sa

    request_id = approved(db, ctx, subjects)
    with sync_engine(app).begin() as conn:
        conn.execute(
            sa.text("DELETE FROM subscriber_purposes WHERE subscriber_id = :s"), {"s": subjects[0]}
        )
        conn.execute(sa.text("DELETE FROM subscribers WHERE id = :s"), {"s": subjects[0]})
    error = _refused(app, db, workflow.release, ctx, actor=OFFICER_B, request_id=request_id)
    assert error.slug == "disclosure-subject-gone"


def test_list_requests_filters_and_bounds(app, db, ctx, subjects):
    release(db, ctx, subjects)
    db.call(workflow.request, ctx, actor=OPERATOR, data=request_data(subjects))
    assert [r.status for r in db.call(workflow.list_requests, status="released")] == ["released"]
    assert len(db.call(workflow.list_requests)) == 2
    for kwargs in ({"status": "bogus"}, {"limit": 0}):
        with pytest.raises(AppError):
            db.call(workflow.list_requests, **kwargs)
