"""The subject's consent to provide, stop of provision, and view of their records."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.core.errors import AppError
from app.ledger import provision
from app.staff.roles import Role
from tests.conftest import call
from tests.fixtures.staff import staff_auth
from tests.ledger.conftest import POLICE, release, sql, tampering


async def test_consent_given_withdrawn_and_renewed(app, subjects):
    subject = subjects[0]
    given = await call(
        app, provision.give_consent, subscriber_id=subject, recipient=POLICE, source="web"
    )
    assert given.recipient_key == "shibuya police station"
    state = await call(app, provision.provision_state, subscriber_id=subject)
    assert state.stopped_at is None and state.consents[0].withdrawn_at is None
    assert await call(
        app,
        provision.withdraw_consent,
        subscriber_id=subject,
        recipient=" shibuya POLICE station ",
        source="web",
    )
    assert not await call(
        app, provision.withdraw_consent, subscriber_id=subject, recipient=POLICE, source="web"
    )
    await call(app, provision.give_consent, subscriber_id=subject, recipient=POLICE, source="sms")
    consents = (await call(app, provision.provision_state, subscriber_id=subject)).consents
    assert len(consents) == 1 and consents[0].withdrawn_at is None
    assert consents[0].source == "sms"


async def test_stop_is_idempotent_and_can_be_lifted(app, subjects, clock):
    first = await call(app, provision.stop_provision, subscriber_id=subjects[0], source="web")
    clock.advance(hours=1)
    second = await call(app, provision.stop_provision, subscriber_id=subjects[0], source="sms")
    assert second.stopped_at == first.stopped_at and second.source == "web"
    assert await call(app, provision.resume_provision, subscriber_id=subjects[0], source="web")
    assert not await call(app, provision.resume_provision, subscriber_id=subjects[0], source="web")
    tags = [row.tag for row in sql(app, "SELECT tag FROM audit_events ORDER BY id")]
    assert tags.count("subject:provision:stopped") == 1
    assert tags.count("subject:provision:resumed") == 1


@pytest.mark.parametrize(
    ("fn", "kwargs"),
    [
        (provision.give_consent, {"recipient": POLICE, "source": "web"}),
        (provision.withdraw_consent, {"recipient": POLICE, "source": "web"}),
        (provision.stop_provision, {"source": "web"}),
        (provision.resume_provision, {"source": "web"}),
        (provision.provision_state, {}),
        (provision.subject_records, {}),
    ],
)
async def test_an_unknown_subject_is_not_found(app, subjects, fn, kwargs):
    with pytest.raises(AppError) as caught:
        await call(app, fn, subscriber_id="sub_nobody", **kwargs)
    assert caught.value.status == 404 and caught.value.slug == "subject-not-found"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("provision-consents", {"action": "give", "recipient": "", "source": "web"}, "recipient"),
        ("provision-consents", {"action": "give", "recipient": " ", "source": "web"}, "recipient"),
        (
            "provision-consents",
            {"action": "give", "recipient": POLICE, "source": "web site"},
            "source",
        ),
        (
            "provision-consents",
            {"action": "give", "recipient": "Police\u0007", "source": "web"},
            "recipient",
        ),
        ("third-party-provision", {"action": "stop", "source": ""}, "source"),
        # Kept in the ledger's subject tables for years: never a number.
        ("third-party-provision", {"action": "stop", "source": "tel:09012345679"}, "source"),
        (
            "provision-consents",
            {"action": "give", "recipient": "Desk ０９０１２３４５６７９", "source": "web"},
            "recipient",
        ),
        ("third-party-provision", {"action": "halt", "source": "web"}, "action"),
    ],
)
async def test_bad_subject_actions_are_refused_and_write_nothing(
    app, client, subjects, path, body, field
):
    headers = await staff_auth(app, client, Role.OPERATOR)
    before = sql(app, "SELECT count(*) AS n FROM audit_events")[0].n
    answer = await client.post(f"/v1/subscribers/{subjects[0]}/{path}", json=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert [error["field"] for error in answer.json()["errors"]] == [field]
    assert sql(app, "SELECT count(*) AS n FROM audit_events")[0].n == before
    assert sql(app, "SELECT count(*) AS n FROM access_log")[0].n == 0


async def test_an_index_row_added_by_hand_shows_no_one_a_disclosure_not_naming_them(app, subjects):
    """The subject index is append-only but takes an INSERT: a row added for another
    subject showed that person a disclosure (its recipient, basis and items) that does
    not name them. Each entry is held to its own hashed list of subjects."""
    await release(app, subjects[:1])
    with tampering(app) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ledger_entry_subjects (seq, subject_id, recorded_at) "
                "SELECT seq, :s, recorded_at FROM ledger_entry_subjects WHERE seq = 1"
            ),
            {"s": subjects[1]},
        )
    assert await call(app, provision.subject_records, subscriber_id=subjects[1]) == []
    assert len(await call(app, provision.subject_records, subscriber_id=subjects[0])) == 1
    # Nor does the row cut a page short: one record a page, the real one is the first.
    await release(app, subjects[1:2])
    page = await call(app, provision.subject_records, subscriber_id=subjects[1], limit=1)
    assert [record.seq for record in page] == [2]


async def test_a_subject_sees_their_records_but_not_who_else_was_named(app, client, subjects):
    for subject in subjects[:2]:
        await call(
            app, provision.give_consent, subscriber_id=subject, recipient=POLICE, source="web"
        )
    await release(app, subjects[:2], legal_basis="consent", request_reference=None)
    await release(app, subjects[1:])
    records = await call(app, provision.subject_records, subscriber_id=subjects[0])
    assert len(records) == 1
    record = records[0]
    assert record.other_subjects == 1 and subjects[1] not in str(record)
    assert record.consent is not None and record.consent.source == "web"
    assert record.legal_basis == "consent"
    assert record.recipient.organisation == POLICE
    assert len(await call(app, provision.subject_records, subscriber_id=subjects[1])) == 2
    headers = await staff_auth(app, client, Role.OPERATOR)
    url = f"/v1/subscribers/{subjects[0]}/disclosures"
    for limit in (0, 1001):
        answer = await client.get(url, params={"limit": limit}, headers=headers)
        assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "limit"
    # Past a BIGINT: the driver failed with a 500 on both databases.
    for after_seq in (-1, 2**63):
        answer = await client.get(url, params={"after_seq": after_seq}, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["field"] == "after_seq"
    paged = await client.get(url, params={"after_seq": 1}, headers=headers)
    assert paged.status_code == 200 and paged.json()["records"] == []
