"""What the verification service reads: verifications, their SMS, idempotency records."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple

import sqlalchemy as sa

from app.core.sql import Json, Sql
from app.core.tx import Tx
from app.models import verification as models
from app.models.types import table


class NewVerification(NamedTuple):
    """A verification as a start writes it."""

    id: str
    client_id: str
    purpose: str
    locale: str
    phone_ciphertext: bytes
    phone_key_id: str
    phone_index: str
    code_salt: bytes
    code_key_id: str
    code_length: int
    max_attempts: int
    created_at: dt.datetime
    expires_at: dt.datetime
    prefix_index: str


class Verification(NamedTuple):
    """A verification as its client reads it."""

    id: str
    purpose: str
    phone_ciphertext: bytes
    phone_key_id: str
    status: str
    attempts: int
    max_attempts: int
    send_count: int
    expires_at: dt.datetime
    last_sent_at: dt.datetime
    subscriber_id: str | None


class ForCheck(NamedTuple):
    """What a code check needs of one verification."""

    id: str
    purpose: str
    phone_ciphertext: bytes
    phone_key_id: str
    phone_index: str
    code_salt: bytes
    code_key_id: str
    code_length: int
    status: str
    attempts: int
    max_attempts: int
    expires_at: dt.datetime
    prefix_index: str | None


class ForMessage(NamedTuple):
    """What the outbox needs to render a verification's code message."""

    id: str
    purpose: str
    client_id: str
    locale: str | None
    phone_ciphertext: bytes
    phone_key_id: str
    code_salt: bytes
    code_key_id: str
    code_length: int
    status: str
    expires_at: dt.datetime


class Delivery(NamedTuple):
    """The newest SMS of a verification: its state."""

    status: str
    delivery_status: str | None
    error_code: str | None
    sent_at: dt.datetime | None


class Idempotent(NamedTuple):
    """The stored first answer to an Idempotency-Key."""

    fingerprint: str
    response: Annotated[dict[str, Any], Json]
    created_at: dt.datetime


# Two starts for one number, client and purpose that run at once on PostgreSQL each write
# their verification in one statement that cannot see the other's (its snapshot is from
# before the other committed), so neither supersedes the other and both stay pending.
# The older of them is superseded all the same: every read of a verification's status
# says so, so a check refuses it, and the outbox does not send its code (CodeMessages).
# Read once per request, where the status is read: a start that commits between a
# check's read and its write is a start after the check, as when it could be seen.
# The order is the newer's start time, then its id (any fixed order would do: it only
# picks the one code that stays valid). A row already superseded does not count: a start
# that read the clock first but wrote last (or on a replica whose clock is behind)
# superseded the other, and stays valid.
NEWER_START = (
    "EXISTS (SELECT 1 FROM verifications AS newer WHERE newer.phone_index = "
    "verifications.phone_index AND newer.client_id = verifications.client_id "
    "AND newer.purpose = verifications.purpose AND newer.status <> 'superseded' "
    "AND (newer.created_at, newer.id) > (verifications.created_at, verifications.id))"
)
STATUS = (
    f"CASE WHEN verifications.status = 'pending' AND {NEWER_START} THEN 'superseded' "
    "ELSE verifications.status END AS status"
)

_VERIFICATION = (
    f"SELECT id, purpose, phone_ciphertext, phone_key_id, {STATUS}, attempts, max_attempts, "  # noqa: S608
    "send_count, expires_at, last_sent_at, subscriber_id FROM verifications "
    "WHERE id = :id AND client_id = :client_id"
)
_GET = Sql(_VERIFICATION, Verification)
_GET_LOCKED = Sql(_VERIFICATION + " FOR UPDATE", Verification)
_FOR_CHECK = (
    "SELECT id, purpose, phone_ciphertext, phone_key_id, phone_index, code_salt, code_key_id, "  # noqa: S608
    f"code_length, {STATUS}, attempts, max_attempts, expires_at, prefix_index "
    "FROM verifications WHERE id = :id AND client_id = :client_id"
)
_GET_FOR_CHECK = Sql(_FOR_CHECK, ForCheck, read_only=True)


async def get(
    tx: Tx, *, verification_id: str, client_id: str, lock: bool = False
) -> Verification | None:
    """One verification of this client, or None. ``lock`` holds the row until commit."""
    sql = _GET_LOCKED if lock and not tx.sqlite else _GET
    return await tx.fetch_one(sql, {"id": verification_id, "client_id": client_id})


