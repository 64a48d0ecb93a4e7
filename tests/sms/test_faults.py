"""Faults against the outbox, end to end: `smsreg worker` processes sending to a fake of
Twilio's Messages API over real HTTP, killed and stopped inside batches, racing each
other on a slow carrier, losing their database connections, and a carrier that accepts
and answers too late.

Each test counts, per number, the messages the fake carrier accepted. The promise: one
accepted SMS per started verification. The one documented exception is a message handed
to the carrier whose answer was lost (a worker killed mid-send, a carrier that answered
after the timeout): it is settled as ``unknown`` and never sent again, so such a number
gets at most one SMS, and those are counted and bounded by what was in flight.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.core.clock import UTC
from tests.conftest import sync_engine
from tests.fixtures.flows import start
from tests.fixtures.live import smsreg_env
from tests.sms.fake_twilio import (  # noqa: F401 (the fixture is used by name)
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    FakeTwilio,
    fake_twilio_fixture,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
LEASE = 10  # seconds: the shortest the settings allow, so lapsed leases come quickly


class RealClock:
    """The worker processes run on the system clock, so the app does too."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


@pytest.fixture
def clock() -> RealClock:
    return RealClock()


@pytest.fixture
def settings_overrides():
    return {"sends_per_ip_hour": 10_000, "sends_per_prefix_hour": 10_000}


def numbers(count: int, base: int = 6000) -> list[str]:
    return [f"090-{base + i}-{3000 + i}" for i in range(count)]


def e164(number: str) -> str:
    return "+81" + number.replace("-", "")[1:]


async def start_all(client, auth, phones: list[str]) -> None:
    for phone in phones:
        assert (await start(client, auth, phone=phone)).status_code == 201


def statuses(app) -> Counter[str]:
    with sync_engine(app).connect() as conn:
        return Counter(conn.execute(sa.text("SELECT status FROM outbox_messages")).scalars())


def accepted(fake: FakeTwilio) -> Counter[str]:
    return Counter(message.to for message in fake.messages)


def worker_env(settings, fake: FakeTwilio, tmp_path: Path, **extra: object) -> dict[str, str]:
    worker = {
        "sms_sender": "twilio",
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_from_number": FROM_NUMBER,
        "twilio_api_base_url": fake.base_url,
        "outbox_dispatch": "external",
        "outbox_lease_seconds": LEASE,
    }
    return smsreg_env(settings.database_url, tmp_path / "worker-state", **{**worker, **extra})


def spawn(
    env: dict[str, str], tmp_path: Path, name: str, command: str = "worker"
) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-c", "from app.cli import main; main()", command],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def drain(app, env: dict[str, str], tmp_path: Path) -> None:
    """A fresh worker sends what is left, and stops."""
    process = spawn(env, tmp_path, "last")
    try:
        await until(lambda: settled(app), timeout=60, what="every message to settle")
    finally:
        await stop(process, signal.SIGTERM)


