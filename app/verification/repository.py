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
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.audit.events import Tag
from app.core.db import Json, R, Sql, Tx
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
_GET_FOR_CHECK = Sql(_FOR_CHECK, ForCheck, read_only=True)


async def get(
    tx: Tx, *, verification_id: str, client_id: str, lock: bool = False
) -> Verification | None:
    """One verification of this client, or None. ``lock`` holds the row until commit."""
    sql = _GET_LOCKED if lock and not tx.sqlite else _GET
    return await tx.fetch_one(sql, {"id": verification_id, "client_id": client_id})


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


# -- a number's exact send limits ------------------------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def micros(at: dt.datetime) -> int:
    """An instant as microseconds since the Unix epoch (how send_windows keeps sends)."""
    return (at - _EPOCH) // _MICROSECOND


class SendWindow(NamedTuple):
    """One send to a number, as its exact limits see it: the number's bucket, and each
    limit as the most sends allowed after an instant. The write that records the send
    checks and extends the bucket's row in one statement (:func:`record_start`)."""

    bucket: str
    now: dt.datetime
    # Sends after ``since`` (microseconds) stay in the row: the widest window.
    since: int
    # (after, most): at most ``most`` sends after ``after`` (microseconds).
    limits: tuple[tuple[int, int], ...]
    # When this send leaves the widest window (the purge removes the row then).
    keep_until: dt.datetime

    def allows(self, sent: Sequence[int]) -> bool:
        """Whether one more send fits every limit, given the sends already in the row."""
        return all(sum(1 for t in sent if t > after) < most for after, most in self.limits)

    def extended(self, sent: Sequence[int]) -> list[int]:
        """The row's sends once this one is added, older ones trimmed."""
        return [t for t in sent if t > self.since] + [micros(self.now)]

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "w_bucket": self.bucket,
            "w_now": micros(self.now),
            "w_since": self.since,
            "w_until": self.keep_until,
        }
        for i, (after, most) in enumerate(self.limits):
            params[f"w_after{i}"], params[f"w_most{i}"] = after, most
        return params


class Counted(NamedTuple):
    """Whether a send was counted (its number's limits allowed it), and the sends the
    number's row held, for a refusal's Retry-After."""

    counted: bool
    sent_at: Annotated[list[int] | None, Json]


def _window_upsert(limits: int) -> str:
    # The conflict takes the row's lock and sees its latest version, so two sends to one
    # number are checked one after the other, each against the other's count.
    fits = " AND ".join(
        f"(SELECT count(*) FROM unnest(w.sent_at) AS t WHERE t > :w_after{i}) < :w_most{i}"  # noqa: S608
        for i in range(limits)
    )
    return (  # fixed text: only the number of limits varies
        "INSERT INTO send_windows AS w (bucket, sent_at, expires_at) "  # noqa: S608
        "VALUES (:w_bucket, ARRAY[CAST(:w_now AS bigint)], :w_until) "
        "ON CONFLICT (bucket) DO UPDATE SET sent_at = ARRAY(SELECT t FROM unnest(w.sent_at) "
        "AS t WHERE t > :w_since ORDER BY t) || CAST(:w_now AS bigint), "
        f"expires_at = excluded.expires_at WHERE {fits} RETURNING bucket"
    )


# Refused, the statement reads the row as it was when it began: a refusal's Retry-After
# may be a few milliseconds stale when two sends race, never its decision.
_COUNTED = (
    "SELECT EXISTS (SELECT 1 FROM sent), "
    "(SELECT sent_at FROM send_windows WHERE bucket = :w_bucket)"
)


@functools.cache
def _count_send_postgres(limits: int) -> Sql[Counted]:
    return Sql(f"WITH sent AS ({_window_upsert(limits)}) {_COUNTED}", Counted)  # noqa: S608


class _Sent(NamedTuple):
    sent_at: Annotated[list[int], Json]


_WINDOW_SQLITE = Sql("SELECT sent_at FROM send_windows WHERE bucket = :bucket", _Sent)
_SAVE_WINDOW_SQLITE = Sql(
    "INSERT INTO send_windows (bucket, sent_at, expires_at) VALUES (:bucket, :sent, :until) "
    "ON CONFLICT (bucket) DO UPDATE SET sent_at = excluded.sent_at, "
    "expires_at = excluded.expires_at"
)


async def _count_send_sqlite(tx: Tx, window: SendWindow) -> Counted:
    # Every SQLite transaction holds the database's write lock: read, decide, write.
    row = await tx.fetch_one(_WINDOW_SQLITE, {"bucket": window.bucket})
    sent = row.sent_at if row is not None else []
    if not window.allows(sent):
        return Counted(counted=False, sent_at=sent)
    params = {"bucket": window.bucket, "sent": window.extended(sent), "until": window.keep_until}
    await tx.run(_SAVE_WINDOW_SQLITE, params)
    return Counted(counted=True, sent_at=sent)


async def count_send(tx: Tx, window: SendWindow) -> Counted:
    """Count one send to a number if its limits allow it (a resend: the rest of what it
    writes follows in the same transaction)."""
    if tx.sqlite:
        return await _count_send_sqlite(tx, window)
    found = await tx.fetch_one(_count_send_postgres(len(window.limits)), window.params())
    if found is None:  # a SELECT without FROM answers one row
        raise RuntimeError("send count returned nothing")
    return found


# -- what a start writes ---------------------------------------------------------------------

