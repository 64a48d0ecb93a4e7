"""Campaign delivery: only live opt-ins get the message, once, in their language, with the
opt-out line; a campaign id replays; an opt-out stops what is not yet sent."""

from __future__ import annotations

import asyncio
from collections import Counter

import anyio.from_thread
import pytest
import sqlalchemy as sa

from app.consent import service as consent_service
from app.registry import service as registry
from tests.conftest import sync_engine
from tests.consent.helpers import (
    consent,
    counts,
    jp,
    make_key,
    opted_in,
    register,
    rows,
)
from tests.fixtures.flows import claim, send_claimed

OPT_OUT = {"ja": "配信停止はSTOPと返信", "ko": "수신거부: STOP 회신", "en": "Reply STOP to opt out"}
MESSAGES = {"ja": "春のクーポンをどうぞ", "en": "Your spring coupon is here"}


@pytest.fixture
def settings_overrides():
    return {"allowed_regions": ["JP", "KR"]}


async def deliver(client, auth, campaign_id="spring-2026", messages=None, default="en", **extra):
    body = {
        "campaign_id": campaign_id,
        "messages": MESSAGES if messages is None else messages,
        "default_locale": default,
        **extra,
    }
    return await client.post("/v1/deliveries", json=body, headers=auth)


async def audience(client, app, auth):
    """Subscribers in every state a campaign must tell apart."""
    people = {
        name: await register(app, jp(i)) for i, name in enumerate(["ja_in", "en_in", "never"])
    }
    people["ko_in"] = await register(app, "+821012345678")
    people["out"] = await register(app, jp(10))
    people["usage_only"] = await register(app, jp(11), purposes=("coupon_usage",))
    await opted_in(client, auth, people["ja_in"])
    await opted_in(client, auth, people["en_in"], locale="en")
    await opted_in(client, auth, people["ko_in"])
    await opted_in(client, auth, people["out"])
    assert (await consent(client, auth, people["out"], "opt_out")).status_code == 201
    return people


async def test_only_live_opt_ins_get_it_once_in_their_language(client, app, carrier, full_auth):
    await audience(client, app, full_auth)
    answer = await deliver(client, full_auth)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["counts"] == {"eligible": 5, "queued": 3, "skipped": 2}
    assert body["status"] == "queued"
    assert body["locales"] == ["en", "ja"]
    await app.state.outbox.drain()
    sent = {message.to: message.body for message in carrier.sent}
    assert sent == {
        jp(0): f"{MESSAGES['ja']}\n{OPT_OUT['ja']}",
        jp(1): f"{MESSAGES['en']}\n{OPT_OUT['en']}",
        # A Korean number gets only a Korean text, marked (광고) as its law asks: this
        # campaign has none, so it is not sent there.
    }
    state = await client.get(f"/v1/deliveries/{body['id']}", headers=full_auth)
    assert state.status_code == 200
    assert state.json()["states"] == {"sent": 2, "cancelled": 1}
    # Why, as the client reads it: only "cancelled" said nothing of the missing ko text.
    assert state.json()["cancelled_reasons"] == {"no_korean_text": 1}
    assert rows(app, "SELECT error_code FROM outbox_messages WHERE status = 'cancelled'") == [
        ("no_korean_text",)
    ]
    assert state.json()["counts"] == body["counts"]
    assert jp(0) not in answer.text + state.text


async def test_campaign_id_replays_the_first_answer_and_never_queues_twice(
    client, app, carrier, full_auth
):
    await audience(client, app, full_auth)
    first = await deliver(client, full_auth)
    queued = counts(app)["outbox_messages"]
    # Someone opts in later: the replay is still the first answer, nothing more queued.
    await opted_in(client, full_auth, await register(app, jp(30)))
    again = await deliver(client, full_auth)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    location = f"/v1/deliveries/{first.json()['id']}"
    assert first.headers["Location"] == again.headers["Location"] == location
    assert (await client.get(location, headers=full_auth)).json()["id"] == first.json()["id"]
    assert counts(app)["outbox_messages"] == queued
    await app.state.outbox.drain()
    assert len(carrier.sent) == 2  # the Korean number: no Korean text in this campaign


