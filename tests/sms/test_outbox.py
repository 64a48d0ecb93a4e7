"""The outbox loses nothing and sends nothing twice: carrier outages, crashes, two workers."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from app.core.db import Database
from app.main import outbox_worker
from app.sms import outbox
from app.sms.base import SendError, SendResult
from tests.conftest import sync_engine
from tests.fixtures.flows import start


@pytest.fixture
def settings_overrides():
    return {"sends_per_ip_hour": 1000, "sends_per_prefix_hour": 1000}


NUMBERS = [f"090-{5100 + i}-{1000 + i}" for i in range(6)]


def e164(number: str) -> str:
    return "+81" + number.replace("-", "")[1:]


def statuses(app) -> Counter[str]:
    with sync_engine(app).connect() as conn:
        return Counter(conn.execute(sa.text("SELECT status FROM outbox_messages")).scalars())


async def start_all(client, auth, numbers=NUMBERS):
    for number in numbers:
        assert (await start(client, auth, phone=number)).status_code == 201


async def test_carrier_down_then_back_sends_each_useful_message_once(
    client, app, carrier, clock, auth
):
    await start_all(client, auth)
    carrier.fail_with = SendError("carrier unavailable", code="503", permanent=False)
    for _ in range(3):  # down for a while: every try fails and is rescheduled
        await app.state.outbox.drain()
        clock.advance(seconds=61)
    assert carrier.sent == []
    assert statuses(app) == {"pending": len(NUMBERS)}
    carrier.fail_with = None
    await app.state.outbox.drain()
    assert Counter(message.to for message in carrier.sent) == {e164(n): 1 for n in NUMBERS}
    assert statuses(app) == {"sent": len(NUMBERS)}
    await app.state.outbox.drain()
    assert len(carrier.sent) == len(NUMBERS)


async def test_messages_whose_code_died_during_an_outage_are_never_sent(
    client, app, carrier, clock, auth
):
    await start_all(client, auth, NUMBERS[:2])
    carrier.fail_with = SendError("carrier unavailable", code="503", permanent=False)
    await app.state.outbox.drain()
    clock.advance(minutes=10)
    carrier.fail_with = None
    await app.state.outbox.drain()
    assert carrier.sent == []
    assert statuses(app) == {"expired": 2}


async def test_permanent_failure_is_not_retried_and_is_shown(client, app, carrier, clock, auth):
    verification_id = (await start(client, auth)).json()["id"]
    carrier.fail_with = SendError("invalid 'To' number", code="21211", permanent=True)
    await app.state.outbox.drain()
    carrier.fail_with = None
    clock.advance(minutes=2)
    await app.state.outbox.drain()
    assert carrier.sent == []
    state = (await client.get(f"/v1/verifications/{verification_id}", headers=auth)).json()
    assert state["delivery"]["state"] == "failed"
    assert state["delivery"]["error_code"] == "21211"


async def test_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(
    client, app, carrier, clock, auth
):
    await start_all(client, auth)
    # A worker claims a batch and dies before sending or recording anything.
    async with app.state.db.transaction() as tx:
        claimed, _ = await outbox.claim_and_render(
            tx, app.state.ctx, app.state.outbox.renderers, now=clock.now(), limit=3
        )
    assert claimed == 3
    # The restarted worker sends what is free, and leaves the dead worker's lease alone...
    await app.state.outbox.drain()
    assert len(carrier.sent) == len(NUMBERS) - 3
    # ...until the lease runs out; then the rest goes, once.
    clock.advance(seconds=61)
    await app.state.outbox.drain()
    assert Counter(message.to for message in carrier.sent) == {e164(n): 1 for n in NUMBERS}
    assert statuses(app) == {"sent": len(NUMBERS)}


class KickedWhileSending:
    """The carrier, and a start that arrives (and kicks the worker) during the first send."""

    name, blocking = "fake", False

    def __init__(self, carrier, arrive) -> None:
        self.carrier, self.arrive = carrier, arrive

    def send(self, *, to: str, body: str) -> SendResult:
        if self.arrive is not None:
            arrive, self.arrive = self.arrive, None
            arrive()
        return self.carrier.send(to=to, body=body)


@pytest.mark.parametrize(
    ("whole", "kicked", "first"),
    [(True, True, 3), (False, True, 2), (False, False, 3)],
)
async def test_a_kicked_worker_leaves_what_came_due_meanwhile_to_a_fuller_batch(
    client, app, carrier, clock, auth, whole, kicked, first
):
    """The in-process worker (whole=False), kicked while it sends, stops after a batch
    that was not full; unkicked (a separate worker) or whole, it drains on."""
    await start_all(client, auth, NUMBERS[:1])
    carrier.fail_with = SendError("carrier unavailable", code="503", permanent=False)
    await app.state.outbox.drain()  # the first message now waits a few seconds to retry
    carrier.fail_with = None
    await start_all(client, auth, NUMBERS[1:3])
    worker = outbox_worker(app.state.db, app.state.ctx, carrier)
    worker.batch = 10

    def arrive() -> None:  # the retry comes due while the batch is sent
        clock.advance(seconds=61)
        if kicked:
            worker.kick()

    worker.sender = KickedWhileSending(carrier, arrive)
    assert await worker.drain(whole=whole) == first
    # The run_forever loop lingers, then drains again: nothing is left behind.
    assert await worker.drain(whole=whole) == 3 - first
    assert Counter(message.to for message in carrier.sent) == {e164(n): 1 for n in NUMBERS[:3]}


async def test_two_workers_draining_one_outbox_never_send_twice(
    client, app, settings, clock, carrier, auth
):
    numbers = [f"080-{5200 + i}-{2000 + i}" for i in range(40)]
    await start_all(client, auth, numbers)
    # Two workers, each with its own connection and event loop, as two processes would.
    workers = [outbox_worker(Database(app.state.db.url), app.state.ctx, carrier) for _ in range(2)]
    for worker in workers:
        worker.batch = 3  # small batches, so the two interleave
    errors: list[BaseException] = []

    def run(worker) -> None:
        async def drain() -> None:
            try:
                await worker.drain()
            finally:
                await worker.db.dispose()

        try:
            asyncio.run(drain())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert Counter(message.to for message in carrier.sent) == {e164(n): 1 for n in numbers}
