"""Two `smsreg serve` replicas and one external `smsreg worker` on one PostgreSQL database,
with a fake of Twilio's Messages API over real HTTP: what one replica counted, stored or
locked binds the other, every code goes out once, and the replicas' scheduled ledger
checkpoints do not pile up.

Each process is started as an operator would start it (the `smsreg` command, its own
settings from the environment, the system clock); the test talks to them over HTTP and
reads the database and the fake carrier only to count.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.conftest import sync_engine
from tests.fixtures.staff import CHEAP_HASHING, PASSWORD, create_staff
from tests.fixtures.subject import add_subscriber
from tests.ledger.conftest import number, release
from tests.sms.fake_twilio import (  # noqa: F401 (the fixture is used by name)
    FakeTwilio,
    fake_twilio_fixture,
)
from tests.sms.test_faults import (  # noqa: F401 (the clock fixture is used by name)
    accepted,
    clock,
    e164,
    settled,
    spawn,
    statuses,
    until,
    worker_env,
)

NUMBER_HOUR = 3  # sends per number and hour, shared by both replicas
LOGIN_FAILURES = 3  # wrong passwords from one source for one username, over both replicas
CHECKPOINT_SECONDS = 1.0

pytestmark = [
    pytest.mark.slow,
    # PostgreSQL only: several processes on one SQLite file is not a supported fleet.
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return dict(CHEAP_HASHING)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fleet_env(settings, fake: FakeTwilio, tmp_path: Path) -> dict[str, str]:
    """The settings every process of the fleet gets: one database, one carrier."""
    return worker_env(
        settings,
        fake,
        tmp_path,
        sends_per_number_hour=NUMBER_HOUR,
        # Every request comes from 127.0.0.1: the shared velocity guards stay out of the way.
        sends_per_ip_hour=10_000,
        sends_per_prefix_hour=10_000,
        login_max_failures=LOGIN_FAILURES,
        ledger_checkpoint_interval_seconds=CHECKPOINT_SECONDS,
        db_pool_size=4,
        **CHEAP_HASHING,
    )


@dataclass
class Fleet:
    """The base URLs of the two replicas."""

    replicas: list[str]


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise AssertionError(f"{url} exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} never became ready: {log.read_text()[-2000:]}")
        time.sleep(0.2)


@pytest.fixture
def fleet(settings, fake_twilio, tmp_path) -> Iterator[Fleet]:
    """Two service replicas and one outbox worker, stopped (SIGTERM) after the test.

    The replicas start together and each migrates first (development does): the second
    waits for the first's lock and finds the schema at head."""
    env = fleet_env(settings, fake_twilio, tmp_path)
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for index in range(2):
            port = _free_port()
            name = f"replica{index}"
            server = spawn({**env, "SMSREG_PORT": str(port)}, tmp_path, name, "serve")
            processes.append(server)
            urls.append((f"http://127.0.0.1:{port}", server, tmp_path / f"{name}.log"))
        processes.append(spawn(env, tmp_path, "worker"))
        for url, server, log in urls:
            _wait_ready(url, server, log)
        yield Fleet(replicas=[url for url, _, _ in urls])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _start(http: httpx.AsyncClient, url: str, auth: dict[str, str], phone: str, **headers: str):
    return http.post(
        f"{url}/v1/verifications",
        json={"phone": phone, "purpose": "coupon_usage"},
        headers={**auth, **headers},
    )


async def test_two_replicas_share_limits_idempotency_and_lockouts_and_send_each_code_once(
    app, auth, fleet, fake_twilio
):
    a, b = fleet.replicas
    alternate = [a, b] * 8
    async with httpx.AsyncClient(timeout=30) as http:
        # A number's own limit, exact across replicas even for a concurrent burst.
        burst = "090-7000-0001"
        answers = await asyncio.gather(
            *(_start(http, url, auth, burst) for url in alternate[: NUMBER_HOUR * 3])
        )
        assert sorted(r.status_code for r in answers) == [201] * NUMBER_HOUR + [429] * (
            NUMBER_HOUR * 2
        )
        assert {r.json()["limit"] for r in answers if r.status_code == 429} == {"number_hour"}

        # One Idempotency-Key, sent to both replicas at once and then again: one
        # verification, one SMS; the same key with another body is refused by either.
        key = {"Idempotency-Key": "fleet-order-1"}
        once = "090-7000-0002"
        first = await asyncio.gather(
            _start(http, a, auth, once, **key), _start(http, b, auth, once, **key)
        )
        assert sorted(r.status_code for r in first) == [200, 201]
        assert len({r.json()["id"] for r in first}) == 1
        again = await _start(http, b, auth, once, **key)
        assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first[0].json()["id"]
        reused = await _start(http, a, auth, "090-7000-0003", **key)
        assert reused.status_code == 422
        assert reused.json()["type"].endswith("idempotency-key-reused")

        # Many numbers, half through each replica, at once.
        spread = [f"090-71{i:02d}-{5000 + i}" for i in range(16)]
        started = await asyncio.gather(
            *(_start(http, url, auth, phone) for url, phone in zip(alternate, spread, strict=True))
        )
        assert [r.status_code for r in started] == [201] * len(spread)

        # Wrong passwords counted by both replicas lock the source out on both.
        account = await create_staff(app, "operator", username="fleet-operator")
        login = "/v1/staff/sessions"
        wrong = {"username": account.username, "password": "not the password"}
        for url in alternate[:LOGIN_FAILURES]:
            assert (await http.post(url + login, json=wrong)).status_code == 401
        right = {"username": account.username, "password": PASSWORD}
        for url in (a, b):
            locked = await http.post(url + login, json=right)
            assert locked.status_code == 429, locked.text
            assert locked.json()["type"].endswith("login-throttled")

    # The one worker sends everything; each started verification got exactly one SMS.
    await until(lambda: settled(app), timeout=60, what="the worker to send every message")
    sent = accepted(fake_twilio)
    for phone in [*spread, once]:
        assert sent[e164(phone)] == 1, phone
    assert 1 <= sent[e164(burst)] <= NUMBER_HOUR  # a superseded code may be dropped
    assert statuses(app)["sent"] == sum(sent.values())


def _checkpoints(app) -> list[int]:
    with sync_engine(app).connect() as conn:
        rows = conn.execute(
            sa.text("SELECT seq FROM ledger_checkpoints WHERE kind = 'head' ORDER BY id")
        )
        return list(rows.scalars())


async def test_two_replicas_sign_one_checkpoint_per_new_head(app, fleet):
    """Both replicas checkpoint every second; each new head is signed once, not twice,
    and a head with nothing new after it is not signed again."""
    subject = await add_subscriber(app, number(1))
    first = await release(app, [subject])
    await until(lambda: bool(_checkpoints(app)), timeout=20, what="a checkpoint")
    await asyncio.sleep(CHECKPOINT_SECONDS * 3)  # three more turns of each replica
    assert _checkpoints(app) == [first.entry.seq]
    second = await release(app, [subject])
    await until(lambda: len(_checkpoints(app)) > 1, timeout=20, what="a second checkpoint")
    await asyncio.sleep(CHECKPOINT_SECONDS * 3)
    assert _checkpoints(app) == [first.entry.seq, second.entry.seq]
