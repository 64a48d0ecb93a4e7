"""An erasure against a redemption or an approval of the same number, interleaved so that
the erasure is under way when the other begins (PostgreSQL only: on SQLite units run
one at a time). Whatever the order, neither ends in a deadlock or a 500: an erasure
holds the number's verifications before the subscriber, as a check or a redemption
holds its verification before the subscriber's lock.

The subscriber's row is held from another connection, so the erasure stops at its last
delete while the other request starts; then both are let go."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from app.subject import erasure
from tests.conftest import call, sync_engine
from tests.coupons.helpers import approved, bearer, jp, make_key, redeem
from tests.fixtures.flows import check, sent_code, start
from tests.staff.helpers import take_without_waiting
from tests.subject.helpers import open_session, send_code


@contextmanager
def subscriber_row_held(app, sid):
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1 FROM subscribers WHERE id = :s FOR UPDATE"), {"s": sid})
        yield
        conn.rollback()


async def _race(app, sid, other) -> None:
    """Erasure queues on the subscriber's row first, then ``other`` starts; both are let
    go. Neither may fail, and ``other`` answers anything but a 500."""
    with subscriber_row_held(app, sid):
        erasing = asyncio.create_task(
            call(app, erasure.erase, subscriber_id=sid, actor="test", channel="letter")
        )
        await asyncio.sleep(0.3)
        racing = asyncio.create_task(other())
        await asyncio.sleep(0.3)
    results = await asyncio.gather(erasing, racing, return_exceptions=True)
    assert not any(isinstance(r, Exception) for r in results), results
    assert results[1].status_code != 500, results[1].text


@pytest.mark.parametrize("by", ["verification_id", "subscriber_id"])
async def test_a_redemption_and_an_erasure(client, app, carrier, by):
    auth = bearer(await make_key(app))
    ok = await approved(client, app, carrier, auth, jp(1))
    body = {by: ok["id"] if by == "verification_id" else ok["subscriber_id"]}
    await _race(app, ok["subscriber_id"], lambda: redeem(client, auth, "c1", **body))


async def test_an_approval_and_an_erasure(client, app, carrier):
    auth = bearer(await make_key(app))
    ok = await approved(client, app, carrier, auth, jp(3))
    started = await start(client, auth, phone=jp(3), purpose="coupon_usage")
    code = await sent_code(app, carrier, jp(3))
    await _race(app, ok["subscriber_id"], lambda: check(client, auth, started.json()["id"], code))


async def test_a_double_submitted_erasure_answers_the_receipt_twice(client, app, carrier):
    """Both requests of a double click are let in before either commits: the second finds
    the subscriber gone and answers the first's receipt, not an error the browser would
    show in place of it (a 404 the operation does not document)."""
    auth = bearer(await make_key(app))
    ok = await approved(client, app, carrier, auth, jp(5))
    headers = await open_session(client, app, carrier, jp(5))

    def erase():
        return client.post("/v1/subject/erasure", json={"confirm": True}, headers=headers)

    with subscriber_row_held(app, ok["subscriber_id"]):
        first = asyncio.create_task(erase())
        await asyncio.sleep(0.3)
        second = asyncio.create_task(erase())
        await asyncio.sleep(0.3)
    answers = await asyncio.gather(first, second)
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["erased"]["subscribers"] == 1
    later = await erase()
    assert later.status_code == 401


async def test_a_request_closed_while_its_subscriber_is_erased_is_done(client, app, carrier):
    """Staff close a stop request while the subject's own erasure is under way: it closes
    as done once the erasure commits, never as a 404 about the subscriber."""
    from tests.staff.helpers import staff_auth

    auth = bearer(await make_key(app))
    ok = await approved(client, app, carrier, auth, jp(5))
    sid = ok["subscriber_id"]
    operator = await staff_auth(app, client, "operator")
    body = {"subject_id": sid, "kind": "stop_usage", "channel": "letter",
            "reason": "Letter received; identity checked by SMS"}  # fmt: skip
    made = await client.post("/v1/subject-requests", json=body, headers=operator)
    assert made.status_code == 201, made.text
    url = f"/v1/subject-requests/{made.json()['id']}/close"
    done = {"outcome": "done", "note": "Carried out"}
    with subscriber_row_held(app, sid):
        erasing = asyncio.create_task(
            call(app, erasure.erase, subscriber_id=sid, actor="test", channel="letter")
        )
        await asyncio.sleep(0.3)
        closing = asyncio.create_task(client.post(url, json=done, headers=operator))
        await asyncio.sleep(0.3)
    await erasing
    closed = await closing
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "done"


DELIVERY_SCOPES = ["verifications:write", "consents:write", "deliveries:write"]
OPT_IN = {"purpose": "coupon_delivery", "action": "opt_in", "source": "web", "policy_version": "1"}


def _remaining(app, table: str, sid: str) -> int:
    query = sa.text(f"SELECT count(*) FROM {table} WHERE subscriber_id = :s")  # noqa: S608
    with sync_engine(app).connect() as conn:
        return int(conn.execute(query, {"s": sid}).scalar_one())


async def test_a_consent_change_and_an_erasure(client, app, carrier):
    """A change read before the erasure deleted the subscriber wrote its history row
    after: a 500 (the history's foreign key), or the erasure's. Now the change waits for
    the subscriber's lock and finds the subscriber gone."""
    auth = bearer(await make_key(app, DELIVERY_SCOPES))
    sid = (await approved(client, app, carrier, auth, jp(7), purpose="coupon_delivery"))[
        "subscriber_id"
    ]
    url = f"/v1/subscribers/{sid}/consents"
    answers = []

    async def change():
        answers.append(await client.post(url, json=OPT_IN, headers=auth))
        return answers[-1]

    await _race(app, sid, change)
    assert answers[0].status_code == 404, answers[0].text
    assert _remaining(app, "consent_events", sid) == _remaining(app, "consents", sid) == 0


async def test_a_campaign_batch_and_an_erasure(client, app, carrier):
    """A batch read its audience before the erasure deleted the subscriber and queued its
    message after: a 500 on either side. Now the batch holds its subscribers' rows, so it
    waits for the erasure under way and queues nothing for the erased subscriber."""
    auth = bearer(await make_key(app, DELIVERY_SCOPES))
    sid = (await approved(client, app, carrier, auth, jp(9), purpose="coupon_delivery"))[
        "subscriber_id"
    ]
    assert (
        await client.post(f"/v1/subscribers/{sid}/consents", json=OPT_IN, headers=auth)
    ).status_code == 201
    body = {
        "campaign_id": "race",
        "messages": {"ja": "クーポン", "en": "Coupon"},
        "default_locale": "en",
    }
    answers = []

    async def deliver():
        answers.append(await client.post("/v1/deliveries", json=body, headers=auth))
        return answers[-1]

    await _race(app, sid, deliver)
    assert answers[0].status_code == 201, answers[0].text
    assert answers[0].json()["counts"]["queued"] == 0
    assert _remaining(app, "outbox_messages", sid) == 0


TWILIO_TOKEN, PUBLIC_BASE = "twilio-test-token-0123456789abcdef", "https://sms.example.co.jp"


@pytest.mark.parametrize(
    "settings_overrides", [{"twilio_auth_token": TWILIO_TOKEN, "public_base_url": PUBLIC_BASE}]
)
async def test_a_carrier_stop_report_and_an_erasure(client, app, carrier):
    """Twilio reports a message refused because its recipient replied STOP (21610) while
    the recipient's erasure is under way: the report held the message's row and waited
    for the subscriber's lock, the erasure held that lock and waited to delete the
    message: a deadlock (503). The report takes the subscriber's lock first now."""
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    token, base = TWILIO_TOKEN, PUBLIC_BASE
    auth = bearer(await make_key(app, DELIVERY_SCOPES))
    ok = await approved(client, app, carrier, auth, jp(11), purpose="coupon_delivery")
    sid = ok["subscriber_id"]
    query = sa.text("SELECT id FROM outbox_messages WHERE verification_id = :v")
    with sync_engine(app).begin() as conn:
        message_id = conn.execute(query, {"v": ok["id"]}).scalar_one()
        # As if the carrier had not reported on it yet: the report below settles it.
        conn.execute(
            sa.text(
                "UPDATE outbox_messages SET carrier_message_id = NULL, delivery_status = NULL "
                "WHERE id = :m"
            ),
            {"m": message_id},
        )
    form = {
        "MessageSid": "SM" + "a" * 32, "AccountSid": "AC" + "b" * 32,
        "MessageStatus": "undelivered", "ErrorCode": "21610", "To": jp(11),
        "ApiVersion": "2010-04-01",
    }  # fmt: skip
    path = f"/v1/sms/twilio/status?{urlencode({'m': message_id})}"
    headers = {
        "X-Twilio-Signature": RequestValidator(token).compute_signature(base + path, form),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    answers = []

    async def report():
        answers.append(await client.post(path, content=urlencode(form), headers=headers))
        return answers[-1]

    await _race(app, sid, report)
    assert answers[0].status_code == 204, answers[0].text
    assert _remaining(app, "outbox_messages", sid) == 0


async def test_a_check_under_way_and_an_erasure_do_not_deadlock(client, app, carrier):
    """A check holds its verification, then takes the subscriber (approving). An erasure
    that took the subscriber first and then waited to delete that verification deadlocked
    with it, and PostgreSQL ended the check (503). An erasure now takes the number's
    verifications first. Held from another connection as the check holds them."""
    auth = bearer(await make_key(app))
    ok = await approved(client, app, carrier, auth, jp(7))
    started = await start(client, auth, phone=jp(7), purpose="coupon_usage")
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    with engine.connect() as conn:
        held = "SELECT 1 FROM verifications WHERE id = :v FOR UPDATE"
        conn.execute(sa.text(held), {"v": started.json()["id"]})
        erasing = asyncio.create_task(
            call(app, erasure.erase, subscriber_id=ok["subscriber_id"], actor="test")
        )
        await asyncio.sleep(0.3)
        assert not erasing.done(), "the erasure waits for the verification the check holds"
        # The check's next step: the subscriber, which the erasure must not hold yet.
        take_without_waiting(
            conn, "SELECT 1 FROM subscribers WHERE id = :s FOR UPDATE", {"s": ok["subscriber_id"]}
        )
        conn.rollback()
    receipt = await erasing
    assert receipt.subject_id == ok["subscriber_id"]


async def test_a_number_correction_and_an_erasure_do_not_deadlock(client, app, carrier):
    """A move of the records took the subscriber, then waited to delete the old number's
    verifications, which an erasure of the same subscriber held while it waited for the
    subscriber: a deadlock, and PostgreSQL ended the erasure (503). The move holds those
    verifications first now. Here it stops at the subscriber's row, held from another
    connection, while the erasure starts; then both are let go."""
    auth = bearer(await make_key(app))
    ok = await approved(client, app, carrier, auth, jp(13))
    sid = ok["subscriber_id"]
    headers = await open_session(client, app, carrier, jp(13))
    new = jp(14)
    verification_id = await send_code(
        client, new, path="/v1/subject/correction/verifications", headers=headers
    )
    body = {"verification_id": verification_id, "code": await sent_code(app, carrier, new)}
    with subscriber_row_held(app, sid):
        moving = asyncio.create_task(
            client.post("/v1/subject/correction", json=body, headers=headers)
        )
        await asyncio.sleep(0.3)
        erasing = asyncio.create_task(
            call(app, erasure.erase, subscriber_id=sid, actor="test", channel="letter")
        )
        await asyncio.sleep(0.3)
    moved, receipt = await asyncio.gather(moving, erasing, return_exceptions=True)
    assert not isinstance(receipt, Exception), receipt
    assert moved.status_code == 200, moved.text
    assert receipt.subject_id == sid
