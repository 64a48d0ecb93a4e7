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

import orjson

from app.audit.events import Tag, event, record_events
from app.core.context import Context
from app.core.db import Database
from app.core.ids import new_ordered_id
from app.core.sql import Sql
from app.core.tx import Tx

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


# -- claiming -------------------------------------------------------------------------------

_KINDS = (CODE, CAMPAIGN)  # claimed in this order: a campaign's backlog never delays a code
_GIVE_UP = (
    "UPDATE outbox_messages SET status = 'unknown', claimed_until = NULL "
    "WHERE kind IN ({kinds}) AND status = 'sending' AND claimed_until <= :now "
    "AND send_started_at IS NOT NULL RETURNING id"
)
# Two candidate sets per kind, each read straight off (kind, status, next_attempt_at): one
# OR over both made SQLite sort every due row of a backlog on each claim. Only claims that
# ran out before their message was handed to the carrier are taken back.
_STALE = (
    "SELECT id, next_attempt_at FROM outbox_messages WHERE kind = {kind} "
    "AND status = 'sending' AND claimed_until <= :now AND send_started_at IS NULL "
    "LIMIT :limit{lock}"
)
_DUE = (
    "SELECT id, next_attempt_at FROM outbox_messages WHERE kind = {kind} "
    "AND status = 'pending' AND next_attempt_at <= :now ORDER BY next_attempt_at "
    "LIMIT :limit{lock}"
)
_TAKE = (
    "UPDATE outbox_messages SET status = 'sending', claimed_until = :lease, "
    "claim_token = claim_token + 1, attempts = attempts + 1 WHERE id IN ({candidates}) "
    "RETURNING id, kind, verification_id, delivery_id, subscriber_id, locale, attempts, "
    "expires_at, claim_token"
)
_GIVE_UP_AUDIT = (
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "SELECT CAST(:unknown AS varchar), 'outbox', id, CAST(:now AS timestamptz), "
    "CAST('{}' AS json) FROM gone"
)


class _Id(NamedTuple):
    id: str


_GIVE_UP_SQL = Sql(_GIVE_UP.format(kinds=":kind"), _Id)
_CLAIM_SQLITE = Sql(
    f"WITH stale AS ({_STALE.format(kind=':kind', lock='')}), "  # noqa: S608 (fixed text)
    f"due AS ({_DUE.format(kind=':kind', lock='')}) "
    + _TAKE.format(
        candidates="SELECT id FROM (SELECT id FROM stale UNION ALL SELECT id FROM due) "
        "AS candidates LIMIT :limit"
    ),
    Claimed,
)


def _claim_postgres() -> Sql[Claimed]:
    # One statement for every kind: settle the claims that ran out mid-send as unknown
    # (audited), then take the stale and due messages of each kind in order. Rows another
    # worker's claim has locked are skipped, not waited for.
    kinds = ", ".join(f":{kind}" for kind in _KINDS)
    parts = [f"gone AS ({_GIVE_UP.format(kinds=kinds)})", f"audited AS ({_GIVE_UP_AUDIT})"]
    candidates = []
    lock = " FOR UPDATE SKIP LOCKED"
    for rank, (kind, query) in enumerate((k, q) for k in _KINDS for q in (_STALE, _DUE)):
        parts.append(f"c{rank} AS ({query.format(kind=':' + kind, lock=lock)})")
        candidates.append(f"SELECT id, {rank} AS rank, next_attempt_at FROM c{rank}")  # noqa: S608
    union = " UNION ALL ".join(candidates)
    ordered = (
        f"SELECT id FROM ({union}) AS candidates "  # noqa: S608 (fixed text)
        "ORDER BY rank, next_attempt_at LIMIT :limit"
    )
    text = f"WITH {', '.join(parts)} {_TAKE.format(candidates=ordered)}"
    return Sql(text, Claimed)  # fixed text: only the kinds' fixed names vary


_CLAIM_POSTGRES = _claim_postgres()


async def claim(tx: Tx, *, now: dt.datetime, lease: dt.timedelta, limit: int) -> list[Claimed]:
    """Take up to ``limit`` due messages under a lease, codes first; rows another worker
    holds are skipped. A claim that ran out after its message was handed to the carrier
    is settled as ``unknown`` instead of being taken back. The unit's final statement:
    render what was claimed in a unit of its own."""
    if not tx.sqlite:
        params = {
            "code": CODE,
            "campaign": CAMPAIGN,
            "unknown": Tag.SMS_UNKNOWN.value,
            "now": now,
            "lease": now + lease,
            "limit": limit,
        }
        taken = await tx.fetch_final(_CLAIM_POSTGRES, params)
        return sorted(taken, key=lambda m: _KINDS.index(m.kind))  # RETURNING has no order
    claimed: list[Claimed] = []
    for kind in _KINDS:
        if len(claimed) >= limit:
            break
        gone = await tx.fetch(_GIVE_UP_SQL, {"kind": kind, "now": now})
        if gone:
            await record_events(
                tx,
                [event(Tag.SMS_UNKNOWN, actor="outbox", at=now, subject=row.id) for row in gone],
            )
        params = {"kind": kind, "now": now, "lease": now + lease, "limit": limit - len(claimed)}
        claimed += await tx.fetch(_CLAIM_SQLITE, params)
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


# -- a few messages at a time: each step one statement, fenced by each claim's token -----------


_START_SENDING = (
    "UPDATE outbox_messages SET send_started_at = :now, claimed_until = :lease {held} "
    "AND outbox_messages.status = 'sending' AND send_started_at IS NULL "
    "AND expires_at > :now AND ({wanted}) RETURNING outbox_messages.id"
)
_ONE_HELD = "WHERE id = :id AND claim_token = :token"
# A tuple travels to PostgreSQL as an array (app.core.db): the held messages and their
# claim tokens, matched pairwise.
_ALL_HELD = (
    "FROM unnest(CAST(:ids AS varchar[]), CAST(:tokens AS integer[])) AS held(id, token) "
    "WHERE outbox_messages.id = held.id AND outbox_messages.claim_token = held.token"
)


