"""Key rings for rotation tests, and the service calls that write numbers (no HTTP)."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlmodel import SQLModel

from app.clients import service as clients
from app.clients.service import Client
from app.core.config import Settings
from app.core.context import Context
from app.core.counters import CounterBuffer
from app.core.crypto import Keys, subscriber_aad, verification_aad
from app.core.db import Database
from app.core.key_material import SECRET_FAMILIES
from app.core.tx import Tx
from app.registry import service as registry
from app.verification import checking, codes, service
from app.verification.repository import SHARED_COUNT_PROGRESS, shared_counts_sql
from app.verification.schemas import VerificationCheck, VerificationStart
from tests.conftest import TEST_KEYS, make_settings
from tests.fixtures.fakes import FakeClock

T = TypeVar("T")

# t1 is the conftest's key of each family; t2 and t3 are distinct from it and each other.
MATERIAL = {
    "t1": TEST_KEYS,
    "t2": {
        f: base64.b64encode(bytes([i + 21]) * 32).decode() for i, f in enumerate(SECRET_FAMILIES)
    },
    "t3": {
        f: base64.b64encode(bytes([i + 41]) * 32).decode() for i, f in enumerate(SECRET_FAMILIES)
    },
}
# Generous send limits and a pumping guard that never trips: these tests write many numbers.
QUIET = {
    "sends_per_number_hour": 1_000_000,
    "sends_per_number_day": 1_000_000,
    "sends_per_ip_hour": 1_000_000,
    "sends_per_prefix_hour": 1_000_000,
    "sends_per_country_hour": 1_000_000,
    "pumping_min_sends": 1_000_000,
}


def number(i: int) -> str:
    """The i-th test mobile number (all valid Japanese mobiles)."""
    return f"+8190{20000000 + i:08d}"


def ring_settings(
    database_url: str, tmp_path: Path, *, rings: dict[str, tuple[str, ...]], **extra: Any
) -> Settings:
    """Settings whose rings are ``rings[family]`` (active first); others keep t1 alone."""
    values: dict[str, Any] = {**QUIET, **extra}
    for family in SECRET_FAMILIES:
        ids = rings.get(family, ("t1",))
        values[f"{family}_keys"] = {key_id: MATERIAL[key_id][family] for key_id in ids}
        values[f"{family}_key_id"] = ids[0]
    return make_settings(database_url, tmp_path, **values)


@dataclass
class Node:
    """One process's view: its settings, keys and a database handle (on one event loop)."""

    settings: Settings
    ctx: Context
    db: Database

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Run a service function in one transaction, with this node's context."""
        async with self.db.transaction() as tx:
            return await fn(tx, self.ctx, *args, **kwargs)

    async def run(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        """Run ``fn(tx)`` in one transaction (queries of a repository, rows written)."""
        async with self.db.transaction() as tx:
            return await fn(tx)

    async def close(self) -> None:
        await self.db.dispose()


def node(settings: Settings, clock: FakeClock) -> Node:
    db = Database(settings.database_url)
    counters = CounterBuffer(db, shared_counts_sql, SHARED_COUNT_PROGRESS)
    ctx = Context(settings=settings, keys=Keys(settings), clock=clock, counters=counters)
    return Node(settings, ctx, db)


async def new_token(n: Node, name: str = "coupon-frontend") -> str:
    """A new API key (hashed under n's active token key): the raw token."""
    created = await n.call(
        clients.create, name=name, scopes=["verifications:write"], created_by="t"
    )
    return created.token


async def new_client(n: Node, name: str = "coupon-frontend") -> Client:
    return await n.call(clients.authenticate, token=await new_token(n, name))


async def start(
    n: Node, client: Client, e164: str, purpose: str = "coupon_usage", **kw: Any
) -> str:
    result = await n.call(
        service.start,
        client=client,
        data=VerificationStart(phone=e164, purpose=purpose),  # type: ignore[arg-type]
        ip="203.0.113.9",
        idempotency_key=kw.get("idempotency_key"),
    )
    return result.public.id


async def code_of(n: Node, verification_id: str) -> str:
    """The code a verification sent, derived as the outbox does (with the row's key id)."""
    (row,) = [r for r in await rows(n, "verifications") if r.id == verification_id]
    return codes.derive(n.ctx.keys.code, row)


async def check(n: Node, client: Client, verification_id: str) -> str | None:
    """Check with the right code; the subscriber id."""
    result = await n.call(
        checking.check,
        client=client,
        verification_id=verification_id,
        data=VerificationCheck(code=await code_of(n, verification_id)),
    )
    return result.subscriber_id


async def register(n: Node, client: Client, e164: str, purpose: str = "coupon_usage") -> str | None:
    """A number verified end to end (start, then check): its subscriber id."""
    return await check(n, client, await start(n, client, e164, purpose))


async def rows(n: Node, name: str) -> list[sa.Row[Any]]:
    """Every row of a table, in primary-key order, decoded by column type."""
    t = SQLModel.metadata.tables[name]

    async def read(tx: Tx) -> list[sa.Row[Any]]:
        return list((await tx.execute(sa.select(t).order_by(*t.primary_key.columns))).all())

    return await n.run(read)


async def numbers_by_subscriber(n: Node) -> dict[str, str]:
    """Every subscriber's number, decrypted with ``n``'s keys (fails if one does not)."""
    return {
        row.id: n.ctx.keys.decrypt(
            row.phone_ciphertext,
            key_id=row.phone_key_id,
            context=subscriber_aad(row.phone_index),
        )
        for row in await rows(n, "subscribers")
    }


async def numbers_by_verification(n: Node) -> dict[str, str]:
    """Every verification's number, decrypted with ``n``'s keys (fails if one does not)."""
    return {
        row.id: n.ctx.keys.decrypt(
            row.phone_ciphertext, key_id=row.phone_key_id, context=verification_aad(row.id)
        )
        for row in await rows(n, "verifications")
    }


async def find(n: Node, e164: str) -> str | None:
    """The registry lookup by number, as the service does it (every key in the ring)."""
    indexes = n.ctx.keys.blind_indexes(e164, kind="number")
    return await n.run(lambda tx: registry.find_id(tx, phone_index=indexes))
