"""The SMS outbox: rows written with what caused them, and the fenced steps a worker takes.

A row is a verification code (``kind = 'code'``) or a campaign message (``kind =
'campaign'``). The area that queues a kind also renders it and says when it is still
wanted: the worker is given one :class:`Renderer` per kind (wired in app.main), so this
package never imports the areas that use it. A code's body is built at send time from
its verification, so the table never holds a code.

Each message moves ``pending`` -> ``sending`` (claimed) -> ``sent``, ``failed``,
``expired``, ``cancelled`` or ``unknown``. Every claim takes the next ``claim_token``,
and each later write about the message holds only while that token is still the
message's (a fence): a worker whose lease was taken over writes nothing. Just before a
message is handed to the carrier it is marked ``send_started_at``, in one statement that
also re-checks that it is still held and still wanted; a message found with that mark
and no outcome (a worker died mid-send, a carrier that never answered) may have been
sent, so it becomes ``unknown`` and is never sent again.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Protocol

from app.audit.events import Tag, event, record_events
from app.core.context import Context
from app.core.db import Database, Sql, Tx
from app.core.ids import new_ordered_id

CODE = "code"
CAMPAIGN = "campaign"


def new_message_id() -> str:
    """An outbox message id that sorts by time (messages are written on every start)."""
    return new_ordered_id("msg")


def delivery_state(status: str, delivery_status: str | None) -> str:
    """A message's state as clients see it: the carrier's, once it reported one."""
    if delivery_status:
        return delivery_status
    return "queued" if status == "pending" else status


class Claimed(NamedTuple):
    """A message taken under a lease; ``token`` fences every later write about it."""

    id: str
    kind: str
    verification_id: str | None
    delivery_id: str | None
    subscriber_id: str | None
    locale: str | None
    attempts: int
    expires_at: dt.datetime
    token: int


@dataclass(frozen=True)
class Outgoing:
    """A claimed message, rendered and ready to send."""

    message: Claimed
    to: str
    body: str


@dataclass
class Rendered:
    """What a renderer made of claimed messages: those to send, and those whose reason is
    gone (expired)."""

    outgoing: list[Outgoing] = field(default_factory=list)
    expired: list[Claimed] = field(default_factory=list)


class Renderer(Protocol):
    """Renders one kind of claimed message, and says in SQL when one is still wanted."""

    # A condition on the outbox_messages row (named ``outbox_messages``), with ``:now``:
    # true while the message should still go out (its code still pending, its
    # recipient's opt-in still live). It is evaluated in the statement that takes the
    # message for sending, so nothing can change between the check and the send.
    wanted: ClassVar[str]

    async def render(
        self, tx: Tx, ctx: Context, messages: Sequence[Claimed], *, now: dt.datetime
    ) -> Rendered:
        """Render what can be sent; what can no longer be sent goes into ``expired``."""
        ...

    async def unwanted(
        self, tx: Tx, ctx: Context, messages: Sequence[Claimed], *, now: dt.datetime
    ) -> None:
        """Settle claimed messages found no longer wanted just before sending (expire or
        cancel them, with :func:`expire` or :func:`cancel`: both write only while the
        claim is still this worker's)."""
        ...


# -- claiming, in the worker's claim transaction ---------------------------------------------

_GIVE_UP = (
    "UPDATE outbox_messages SET status = 'unknown', claimed_until = NULL "
    "WHERE kind = :kind AND status = 'sending' AND claimed_until <= :now "
    "AND send_started_at IS NOT NULL RETURNING id"
)
# Two candidate sets, each read straight off (kind, status, next_attempt_at): one OR over
# both made SQLite sort every due row of a backlog on each claim. Only claims that ran
# out before their message was handed to the carrier are taken back.
_CLAIM = (
    "WITH stale AS (SELECT id FROM outbox_messages WHERE kind = :kind AND status = 'sending' "
    "AND claimed_until <= :now AND send_started_at IS NULL LIMIT :limit{lock}), "
    "due AS (SELECT id FROM outbox_messages WHERE kind = :kind AND status = 'pending' "
    "AND next_attempt_at <= :now ORDER BY next_attempt_at LIMIT :limit{lock}) "
    "UPDATE outbox_messages SET status = 'sending', claimed_until = :lease, "
    "claim_token = claim_token + 1, attempts = attempts + 1 "
    "WHERE id IN (SELECT id FROM (SELECT id FROM stale UNION ALL SELECT id FROM due) "
    "AS candidates LIMIT :limit) RETURNING id, kind, verification_id, delivery_id, "
    "subscriber_id, locale, attempts, expires_at, claim_token"
)


class _Id(NamedTuple):
    id: str


_GIVE_UP_SQL = Sql(_GIVE_UP, _Id)
_CLAIM_SQLITE = Sql(_CLAIM.format(lock=""), Claimed)
# Rows locked by another worker's claim are skipped, not waited for.
_CLAIM_POSTGRES = Sql(_CLAIM.format(lock=" FOR UPDATE SKIP LOCKED"), Claimed)


async def claim(tx: Tx, *, now: dt.datetime, lease: dt.timedelta, limit: int) -> list[Claimed]:
    """Take up to ``limit`` due messages under a lease, codes first; rows another worker
    holds are skipped. A claim that ran out after its message was handed to the carrier
    is settled as ``unknown`` instead of being taken back."""
    claimed: list[Claimed] = []
    sql = _CLAIM_SQLITE if tx.sqlite else _CLAIM_POSTGRES
    for kind in (CODE, CAMPAIGN):
        if len(claimed) >= limit:
            break
        gone = await tx.fetch(_GIVE_UP_SQL, {"kind": kind, "now": now})
        if gone:
            await record_events(
                tx,
                [event(Tag.SMS_UNKNOWN, actor="outbox", at=now, subject=row.id) for row in gone],
            )
        params = {"kind": kind, "now": now, "lease": now + lease, "limit": limit - len(claimed)}
        claimed += await tx.fetch(sql, params)
    return claimed


_EXPIRE = Sql(
    "UPDATE outbox_messages SET status = 'expired', claimed_until = NULL "
    "WHERE id = :id AND claim_token = :token AND status = 'sending'"
)


async def expire(tx: Tx, messages: Sequence[Claimed], *, now: dt.datetime) -> None:
    """Drop claimed messages whose reason is gone (a code expired or no longer pending)."""
    if not messages:
        return
    await tx.run_many(_EXPIRE, [{"id": m.id, "token": m.token} for m in messages])
    await record_events(
        tx, [event(Tag.SMS_EXPIRED, actor="outbox", at=now, subject=m.id) for m in messages]
    )


_CANCEL = Sql(
    "UPDATE outbox_messages SET status = 'cancelled', claimed_until = NULL, "
    "error_code = :reason WHERE id = :id AND claim_token = :token AND status = 'sending'"
)


async def cancel(tx: Tx, messages: Sequence[Claimed], *, now: dt.datetime, reason: str) -> None:
    """Settle claimed messages that must not be sent (an opt-out, a recipient gone)."""
    if not messages:
        return
    await tx.run_many(_CANCEL, [{"id": m.id, "token": m.token, "reason": reason} for m in messages])
    await record_events(
        tx,
        [
            event(
                Tag.SMS_CANCELLED,
                actor="outbox",
                at=now,
                subject=m.id,
                details={"reason": reason, "subscriber_id": m.subscriber_id},
            )
            for m in messages
        ],
    )


# -- one message at a time: each step is one statement, fenced by the claim's token ---------------


@functools.cache
def _start_sending_sql(wanted: str) -> Sql[_Id]:
    return Sql(
        "UPDATE outbox_messages SET send_started_at = :now, claimed_until = :lease "  # noqa: S608
        "WHERE id = :id AND claim_token = :token AND status = 'sending' "
        f"AND send_started_at IS NULL AND expires_at > :now AND ({wanted}) RETURNING id",
        _Id,
    )


async def start_sending(
    db: Database, message: Claimed, *, wanted: str, now: dt.datetime, lease: dt.timedelta
) -> bool:
    """Mark a message as handed to the carrier, if it is still this claim's and still
    wanted; False means it must not be sent (the reason is settled at the claim's end)."""
    rows = await db.fetch_atomic(
        _start_sending_sql(wanted),
        {"id": message.id, "token": message.token, "now": now, "lease": now + lease},
    )
    return bool(rows)


_RENEW = Sql(
    "UPDATE outbox_messages SET claimed_until = :lease "
    "WHERE id = :id AND claim_token = :token AND status = 'sending'"
)


async def renew(db: Database, messages: Sequence[Claimed], *, until: dt.datetime) -> None:
    """Extend the lease of messages still held (the worker's heartbeat)."""
    if messages:
        async with db.transaction() as tx:
            await tx.run_many(
                _RENEW, [{"id": m.id, "token": m.token, "lease": until} for m in messages]
            )


_RELEASE = Sql(
    "UPDATE outbox_messages SET status = 'pending', claimed_until = NULL "
    "WHERE id = :id AND claim_token = :token AND status = 'sending' "
    "AND send_started_at IS NULL"
)


async def release(db: Database, messages: Sequence[Claimed]) -> None:
    """Give back claimed messages that were never handed to the carrier (a stopping
    worker), so another worker sends them at once rather than after the lease."""
    if messages:
        async with db.transaction() as tx:
            await tx.run_many(_RELEASE, [{"id": m.id, "token": m.token} for m in messages])


class Outcome(NamedTuple):
    """What became of a message, to record: the new status and its details."""

    status: str  # sent, pending (to retry), failed, unknown
    tag: Tag | None  # the audit event, if the outcome is one (a retry is not)
    details: dict[str, Any]
    carrier: str | None = None
    carrier_message_id: str | None = None
    delivery_status: str | None = None
    error_code: str | None = None
    next_attempt_at: dt.datetime | None = None


_RECORD = (
    "UPDATE outbox_messages SET status = CAST(:status AS varchar), claimed_until = NULL, "
    "sent_at = CASE WHEN CAST(:status AS varchar) = 'sent' THEN :now ELSE sent_at END, "
    "carrier = coalesce(:carrier, carrier), "
    "carrier_message_id = coalesce(:carrier_message_id, carrier_message_id), "
    "delivery_status = coalesce(:delivery_status, delivery_status), "
    "error_code = :error_code, "
    "next_attempt_at = coalesce(:next_attempt_at, next_attempt_at), "
    "send_started_at = CASE WHEN CAST(:status AS varchar) = 'pending' THEN NULL "
    "ELSE send_started_at END "
    "WHERE id = :id AND claim_token = :token AND status = 'sending'"
)


# PostgreSQL: the outcome and its audit row in one statement. Parameters that appear
# only in the audit row's SELECT list are cast, since nothing there gives them a type.
class _Count(NamedTuple):
    n: int


_RECORD_POSTGRES = Sql(
    f"WITH recorded AS ({_RECORD} RETURNING id), audited AS ("  # noqa: S608 (fixed text)
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "SELECT CAST(:tag AS varchar), 'outbox', id, :now, CAST(:details AS json) FROM recorded "
    "WHERE CAST(:tag AS varchar) IS NOT NULL) SELECT count(*) FROM recorded",
    _Count,
)
_RECORD_SQLITE = Sql(_RECORD)
_EVENT_SQLITE = Sql(
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "VALUES (:tag, 'outbox', :id, :now, :details)"
)


async def record(db: Database, message: Claimed, outcome: Outcome, *, now: dt.datetime) -> bool:
    """Record a message's outcome and audit it, in one statement on PostgreSQL; False if
    the claim is no longer this worker's (its lease was taken over: nothing is written)."""
    params: dict[str, Any] = outcome._asdict()
    tag = None if outcome.tag is None else outcome.tag.value
    params.update(id=message.id, token=message.token, now=now, tag=tag)
    if not db.sqlite:
        recorded = await db.fetch_atomic(_RECORD_POSTGRES, params)
        return bool(recorded) and recorded[0].n == 1
    async with db.transaction() as tx:
        if await tx.run(_RECORD_SQLITE, params) != 1:
            return False
        if tag is not None:
            await tx.run(_EVENT_SQLITE, params)
    return True


class Depth(NamedTuple):
    """How many messages wait in one kind and state."""

    kind: str
    status: str
    messages: int


_DEPTH = Sql(
    "SELECT kind, status, count(*) FROM outbox_messages "
    "WHERE status IN ('pending', 'sending') GROUP BY kind, status",
    Depth,
)


class _Oldest(NamedTuple):
    due: dt.datetime | None


_OLDEST = Sql("SELECT min(next_attempt_at) FROM outbox_messages WHERE status = 'pending'", _Oldest)


async def depth(tx: Tx) -> tuple[list[Depth], dt.datetime | None]:
    """What waits in the outbox, and since when the oldest due message has been due."""
    oldest = await tx.fetch_one(_OLDEST)
    return await tx.fetch(_DEPTH), None if oldest is None else oldest.due
