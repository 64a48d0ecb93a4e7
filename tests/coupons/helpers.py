"""Helpers of the coupon tests: keys, verified numbers, redemptions over HTTP and in threads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from fastapi import FastAPI

from app.clients import service as clients
from app.clients.service import Client
from app.core.db import Database
from app.core.errors import AppError
from app.coupons import service
from app.coupons.schemas import RedemptionCreate
from tests.conftest import call
from tests.fixtures.flows import check, sent_code, start

SCOPES = ["verifications:write", "coupons:write"]


async def make_key(app: FastAPI, scopes: list[str] = SCOPES, name: str = "coupon-frontend") -> str:
    """A fresh API key's token."""
    new = await call(app, clients.create, name=name, scopes=scopes, created_by="test")
    token: str = new.token
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jp(i: int) -> str:
    """A distinct valid Japanese mobile number in E.164 (fictional: tests only)."""
    return f"+8190{20_000_000 + i:08d}"


async def approved(
    client: httpx.AsyncClient,
    app: FastAPI,
    carrier: Any,
    auth: dict[str, str],
    e164: str,
    purpose: str = "coupon_usage",
) -> dict[str, Any]:
    """Verify a number by SMS through the API; the check's answer (id, subscriber_id)."""
    started = await start(client, auth, phone=e164, purpose=purpose)
    assert started.status_code == 201, started.text
    checked = await check(client, auth, started.json()["id"], await sent_code(app, carrier, e164))
    assert checked.status_code == 200, checked.text
    answer: dict[str, Any] = checked.json()
    return answer


async def redeem(
    client: httpx.AsyncClient, auth: dict[str, str], coupon_id: str, **body: Any
) -> httpx.Response:
    return await client.post(f"/v1/coupons/{coupon_id}/redemptions", json=body, headers=auth)


def redeem_status(app: FastAPI, caller: Client, coupon_id: str, body: dict[str, str]) -> int:
    """One redemption in its own transaction, on its own connection and event loop: run
    it from a thread, as another process would."""

    async def attempt() -> int:
        db = Database(app.state.db.url)
        try:
            async with db.transaction() as tx:
                await service.redeem(
                    tx,
                    app.state.ctx,
                    client=caller,
                    coupon_id=coupon_id,
                    data=RedemptionCreate(**body),
                )
            return 201
        except AppError as exc:
            return exc.status
        finally:
            await db.dispose()

    return asyncio.run(attempt())


async def threaded_redemptions(
    app: FastAPI, token: str, requests: list[tuple[str, dict[str, str]]]
) -> list[int]:
    """Redemptions from one thread each, each on its own connection: real concurrency."""
    caller = await call(app, clients.authenticate, token=token)
    ready = threading.Barrier(len(requests))

    def one(request: tuple[str, dict[str, str]]) -> int:
        ready.wait(timeout=30)  # all start together, so their transactions overlap
        return redeem_status(app, caller, *request)

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(one, requests))
