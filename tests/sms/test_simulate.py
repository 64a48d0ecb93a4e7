"""`smsreg sms simulate` signs Twilio's webhooks as Twilio does, for a local service."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_KEYS

ROOT = Path(__file__).resolve().parents[2]
SMSREG = [sys.executable, "-c", "from app.cli import main; main()"]
SID = "SM" + "a" * 32


def _env(tmp_path: Path, port: int, token: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMSREG_")}
    env.update(
        SMSREG_DATABASE_URL=f"sqlite:///{tmp_path}/simulate.db",
        SMSREG_STATE_DIR=str(tmp_path / "state"),
        SMSREG_PORT=str(port),
        SMSREG_TWILIO_AUTH_TOKEN=token,
        SMSREG_OUTBOX_DISPATCH="external",
    )
    for family, key in TEST_KEYS.items():
        env[f"SMSREG_{family.upper()}_KEYS"] = json.dumps({"t1": key})
    return env


def _simulate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMSREG, "sms", "simulate", "status", "--sid", SID],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


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
        refused = _simulate(_env(tmp_path, port, "another-token-0123456789"))
        assert refused.returncode == 1 and refused.stdout.startswith("403")
    finally:
        server.terminate()
        server.wait(timeout=30)