async def newer_pending(
    tx: Tx, *, verification_id: str, client_id: str, now: dt.datetime
) -> str | None:
    """The newest pending, unexpired verification started after this one for the same
    number, client and purpose (the one whose code is sent), or None."""
    verifications = table(models.Verification)
    old, newer = verifications.alias("old"), verifications.alias("newer")
    same = sa.and_(
        newer.c.phone_index == old.c.phone_index,
        newer.c.client_id == old.c.client_id,
        newer.c.purpose == old.c.purpose,
    )
    found: str | None = await tx.scalar(
        sa.select(newer.c.id)
        .select_from(old.join(newer, same))
        .where(
            old.c.id == verification_id,
            old.c.client_id == client_id,
            newer.c.status == "pending",
            newer.c.expires_at > now,
            sa.tuple_(newer.c.created_at, newer.c.id) > sa.tuple_(old.c.created_at, old.c.id),
        )
        .order_by(newer.c.created_at.desc(), newer.c.id.desc())
        .limit(1)
    )
    return found


async def get_for_check(tx: Tx, *, verification_id: str, client_id: str) -> ForCheck | None:
    """What a code check needs of one verification of this client. Not held: the check's
    write (:func:`count_failed_attempt`, :func:`approve`) takes the row's current state
    into account; what the code is derived from never changes."""
    return await tx.fetch_one(_GET_FOR_CHECK, {"id": verification_id, "client_id": client_id})


class ForRedemption(NamedTuple):
    """What a coupon redemption needs of the verification that backs it."""

    id: str
    purpose: str
    status: str
    approved_at: dt.datetime | None
    subscriber_id: str | None


async def for_redemption(tx: Tx, *, verification_id: str, client_id: str) -> ForRedemption | None:
    """One verification of this client as a redemption needs it. Not locked: what it
    says never changes once approved, and the redemption serialises on its subscriber's
    lock (a row lock here, taken before that one, could wait on an erasure in a circle)."""
    v = table(models.Verification).c
    statement = sa.select(v.id, v.purpose, v.status, v.approved_at, v.subscriber_id).where(
        v.id == verification_id, v.client_id == client_id
    )
    row = (await tx.execute(statement)).one_or_none()
    return None if row is None else ForRedemption(**row._mapping)


@functools.cache
def _for_message_sql(n: int) -> Sql[ForMessage]:
    wanted = ", ".join(f":v{i}" for i in range(n))
    return Sql(
        "SELECT id, purpose, client_id, locale, phone_ciphertext, phone_key_id, code_salt, "  # noqa: S608
        "code_key_id, "
        f"code_length, status, expires_at FROM verifications WHERE id IN ({wanted})",
        ForMessage,
    )


async def for_messages(tx: Tx, verification_ids: Sequence[str]) -> dict[str, ForMessage]:
    """What the outbox needs to render the codes of verifications by id, whoever owns
    them: one query for a batch."""
    if not verification_ids:
        return {}
    rows = await tx.fetch(
        _for_message_sql(len(verification_ids)),
        {f"v{i}": v for i, v in enumerate(verification_ids)},
    )
    return {row.id: row for row in rows}


_LATEST_DELIVERY = Sql(
    "SELECT status, delivery_status, error_code, sent_at FROM outbox_messages "
    "WHERE verification_id = :id ORDER BY created_at DESC, id DESC LIMIT 1",
    Delivery,
)


async def latest_delivery(tx: Tx, *, verification_id: str) -> Delivery | None:
    """The newest outbox message of a verification (its delivery state)."""
    return await tx.fetch_one(_LATEST_DELIVERY, {"id": verification_id})


_GET_IDEMPOTENT = Sql(
    "SELECT fingerprint, response, created_at FROM idempotency_records "
    "WHERE client_id = :client_id AND key = :key",
    Idempotent,
)
_DELETE_IDEMPOTENT = Sql(
    "DELETE FROM idempotency_records WHERE client_id = :client_id AND key = :key"
)
_SAVE_IDEMPOTENT = Sql(
    "INSERT INTO idempotency_records (client_id, key, fingerprint, status_code, response, "
    "verification_id, created_at) "
    "VALUES (:client_id, :key, :fingerprint, 201, :response, :verification_id, :created_at)"
)


async def get_idempotent(tx: Tx, *, client_id: str, key: str) -> Idempotent | None:
    """The stored first answer for an Idempotency-Key, or None."""
    return await tx.fetch_one(_GET_IDEMPOTENT, {"client_id": client_id, "key": key})


async def save_idempotent(
    tx: Tx,
    *,
    client_id: str,
    key: str,
    fingerprint: str,
    response: dict[str, Any],
    now: dt.datetime,
    replace: bool,
) -> None:
    """Store the first answer for an Idempotency-Key (replacing an expired one)."""
    params = {"client_id": client_id, "key": key}
    if replace:
        await tx.run(_DELETE_IDEMPOTENT, params)
    await tx.run(
        _SAVE_IDEMPOTENT,
        {
            **params,
            "fingerprint": fingerprint,
            "response": response,
            "verification_id": response["id"],  # the answer is the verification's
            "created_at": now,
        },
    )