async def test_concurrent_repeats_queue_one_set(client, app, carrier, full_auth):
    await audience(client, app, full_auth)
    answers = await asyncio.gather(*(deliver(client, full_auth) for _ in range(6)))
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({a.json()["id"] for a in answers}) == 1
    assert counts(app)["deliveries"] == 1
    await app.state.outbox.drain()
    assert Counter(m.to for m in carrier.sent) == {jp(0): 1, jp(1): 1}  # no Korean text


async def test_same_campaign_id_with_other_texts_is_refused(client, app, full_auth):
    await audience(client, app, full_auth)
    await deliver(client, full_auth)
    before = counts(app)
    other = await deliver(client, full_auth, messages={"en": "Something else"})
    assert other.status_code == 409
    assert other.json()["errors"][0]["field"] == "campaign_id"
    assert counts(app) == before


async def test_campaign_ids_belong_to_their_client(client, app, carrier, full_auth):
    await audience(client, app, full_auth)
    first = (await deliver(client, full_auth)).json()
    other_client = await make_key(app, ["deliveries:write"], name="other-frontend")
    second = await deliver(client, other_client)
    assert second.status_code == 201
    assert second.json()["id"] != first["id"]
    hidden = await client.get(f"/v1/deliveries/{first['id']}", headers=other_client)
    assert hidden.status_code == 404
    assert hidden.json()["type"].endswith("/delivery-not-found")


async def test_no_audience_is_an_empty_delivery(client, app, full_auth):
    answer = await deliver(client, full_auth)
    assert answer.status_code == 201
    assert answer.json()["counts"] == {"eligible": 0, "queued": 0, "skipped": 0}


async def drain_some(app, carrier, limit):
    """One worker pass over at most ``limit`` messages: part of the outbox is sent."""
    batch = await claim(app, limit)
    await send_claimed(app, carrier, batch)
    return batch


class TestBatches:
    @pytest.fixture
    def settings_overrides(self):
        # Small batches, so queuing runs in several transactions.
        return {"delivery_batch_size": 100}

    async def test_opt_out_mid_campaign_stops_the_rest(self, client, app, carrier, full_auth):
        people = [await register(app, jp(100 + i)) for i in range(250)]
        for subscriber_id in people:
            await opted_in(client, full_auth, subscriber_id)
        answer = await deliver(client, full_auth)
        assert answer.json()["counts"] == {"eligible": 250, "queued": 250, "skipped": 0}

        await drain_some(app, carrier, 40)
        assert len(carrier.sent) == 40
        sent = {m.to for m in carrier.sent}
        waiting = [i for i in range(250) if jp(100 + i) not in sent]
        stopper = waiting[0]
        out = await consent(client, full_auth, people[stopper], "opt_out")
        assert out.status_code == 201

        await app.state.outbox.drain()
        received = Counter(m.to for m in carrier.sent)
        assert jp(100 + stopper) not in received
        assert len(received) == 249 and set(received.values()) == {1}
        url = f"/v1/deliveries/{answer.json()['id']}"
        state = (await client.get(url, headers=full_auth)).json()
        assert state["states"] == {"sent": 249, "cancelled": 1}
        assert state["cancelled_reasons"] == {"opted_out": 1}


