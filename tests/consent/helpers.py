"""Helpers for the consent and delivery tests: keys, subscribers, consent changes."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from app.core.crypto import subscriber_aad
from app.core.ids import new_id
from app.verification import repository as verifications
from tests.conftest import sync_engine
from tests.staff.helpers import make_key as _make_key
from tests.staff.helpers import verified as _verified

ALL_SCOPES = ["verifications:write", "consents:write", "deliveries:write"]
CONSENT_TABLES = ("consent_events", "consents", "deliveries", "delivery_texts", "outbox_messages")


async def make_key(
    app: FastAPI, scopes: list[str], name: str = "coupon-frontend"
) -> dict[str, str]:
    """Authorization headers for a fresh key with these scopes."""
    return await _make_key(app, scopes, name=name)


def jp(i: int) -> str:
    """A distinct valid Japanese mobile number in E.164 (fictional: tests only)."""
    return f"+8190{10_000_000 + i:08d}"


async def verified(
    client: httpx.AsyncClient,
    app: FastAPI,
    carrier: Any,
    auth: dict[str, str],
    e164: str,
    purpose: str = "coupon_delivery",
) -> str:
    """Verify a number by SMS through the API (the real way in); its subscriber id."""
    return await _verified(client, app, carrier, auth, e164, purpose)


async def register(
    app: FastAPI, e164: str, purposes: tuple[str, ...] = ("coupon_delivery",)
) -> str:
    """Put a number in the registry as an approved check does (the registry's own write,
    app.verification.repository.upsert_subscriber), without the SMS round trip: for
    tests that need many subscribers."""
    ctx = app.state.ctx
    index = ctx.keys.blind_index(e164, kind="number")
    key_id, ciphertext = ctx.keys.encrypt(e164, context=subscriber_aad(index))
    subscriber_id = ""
    async with app.state.db.transaction() as tx:
        for purpose in purposes:
            subscriber_id = await verifications.upsert_subscriber(
                tx,
                new_subscriber=new_id("sub"),
                ciphertext=ciphertext,
                key_id=key_id,
                phone_index=index,
                purpose=purpose,
                now=ctx.clock.now(),
            )
    return subscriber_id


async def consent(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    subscriber_id: str,
    action: str = "opt_in",
    **extra: Any,
) -> httpx.Response:
    body: dict[str, Any] = {
        "purpose": "coupon_delivery",
        "action": action,
        "source": "web",
        **({"policy_version": "2026-04"} if action == "opt_in" else {}),
        **extra,
    }
    return await client.post(f"/v1/subscribers/{subscriber_id}/consents", json=body, headers=auth)


async def opted_in(
    client: httpx.AsyncClient, auth: dict[str, str], subscriber_id: str, **extra: Any
) -> None:
    answer = await consent(client, auth, subscriber_id, **extra)
    assert answer.status_code == 201, answer.text


def rows(app: FastAPI, sql: str, **params: Any) -> list[Any]:
    with sync_engine(app).connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def counts(app: FastAPI) -> dict[str, int]:
    """Row counts of every table a consent or delivery request could write, audit included."""
    tables = (*CONSENT_TABLES, "audit_events")
    return {table: rows(app, f"SELECT count(*) FROM {table}")[0][0] for table in tables}  # noqa: S608
