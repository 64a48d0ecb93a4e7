"""Campaign messages keep every outbox guarantee: leases, retries, permanent failure,
two workers never sending twice; and queuing resumes after a crash without doubles."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest

from app.clients import service as clients
from app.core.db import Database
from app.delivery import service
from app.delivery.schemas import DeliveryCreate
from app.main import outbox_worker
from app.sms import campaigns
from app.sms.base import SendError
from app.sms.campaigns import CampaignMessage
from tests.conftest import call
from tests.consent.helpers import counts, jp, make_key, opted_in, register, rows
from tests.fixtures.flows import claim

N = 40


@pytest.fixture
def settings_overrides():
    return {"delivery_batch_size": 100}


async def campaign(client, app, full_auth, n=N, start=500):
    for i in range(n):
        await opted_in(client, full_auth, await register(app, jp(start + i)))
    answer = await client.post(
        "/v1/deliveries",
        json={"campaign_id": "c", "messages": {"ja": "クーポン"}, "default_locale": "ja"},
        headers=full_auth,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def statuses(app) -> Counter[str]:
    return Counter(r[0] for r in rows(app, "SELECT status FROM outbox_messages"))


async def test_two_workers_never_send_a_campaign_message_twice(client, app, carrier, full_auth):
    await campaign(client, app, full_auth)
    errors: list[BaseException] = []

    def run() -> None:
        """One worker process: its own event loop, database connection and worker."""

        async def drain() -> None:
            db = Database(app.state.db.url)
            worker = outbox_worker(db, app.state.ctx, carrier)
            worker.batch = 3
            try:
                await worker.drain()
            finally:
                await db.dispose()

        try:
            asyncio.run(drain())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert Counter(m.to for m in carrier.sent) == {jp(500 + i): 1 for i in range(N)}
    assert {m.bulk for m in carrier.sent} == {True}  # campaign messages: bulk, for the carrier


async def test_carrier_outage_retries_then_sends_each_once(client, app, carrier, clock, full_auth):
    await campaign(client, app, full_auth, n=5)
    carrier.fail_with = SendError("carrier unavailable", code="503", permanent=False)
    for _ in range(3):
        await app.state.outbox.drain()
        clock.advance(seconds=61)
    assert carrier.sent == [] and statuses(app) == {"pending": 5}
    carrier.fail_with = None
    await app.state.outbox.drain()
    assert Counter(m.to for m in carrier.sent) == {jp(500 + i): 1 for i in range(5)}


async def test_permanent_failure_is_final_and_counted(client, app, carrier, clock, full_auth):
    delivery = await campaign(client, app, full_auth, n=2)
    carrier.fail_with = SendError("unsubscribed recipient", code="21610", permanent=True)
    await app.state.outbox.drain()
    carrier.fail_with = None
    clock.advance(minutes=5)
    await app.state.outbox.drain()
    assert carrier.sent == []
    state = (await client.get(f"/v1/deliveries/{delivery['id']}", headers=full_auth)).json()
    assert state["states"] == {"failed": 2}


async def test_a_recipient_who_stopped_at_the_carrier_gets_no_more_campaigns(
    client, app, carrier, clock, full_auth
):
    """Twilio's 21610 on a campaign message: its recipient replied STOP there. Their
    opt-in is withdrawn, so the next campaign is not queued for them; a number refused
    for another reason keeps its opt-in."""
    await campaign(client, app, full_auth, n=3)
    carrier.refusing[jp(500)] = SendError(
        "unsubscribed recipient", code="21610", permanent=True, opted_out=True
    )
    carrier.refusing[jp(501)] = SendError("invalid number", code="21211", permanent=True)
    await app.state.outbox.drain()
    assert [m.to for m in carrier.sent] == [jp(502)]
    assert Counter(r[0] for r in rows(app, "SELECT status FROM consents")) == {
        "opted_in": 2,
        "opted_out": 1,
    }
    carrier.refusing.clear()
    clock.advance(minutes=5)
    answer = await client.post(
        "/v1/deliveries",
        json={"campaign_id": "c2", "messages": {"ja": "クーポン"}, "default_locale": "ja"},
        headers=full_auth,
    )
    assert answer.json()["counts"]["queued"] == 2
    await app.state.outbox.drain()
    assert Counter(m.to for m in carrier.sent) == {jp(502): 2, jp(501): 1}


async def test_a_dead_workers_lease_runs_out_then_the_rest_goes_once(
    client, app, carrier, clock, full_auth
):
    await campaign(client, app, full_auth, n=6)
    batch = await claim(app, 4)  # and the worker that claimed them dies before it sends
    assert len(batch) == 4
    await app.state.outbox.drain()
    assert len(carrier.sent) == 2
    clock.advance(seconds=61)
    await app.state.outbox.drain()
    assert Counter(m.to for m in carrier.sent) == {jp(500 + i): 1 for i in range(6)}


async def test_queuing_interrupted_is_resumed_by_the_repeat_without_doubles(
    client, app, carrier, full_auth
):
    for i in range(250):
        await opted_in(client, full_auth, await register(app, jp(700 + i)))
    token = full_auth["Authorization"].split()[1]
    caller = await call(app, clients.authenticate, token=token)
    data = DeliveryCreate(campaign_id="c", messages={"en": "Hi"}, default_locale="en")
    started = await call(app, service.start, client=caller, data=data)
    progress = await call(app, service.queue_batch, delivery_id=started.delivery.id)
    assert progress.status == "queuing" and progress.queued == 100
    # The request died here. Its repeat finishes the job.
    answer = await client.post("/v1/deliveries", json=data.model_dump(), headers=full_auth)
    assert answer.status_code == 200
    assert answer.json()["counts"] == {"eligible": 250, "queued": 250, "skipped": 0}
    assert counts(app)["outbox_messages"] == 250
    await app.state.outbox.drain()
    assert Counter(Counter(m.to for m in carrier.sent).values()) == {1: 250}


async def test_one_message_per_subscriber_per_campaign_by_construction(client, app, full_auth):
    delivery = await campaign(client, app, full_auth, n=1)
    [row] = rows(app, "SELECT subscriber_id, locale FROM outbox_messages")
    now = app.state.ctx.clock.now()
    again = CampaignMessage(
        id="msg_again",
        delivery_id=delivery["id"],
        subscriber_id=row.subscriber_id,
        locale=row.locale,
        created_at=now,
        expires_at=now,
    )
    async with app.state.db.transaction() as tx:
        await campaigns.enqueue(tx, [again])
    assert counts(app)["outbox_messages"] == 1


async def test_another_clients_key_cannot_read_the_delivery(client, app, full_auth):
    delivery = await campaign(client, app, full_auth, n=1)
    other = await make_key(app, ["deliveries:write"], name="other")
    assert (await client.get(f"/v1/deliveries/{delivery['id']}", headers=other)).status_code == 404