@pytest.mark.parametrize("settings_overrides", [{"outbox_concurrency": 1}])
async def test_opt_out_after_claim_is_honoured_before_the_carrier(client, app, carrier, full_auth):
    """The worker holds a batch; an opt-out commits while it sends the first message;
    that subscriber's message later in the same batch is not handed to the carrier."""
    people = [await register(app, jp(200 + i)) for i in range(5)]
    for subscriber_id in people:
        await opted_in(client, full_auth, subscriber_id)
    await deliver(client, full_auth)
    ctx = app.state.ctx
    send = carrier.send
    stopped: list[str] = []

    async def opt_out(subscriber_id: str) -> None:
        async with app.state.db.transaction() as tx:
            subscriber = await registry.get(tx, subscriber_id)
            assert subscriber is not None
            await consent_service.change(
                tx,
                ctx,
                subscriber=subscriber,
                purpose="coupon_delivery",
                action="opt_out",
                source="app",
                policy_version=None,
                locale=None,
                client_ip=None,
                actor="test",
            )

    def send_then_opt_out(*, to, body, **options):
        result = send(to=to, body=body, **options)
        if not stopped:
            victim = next(p for i, p in enumerate(people) if jp(200 + i) != to)
            # The carrier's call runs off the event loop (a blocking sender); the opt-out
            # commits on the loop while it is under way.
            anyio.from_thread.run(opt_out, victim)
            stopped.append(jp(200 + people.index(victim)))
        return result

    carrier.blocking = True
    carrier.send = send_then_opt_out
    await app.state.outbox.drain()
    assert len(carrier.sent) == 4
    assert stopped[0] not in {m.to for m in carrier.sent}
    [cancelled] = rows(
        app, "SELECT status, error_code FROM outbox_messages WHERE status = 'cancelled'"
    )
    assert tuple(cancelled) == ("cancelled", "opted_out")


async def test_unsent_campaign_messages_expire(client, app, carrier, clock, full_auth):
    await audience(client, app, full_auth)
    await deliver(client, full_auth)
    clock.advance(hours=24)
    await app.state.outbox.drain()
    assert carrier.sent == []
    assert Counter(r[0] for r in rows(app, "SELECT status FROM outbox_messages")) == {"expired": 3}


async def test_a_verification_code_never_waits_behind_a_campaign(client, app, carrier, full_auth):
    from tests.fixtures.flows import start

    for i in range(30):
        await opted_in(client, full_auth, await register(app, jp(300 + i)))
    await deliver(client, full_auth)
    assert (await start(client, full_auth, phone="090-7777-1234")).status_code == 201
    batch = await claim(app, 5)
    assert batch[0].message.kind == "code" and batch[0].to == "+819077771234"
    assert [item.message.kind for item in batch[1:]] == ["campaign"] * 4


async def test_campaign_messages_hold_no_number_and_no_text(client, app, full_auth):
    await audience(client, app, full_auth)
    await deliver(client, full_auth)
    dump = str(rows(app, "SELECT * FROM outbox_messages"))
    dump += str(rows(app, "SELECT * FROM deliveries"))
    for number in (jp(0), jp(1), "+821012345678"):
        assert number not in dump and number[3:] not in dump


async def test_a_number_no_longer_held_for_delivery_is_not_sent(client, app, carrier, full_auth):
    """Live means opted in AND still registered for coupon_delivery (e.g. after erasure
    of that purpose): checked again when the message is sent."""
    people = [await register(app, jp(400 + i)) for i in range(2)]
    for subscriber_id in people:
        await opted_in(client, full_auth, subscriber_id)
    await deliver(client, full_auth)
    with sync_engine(app).begin() as conn:
        conn.execute(
            sa.text("DELETE FROM subscriber_purposes WHERE subscriber_id = :s"), {"s": people[0]}
        )
    await app.state.outbox.drain()
    assert [m.to for m in carrier.sent] == [jp(401)]
    assert Counter(
        tuple(r) for r in rows(app, "SELECT status, error_code FROM outbox_messages")
    ) == {
        ("sent", None): 1,
        ("cancelled", "opted_out"): 1,
    }


@pytest.mark.parametrize("locale", ["ko", "ja", "en"])
async def test_a_korean_number_gets_the_korean_text_whatever_its_language(
    client, app, carrier, full_auth, locale
):
    """정보통신망법 Art. 50: an advertising SMS to a Korean number starts with (광고) and
    names a free way out, whichever language the subscriber chose."""
    korean = await register(app, "+821012345678")
    await opted_in(client, full_auth, korean, locale=locale)
    texts = {**MESSAGES, "ko": "(광고) 봄 쿠폰이 왔어요"}
    assert (await deliver(client, full_auth, messages=texts, default="ja")).status_code == 201
    await app.state.outbox.drain()
    assert [(m.to, m.body) for m in carrier.sent] == [
        ("+821012345678", f"{texts['ko']}\n{OPT_OUT['ko']}")
    ]