async def until(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def settled(app) -> bool:
    counts = statuses(app)
    return counts["pending"] == 0 and counts["sending"] == 0


async def stop(process: subprocess.Popen[bytes], signum: int) -> float:
    started = time.monotonic()
    process.send_signal(signum)
    await asyncio.to_thread(process.wait, 30)
    return time.monotonic() - started


async def test_two_workers_on_a_slow_carrier_send_each_code_once(
    client, app, auth, settings, fake_twilio, tmp_path
):
    """Each batch takes longer than a lease: the leases are renewed, never taken over."""
    phones = numbers(24)
    await start_all(client, auth, phones)
    fake_twilio.latency = 0.6
    env = worker_env(settings, fake_twilio, tmp_path, outbox_concurrency=1, outbox_batch=24)
    workers = [spawn(env, tmp_path, f"worker{i}") for i in range(2)]
    try:
        await until(lambda: settled(app), timeout=60, what="every message to settle")
    finally:
        for process in workers:
            await stop(process, signal.SIGTERM)
    assert accepted(fake_twilio) == {e164(phone): 1 for phone in phones}
    assert statuses(app) == {"sent": len(phones)}


async def test_a_worker_stopped_by_sigterm_three_times_sends_each_code_once(
    client, app, auth, settings, fake_twilio, tmp_path
):
    phones = numbers(60)
    await start_all(client, auth, phones)
    fake_twilio.latency = 0.1
    env = worker_env(settings, fake_twilio, tmp_path, outbox_concurrency=2)
    for round_ in range(3):
        process = spawn(env, tmp_path, f"worker{round_}")
        sent_before = len(fake_twilio.messages)
        await until(
            lambda before=sent_before: len(fake_twilio.messages) >= before + 5,
            timeout=30,
            what="sends to begin",
        )
        # Inside a batch: it finishes its sends in flight and gives back the rest at once.
        assert await stop(process, signal.SIGTERM) < 10
        assert process.returncode == 0
        assert statuses(app)["sending"] == 0, "claims were given back, not left to lapse"
    await drain(app, env, tmp_path)
    assert accepted(fake_twilio) == {e164(phone): 1 for phone in phones}
    assert statuses(app) == {"sent": len(phones)}


async def test_a_worker_killed_three_times_never_sends_a_code_twice(
    client, app, auth, settings, fake_twilio, tmp_path
):
    phones = numbers(60)
    await start_all(client, auth, phones)
    fake_twilio.latency = 0.1
    concurrency = 2
    env = worker_env(settings, fake_twilio, tmp_path, outbox_concurrency=concurrency)
    kills = 3
    for round_ in range(kills):
        process = spawn(env, tmp_path, f"worker{round_}")
        sent_before = len(fake_twilio.messages)
        await until(
            lambda before=sent_before: len(fake_twilio.messages) >= before + 5,
            timeout=30,
            what="sends to begin",
        )
        await stop(process, signal.SIGKILL)
    await asyncio.sleep(LEASE + 1)  # the dead workers' leases run out
    process = spawn(env, tmp_path, "last")
    try:
        await until(lambda: settled(app), timeout=60, what="every message to settle")
    finally:
        await stop(process, signal.SIGTERM)
    counts = accepted(fake_twilio)
    assert max(counts.values()) == 1, "no number got two SMS"
    unknown = statuses(app)["unknown"]
    # The documented case: handed over when the worker died, so maybe sent, never resent.
    assert unknown <= kills * concurrency
    assert len(phones) - len(counts) <= unknown
    assert statuses(app) == Counter(sent=len(phones) - unknown, unknown=unknown)


async def test_a_carrier_that_answers_after_the_timeout_gets_no_second_request(
    client, app, auth, settings, fake_twilio, tmp_path
):
    phones = numbers(3)
    await start_all(client, auth, phones)
    fake_twilio.accept_then_stall_next(seconds=3, times=3)
    env = worker_env(settings, fake_twilio, tmp_path, twilio_timeout_seconds=0.5)
    process = spawn(env, tmp_path, "worker")
    try:
        await until(lambda: settled(app), timeout=30, what="every message to settle")
        await asyncio.sleep(LEASE + 1)  # long enough for any retry or lapsed lease
    finally:
        await stop(process, signal.SIGTERM)
    assert accepted(fake_twilio) == {e164(phone): 1 for phone in phones}
    assert fake_twilio.request_count == 3
    assert statuses(app) == {"unknown": 3}


async def test_an_outage_then_recovery_sends_each_code_once(
    client, app, auth, settings, fake_twilio, tmp_path
):
    phones = numbers(20)
    await start_all(client, auth, phones)
    fake_twilio.go_down(mode="error")  # 503 with Twilio's error body
    env = worker_env(
        settings, fake_twilio, tmp_path, outbox_concurrency=4, outbox_retry_max_delay_seconds=1
    )
    process = spawn(env, tmp_path, "worker")
    try:
        await until(lambda: fake_twilio.request_count >= 40, timeout=30, what="retries")
        # Retried, none failed: each waits for its next try, or is in one right now.
        during = statuses(app)
        assert set(during) <= {"pending", "sending"} and sum(during.values()) == len(phones)
        fake_twilio.come_back()
        await until(lambda: settled(app), timeout=30, what="the backlog to drain")
    finally:
        await stop(process, signal.SIGTERM)
    assert accepted(fake_twilio) == {e164(phone): 1 for phone in phones}


async def test_connections_cut_while_outcomes_are_written_lose_and_double_nothing(
    client, app, auth, settings, fake_twilio, tmp_path
):
    if app.state.db.sqlite:
        pytest.skip("connections are cut on the PostgreSQL server")
    phones = numbers(30)
    await start_all(client, auth, phones)
    fake_twilio.latency = 0.15
    env = worker_env(settings, fake_twilio, tmp_path, outbox_concurrency=2)
    process = spawn(env, tmp_path, "worker")
    cut = sa.text(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'smsreg' "
        "AND pid <> pg_backend_pid()"
    )
    terminated = 0
    try:
        # Cut while outcomes are being written: until a third of the messages have one
        # (or 30 s), then let the worker settle the rest. Cutting to the end could starve
        # a slow machine's worker of every connection it opens, which tests nothing more.
        started = time.monotonic()
        while time.monotonic() < started + 30 and not settled(app):
            with sync_engine(app).connect() as conn:
                terminated += int(conn.execute(cut).scalar_one())
            counts = statuses(app)
            if counts["sent"] + counts["unknown"] >= len(phones) // 3:
                break
            await asyncio.sleep(0.3)
        await until(lambda: settled(app), timeout=60, what="the outbox to settle")
    finally:
        await stop(process, signal.SIGTERM)
    assert terminated > 0, "the worker's connections were cut"
    counts = accepted(fake_twilio)
    assert max(counts.values()) == 1, "no number got two SMS"
    # A send whose outcome write failed every retry is the documented unknown.
    unknown = statuses(app)["unknown"]
    assert statuses(app) == Counter(sent=len(phones) - unknown, unknown=unknown)
    assert len(counts) >= len(phones) - unknown


async def test_a_server_stopped_inside_a_batch_sends_each_code_once(
    client, app, auth, settings, fake_twilio, tmp_path
):
    """`smsreg serve` with its in-process worker, stopped by SIGTERM while it sends (an
    ordinary deploy): the sends in flight finish and are recorded, the rest is given
    back at once, and the next process sends it."""
    phones = numbers(40)
    fake_twilio.latency = 0.1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = worker_env(
        settings,
        fake_twilio,
        tmp_path,
        outbox_dispatch="background",
        port=port,
        outbox_concurrency=2,
        sends_per_ip_hour=10_000,
        sends_per_prefix_hour=10_000,
    )
    server = spawn({**env, "SMSREG_HOST": "127.0.0.1"}, tmp_path, "serve", command="serve")
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, headers=auth) as http:
            await until_ready(http)
            for phone in phones:
                body = {"phone": phone, "purpose": "coupon_usage", "locale": "ja"}
                assert (await http.post("/v1/verifications", json=body)).status_code == 201
        await until(lambda: len(fake_twilio.messages) >= 5, timeout=30, what="sends to begin")
        # uvicorn shuts down gracefully, then ends by the signal it caught (-15).
        assert await stop(server, signal.SIGTERM) < 15
        assert statuses(app)["sending"] == 0, "claims were given back, not left to lapse"
    finally:
        if server.poll() is None:
            await stop(server, signal.SIGKILL)
    await drain(app, env, tmp_path)
    assert accepted(fake_twilio) == {e164(phone): 1 for phone in phones}
    assert statuses(app) == {"sent": len(phones)}


async def until_ready(http: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("smsreg serve did not become ready")


async def test_a_stopping_worker_waits_for_a_silent_carrier_no_longer_than_its_stop_timeout(
    client, app, auth, settings, fake_twilio, tmp_path
):
    """OUTBOX_STOP_TIMEOUT_SECONDS holds for `smsreg worker` because no send may wait
    longer (TWILIO_TIMEOUT_SECONDS is at most it): the send in flight is answered or
    given up, and recorded, before the stop; a carrier that never answers leaves it
    `unknown`, never sent again."""
    phones = numbers(1)
    await start_all(client, auth, phones)
    fake_twilio.stall_next(seconds=20)
    env = worker_env(
        settings, fake_twilio, tmp_path, twilio_timeout_seconds=2, outbox_stop_timeout_seconds=4
    )
    process = spawn(env, tmp_path, "worker")
    try:
        await until(lambda: fake_twilio.request_count >= 1, timeout=30, what="the send to begin")
    finally:
        took = await stop(process, signal.SIGTERM)
    assert process.returncode == 0
    assert took < 4 + 2, took
    assert statuses(app) == {"unknown": 1}
    assert fake_twilio.request_count == 1