@functools.cache
def _start_sending_sql(wanted: str, postgres: bool) -> Sql[_Id]:
    held = _ALL_HELD if postgres else _ONE_HELD
    return Sql(_START_SENDING.format(held=held, wanted=wanted), _Id)


async def start_sending(
    db: Database,
    messages: Sequence[Claimed],
    *,
    wanted: str,
    now: dt.datetime,
    lease: dt.timedelta,
) -> set[str]:
    """Mark messages of one kind as handed to the carrier, those still this claim's and
    still wanted; the ids of those marked. The others must not be sent (their reason is
    settled at the claim's end). One statement on PostgreSQL."""
    if not messages:
        return set()
    params: dict[str, Any] = {"now": now, "lease": now + lease}
    if not db.sqlite:
        params.update(ids=tuple(m.id for m in messages), tokens=tuple(m.token for m in messages))
        return {row.id for row in await db.fetch_atomic(_start_sending_sql(wanted, True), params)}
    taken: set[str] = set()
    async with db.transaction() as tx:
        for m in messages:
            found = await tx.fetch(
                _start_sending_sql(wanted, False), {**params, "id": m.id, "token": m.token}
            )
            taken.update(row.id for row in found)
    return taken


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


_M = "outbox_messages."
_RECORD = (
    "UPDATE outbox_messages SET status = {o}status, claimed_until = NULL, "  # noqa: S608 (constants only)
    f"sent_at = CASE WHEN {{o}}status = 'sent' THEN :now ELSE {_M}sent_at END, "
    f"carrier = coalesce({{o}}carrier, {_M}carrier), "
    f"carrier_message_id = coalesce({{o}}carrier_message_id, {_M}carrier_message_id), "
    f"delivery_status = coalesce({{o}}delivery_status, {_M}delivery_status), "
    "error_code = {o}error_code, "
    f"next_attempt_at = coalesce({{o}}next_attempt_at, {_M}next_attempt_at), "
    f"send_started_at = CASE WHEN {{o}}status = 'pending' THEN NULL "
    f"ELSE {_M}send_started_at END "
    f"{{source}} AND {_M}claim_token = {{o}}token AND {_M}status = 'sending'"
)
_RECORD_SQLITE = Sql(_RECORD.format(o=":", source="WHERE id = :id"))
_EVENT_SQLITE = Sql(
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "VALUES (:tag, 'outbox', :id, :now, :details)"
)
# PostgreSQL: every outcome and its audit row in one statement, the outcomes as arrays.
_OUTCOMES = (
    "FROM unnest(CAST(:ids AS varchar[]), CAST(:tokens AS integer[]), "
    "CAST(:statuses AS varchar[]), CAST(:carriers AS varchar[]), "
    "CAST(:carrier_message_ids AS varchar[]), CAST(:delivery_statuses AS varchar[]), "
    "CAST(:error_codes AS varchar[]), CAST(:next_attempts AS timestamptz[]), "
    "CAST(:tags AS varchar[]), CAST(:details AS json[])) "
    "AS o(id, token, status, carrier, carrier_message_id, delivery_status, error_code, "
    "next_attempt_at, tag, details) WHERE outbox_messages.id = o.id"
)
_RECORD_POSTGRES = Sql(
    f"WITH recorded AS ({_RECORD.format(o='o.', source=_OUTCOMES)} "  # noqa: S608 (fixed)
    "RETURNING outbox_messages.id, o.tag, o.details), "
    "audited AS (INSERT INTO audit_events (tag, actor, subject, at, details) "
    "SELECT tag, 'outbox', id, :now, details FROM recorded WHERE tag IS NOT NULL) "
    "SELECT id FROM recorded",
    _Id,
)


async def record(
    db: Database, outcomes: Sequence[tuple[Claimed, Outcome]], *, now: dt.datetime
) -> set[str]:
    """Record messages' outcomes and audit them, in one statement on PostgreSQL; the ids
    recorded. A message left out is no longer this worker's (its lease was taken over):
    nothing is written about it."""
    if not outcomes:
        return set()
    if not db.sqlite:
        columns: dict[str, list[Any]] = {
            name: []
            for name in (
                "ids", "tokens", "statuses", "carriers", "carrier_message_ids",
                "delivery_statuses", "error_codes", "next_attempts", "tags", "details",
            )
        }  # fmt: skip
        for message, outcome in outcomes:
            for name, value in zip(
                columns,
                (
                    message.id, message.token, outcome.status, outcome.carrier,
                    outcome.carrier_message_id, outcome.delivery_status, outcome.error_code,
                    outcome.next_attempt_at, None if outcome.tag is None else outcome.tag.value,
                    orjson.dumps(outcome.details).decode(),
                ),
                strict=True,
            ):  # fmt: skip
                columns[name].append(value)
        params: dict[str, Any] = {name: tuple(values) for name, values in columns.items()}
        params["now"] = now
        return {row.id for row in await db.fetch_atomic(_RECORD_POSTGRES, params)}
    recorded: set[str] = set()
    async with db.transaction() as tx:
        for message, outcome in outcomes:
            row: dict[str, Any] = outcome._asdict()
            tag = None if outcome.tag is None else outcome.tag.value
            row.update(id=message.id, token=message.token, now=now, tag=tag)
            if await tx.run(_RECORD_SQLITE, row) != 1:
                continue
            recorded.add(message.id)
            if tag is not None:
                await tx.run(_EVENT_SQLITE, row)
    return recorded


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
