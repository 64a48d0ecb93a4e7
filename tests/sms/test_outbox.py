"""The outbox loses nothing and sends nothing twice: carrier outages, crashes, two workers,
leases taken over, outcomes the carrier never gave, and a worker asked to stop."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter

import pytest
import sqlalchemy as sa

from app.core.db import Database
from app.core.logging import JsonFormatter
from app.main import outbox_worker
from app.sms import outbox
from app.sms.base import SendError, SendResult
from tests.conftest import sync_engine
from tests.fixtures.flows import start
from tests.staff.helpers import rows


@pytest.fixture
def settings_overrides():
    return {"sends_per_ip_hour": 1000, "sends_per_prefix_hour": 1000}


NUMBERS = [f"090-{5100 + i}-{1000 + i}" for i in range(6)]
LEASE = 60  # seconds, the default


def e164(number: str) -> str:
    return "+81" + number.replace("-", "")[1:]


def statuses(app) -> Counter[str]:
    with sync_engine(app).connect() as conn:
        return Counter(conn.execute(sa.text("SELECT status FROM outbox_messages")).scalars())


def sent_to(carrier) -> Counter[str]:
    return Counter(message.to for message in carrier.sent)


async def start_all(client, auth, numbers=NUMBERS):
    for number in numbers:
        assert (await start(client, auth, phone=number)).status_code == 201


async def claim(app, clock, limit):
    async with app.state.db.transaction() as tx:
        return await outbox.claim(tx, now=clock.now(), lease=app.state.outbox.lease, limit=limit)


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
    assert sent_to(carrier) == {e164(n): 1 for n in NUMBERS}
    assert statuses(app) == {"sent": len(NUMBERS)}
    await app.state.outbox.drain()
    assert len(carrier.sent) == len(NUMBERS)


async def test_an_outage_never_fails_a_code_that_is_still_valid(client, app, carrier, clock, auth):
    """Retries go on while the code lives (at most a retry delay apart), not for a fixed
    number of attempts: down for nine of its ten minutes, it still goes out, once."""
    await start_all(client, auth, NUMBERS[:1])
    carrier.fail_with = SendError("carrier unavailable", code="503", permanent=False)
    for _ in range(18):
        await app.state.outbox.drain()
        clock.advance(seconds=30)
        assert statuses(app) == {"pending": 1}
    carrier.fail_with = None
    await app.state.outbox.drain()
    assert sent_to(carrier) == {e164(NUMBERS[0]): 1}


async def test_a_resend_during_an_outage_sends_the_code_once_when_the_carrier_is_back(
    client, app, carrier, clock, auth
):
    """The person got nothing and asked again while the carrier was down: the resend
    queued a second message beside the first, still retrying, and both went out when the
    carrier came back (the same code twice, the older last). The newest is sent; the
    earlier one, never handed to the carrier, expires unsent."""
    started = await start(client, auth, phone=NUMBERS[0])
    carrier.fail_with = SendError("carrier unavailable", code="503", permanent=False)
    await app.state.outbox.drain()
    clock.advance(seconds=31)
    url = f"/v1/verifications/{started.json()['id']}/resend"
    assert (await client.post(url, headers=auth)).status_code == 202
    await app.state.outbox.drain()
    assert carrier.sent == [] and statuses(app)["pending"] >= 1
    carrier.fail_with = None
    for _ in range(3):  # every retry comes due
        await app.state.outbox.drain()
        clock.advance(seconds=61)
    assert sent_to(carrier) == {e164(NUMBERS[0]): 1}
    assert statuses(app) == {"sent": 1, "expired": 1}
    state = await client.get(f"/v1/verifications/{started.json()['id']}", headers=auth)
    assert state.json()["delivery"]["state"] == "sent"


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


async def test_an_unknown_outcome_is_never_sent_again(client, app, carrier, clock, auth):
    """The carrier may have accepted a request it never answered: no second SMS."""
    verification_id = (await start(client, auth)).json()["id"]
    carrier.fail_with = SendError("no answer", code="no_answer", permanent=False, unknown=True)
    await app.state.outbox.drain()
    carrier.fail_with = None
    for _ in range(3):
        clock.advance(seconds=LEASE + 1)
        await app.state.outbox.drain()
    assert carrier.sent == []
    assert statuses(app) == {"unknown": 1}
    state = (await client.get(f"/v1/verifications/{verification_id}", headers=auth)).json()
    assert state["delivery"]["state"] == "unknown"
    # The person can ask for the code again; that send goes out.
    clock.advance(seconds=30)
    headers = auth
    assert (
        await client.post(f"/v1/verifications/{verification_id}/resend", headers=headers)
    ).status_code == 202
    await app.state.outbox.drain()
    assert len(carrier.sent) == 1


async def test_a_worker_killed_before_sending_loses_nothing_and_doubles_nothing(
    client, app, carrier, clock, auth
):
    await start_all(client, auth)
    # A worker claims a batch and dies before taking any of it for sending.
    assert len(await claim(app, clock, 3)) == 3
    # The restarted worker sends what is free, and leaves the dead worker's lease alone...
    await app.state.outbox.drain()
    assert len(carrier.sent) == len(NUMBERS) - 3
    # ...until the lease runs out; then the rest goes, once.
    clock.advance(seconds=LEASE + 1)
    await app.state.outbox.drain()
    assert sent_to(carrier) == {e164(n): 1 for n in NUMBERS}
    assert statuses(app) == {"sent": len(NUMBERS)}


async def test_a_worker_killed_mid_send_leaves_an_unknown_never_a_second_sms(
    client, app, carrier, clock, auth
):
    """Died after handing a message to the carrier, before recording the answer: it may
    have gone out, so it is settled as unknown when the lease runs out."""
    await start_all(client, auth, NUMBERS[:2])
    dead = (await claim(app, clock, 1))[0]
    assert await outbox.start_sending(
        app.state.db,
        [dead],
        wanted=app.state.outbox.renderers[dead.kind].wanted,
        now=clock.now(),
        lease=app.state.outbox.lease,
    )
    await app.state.outbox.drain()
    clock.advance(seconds=LEASE + 1)
    await app.state.outbox.drain()
    assert len(carrier.sent) == 1  # the other number's
    assert statuses(app) == {"sent": 1, "unknown": 1}


async def test_a_claim_taken_over_writes_nothing(client, app, carrier, clock, auth):
    """A worker whose lease ran out and was taken over cannot record an outcome."""
    await start_all(client, auth, NUMBERS[:1])
    first = (await claim(app, clock, 1))[0]
    clock.advance(seconds=LEASE + 1)
    second = (await claim(app, clock, 1))[0]
    assert (second.id, second.token) == (first.id, first.token + 1)
    wanted = app.state.outbox.renderers[first.kind].wanted
    lease = app.state.outbox.lease
    assert not await outbox.start_sending(
        app.state.db, [first], wanted=wanted, now=clock.now(), lease=lease
    )
    failed = outbox.Outcome("failed", None, {}, error_code="x")
    assert not await outbox.record(app.state.db, [(first, failed)], now=clock.now())
    assert await outbox.start_sending(
        app.state.db, [second], wanted=wanted, now=clock.now(), lease=lease
    )
    sent = outbox.Outcome("sent", None, {}, carrier="fake", carrier_message_id="SM1")
    assert await outbox.record(app.state.db, [(second, sent)], now=clock.now()) == {second.id}
    assert statuses(app) == {"sent": 1}


async def test_a_code_superseded_after_the_claim_is_not_sent(client, app, carrier, clock, auth):
    """Wanted is checked again in the statement that takes a message for sending."""
    await start_all(client, auth, NUMBERS[:1])
    message = (await claim(app, clock, 1))[0]
    await start_all(client, auth, NUMBERS[:1])  # a new start supersedes the first
    assert not await outbox.start_sending(
        app.state.db,
        [message],
        wanted=app.state.outbox.renderers[message.kind].wanted,
        now=clock.now(),
        lease=app.state.outbox.lease,
    )


class Gate:
    """A carrier that holds every send until told, and counts those in flight."""

    name, blocking = "gated", True

    def __init__(self, carrier) -> None:
        self.carrier = carrier
        self.open = threading.Event()
        self.lock = threading.Lock()
        self.in_flight = self.most = 0

    def send(self, *, to: str, body: str, **_: object) -> SendResult:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            self.open.wait(timeout=10)
            return self.carrier.send(to=to, body=body)
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.mark.parametrize("settings_overrides", [{"outbox_concurrency": 3}])
async def test_sends_go_out_a_few_at_a_time(client, app, carrier, clock, auth):
    await start_all(client, auth)
    gate = Gate(carrier)
    worker = outbox_worker(app.state.db, app.state.ctx, gate)
    drained = asyncio.create_task(worker.drain())
    while gate.in_flight < 3:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert gate.in_flight == 3  # never more than the setting
    gate.open.set()
    assert await drained == len(NUMBERS)
    assert gate.most == 3
    assert sent_to(carrier) == {e164(n): 1 for n in NUMBERS}


class SlowFor(Gate):
    """A carrier that holds the sends to one number until told, and answers the rest."""

    def __init__(self, carrier, slow_to: str) -> None:
        super().__init__(carrier)
        self.slow_to = slow_to

    def send(self, *, to: str, body: str, **_: object) -> SendResult:
        if to == self.slow_to:
            return super().send(to=to, body=body)
        return self.carrier.send(to=to, body=body)


@pytest.mark.parametrize("settings_overrides", [{"outbox_concurrency": 3}])
async def test_a_slow_answer_holds_back_no_other_messages_record(client, app, carrier, auth):
    """Each outcome is written as soon as it is known: a crash while one answer is slow
    leaves the others recorded as sent, not as unknown."""
    numbers = NUMBERS[:3]
    await start_all(client, auth, numbers)
    gate = SlowFor(carrier, e164(numbers[0]))
    worker = outbox_worker(app.state.db, app.state.ctx, gate)
    drained = asyncio.create_task(worker.drain())
    try:
        deadline = asyncio.get_running_loop().time() + 10
        # Both: on a busy machine the slow send's thread may start after the others
        # were recorded.
        while statuses(app)["sent"] < 2 or gate.in_flight < 1:
            assert asyncio.get_running_loop().time() < deadline, statuses(app)
            await asyncio.sleep(0.02)
        assert gate.in_flight == 1 and statuses(app) == {"sent": 2, "sending": 1}
    finally:
        gate.open.set()
        await drained
    assert statuses(app) == {"sent": 3}


@pytest.mark.parametrize("settings_overrides", [{"outbox_concurrency": 2}])
async def test_a_stopping_worker_finishes_its_sends_and_gives_back_the_rest(
    client, app, carrier, clock, auth
):
    await start_all(client, auth)
    gate = Gate(carrier)
    worker = outbox_worker(app.state.db, app.state.ctx, gate)
    drained = asyncio.create_task(worker.drain())
    while gate.in_flight < 2:
        await asyncio.sleep(0.01)
    worker.request_stop()  # SIGTERM
    gate.open.set()
    await drained
    # The two in flight were sent and recorded; the rest is free again at once, with
    # no lease to wait out.
    assert len(carrier.sent) == 2
    assert statuses(app) == {"sent": 2, "pending": len(NUMBERS) - 2}
    await app.state.outbox.drain()
    assert sent_to(carrier) == {e164(n): 1 for n in NUMBERS}


class KickedWhileSending:
    """The carrier, and a start that arrives (and kicks the worker) during the first send."""

    name, blocking = "fake", False

    def __init__(self, carrier, arrive) -> None:
        self.carrier, self.arrive = carrier, arrive

    def send(self, *, to: str, body: str, **_: object) -> SendResult:
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
    assert sent_to(carrier) == {e164(n): 1 for n in NUMBERS[:3]}


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
    assert sent_to(carrier) == {e164(n): 1 for n in numbers}


_REFUSE_SENDING = {
    "sqlite": [
        "CREATE TABLE refuse_sending (n INTEGER)",
        "CREATE TRIGGER refuse_sending BEFORE UPDATE OF send_started_at ON outbox_messages "
        "WHEN (SELECT count(*) FROM refuse_sending) > 0 "
        "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    ],
    "postgresql": [
        "CREATE TABLE refuse_sending (n integer)",
        "CREATE FUNCTION refuse_sending() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF EXISTS (SELECT 1 FROM refuse_sending) THEN RAISE EXCEPTION 'refused by the test'; "
        "END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_sending BEFORE UPDATE OF send_started_at ON outbox_messages "
        "FOR EACH ROW EXECUTE FUNCTION refuse_sending()",
    ],
}


async def test_a_database_error_when_taking_messages_gives_them_back_unsent(
    client, app, carrier, clock, auth
):
    """The statement that marks claimed messages as handed to the carrier fails (the
    database refuses it, as a cut connection or a failover would): they are given back,
    due again a second later, and go, each once. (They were expired unsent, as if their
    codes were dead, and those people never got an SMS.)"""
    await start_all(client, auth)
    engine = sync_engine(app)
    with engine.begin() as conn:
        for statement in _REFUSE_SENDING[engine.dialect.name]:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql("INSERT INTO refuse_sending VALUES (1)")
    await app.state.outbox.drain()
    assert carrier.sent == []
    assert statuses(app) == {"pending": len(NUMBERS)}  # given back, not in a busy loop
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM refuse_sending")
    await app.state.outbox.drain()
    assert carrier.sent == []  # not due again yet
    clock.advance(seconds=2)
    await app.state.outbox.drain()
    assert sent_to(carrier) == {e164(n): 1 for n in NUMBERS}
    assert statuses(app) == {"sent": len(NUMBERS)}


async def test_the_sender_is_told_the_message_and_how_long_it_is_of_use(
    client, app, auth, carrier, clock
):
    """The outbox's id (a carrier's status report names it) and the seconds left until
    the message expires (a code's ten minutes), so the carrier drops it rather than
    deliver a dead code hours late."""
    verification_id = (await start(client, auth)).json()["id"]
    clock.advance(seconds=40)
    await app.state.outbox.drain()
    [sent] = carrier.sent
    [message] = rows(app, "SELECT id FROM outbox_messages WHERE verification_id = :v",
                     v=verification_id)  # fmt: skip
    assert (sent.reference, sent.valid_for, sent.bulk) == (message["id"], 600 - 40, False)


async def test_a_carrier_error_code_survives_the_log_redaction(client, app, carrier, auth, caplog):
    """Twilio's codes are five digits, which the logs mask as if they were an SMS code:
    'invalid number' and 'bad credentials' read the same. Joined to the carrier's name,
    the code is kept; the number and the message are never logged."""
    await start_all(client, auth, NUMBERS[:1])
    carrier.fail_with = SendError("invalid 'To' +819012345678", code="21211", permanent=True)
    with caplog.at_level(logging.WARNING, logger="smsreg.outbox"):
        await app.state.outbox.drain()
    lines = [JsonFormatter().format(r) for r in caplog.records if r.msg == "sms send failed"]
    assert len(lines) == 1 and '"carrier_error":"fake_21211"' in lines[0].replace(" ", "")
    assert "9012345678" not in lines[0]


async def test_a_database_away_is_one_warning_line_not_an_error_with_a_traceback(
    app, carrier, tmp_path, caplog
):
    """A restart or a failover made the worker log ERROR with a whole traceback each
    time, where the service logs one WARNING line for the same event: an alert page
    after every routine failover."""
    from tests.conftest import make_settings
    from tests.sms.fake_twilio import unused_port

    away = Database.from_settings(
        make_settings(f"postgresql+psycopg://postgres@127.0.0.1:{unused_port()}/x", tmp_path)
    )
    worker = outbox_worker(away, app.state.ctx, carrier)
    caplog.set_level(logging.WARNING, logger="smsreg.outbox")
    running = asyncio.create_task(worker.run_forever(poll_seconds=0.05))
    await asyncio.sleep(0.3)
    worker.request_stop()
    await asyncio.wait_for(running, timeout=5)
    await away.dispose()
    lines = [r for r in caplog.records if r.name == "smsreg.outbox"]
    assert lines and all(r.levelno == logging.WARNING and r.exc_info is None for r in lines)
    assert lines[0].getMessage() == "outbox drain: database unavailable"
