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
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.core.clock import UTC
from tests.conftest import TEST_KEYS, TEST_LEDGER_SEED, sync_engine
from tests.fixtures.staff import CHEAP_HASHING, PASSWORD, create_staff
from tests.ledger.conftest import add_subscriber, number, release
from tests.sms.fake_twilio import (  # noqa: F401 (the fixture is used by name)
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    FakeTwilio,
    fake_twilio_fixture,
)

ROOT = Path(__file__).resolve().parents[1]
SMSREG = [sys.executable, "-c", "from app.cli import main; main()"]
NUMBER_HOUR = 3  # sends per number and hour, shared by both replicas
LOGIN_FAILURES = 3  # wrong passwords from one source for one username, over both replicas
CHECKPOINT_SECONDS = 1.0

pytestmark = [
    pytest.mark.slow,
    # PostgreSQL only: several processes on one SQLite file is not a supported fleet.
    pytest.mark.parametrize("database_url", ["postgresql"], indirect=True),
]


class RealClock:
    """The replicas run on the system clock, so the test's own writes do too."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(UTC)


@pytest.fixture
def clock() -> RealClock:
    return RealClock()


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return dict(CHEAP_HASHING)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fleet_env(database_url: str, fake: FakeTwilio, tmp_path: Path) -> dict[str, str]:
    """The settings every process of the fleet gets: one database, one carrier."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMSREG_")}
    env.update(
        SMSREG_ENVIRONMENT="development",  # plain http to the loopback fake carrier
        SMSREG_DATABASE_URL=database_url,
        SMSREG_STATE_DIR=str(tmp_path / "fleet-state"),
        SMSREG_SMS_SENDER="twilio",
        SMSREG_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        SMSREG_TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        SMSREG_TWILIO_FROM_NUMBER=FROM_NUMBER,
        SMSREG_TWILIO_API_BASE_URL=fake.base_url,
        SMSREG_OUTBOX_DISPATCH="external",
        SMSREG_SENDS_PER_NUMBER_HOUR=str(NUMBER_HOUR),
        # Every request comes from 127.0.0.1: the shared velocity guards stay out of the way.
        SMSREG_SENDS_PER_IP_HOUR="10000",
        SMSREG_SENDS_PER_PREFIX_HOUR="10000",
        SMSREG_LOGIN_MAX_FAILURES=str(LOGIN_FAILURES),
        SMSREG_LEDGER_CHECKPOINT_INTERVAL_SECONDS=str(CHECKPOINT_SECONDS),
        SMSREG_LEDGER_SIGNING_KEYS=json.dumps({"t1": TEST_LEDGER_SEED}),
        SMSREG_DB_POOL_SIZE="4",
        SMSREG_LOG_LEVEL="WARNING",
    )
    env.update({f"SMSREG_{name.upper()}": str(value) for name, value in CHEAP_HASHING.items()})
    for family, key in TEST_KEYS.items():
        env[f"SMSREG_{family.upper()}_KEYS"] = json.dumps({"t1": key})
        env[f"SMSREG_{family.upper()}_KEY_ID"] = "t1"
    return env


@dataclass
class Fleet:
    """The base URLs of the two replicas."""

    replicas: list[str]


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*SMSREG, *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


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
    """Two service replicas and one outbox worker, stopped (SIGTERM) after the test."""
    env = fleet_env(settings.database_url, fake_twilio, tmp_path)
    processes: list[subprocess.Popen[bytes]] = []
    urls = []
    try:
        for index in range(2):
            port = _free_port()
            log = tmp_path / f"replica{index}.log"
            server = _spawn(["serve", "--no-migrate"], {**env, "SMSREG_PORT": str(port)}, log)
            processes.append(server)
            urls.append((f"http://127.0.0.1:{port}", server, log))
        processes.append(_spawn(["worker"], env, tmp_path / "worker.log"))
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


def _statuses(app) -> Counter[str]:
    with sync_engine(app).connect() as conn:
        return Counter(conn.execute(sa.text("SELECT status FROM outbox_messages")).scalars())


async def _until(condition, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _start(http: httpx.AsyncClient, url: str, auth: dict[str, str], phone: str, **headers: str):
    return http.post(
        f"{url}/v1/verifications",
        json={"phone": phone, "purpose": "coupon_usage"},
        headers={**auth, **headers},
    )


def _e164(phone: str) -> str:
    return "+81" + phone.replace("-", "")[1:]


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
    def settled() -> bool:
        counts = _statuses(app)
        return counts["pending"] == 0 and counts["sending"] == 0

    await _until(settled, timeout=60, what="the worker to send every message")
    accepted = Counter(message.to for message in fake_twilio.messages)
    for phone in [*spread, once]:
        assert accepted[_e164(phone)] == 1, phone
    assert 1 <= accepted[_e164(burst)] <= NUMBER_HOUR  # a superseded code may be dropped
    assert _statuses(app)["sent"] == sum(accepted.values())


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
    await _until(lambda: bool(_checkpoints(app)), timeout=20, what="a checkpoint")
    await asyncio.sleep(CHECKPOINT_SECONDS * 3)  # three more turns of each replica
    assert _checkpoints(app) == [first.entry.seq]
    second = await release(app, [subject])
    await _until(lambda: len(_checkpoints(app)) > 1, timeout=20, what="a second checkpoint")
    await asyncio.sleep(CHECKPOINT_SECONDS * 3)
    assert _checkpoints(app) == [first.entry.seq, second.entry.seq]
