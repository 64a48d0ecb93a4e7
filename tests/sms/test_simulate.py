"""`smsreg sms simulate` signs Twilio's webhooks as Twilio does, for a local service."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_KEYS
from tests.consent.helpers import ALL_SCOPES, jp, make_key, opted_in, register, rows
from tests.fixtures.live import outside_environ

ROOT = Path(__file__).resolve().parents[2]
SMSREG = [sys.executable, "-c", "from app.cli import main; main()"]
SID = "SM" + "a" * 32


def _env(tmp_path: Path, port: int, token: str) -> dict[str, str]:
    env = outside_environ()
    env.update(
        SMSREG_DATABASE_URL=f"sqlite:///{tmp_path}/simulate.db",
        SMSREG_STATE_DIR=str(tmp_path / "state"),
        SMSREG_PORT=str(port),
        SMSREG_TWILIO_AUTH_TOKEN=token,
        SMSREG_OUTBOX_DISPATCH="external",
        SMSREG_CONSOLE_OUTBOX=str(tmp_path / "sms.jsonl"),
        SMSREG_CONSOLE_PRINT="false",
    )
    for family, key in TEST_KEYS.items():
        env[f"SMSREG_{family.upper()}_KEYS"] = json.dumps({"t1": key})
    return env


def _simulate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMSREG, "sms", "simulate", *(args or ("status", "--sid", SID))],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMSREG, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def _delivered_as_simulated(env: dict[str, str], url: str, tmp_path: Path) -> None:
    key = _cli(env, "api-keys", "create", "--name", "first-hour").stdout.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {key}"}
    started = httpx.post(
        f"{url}/v1/verifications",
        json={"phone": "090-1234-5678", "purpose": "coupon_usage"},
        headers=auth,
        timeout=10,
    )
    assert started.status_code == 201, started.text
    assert _cli(env, "worker", "--once").returncode == 0
    (line,) = (tmp_path / "sms.jsonl").read_text().splitlines()
    reported = _simulate(env, "status", "--sid", json.loads(line)["id"])
    assert reported.stdout.startswith("204"), reported.stdout + reported.stderr
    verification = httpx.get(f"{url}/v1/verifications/{started.json()['id']}", headers=auth)
    assert verification.json()["delivery"]["state"] == "delivered"


@pytest.mark.slow
def test_a_simulated_status_callback_is_accepted_and_a_wrongly_signed_one_refused(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = _env(tmp_path, port, "simulated-token-0123456789")
    server = subprocess.Popen(
        [*SMSREG, "serve"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        result = _simulate(env)
        while result.returncode != 0 and time.monotonic() < deadline:  # still starting
            time.sleep(0.3)
            result = _simulate(env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("204")
        # Twilio names the recipient too: signed with it, the report is believed.
        failed = ("--state", "failed", "--error-code", "21610", "--to", "+819012345678")
        named = _simulate(env, "status", "--sid", SID, *failed)
        assert named.returncode == 0 and named.stdout.startswith("204"), named.stderr
        refused = _simulate(_env(tmp_path, port, "another-token-0123456789"))
        assert refused.returncode == 1 and refused.stdout.startswith("403")
        # As the README tells a newcomer: the console line's id, reported delivered.
        _delivered_as_simulated(env, f"http://127.0.0.1:{port}", tmp_path)
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_simulated_stop_reply_opts_the_sender_out(client, app, settings, tmp_path):
    """The first hour's STOP: a subscriber opted in through the API replies STOP, signed
    by the command as Twilio signs it, and the running service opts them out."""
    sender = jp(77)
    subscriber_id = await register(app, sender)
    await opted_in(client, await make_key(app, ALL_SCOPES), subscriber_id)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    env = _env(tmp_path, port, "simulated-token-0123456789")
    env["SMSREG_DATABASE_URL"] = settings.database_url  # the database the test opted in on
    server = subprocess.Popen(
        [*SMSREG, "serve", "--no-migrate"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    stop = ("inbound", "--from", sender, "--body", "STOP")
    try:
        deadline = time.monotonic() + 60
        result = await asyncio.to_thread(_simulate, env, *stop)
        while result.returncode != 0 and time.monotonic() < deadline:  # still starting
            await asyncio.sleep(0.3)
            result = await asyncio.to_thread(_simulate, env, *stop)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.startswith("200")
    finally:
        server.terminate()
        server.wait(timeout=30)
    found = rows(app, "SELECT status FROM consents WHERE subscriber_id = :s", s=subscriber_id)
    assert [row[0] for row in found] == ["opted_out"]
