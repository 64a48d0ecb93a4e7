"""Key rings for rotation tests, and the service calls that write numbers (no HTTP)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.config import SECRET_FAMILIES, Settings
from app.core.context import Context
from app.core.crypto import Keys
from app.core.db import Database, Row, Tx, create_db_engine
from app.registry import repository as registry
from app.sms.outbox import verification_aad
from app.staff import api_keys
from app.staff.api_keys import Client
from app.verification import codes, service
from app.verification.schemas import VerificationCheck, VerificationStart
from tests.conftest import TEST_KEYS, make_settings
from tests.fixtures.fakes import FakeClock

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
    """One process's view: its settings, keys and a database handle."""

    settings: Settings
    ctx: Context
    db: Database

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return self.db.call(fn, self.ctx, *args, **kwargs)

    def close(self) -> None:
        self.db.close()
        self.db.engine.dispose()


def node(settings: Settings, clock: FakeClock) -> Node:
    ctx = Context(settings=settings, keys=Keys(settings), clock=clock)
    return Node(settings, ctx, Database(create_db_engine(settings.database_url)))


def new_token(n: Node, name: str = "coupon-frontend") -> str:
    """A new API key (hashed under n's active token key): the raw token."""
    created = n.call(api_keys.create, name=name, scopes=["verifications:write"], created_by="t")
    token: str = created.token
    return token


def new_client(n: Node, name: str = "coupon-frontend") -> Client:
    client: Client = n.call(api_keys.authenticate, token=new_token(n, name))
    return client


def start(n: Node, client: Client, e164: str, purpose: str = "coupon_usage", **kw: Any) -> str:
    result = n.call(
        service.start,
        client=client,
        data=VerificationStart(phone=e164, purpose=purpose),  # type: ignore[arg-type]
        ip="203.0.113.9",
        idempotency_key=kw.get("idempotency_key"),
    )
    verification_id: str = result.body["id"]
    return verification_id


def code_of(n: Node, verification_id: str) -> str:
    """The code a verification sent, derived as the outbox does (with the row's key id)."""
    row = n.db.call(_row, "verifications", verification_id)
    return codes.derive(
        n.ctx.keys.code,
        key_id=row.code_key_id,
        verification_id=row.id,
        purpose=row.purpose,
        salt=row.code_salt,
        length=row.code_length,
    )


def check(n: Node, client: Client, verification_id: str) -> str | None:
    """Check with the right code; the subscriber id."""
    result = n.call(
        service.check,
        client=client,
        verification_id=verification_id,
        data=VerificationCheck(code=code_of(n, verification_id)),
    )
    return result.subscriber_id


def register(n: Node, client: Client, e164: str, purpose: str = "coupon_usage") -> str | None:
    """A number verified end to end (start, then check): its subscriber id."""
    return check(n, client, start(n, client, e164, purpose))


def _row(tx: Tx, table: str, row_id: str) -> Row:
    row = tx.one(f"SELECT * FROM {table} WHERE id = :id", {"id": row_id})  # noqa: S608
    assert row is not None
    return row


def rows(n: Node, table: str) -> list[Row]:
    """Every row of a table, in id order."""
    result: list[Row] = n.db.call(
        lambda tx: tx.all(f"SELECT * FROM {table} ORDER BY id")  # noqa: S608
    )
    return result


def numbers_by_subscriber(n: Node) -> dict[str, str]:
    """Every subscriber's number, decrypted with ``n``'s keys (fails if one does not)."""
    out = {}
    for row in rows(n, "subscribers"):
        out[row.id] = n.ctx.keys.decrypt(
            row.phone_ciphertext,
            key_id=row.phone_key_id,
            context=registry.subscriber_aad(row.phone_index),
        )
    return out


def numbers_by_verification(n: Node) -> dict[str, str]:
    """Every verification's number, decrypted with ``n``'s keys (fails if one does not)."""
    return {
        row.id: n.ctx.keys.decrypt(
            row.phone_ciphertext, key_id=row.phone_key_id, context=verification_aad(row.id)
        )
        for row in rows(n, "verifications")
    }


def find(n: Node, e164: str) -> str | None:
    """The registry lookup by number, as the service does it (every key in the ring)."""
    indexes = n.ctx.keys.blind_indexes(e164, kind="number")
    found: str | None = n.db.call(lambda tx: registry.find_id(tx, phone_index=indexes))
    return found
