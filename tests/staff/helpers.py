"""Helpers for the staff, registry and authorisation tests: logins, keys, subscribers, rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pyotp
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.clients import service as clients
from tests.conftest import call, sync_engine
from tests.fixtures.flows import check, sent_code, start
from tests.fixtures.staff import (  # noqa: F401 (shared with the tests that import them here)
    CHEAP_HASHING,
    PASSWORD,
    bearer,
    create_staff,
    staff_auth,
)


async def login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    return await client.post(
        "/v1/staff/sessions", json={"username": username, "password": password}, headers=headers
    )


async def make_key(
    app: FastAPI, scopes: list[str], *, name: str = "coupon-frontend"
) -> dict[str, str]:
    """Authorization headers of a fresh API key with these scopes."""
    new = await call(app, clients.create, name=name, scopes=scopes, created_by="test")
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
    with sync_engine(app).connect() as conn:
        return [dict(row._mapping) for row in conn.execute(sa.text(sql), params)]


def execute(app: FastAPI, sql: str, **params: Any) -> None:
    """Change the database behind the service's back (to set up a case)."""
    with sync_engine(app).begin() as conn:
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


OWN_PASSWORD = "my own long passphrase"


async def enrol(client, clock, token, password=OWN_PASSWORD):
    """Take an invitation up: the password, then a first TOTP code. The confirm answer."""
    started = await client.post("/v1/staff/enrolment", json={"token": token, "password": password})
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    code = pyotp.TOTP(secret).at(clock.now())
    done = await client.post("/v1/staff/enrolment/confirm", json={"token": token, "code": code})
    assert done.status_code == 200, done.text
    return done.json(), secret


@contextmanager
def rival(app, *statements: str, params: dict[str, str]) -> Iterator[None]:
    """Run ``statements`` in a transaction of another session, committed when the block
    ends; skips on SQLite, where units run one at a time."""
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    with engine.connect() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params)
        yield
        conn.commit()


def take_without_waiting(conn: sa.Connection, statement: str, params: dict[str, str]) -> None:
    """The rival's next lock, which must be free by now: waiting for it (a request holding
    it, a deadlock in the making) fails the test within two seconds."""
    conn.execute(sa.text("SET LOCAL lock_timeout = '2s'"))
    conn.execute(sa.text(statement), params)
