"""Helpers for the credentials tests: TOTP codes, enrolment, logins with a second factor,
the command line on the test database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import httpx
import pyotp
from fastapi import FastAPI
from typer.testing import CliRunner

from app.cli import cli
from app.core.config import Settings
from app.core.key_material import SECRET_FAMILIES
from tests.staff.helpers import CHEAP_HASHING, PASSWORD, bearer, create_staff, login

# The production default: privacy officers and admins need TOTP (tests/conftest.py
# turns it off for the other areas' tests).
TOTP_ON = {**CHEAP_HASHING, "totp_required_roles": ["privacy_officer", "admin"]}
runner = CliRunner()


def code_at(secret: str, when: dt.datetime, steps: int = 0) -> str:
    """The TOTP code of ``secret`` at ``when``, ``steps`` 30-second steps later."""
    return pyotp.TOTP(secret).at(when, counter_offset=steps)


async def enrol(
    client: httpx.AsyncClient, headers: dict[str, str], now: dt.datetime
) -> tuple[str, list[str]]:
    """Enrol TOTP for the session's account: (secret, recovery codes)."""
    started = await client.post("/v1/staff/me/totp", headers=headers)
    assert started.status_code == 201, started.text
    secret = started.json()["secret"]
    confirmed = await client.post(
        "/v1/staff/me/totp/confirm", json={"code": code_at(secret, now)}, headers=headers
    )
    assert confirmed.status_code == 200, confirmed.text
    return secret, confirmed.json()["recovery_codes"]


async def login_with(
    client: httpx.AsyncClient,
    username: str,
    password: str = PASSWORD,
    **second: str,
) -> httpx.Response:
    """A login with a second factor (totp=... or recovery_code=...)."""
    return await client.post(
        "/v1/staff/sessions", json={"username": username, "password": password, **second}
    )


async def enrolled_staff(
    app: FastAPI, client: httpx.AsyncClient, clock: Any, role: str, username: str
) -> tuple[dict[str, str], str, list[str]]:
    """A fresh account of this role with TOTP enrolled: (headers, secret, recovery codes).

    The clock moves one step on, so the enrolment's code is not the next login's.
    """
    await create_staff(app, role, username=username)
    first = await login(client, username)
    assert first.status_code == 201, first.text
    secret, codes = await enrol(client, bearer(first.json()["token"]), clock.now())
    clock.advance(seconds=30)
    again = await login_with(client, username, totp=code_at(secret, clock.now()))
    assert again.status_code == 201, again.text
    return bearer(again.json()["token"]), secret, codes


def use_cli(settings: Settings, monkeypatch: Any) -> None:
    """Point the command line at the test app's database, keys and settings."""
    monkeypatch.setenv("SMSREG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SMSREG_STATE_DIR", str(settings.state_dir))
    for family in SECRET_FAMILIES:
        ring = {k: v.get_secret_value() for k, v in getattr(settings, f"{family}_keys").items()}
        monkeypatch.setenv(f"SMSREG_{family.upper()}_KEYS", json.dumps(ring))
        monkeypatch.setenv(f"SMSREG_{family.upper()}_KEY_ID", getattr(settings, f"{family}_key_id"))
    for name in (*CHEAP_HASHING, "totp_required_roles", "password_max_age_days"):
        value = getattr(settings, name)
        monkeypatch.setenv(f"SMSREG_{name.upper()}", json.dumps(value))


def invoke(*args: str, stdin: str | None = None) -> Any:
    """Run ``smsreg ARGS``."""
    return runner.invoke(cli, list(args), input=stdin)


async def invoke_async(*args: str, stdin: str | None = None) -> Any:
    """Run ``smsreg ARGS`` from an async test: in a thread, since a command runs its own
    event loop."""
    return await asyncio.to_thread(invoke, *args, stdin=stdin)
