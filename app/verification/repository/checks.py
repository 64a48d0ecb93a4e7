"""What a check writes: the attempt or the approval, with the subscriber it registers."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from app.audit.events import Tag
from app.core.sql import R, Sql
from app.core.tx import Tx
from app.verification.repository.reads import ForCheck


class Before(NamedTuple):
    """A verification's state just before a check counted (or refused) it."""

    status: str
    attempts: int
    max_attempts: int
    expires_at: dt.datetime


class Checked(NamedTuple):
    """What a check wrote: whether it counted (the verification was live), the subscriber
    an approval linked, and the state it found."""

    counted: bool
    subscriber_id: str | None
    before: Before


class _CheckedRow(NamedTuple):
    counted: int
    subscriber_id: str | None
    status: str
    attempts: int
    max_attempts: int
    expires_at: dt.datetime


# On PostgreSQL a check is one statement that needs no transaction around it. It first
# locks the row and reads its state; FOR UPDATE waits for a concurrent check and then
# sees its result, so checks of one verification are counted one after the other and
# never past the limit. Only a live verification is written to.
_OLD = (
    "old AS MATERIALIZED (SELECT status, attempts, max_attempts, expires_at "
    "FROM verifications WHERE id = :id FOR UPDATE), "
    "live AS (SELECT 1 FROM old WHERE status = 'pending' AND attempts < max_attempts "
    "AND expires_at > :now)"
)
_LIVE = "EXISTS (SELECT 1 FROM live)"
_CHECKED = (
    "SELECT (SELECT count(*) FROM checked), {subscriber}, status, attempts, max_attempts, "
    "expires_at FROM old"
)
_COUNT_ATTEMPT = "UPDATE verifications SET attempts = attempts + 1 WHERE id = :id AND {live}"
_APPROVE = (
    "UPDATE verifications SET attempts = attempts + 1, status = 'approved', approved_at = :now, "
    "subscriber_id = {subscriber} WHERE id = :id AND {live}"
)
_CHECK_EVENT = "INSERT INTO audit_events (tag, actor, subject, at, details) "
_CHECK_EVENT_VALUES = "VALUES (:tag, :actor, :id, :now, :details)"
_COUNT_APPROVAL = (
    "INSERT INTO rate_limit_hits (bucket, at, hits) {source} "
    "ON CONFLICT (bucket, at) DO UPDATE SET hits = rate_limit_hits.hits + 1"
)
_SUBSCRIBER_UPSERT = (
    "INSERT INTO subscribers (id, phone_ciphertext, phone_key_id, phone_index, created_at, "
    "last_verified_at) {source} "
    "ON CONFLICT (phone_index) DO UPDATE SET last_verified_at = excluded.last_verified_at"
)
_SUBSCRIBER_VALUES = "VALUES (:new_subscriber, :ciphertext, :key_id, :phone_index, :now, :now)"
_SUBSCRIBER_IF_LIVE = (
    "SELECT CAST(:new_subscriber AS varchar), CAST(:ciphertext AS bytea), "
    "CAST(:key_id AS varchar), CAST(:phone_index AS varchar), CAST(:now AS timestamptz), "
    "CAST(:now AS timestamptz) FROM live"
)
_PURPOSE_UPSERT = (
    "INSERT INTO subscriber_purposes (subscriber_id, purpose, verified_at, since) {source} "
    "ON CONFLICT (subscriber_id, purpose) DO UPDATE SET verified_at = excluded.verified_at"
)
_PURPOSE_FROM_SUBSCRIBER = (
    "SELECT id, CAST(:purpose AS varchar), CAST(:now AS timestamptz), "
    "CAST(:now AS timestamptz) FROM subscriber"
)
_APPROVAL_HIT = "SELECT CAST(:approvals AS varchar), CAST(:now AS timestamptz), 1 FROM checked"
_EVENT_IF_CHECKED = (
    "SELECT CAST(:tag AS varchar), CAST(:actor AS varchar), id, CAST(:now AS timestamptz), "
    "{details} FROM checked"
)

_FAILED_POSTGRES = Sql(
    f"WITH {_OLD}, checked AS ({_COUNT_ATTEMPT.format(live=_LIVE)} RETURNING id), "  # noqa: S608
    f"audited AS ({_CHECK_EVENT}"
    f"{_EVENT_IF_CHECKED.format(details='CAST(:details AS json)')}) "
    f"{_CHECKED.format(subscriber='CAST(NULL AS varchar)')}",
    _CheckedRow,
)


def _approve_postgres(*, registers: bool, counts: bool) -> Sql[_CheckedRow]:
    """One statement: register the number (when the purpose does), approve, count the
    approval (when the verification has a prefix), audit; each only if the verification
    is live. Only which fixed parts appear varies."""
    subscriber = "(SELECT id FROM subscriber)" if registers else "CAST(:subscriber_id AS varchar)"
    parts = [_OLD]
    if registers:
        upsert = _SUBSCRIBER_UPSERT.format(source=_SUBSCRIBER_IF_LIVE)
        parts.append(f"subscriber AS ({upsert} RETURNING id)")
        parts.append(f"purpose AS ({_PURPOSE_UPSERT.format(source=_PURPOSE_FROM_SUBSCRIBER)})")
    approve = _APPROVE.format(subscriber=subscriber, live=_LIVE)
    parts.append(f"checked AS ({approve} RETURNING id)")
    if counts:
        parts.append(f"counted AS ({_COUNT_APPROVAL.format(source=_APPROVAL_HIT)})")
    details = (
        f"json_build_object('purpose', CAST(:purpose AS varchar), 'subscriber_id', {subscriber})"
    )
    parts.append(f"audited AS ({_CHECK_EVENT}{_EVENT_IF_CHECKED.format(details=details)})")
    return Sql(
        f"WITH {', '.join(parts)} {_CHECKED.format(subscriber=subscriber)}",  # noqa: S608
        _CheckedRow,
    )


