"""Helpers for the staff, registry and authorisation tests: accounts, logins, subscribers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from app.core.db import Row
from app.staff import accounts, api_keys
from app.staff.roles import Role
from tests.fixtures.flows import check, sent_code, start

PASSWORD = "correct horse battery"
# argon2id at its cheapest, so tests run fast; the production parameters are settings.
CHEAP_HASHING = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 1024,
    "password_hash_parallelism": 1,
}


def create_staff(
    app: FastAPI,
    role: str | Role,
    *,
    username: str | None = None,
    password: str = PASSWORD,
    display_name: str = "Test Person",
) -> Row:
    """A staff account, created as the command line does."""
    settings = app.state.ctx.settings
    return app.state.db.call(
        accounts.create,
        app.state.ctx,
        actor="test",
        username=username or f"{Role(role).value.replace('_', '-')}-1",
        display_name=display_name,
        role=Role(role),
        password_hash=accounts.hash_password_sync(settings, password),
    )


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    return await client.post(
        "/v1/staff/sessions", json={"username": username, "password": password}, headers=headers
    )


async def staff_auth(
    app: FastAPI, client: httpx.AsyncClient, role: str | Role, *, username: str | None = None
) -> dict[str, str]:
    """Authorization headers of a fresh account of this role, logged in."""
    account = create_staff(app, role, username=username)
    answer = await login(client, account.username)
    assert answer.status_code == 201, answer.text
    return bearer(answer.json()["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_key(app: FastAPI, scopes: list[str]) -> dict[str, str]:
    """Authorization headers of a fresh API key with these scopes."""
    new = app.state.db.call(
        api_keys.create, app.state.ctx, name="coupon-frontend", scopes=scopes, created_by="test"
    )
    return bearer(new.token)


async def verified(
    client: httpx.AsyncClient,
    app: FastAPI,
    carrier: Any,
    auth: dict[str, str],
    e164: str,
    purpose: str = "coupon_usage",
) -> str:
    """Verify a number by SMS through the API (the only way in); its subscriber id."""
    started = await start(client, auth, phone=e164, purpose=purpose)
    assert started.status_code == 201, started.text
    code = await sent_code(app, carrier, e164)
    checked = await check(client, auth, started.json()["id"], code)
    assert checked.status_code == 200, checked.text
    subscriber_id: str = checked.json()["subscriber_id"]
    return subscriber_id


def rows(app: FastAPI, sql: str, **params: Any) -> list[dict[str, Any]]:
    """Rows of a query, straight from the database."""
    with app.state.db.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.text(sql), params)]


def execute(app: FastAPI, sql: str, **params: Any) -> None:
    """Change the database behind the service's back (to set up a case)."""
    with app.state.db.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def events(app: FastAPI, tag: str) -> list[dict[str, Any]]:
    """Audit events of a tag, oldest first, details decoded."""
    found = rows(app, "SELECT * FROM audit_events WHERE tag = :tag ORDER BY id", tag=tag)
    for event in found:
        if isinstance(event["details"], str):
            event["details"] = json.loads(event["details"])
    return found


def dump(app: FastAPI, table: str) -> str:
    """Every value of every row of a table, as one text (to search for what must not be)."""
    return "\n".join(
        " | ".join(repr(value) for value in row.values())
        for row in rows(app, f"SELECT * FROM {table}")  # noqa: S608 (our own table names)
    )
