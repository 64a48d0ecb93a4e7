"""A claimed message's fenced steps: marked as being sent, lease renewed or given back,
outcome recorded. Each is one statement, held only while the claim's token is the
message's."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import orjson

from app.audit.events import Tag
from app.core.db import Database
from app.core.sql import Sql
from app.sms.outbox.messages import Claimed, MessageId

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
def _start_sending_sql(wanted: str, postgres: bool) -> Sql[MessageId]:
    held = _ALL_HELD if postgres else _ONE_HELD
    return Sql(_START_SENDING.format(held=held, wanted=wanted), MessageId)


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
    "UPDATE outbox_messages SET status = 'pending', claimed_until = NULL, "
    "next_attempt_at = coalesce(:retry_at, next_attempt_at) "
    "WHERE id = :id AND claim_token = :token AND status = 'sending' "
    "AND send_started_at IS NULL"
)


async def release(
    db: Database, messages: Sequence[Claimed], *, retry_at: dt.datetime | None = None
) -> None:
    """Give back claimed messages that were never handed to the carrier (a stopping
    worker), so another worker sends them at once rather than after the lease; with
    ``retry_at``, not before then."""
    if messages:
        async with db.transaction() as tx:
            await tx.run_many(
                _RELEASE,
                [{"id": m.id, "token": m.token, "retry_at": retry_at} for m in messages],
            )


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
    # The carrier's report, if one came before this record (a callback naming the
    # message), is later than the state its answer gave, and is kept with its code.
    f"delivery_status = coalesce({_M}delivery_status, {{o}}delivery_status), "
    f"error_code = CASE WHEN {_M}delivery_status IS NULL THEN {{o}}error_code "
    f"ELSE {_M}error_code END, "
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
    MessageId,
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