_APPROVE_POSTGRES = {
    (registers, counts): _approve_postgres(registers=registers, counts=counts)
    for registers in (False, True)
    for counts in (False, True)
}
_SQLITE_LIVE = "status = 'pending' AND attempts < max_attempts AND expires_at > :now"
_FAILED_SQLITE = (
    Sql(_COUNT_ATTEMPT.format(live=_SQLITE_LIVE)),
    Sql(_CHECK_EVENT + _CHECK_EVENT_VALUES),
)
_APPROVE_SQLITE = (
    Sql(_APPROVE.format(subscriber=":subscriber_id", live=_SQLITE_LIVE)),
    Sql(_COUNT_APPROVAL.format(source="VALUES (:approvals, :now, 1)")),
    Sql(_CHECK_EVENT + _CHECK_EVENT_VALUES),
)


def _checked(row: _CheckedRow | None) -> Checked | None:
    if row is None:  # the verification is gone (purged since it was read)
        return None
    before = Before(row.status, row.attempts, row.max_attempts, row.expires_at)
    return Checked(counted=row.counted == 1, subscriber_id=row.subscriber_id, before=before)


async def count_failed_attempt(
    tx: Tx,
    *,
    verification: ForCheck,
    now: dt.datetime,
    actor: str,
    details: dict[str, Any],
) -> Checked | None:
    """Count one wrong check against the verification if it is still live, and audit it:
    the unit's final statement. None if the verification is gone."""
    params = {
        "id": verification.id,
        "now": now,
        "tag": Tag.VERIFICATION_CHECK_FAILED.value,
        "actor": actor,
        "details": details,
    }
    if not tx.sqlite:
        return _checked(await _fetch_final_one(tx, _FAILED_POSTGRES, params))
    # SQLite read the row in this transaction, under the database's write lock.
    before = Before(
        verification.status,
        verification.attempts,
        verification.max_attempts,
        verification.expires_at,
    )
    count_sql, event_sql = _FAILED_SQLITE
    counted = await tx.run(count_sql, params) == 1
    if counted:
        await tx.run_final(event_sql, params)
    return Checked(counted=counted, subscriber_id=None, before=before)


async def approve(
    tx: Tx,
    *,
    verification: ForCheck,
    now: dt.datetime,
    actor: str,
    approvals_bucket: str | None,
    subscriber_id: str | None = None,
    register: dict[str, Any] | None = None,
) -> Checked | None:
    """Approve the verification if it is still live (the right check counts as an
    attempt), count the approval for its prefix, audit it, and with ``register``
    (``new_subscriber``, ``ciphertext``, ``key_id``, ``phone_index``) enter the number in
    the registry for its purpose in the same step; otherwise link it to ``subscriber_id``
    (or none). The unit's final statement. None if the verification is gone."""
    purpose = verification.purpose
    params: dict[str, Any] = {
        "id": verification.id,
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
        return _checked(await _fetch_final_one(tx, sql, params))
    before = Before(
        verification.status,
        verification.attempts,
        verification.max_attempts,
        verification.expires_at,
    )
    live = before.status == "pending" and before.expires_at > now
    if not live or before.attempts >= before.max_attempts:  # read in this transaction
        return Checked(counted=False, subscriber_id=None, before=before)
    if register is not None:
        params["subscriber_id"] = await upsert_subscriber(tx, **register, purpose=purpose, now=now)
    approve_sql, count_sql, event_sql = _APPROVE_SQLITE
    if await tx.run(approve_sql, params) != 1:
        return Checked(counted=False, subscriber_id=None, before=before)
    if approvals_bucket is not None:
        await tx.run(count_sql, params)
    params["details"] = {"purpose": purpose, "subscriber_id": params["subscriber_id"]}
    await tx.run_final(event_sql, params)
    return Checked(counted=True, subscriber_id=params["subscriber_id"], before=before)


async def _fetch_final_one(tx: Tx, sql: Sql[R], params: dict[str, Any]) -> R | None:
    rows = await tx.fetch_final(sql, params)
    return rows[0] if rows else None


class _Id(NamedTuple):
    id: str


# The subscriber's id, inserted or already there: an upsert's RETURNING gives the row as
# the statement left it, so one statement instead of an upsert and a read.
_UPSERT_SUBSCRIBER = Sql(
    _SUBSCRIBER_UPSERT.format(source=_SUBSCRIBER_VALUES) + " RETURNING id", _Id
)
_UPSERT_PURPOSE = Sql(
    _PURPOSE_UPSERT.format(source="VALUES (:subscriber_id, :purpose, :now, :now)")
)


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
    found = await tx.fetch_one(_UPSERT_SUBSCRIBER, params)
    if found is None:  # unreachable: DO UPDATE always leaves the row
        raise RuntimeError("subscriber upsert left no row")
    await tx.run(_UPSERT_PURPOSE, {"subscriber_id": found.id, "purpose": purpose, "now": now})
    return found.id
