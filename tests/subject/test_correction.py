"""Correction: the records move to a new number once its code checks; the old number's
traces go; a number held by someone else is refused."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from app.sms import campaigns
from tests.conftest import advisory_lock_held, sync_engine
from tests.consent.helpers import make_key, opted_in
from tests.fixtures.flows import claim, send_claimed, sent_code
from tests.staff.helpers import rows, verified
from tests.subject.helpers import open_session, send_code

OLD = "+819012120000"
NEW = "+819034340000"
TAKEN = "+819056560000"


async def _correct(client, app, carrier, headers, e164):
    verification_id = await send_code(
        client, e164, path="/v1/subject/correction/verifications", headers=headers
    )
    code = await sent_code(app, carrier, e164)
    return await client.post(
        "/v1/subject/correction",
        json={"verification_id": verification_id, "code": code},
        headers=headers,
    )


async def test_the_records_move_to_the_new_number(client, app, carrier, clock):
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, OLD)
    clock.advance(minutes=1)
    headers = await open_session(client, app, carrier, OLD)
    response = await _correct(client, app, carrier, headers, NEW)
    assert response.status_code == 200, response.text
    assert response.json()["phone_masked"] == "+81 90-****-0000"
    ctx = app.state.ctx
    old_index = ctx.keys.blind_index(OLD, kind="number")
    assert rows(app, "SELECT id FROM subscribers WHERE phone_index = :i",
                i=ctx.keys.blind_index(NEW, kind="number")) == [{"id": sid}]  # fmt: skip
    assert not rows(app, "SELECT id FROM verifications WHERE phone_index = :i", i=old_index)
    for bucket in (f"n:{old_index}", f"ns:{old_index}"):  # the clients' and the pages' sends
        assert not rows(app, "SELECT bucket FROM send_windows WHERE bucket = :b", b=bucket)
    # The old number is no one's now: proving it again opens nothing.
    clock.advance(minutes=1)
    verification_id = await send_code(client, OLD)
    code = await sent_code(app, carrier, OLD)
    opened = await client.post(
        "/v1/subject/sessions", json={"verification_id": verification_id, "code": code}
    )
    assert opened.status_code == 404


async def test_a_number_of_another_subscriber_is_refused(client, app, carrier, clock):
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, OLD)
    other = await verified(client, app, carrier, auth, TAKEN)
    clock.advance(minutes=1)
    headers = await open_session(client, app, carrier, OLD)
    response = await _correct(client, app, carrier, headers, TAKEN)
    assert response.status_code == 409
    assert {r["id"] for r in rows(app, "SELECT id FROM subscribers")} == {sid, other}


async def test_a_number_registered_while_the_move_runs_is_refused_not_a_500(
    client, app, carrier, clock
):
    """PostgreSQL: another subscriber takes the new number after the correction looked
    it up (here a move of it that commits while the correction waits on the number's
    unique index): 409, nothing changed, rather than the index's refusal as a 500."""
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, OLD)
    other = await verified(client, app, carrier, auth, TAKEN)
    clock.advance(minutes=1)
    headers = await open_session(client, app, carrier, OLD)
    verification_id = await send_code(
        client, NEW, path="/v1/subject/correction/verifications", headers=headers
    )
    code = await sent_code(app, carrier, NEW)
    new_index = app.state.ctx.keys.blind_index(NEW, kind="number")
    with engine.connect() as taking:
        taking.execute(
            sa.text("UPDATE subscribers SET phone_index = :i WHERE id = :s"),
            {"i": new_index, "s": other},
        )
        correcting = asyncio.create_task(
            client.post(
                "/v1/subject/correction",
                json={"verification_id": verification_id, "code": code},
                headers=headers,
            )
        )
        await asyncio.sleep(0.5)
        assert not correcting.done()  # waiting on the index entry the other move holds
        taking.commit()
    response = await correcting
    assert response.status_code == 409, response.text
    assert response.json()["type"].endswith("/subject-number-taken")
    assert response.json()["errors"][0]["field"] == "verification_id"
    assert rows(app, "SELECT id FROM subscribers WHERE phone_index = :i", i=new_index) == [
        {"id": other}
    ]
    old_index = app.state.ctx.keys.blind_index(OLD, kind="number")
    assert rows(app, "SELECT id FROM subscribers WHERE phone_index = :i", i=old_index) == [
        {"id": sid}
    ]


