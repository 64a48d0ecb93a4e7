"""Helpers for the consent and delivery tests: keys, subscribers, consent changes."""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from app.registry import repository as registry
from app.staff import api_keys
from tests.conftest import sync_engine
from tests.fixtures.flows import check, sent_code, start

ALL_SCOPES = ["verifications:write", "consents:write", "deliveries:write"]
CONSENT_TABLES = ("consent_events", "consents", "deliveries", "delivery_texts", "outbox_messages")


def make_key(app: FastAPI, scopes: list[str], name: str = "coupon-frontend") -> dict[str, str]:
    """Authorization headers for a fresh key with these scopes."""
    new = app.state.db.call(
        api_keys.create, app.state.ctx, name=name, scopes=scopes, created_by="test"
    )
    return {"Authorization": f"Bearer {new.token}"}


def jp(i: int) -> str:
    """A distinct valid Japanese mobile number in E.164."""
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
    started = await start(client, auth, phone=e164, purpose=purpose)
    assert started.status_code == 201, started.text
    code = await sent_code(app, carrier, e164)
    checked = await check(client, auth, started.json()["id"], code)
    assert checked.status_code == 200, checked.text
    subscriber_id: str = checked.json()["subscriber_id"]
    return subscriber_id


def register(app: FastAPI, e164: str, purposes: tuple[str, ...] = ("coupon_delivery",)) -> str:
    """Put a number in the registry as a successful check does (app.verification.service
    ._register), without the SMS round trip: for tests that need many subscribers."""
    ctx = app.state.ctx

    def run(tx: Any) -> str:
        index = ctx.keys.blind_index(e164, kind="number")
        key_id, ciphertext = ctx.keys.encrypt(e164, context=registry.subscriber_aad(index))
        subscriber_id = ""
        for purpose in purposes:
            subscriber_id = registry.upsert_verified(
                tx,
                phone_index=index,
                ciphertext=ciphertext,
                key_id=key_id,
                purpose=purpose,
                now=ctx.clock.now(),
            )
        return subscriber_id

    result: str = app.state.db.call(run)
    return result


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
