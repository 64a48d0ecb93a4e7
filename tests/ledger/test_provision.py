"""The subject's consent to provide, stop of provision, and view of their records."""

from __future__ import annotations

import pytest

from app.core.errors import AppError
from app.ledger import provision
from tests.ledger.conftest import POLICE, release, sql


def test_consent_given_withdrawn_and_renewed(db, ctx, subjects):
    subject = subjects[0]
    given = db.call(
        provision.give_consent, ctx, subscriber_id=subject, recipient=POLICE, source="web"
    )
    assert given.recipient_key == "shibuya police station"
    state = db.call(provision.provision_state, subscriber_id=subject)
    assert state["stopped_at"] is None and state["consents"][0]["withdrawn_at"] is None
    assert db.call(
        provision.withdraw_consent,
        ctx,
        subscriber_id=subject,
        recipient=" shibuya POLICE station ",
        source="web",
    )
    assert not db.call(
        provision.withdraw_consent, ctx, subscriber_id=subject, recipient=POLICE, source="web"
    )
    db.call(provision.give_consent, ctx, subscriber_id=subject, recipient=POLICE, source="sms")
    consents = db.call(provision.provision_state, subscriber_id=subject)["consents"]
    assert len(consents) == 1 and consents[0]["withdrawn_at"] is None


def test_stop_is_idempotent_and_can_be_lifted(app, db, ctx, subjects, clock):
    first = db.call(provision.stop_provision, ctx, subscriber_id=subjects[0], source="web")
    clock.advance(hours=1)
    second = db.call(provision.stop_provision, ctx, subscriber_id=subjects[0], source="sms")
    assert second.stopped_at == first.stopped_at
    assert db.call(provision.resume_provision, ctx, subscriber_id=subjects[0], source="web")
    assert not db.call(provision.resume_provision, ctx, subscriber_id=subjects[0], source="web")
    tags = [row.tag for row in sql(app, "SELECT tag FROM audit_events ORDER BY id")]
    assert tags.count("subject:provision:stopped") == 1
    assert tags.count("subject:provision:resumed") == 1


@pytest.mark.parametrize(
    ("fn", "kwargs", "status"),
    [
        (
            provision.give_consent,
            {"subscriber_id": "sub_nobody", "recipient": POLICE, "source": "web"},
            404,
        ),
        (provision.give_consent, {"recipient": "", "source": "web"}, 422),
        (provision.give_consent, {"recipient": POLICE, "source": "web site"}, 422),
        (provision.stop_provision, {"subscriber_id": "sub_nobody", "source": "web"}, 404),
        (provision.stop_provision, {"source": ""}, 422),
    ],
)
def test_bad_subject_actions_are_refused(db, ctx, subjects, fn, kwargs, status):
    kwargs = {"subscriber_id": subjects[0], **kwargs}
    with pytest.raises(AppError) as caught:
        db.call(fn, ctx, **kwargs)
    assert caught.value.status == status


def test_a_subject_sees_their_records_but_not_who_else_was_named(db, ctx, subjects):
    db.call(provision.give_consent, ctx, subscriber_id=subjects[0], recipient=POLICE, source="web")
    db.call(provision.give_consent, ctx, subscriber_id=subjects[1], recipient=POLICE, source="web")
    release(db, ctx, subjects[:2], legal_basis="consent", request_reference=None)
    release(db, ctx, subjects[1:])
    records = db.call(provision.subject_records, subscriber_id=subjects[0])
    assert len(records) == 1
    record = records[0]
    assert record["other_subjects"] == 1 and subjects[1] not in str(record)
    assert record["consent"]["source"] == "web" and record["legal_basis"] == "consent"
    assert record["recipient"]["organisation"] == POLICE
    assert len(db.call(provision.subject_records, subscriber_id=subjects[1])) == 2
    with pytest.raises(AppError):
        db.call(provision.subject_records, subscriber_id=subjects[0], limit=0)