async def test_a_correction_waits_for_whatever_holds_the_subscriber(client, app, carrier, clock):
    """A release, a redemption or an erasure in progress (PostgreSQL: they hold the
    subscriber's lock) commits before the number changes under it."""
    auth = await make_key(app, ["verifications:write"])
    sid = await verified(client, app, carrier, auth, OLD)
    clock.advance(minutes=1)
    headers = await open_session(client, app, carrier, OLD)
    with advisory_lock_held(app, f"subscriber:{sid}"):
        correcting = asyncio.create_task(_correct(client, app, carrier, headers, NEW))
        await asyncio.sleep(0.5)
        assert not correcting.done()
    assert (await correcting).status_code == 200


async def test_a_campaign_message_rendered_to_the_old_number_is_not_sent_after_the_move(
    client, app, carrier, clock
):
    """A worker claimed and rendered a campaign message (to the old number), then the
    correction commits: the message is cancelled, not handed to the carrier for a number
    the person just said is no longer theirs. A message not yet claimed goes to the new."""
    auth = await make_key(app, ["verifications:write", "consents:write", "deliveries:write"])
    sid = await verified(client, app, carrier, auth, OLD, "coupon_delivery")
    await opted_in(client, auth, sid)
    clock.advance(minutes=1)
    headers = await open_session(client, app, carrier, OLD)
    verification_id = await send_code(
        client, NEW, path="/v1/subject/correction/verifications", headers=headers
    )
    code = await sent_code(app, carrier, NEW)
    for campaign in ("first", "second"):
        body = {"campaign_id": campaign, "messages": {"ja": "クーポン"}, "default_locale": "ja"}
        assert (await client.post("/v1/deliveries", json=body, headers=auth)).status_code == 201
    held = await claim(app, 1)  # the worker holds the first, rendered to OLD
    assert [item.to for item in held] == [OLD]
    moved = await client.post(
        "/v1/subject/correction",
        json={"verification_id": verification_id, "code": code},
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    before = len(carrier.sent)
    await send_claimed(app, carrier, held)
    assert carrier.sent[before:] == []
    settled = rows(
        app, "SELECT status, error_code FROM outbox_messages WHERE id = :i", i=held[0].message.id
    )
    assert settled == [{"status": "cancelled", "error_code": "number_changed"}]
    await send_claimed(app, carrier, await claim(app, 10))
    assert [message.to for message in carrier.sent[before:]] == [NEW]


async def test_a_worker_leaves_the_messages_of_a_number_being_moved_alone(
    client, app, carrier, clock
):
    """PostgreSQL: while the move is in progress its transaction holds the subscriber's
    unsent campaign messages, so a worker's claim skips them rather than render them to
    the old number, which the move has not yet replaced. (On SQLite the move is the one
    writer: no claim runs meanwhile.)"""
    if sync_engine(app).dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    auth = await make_key(app, ["verifications:write", "consents:write", "deliveries:write"])
    sid = await verified(client, app, carrier, auth, OLD, "coupon_delivery")
    await opted_in(client, auth, sid)
    body = {"campaign_id": "spring", "messages": {"ja": "クーポン"}, "default_locale": "ja"}
    assert (await client.post("/v1/deliveries", json=body, headers=auth)).status_code == 201
    async with app.state.db.transaction() as moving:
        await campaigns.cancel_held_for(moving, subscriber_id=sid, now=clock.now())
        assert await claim(app, 10) == []
    assert [item.to for item in await claim(app, 10)] == [OLD]  # released: claimed (no move)


async def _redeem(client, auth, subscriber_id):
    body = {"subscriber_id": subscriber_id}
    return await client.post("/v1/coupons/spring/redemptions", json=body, headers=auth)


async def test_erasing_one_number_and_moving_onto_it_does_not_renew_the_other(
    client, app, carrier, clock
):
    """Two numbers, each redeemed once: erase the one, move the other's subscriber onto
    it, verify the other anew. Both numbers have used their redemption: the one by its
    erased subscriber, the other by the subscriber that moved away from it."""
    auth = await make_key(app, ["verifications:write", "coupons:write"])
    first = await verified(client, app, carrier, auth, OLD)
    second = await verified(client, app, carrier, auth, NEW)
    assert (await _redeem(client, auth, first)).status_code == 201
    assert (await _redeem(client, auth, second)).status_code == 201
    clock.advance(minutes=1)
    erased = await client.post(
        "/v1/subject/erasure",
        json={"confirm": True},
        headers=await open_session(client, app, carrier, OLD),
    )
    assert erased.status_code == 200, erased.text
    clock.advance(minutes=1)
    headers = await open_session(client, app, carrier, NEW)
    assert (await _correct(client, app, carrier, headers, OLD)).status_code == 200
    clock.advance(minutes=1)
    anew = await verified(client, app, carrier, auth, NEW)
    assert anew not in (first, second)
    for subscriber in (anew, second):  # NEW anew; the mover, now on OLD
        answer = await _redeem(client, auth, subscriber)
        assert answer.status_code == 409, answer.text


@pytest.mark.parametrize("settings_overrides", [{"coupon_redemptions_per_number": 2}])
async def test_moving_away_and_back_counts_a_redemption_once(client, app, carrier, clock):
    auth = await make_key(app, ["verifications:write", "coupons:write"])
    sid = await verified(client, app, carrier, auth, OLD)
    assert (await _redeem(client, auth, sid)).status_code == 201
    for there in (NEW, OLD):
        clock.advance(minutes=1)
        here = OLD if there == NEW else NEW
        headers = await open_session(client, app, carrier, here)
        assert (await _correct(client, app, carrier, headers, there)).status_code == 200
    # Back on OLD: the tally left there is the subscriber's own, not counted again.
    assert (await _redeem(client, auth, sid)).status_code == 201
    assert (await _redeem(client, auth, sid)).status_code == 409


async def test_the_number_the_records_are_under_is_refused_before_any_sms(
    client, app, carrier, clock
):
    """Moving the records onto their own number changed nothing, yet sent an SMS,
    recorded a correction and cancelled the campaign messages held for them: it is
    refused when the code is asked for, in whatever form the number is typed."""
    auth = await make_key(app, ["verifications:write"])
    await verified(client, app, carrier, auth, OLD)
    clock.advance(minutes=1)
    headers = await open_session(client, app, carrier, OLD)
    sent = len(rows(app, "SELECT id FROM outbox_messages"))
    for typed in (OLD, "090-1212-0000", "０９０１２１２００００"):
        response = await client.post(
            "/v1/subject/correction/verifications",
            json={"phone": typed, "country": "JP"},
            headers=headers,
        )
        assert response.status_code == 409, response.text
        assert response.json()["type"].endswith("subject-number-unchanged")
        assert [e["field"] for e in response.json()["errors"]] == ["phone"]
    assert len(rows(app, "SELECT id FROM outbox_messages")) == sent
    assert not rows(app, "SELECT id FROM subject_requests WHERE kind = 'correct'")
    # Nor is a sign-in code for the same number taken as a correction's.
    verification_id = await send_code(client, OLD)
    code = await sent_code(app, carrier, OLD)
    moved = await client.post(
        "/v1/subject/correction",
        json={"verification_id": verification_id, "code": code},
        headers=headers,
    )
    assert moved.status_code == 409, moved.text
    assert moved.json()["type"].endswith("subject-number-unchanged")
    assert [e["field"] for e in moved.json()["errors"]] == ["verification_id"]
    assert not rows(app, "SELECT id FROM subject_requests WHERE kind = 'correct'")