_VERIFICATIONS = table(models.Verification)
_INSERT_COLUMNS = ", ".join(NewVerification._fields)
_STATE = "status, attempts, send_count, last_sent_at"  # their values at a start: fixed
_STATE_VALUES = "'pending', 0, 1, :created_at"
_INSERT_VERIFICATION = f"INSERT INTO verifications ({_INSERT_COLUMNS}, {_STATE}) "  # noqa: S608
_ENQUEUE_COLUMNS = (
    "INSERT INTO outbox_messages (id, kind, verification_id, status, attempts, created_at, "
    "next_attempt_at, expires_at) "
)
_ENQUEUE_CODE = (
    _ENQUEUE_COLUMNS + "VALUES (:message_id, 'code', :id, 'pending', 0, :created_at, "
    ":created_at, :expires_at)"
)
_SUPERSEDE = (
    "UPDATE verifications SET status = 'superseded' WHERE phone_index IN ({indexes}) "
    "AND client_id = :client_id AND purpose = :purpose AND status = 'pending'"
)
_COUNT_HITS = (
    "INSERT INTO rate_limit_hits (bucket, at, hits) VALUES {values} "
    "ON CONFLICT (bucket, at) DO UPDATE SET hits = rate_limit_hits.hits + excluded.hits"
)
_AUDIT_COLUMNS = "INSERT INTO audit_events (tag, actor, subject, at, details) "
_AUDIT = _AUDIT_COLUMNS + "VALUES (:tag, :actor, :id, :created_at, :details)"


def _marks(name: str, n: int) -> str:
    return ", ".join(f":{name}{i}" for i in range(n))


def _typed(columns: Iterable[str]) -> str:
    # In INSERT ... SELECT, PostgreSQL cannot infer a parameter's type from its column.
    dialect = postgresql.dialect()
    return ", ".join(
        f"CAST(:{name} AS {_VERIFICATIONS.c[name].type.compile(dialect=dialect)})"
        for name in columns
    )


@functools.cache
def _start_sqlite(indexes: int) -> tuple[Sql[Any], ...]:
    values = ", ".join(":" + name for name in NewVerification._fields)
    return (
        Sql(_SUPERSEDE.format(indexes=_marks("i", indexes))),
        Sql(f"{_INSERT_VERIFICATION} VALUES ({values}, {_STATE_VALUES})"),
        Sql(_ENQUEUE_CODE),
        Sql(_AUDIT),
    )


@functools.cache
def _start_postgres(indexes: int, limits: int) -> Sql[Counted]:
    # One statement: count the send in the number's row; only if it fits, supersede the
    # client's older code for the number, insert the verification and its SMS, and audit.
    # Every part reads the snapshot from before the statement, so the new row cannot be
    # superseded by its own start.
    supersede = _SUPERSEDE.format(indexes=_marks("i", indexes))
    started = (
        f"{_INSERT_VERIFICATION} SELECT {_typed(NewVerification._fields)}, "  # noqa: S608
        "'pending', 0, 1, CAST(:created_at AS timestamptz) FROM sent"
    )
    queued = (
        _ENQUEUE_COLUMNS  # noqa: S608 (fixed text)
        + "SELECT CAST(:message_id AS varchar), 'code', CAST(:id AS varchar), "
        "'pending', 0, CAST(:created_at AS timestamptz), CAST(:created_at AS timestamptz), "
        "CAST(:expires_at AS timestamptz) FROM sent"
    )
    audited = (
        _AUDIT_COLUMNS  # noqa: S608 (fixed text)
        + "SELECT CAST(:tag AS varchar), CAST(:actor AS varchar), CAST(:id AS varchar), "
        "CAST(:created_at AS timestamptz), CAST(:details AS json) FROM sent"
    )
    return Sql(
        f"WITH sent AS ({_window_upsert(limits)}), "  # noqa: S608 (fixed text)
        f"superseded AS ({supersede} AND EXISTS (SELECT 1 FROM sent)), "
        f"started AS ({started}), queued AS ({queued}), "
        f"audited AS ({audited}) {_COUNTED}",
        Counted,
    )


async def record_start(
    tx: Tx,
    verification: NewVerification,
    *,
    window: SendWindow,
    message_id: str,
    phone_indexes: Sequence[str],
    actor: str,
    details: dict[str, Any],
) -> Counted:
    """Count the send in the number's limits and, only if they allow it, write the rest
    of a start: supersede the client's older pending verification of the number (under
    every index key in the ring), insert the verification and its code SMS, and audit.

    The unit's final statement: on PostgreSQL all of it is one statement, which needs
    no transaction around it.
    """
    params: dict[str, Any] = verification._asdict()
    params.update(
        message_id=message_id, tag=Tag.VERIFICATION_STARTED.value, actor=actor, details=details
    )
    params.update((f"i{i}", index) for i, index in enumerate(phone_indexes))
    if not tx.sqlite:
        params.update(window.params())
        sql = _start_postgres(len(phone_indexes), len(window.limits))
        return (await tx.fetch_final(sql, params))[0]  # a SELECT without FROM: one row
    counted = await _count_send_sqlite(tx, window)
    if counted.counted:
        *statements, last = _start_sqlite(len(phone_indexes))
        for sql in statements:
            await tx.run(sql, params)
        await tx.run_final(last, params)
    return counted


# -- what a check writes ----------------------------------------------------------------------


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


_SUBSCRIBER_BY_INDEX = Sql("SELECT id FROM subscribers WHERE phone_index = :phone_index", _Id)
_UPSERT_SUBSCRIBER = Sql(_SUBSCRIBER_UPSERT.format(source=_SUBSCRIBER_VALUES))
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
    tx: Tx, *, verification_id: str, message_id: str, now: dt.datetime, expires_at: dt.datetime
) -> None:
    """Count one more send of a verification and queue its SMS again (its number's
    limits have counted it: :func:`count_send`)."""
    await tx.run(_RESENT, {"id": verification_id, "now": now})
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
