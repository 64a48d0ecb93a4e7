"""Every query on verifications and idempotency records.

Starting and checking a verification are the service's hot paths, so their statements
are fixed SQL returning NamedTuples (app.core.db.Sql). On PostgreSQL each round trip
costs more than the statement itself, so what a start or a check writes goes in one
statement (data-modifying CTEs); SQLite, which has no round trips, runs the same writes
one statement after another.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple

import sqlalchemy as sa

from app.audit.events import Tag
from app.core.db import Json, Sql, Tx
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


class Hit(NamedTuple):
    """One send counted in a limit bucket."""

    bucket: str
    at: dt.datetime


_VERIFICATION = (
    "SELECT id, purpose, phone_ciphertext, phone_key_id, status, attempts, max_attempts, "
    "send_count, expires_at, last_sent_at, subscriber_id FROM verifications "
    "WHERE id = :id AND client_id = :client_id"
)
_GET = Sql(_VERIFICATION, Verification)
_GET_LOCKED = Sql(_VERIFICATION + " FOR UPDATE", Verification)
_FOR_CHECK = (
    "SELECT id, purpose, phone_ciphertext, phone_key_id, phone_index, code_salt, code_key_id, "
    "code_length, status, attempts, max_attempts, expires_at, prefix_index "
    "FROM verifications WHERE id = :id AND client_id = :client_id"
)
_GET_FOR_CHECK = Sql(_FOR_CHECK, ForCheck)
_GET_FOR_CHECK_LOCKED = Sql(_FOR_CHECK + " FOR UPDATE", ForCheck)


async def get(
    tx: Tx, *, verification_id: str, client_id: str, lock: bool = False
) -> Verification | None:
    """One verification of this client, or None. ``lock`` holds the row until commit."""
    sql = _GET_LOCKED if lock and not tx.sqlite else _GET
    return await tx.fetch_one(sql, {"id": verification_id, "client_id": client_id})


async def get_for_check(tx: Tx, *, verification_id: str, client_id: str) -> ForCheck | None:
    """What a code check needs of one verification of this client, held until commit
    (SQLite's write lock is held from the transaction's start)."""
    sql = _GET_FOR_CHECK if tx.sqlite else _GET_FOR_CHECK_LOCKED
    return await tx.fetch_one(sql, {"id": verification_id, "client_id": client_id})


class ForRedemption(NamedTuple):
    """What a coupon redemption needs of the verification that backs it."""

    id: str
    purpose: str
    status: str
    approved_at: dt.datetime | None
    subscriber_id: str | None


async def for_redemption(tx: Tx, *, verification_id: str, client_id: str) -> ForRedemption | None:
    """One verification of this client as a redemption needs it, held until commit (FOR
    UPDATE on PostgreSQL; SQLite's write lock is held from the transaction's start)."""
    v = table(models.Verification).c
    statement = sa.select(v.id, v.purpose, v.status, v.approved_at, v.subscriber_id).where(
        v.id == verification_id, v.client_id == client_id
    )
    if not tx.sqlite:
        statement = statement.with_for_update()
    row = (await tx.execute(statement)).one_or_none()
    return None if row is None else ForRedemption(**row._mapping)


@functools.cache
def _for_message_sql(n: int) -> Sql[ForMessage]:
    wanted = ", ".join(f":v{i}" for i in range(n))
    return Sql(
        "SELECT id, purpose, locale, phone_ciphertext, phone_key_id, code_salt, code_key_id, "  # noqa: S608
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
    "created_at) VALUES (:client_id, :key, :fingerprint, 201, :response, :created_at)"
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
        {**params, "fingerprint": fingerprint, "response": response, "created_at": now},
    )


# -- what a start writes ---------------------------------------------------------------------

_INSERT_COLUMNS = (
    "id, client_id, purpose, locale, phone_ciphertext, phone_key_id, phone_index, code_salt, "
    "code_key_id, code_length, max_attempts, created_at, expires_at, prefix_index"
)
_INSERT_VALUES = ", ".join(":" + name for name in NewVerification._fields)
_STATE = "status, attempts, send_count, last_sent_at"  # their values at a start: fixed
_STATE_VALUES = "'pending', 0, 1, :created_at"
_INSERT_VERIFICATION = (
    f"INSERT INTO verifications ({_INSERT_COLUMNS}, {_STATE}) "  # noqa: S608 (fixed text)
    f"VALUES ({_INSERT_VALUES}, {_STATE_VALUES})"
)
_ENQUEUE_CODE = (
    "INSERT INTO outbox_messages (id, kind, verification_id, status, attempts, created_at, "
    "next_attempt_at, expires_at) VALUES (:message_id, 'code', :id, 'pending', 0, "
    ":created_at, :created_at, :expires_at)"
)
_SUPERSEDE = (
    "UPDATE verifications SET status = 'superseded' WHERE phone_index IN ({indexes}) "
    "AND client_id = :client_id AND purpose = :purpose AND status = 'pending'"
)
_COUNT_HITS = (
    "INSERT INTO rate_limit_hits (bucket, at, hits) VALUES {values} "
    "ON CONFLICT (bucket, at) DO UPDATE SET hits = rate_limit_hits.hits + excluded.hits"
)
_AUDIT = (
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "VALUES (:tag, :actor, :id, :created_at, :details)"
)


def _marks(name: str, n: int) -> str:
    return ", ".join(f":{name}{i}" for i in range(n))


@functools.cache
def _start_sql(indexes: int, hits: int, postgres: bool) -> tuple[Sql[Any], ...]:
    supersede = _SUPERSEDE.format(indexes=_marks("i", indexes))
    count = _COUNT_HITS.format(values=", ".join(f"(:b{i}, :t{i}, 1)" for i in range(hits)))
    if not postgres:
        return tuple(
            Sql(text) for text in (supersede, count, _INSERT_VERIFICATION, _ENQUEUE_CODE, _AUDIT)
        )
    # One statement, one round trip. Every part reads the snapshot from before it, so
    # the new row cannot be superseded by its own start.
    return (
        Sql(
            f"WITH superseded AS ({supersede}), counted AS ({count}), "  # noqa: S608 (fixed)
            f"started AS ({_INSERT_VERIFICATION}), queued AS ({_ENQUEUE_CODE}) {_AUDIT}"
        ),
    )


async def record_start(
    tx: Tx,
    verification: NewVerification,
    *,
    message_id: str,
    phone_indexes: Sequence[str],
    hits: Sequence[Hit],
    actor: str,
    details: dict[str, Any],
) -> None:
    """Write everything a start does: count its send in each limit bucket, supersede the
    client's older pending verification of the number (under every index key in the
    ring), insert the verification and its code SMS, and audit it."""
    params: dict[str, Any] = verification._asdict()
    params.update(
        message_id=message_id, tag=Tag.VERIFICATION_STARTED.value, actor=actor, details=details
    )
    params.update((f"i{i}", index) for i, index in enumerate(phone_indexes))
    for i, hit in enumerate(hits):
        params[f"b{i}"], params[f"t{i}"] = hit.bucket, hit.at
    for sql in _start_sql(len(phone_indexes), len(hits), not tx.sqlite):
        await tx.run(sql, params)


# -- what a check writes ----------------------------------------------------------------------

_COUNT_ATTEMPT = (
    "UPDATE verifications SET attempts = attempts + 1 WHERE id = :id "
    "AND status = 'pending' AND attempts < max_attempts AND expires_at > :now"
)
_FAILED_EVENT = (
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "VALUES (:tag, :actor, :id, :now, :details)"
)
_COUNT_ATTEMPT_SQLITE = (Sql(_COUNT_ATTEMPT), Sql(_FAILED_EVENT))
_COUNT_ATTEMPT_POSTGRES = Sql(
    f"WITH counted AS ({_COUNT_ATTEMPT} RETURNING id) "  # noqa: S608 (fixed text)
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "SELECT CAST(:tag AS varchar), CAST(:actor AS varchar), id, "
    "CAST(:now AS timestamptz), CAST(:details AS json) FROM counted"
)


async def count_failed_attempt(
    tx: Tx, *, verification_id: str, now: dt.datetime, actor: str, details: dict[str, Any]
) -> bool:
    """Count one wrong check against a live verification, and audit it; False if it is not
    live. The caller holds the row, so checks are counted one by one and never pass the
    limit; the guards repeat the rules all the same."""
    params = {
        "id": verification_id,
        "now": now,
        "tag": Tag.VERIFICATION_CHECK_FAILED.value,
        "actor": actor,
        "details": details,
    }
    if not tx.sqlite:
        return await tx.run(_COUNT_ATTEMPT_POSTGRES, params) == 1
    counted = await tx.run(_COUNT_ATTEMPT_SQLITE[0], params)
    if counted == 1:
        await tx.run(_COUNT_ATTEMPT_SQLITE[1], params)
    return counted == 1


_APPROVE = (
    "UPDATE verifications SET attempts = attempts + 1, status = 'approved', approved_at = :now, "
    "subscriber_id = {subscriber} WHERE id = :id AND status = 'pending' "
    "AND attempts < max_attempts AND expires_at > :now"
)
_COUNT_APPROVAL = (
    "INSERT INTO rate_limit_hits (bucket, at, hits) {source} "
    "ON CONFLICT (bucket, at) DO UPDATE SET hits = rate_limit_hits.hits + 1"
)
_APPROVED_EVENT = "INSERT INTO audit_events (tag, actor, subject, at, details) {source}"
_APPROVE_SQLITE = (
    Sql(_APPROVE.format(subscriber=":subscriber_id")),
    Sql(_COUNT_APPROVAL.format(source="VALUES (:approvals, :now, 1)")),
    Sql(_APPROVED_EVENT.format(source="VALUES (:tag, :actor, :id, :now, :details)")),
)


class Approved(NamedTuple):
    """The outcome of an approval: whether the verification was still live, and the
    subscriber it registered (if any)."""

    approved: bool
    subscriber_id: str | None


class _ApprovedRow(NamedTuple):
    subscriber_id: str | None
    approved: int


_SUBSCRIBER_UPSERT = (
    "INSERT INTO subscribers (id, phone_ciphertext, phone_key_id, phone_index, created_at, "
    "last_verified_at) VALUES (:new_subscriber, :ciphertext, :key_id, :phone_index, :now, :now) "
    "ON CONFLICT (phone_index) DO UPDATE SET last_verified_at = excluded.last_verified_at"
)
_PURPOSE_UPSERT = (
    "INSERT INTO subscriber_purposes (subscriber_id, purpose, verified_at) {source} "
    "ON CONFLICT (subscriber_id, purpose) DO UPDATE SET verified_at = excluded.verified_at"
)


_PURPOSE_FROM_SUBSCRIBER = (
    "SELECT id, CAST(:purpose AS varchar), CAST(:now AS timestamptz) FROM subscriber"
)
_APPROVAL_HIT = "SELECT CAST(:approvals AS varchar), CAST(:now AS timestamptz), 1 FROM approved"
_APPROVED_ROW = (
    "SELECT CAST(:tag AS varchar), CAST(:actor AS varchar), id, CAST(:now AS timestamptz), "
    "json_build_object('purpose', CAST(:purpose AS varchar), 'subscriber_id', {subscriber}) "
    "FROM approved"
)


def _approve_postgres(*, registers: bool, counts: bool) -> Sql[_ApprovedRow]:
    """One statement: register the number (when the purpose does), approve, count the
    approval (when the verification has a prefix), audit. Only which fixed parts appear
    varies."""
    subscriber = "(SELECT id FROM subscriber)" if registers else "CAST(:subscriber_id AS varchar)"
    parts = []
    if registers:
        parts.append(f"subscriber AS ({_SUBSCRIBER_UPSERT} RETURNING id)")
        parts.append(f"purpose AS ({_PURPOSE_UPSERT.format(source=_PURPOSE_FROM_SUBSCRIBER)})")
    parts.append(f"approved AS ({_APPROVE.format(subscriber=subscriber)} RETURNING id)")
    if counts:
        parts.append(f"counted AS ({_COUNT_APPROVAL.format(source=_APPROVAL_HIT)})")
    audited = _APPROVED_EVENT.format(source=_APPROVED_ROW.format(subscriber=subscriber))
    parts.append(f"audited AS ({audited})")
    return Sql(
        f"WITH {', '.join(parts)} SELECT {subscriber}, (SELECT count(*) FROM approved)",  # noqa: S608
        _ApprovedRow,
    )


_APPROVE_POSTGRES = {
    (registers, counts): _approve_postgres(registers=registers, counts=counts)
    for registers in (False, True)
    for counts in (False, True)
}


async def approve(
    tx: Tx,
    *,
    verification_id: str,
    now: dt.datetime,
    purpose: str,
    actor: str,
    approvals_bucket: str | None,
    subscriber_id: str | None = None,
    register: dict[str, Any] | None = None,
) -> Approved:
    """Approve a live verification (the right check counts as an attempt), count the
    approval for its prefix, audit it, and with ``register`` (``new_subscriber``,
    ``ciphertext``, ``key_id``, ``phone_index``) enter the number in the registry for the
    purpose in the same step; otherwise it is linked to ``subscriber_id`` (or none)."""
    params: dict[str, Any] = {
        "id": verification_id,
        "now": now,
        "purpose": purpose,
        "actor": actor,
        "approvals": approvals_bucket,
        "tag": Tag.VERIFICATION_APPROVED.value,
        "subscriber_id": subscriber_id,
        **(register or {}),
    }
    if not tx.sqlite:
        sql = _APPROVE_POSTGRES[(register is not None, approvals_bucket is not None)]
        row = await tx.fetch_one(sql, params)
        if row is None:  # a SELECT without FROM answers one row
            raise RuntimeError("approval returned nothing")
        return Approved(approved=row.approved == 1, subscriber_id=row.subscriber_id)
    if register is not None:
        params["subscriber_id"] = await upsert_subscriber(tx, **register, purpose=purpose, now=now)
    approve_sql, count_sql, event_sql = _APPROVE_SQLITE
    if await tx.run(approve_sql, params) != 1:
        return Approved(approved=False, subscriber_id=params["subscriber_id"])
    if approvals_bucket is not None:
        await tx.run(count_sql, params)
    params["details"] = {"purpose": purpose, "subscriber_id": params["subscriber_id"]}
    await tx.run(event_sql, params)
    return Approved(approved=True, subscriber_id=params["subscriber_id"])


class _Id(NamedTuple):
    id: str


_SUBSCRIBER_BY_INDEX = Sql("SELECT id FROM subscribers WHERE phone_index = :phone_index", _Id)
_UPSERT_SUBSCRIBER = Sql(_SUBSCRIBER_UPSERT)
_UPSERT_PURPOSE = Sql(_PURPOSE_UPSERT.format(source="VALUES (:subscriber_id, :purpose, :now)"))


async def upsert_subscriber(
    tx: Tx,
    *,
    new_subscriber: str,
    ciphertext: bytes,
    key_id: str,
    phone_index: str,
    purpose: str,
    now: dt.datetime,
) -> str:
    """Find or create the subscriber of a number and record the purpose it was verified
    for; its id."""
    params = {
        "new_subscriber": new_subscriber,
        "ciphertext": ciphertext,
        "key_id": key_id,
        "phone_index": phone_index,
        "now": now,
    }
    await tx.run(_UPSERT_SUBSCRIBER, params)
    # The upsert holds the row until commit, so this read sees this transaction's row.
    found = await tx.fetch_one(_SUBSCRIBER_BY_INDEX, {"phone_index": phone_index})
    if found is None:  # unreachable: just written
        raise RuntimeError("subscriber upsert left no row")
    await tx.run(_UPSERT_PURPOSE, {"subscriber_id": found.id, "purpose": purpose, "now": now})
    return found.id


_RESENT = Sql(
    "UPDATE verifications SET send_count = send_count + 1, last_sent_at = :now WHERE id = :id"
)
_ENQUEUE = Sql(_ENQUEUE_CODE)


async def record_resend(
    tx: Tx,
    *,
    verification_id: str,
    message_id: str,
    now: dt.datetime,
    expires_at: dt.datetime,
    hits: Sequence[Hit],
) -> None:
    """Count one more send of a verification and queue its SMS again."""
    params: dict[str, Any] = {"id": verification_id, "now": now}
    await tx.run(_RESENT, params)
    await count_hits(tx, hits)
    await tx.run(
        _ENQUEUE,
        {
            "message_id": message_id,
            "id": verification_id,
            "created_at": now,
            "expires_at": expires_at,
        },
    )


@functools.cache
def shared_counts_sql(n: int) -> Sql[Any]:
    """Add n rows of counts at once (``:b0, :t0, :h0`` ...): the shared counters' writer
    (app.core.counters) uses it for the address, prefix and country buckets."""
    return Sql(_COUNT_HITS.format(values=", ".join(f"(:b{i}, :t{i}, :h{i})" for i in range(n))))


@functools.cache
def _count_hits_sql(n: int) -> Sql[Any]:
    return Sql(_COUNT_HITS.format(values=", ".join(f"(:b{i}, :t{i}, 1)" for i in range(n))))


async def count_hits(tx: Tx, hits: Sequence[Hit]) -> None:
    """Count one send in each bucket (one statement)."""
    if not hits:
        return
    params: dict[str, Any] = {}
    for i, hit in enumerate(hits):
        params[f"b{i}"], params[f"t{i}"] = hit.bucket, hit.at
    await tx.run(_count_hits_sql(len(hits)), params)
