"""The SMS outbox: rows written with what caused them, sent by a worker.

A row is a verification code (``kind = 'code'``) or a campaign message (``kind =
'campaign'``). The area that queues a kind also renders it: the worker is given one
:class:`Renderer` per kind (app.main wires them), so this package never imports the
areas that use it. A code's body is built at send time from its verification, so the
table never holds a code, and a message whose code has expired is dropped instead of
sent.

A batch is claimed with a lease in one statement per kind, codes first (``FOR UPDATE
SKIP LOCKED`` on PostgreSQL; SQLite has a single writer), sent, then marked. A worker
that dies holding a lease leaves its rows to be reclaimed when the lease runs out, so
nothing is lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import anyio.to_thread

from app.audit.events import Tag, event, record_events
from app.core.context import Context
from app.core.db import Database, Sql, Tx
from app.core.ids import new_ordered_id
from app.sms.base import SendError, SendResult, SmsSender

log = logging.getLogger("smsreg.outbox")

MAX_ATTEMPTS = 8
LEASE = dt.timedelta(seconds=60)
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
    """A message taken under a lease."""

    id: str
    kind: str
    verification_id: str | None
    delivery_id: str | None
    subscriber_id: str | None
    locale: str | None
    attempts: int
    expires_at: dt.datetime


@dataclass(frozen=True)
class Outgoing:
    """A claimed message, rendered and ready to send."""

    message: Claimed
    to: str
    body: str


@dataclass
class Rendered:
    """What a renderer made of claimed messages: those to send, and those it settled
    itself (expired, cancelled: already marked in its transaction)."""

    outgoing: list[Outgoing] = field(default_factory=list)
    expired: list[Claimed] = field(default_factory=list)


class Renderer(Protocol):
    """Turns one kind of claimed message into SMS, in the claim's transaction."""

    async def render(
        self, tx: Tx, ctx: Context, messages: Sequence[Claimed], *, now: dt.datetime
    ) -> Rendered:
        """Render what can be sent; messages whose reason is gone are left out."""
        ...

    async def still_wanted(self, tx: Tx, message: Claimed, *, now: dt.datetime) -> bool:
        """The last word before a message goes to the carrier (a campaign's opt-in may
        have been withdrawn since the claim). A message no longer wanted is settled here."""
        ...


# Two candidate sets, each read straight off (kind, status, next_attempt_at) in order:
# one OR over both made SQLite sort every due row of a campaign backlog on each claim.
# A claimed row keeps its next_attempt_at, so it is always already due.
_CLAIM = (
    "WITH stale AS (SELECT id FROM outbox_messages WHERE kind = :kind AND status = 'sending' "
    "AND claimed_until <= :now LIMIT :limit{lock}), "
    "due AS (SELECT id FROM outbox_messages WHERE kind = :kind AND status = 'pending' "
    "AND next_attempt_at <= :now ORDER BY next_attempt_at LIMIT :limit{lock}) "
    "UPDATE outbox_messages SET status = 'sending', claimed_until = :lease, "
    "attempts = attempts + 1 WHERE id IN (SELECT id FROM (SELECT id FROM stale UNION ALL "
    "SELECT id FROM due) AS candidates LIMIT :limit) "
    "RETURNING id, kind, verification_id, delivery_id, subscriber_id, locale, attempts, "
    "expires_at"
)
_CLAIM_SQLITE = Sql(_CLAIM.format(lock=""), Claimed)
# Rows locked by another worker's claim are skipped, not waited for.
_CLAIM_POSTGRES = Sql(_CLAIM.format(lock=" FOR UPDATE SKIP LOCKED"), Claimed)


async def claim(tx: Tx, *, now: dt.datetime, limit: int) -> list[Claimed]:
    """Take up to ``limit`` due messages under a lease, codes first; rows another worker
    holds are skipped. Leases that ran out (a worker died) are taken back first."""
    sql = _CLAIM_SQLITE if tx.sqlite else _CLAIM_POSTGRES
    params = {"kind": CODE, "now": now, "lease": now + LEASE, "limit": limit}
    claimed = await tx.fetch(sql, params)
    if len(claimed) < limit:
        params.update(kind=CAMPAIGN, limit=limit - len(claimed))
        claimed += await tx.fetch(sql, params)
    return claimed


_EXPIRE = Sql("UPDATE outbox_messages SET status = 'expired', claimed_until = NULL WHERE id = :id")


async def expire(tx: Tx, messages: Sequence[Claimed], *, now: dt.datetime) -> None:
    """Drop messages whose reason is gone (a code expired or no longer pending)."""
    if not messages:
        return
    await tx.run_many(_EXPIRE, [{"id": m.id} for m in messages])
    await record_events(
        tx, [event(Tag.SMS_EXPIRED, actor="outbox", at=now, subject=m.id) for m in messages]
    )


_CANCEL = Sql(
    "UPDATE outbox_messages SET status = 'cancelled', claimed_until = NULL, "
    "error_code = :reason WHERE id = :id AND status = 'sending'"
)


async def cancel(tx: Tx, messages: Sequence[Claimed], *, now: dt.datetime, reason: str) -> None:
    """Settle messages that must not be sent (an opt-out, a recipient gone)."""
    if not messages:
        return
    await tx.run_many(_CANCEL, [{"id": m.id, "reason": reason} for m in messages])
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


async def claim_and_render(
    tx: Tx,
    ctx: Context,
    renderers: Mapping[str, Renderer],
    *,
    now: dt.datetime,
    limit: int,
) -> tuple[int, list[Outgoing]]:
    """Claim due messages and render them; how many were claimed, and what to send."""
    claimed = await claim(tx, now=now, limit=limit)
    outgoing: list[Outgoing] = []
    expired: list[Claimed] = []
    for kind in (CODE, CAMPAIGN):
        mine = [message for message in claimed if message.kind == kind]
        if not mine:
            continue
        renderer = renderers.get(kind)
        if renderer is None:  # nothing here renders it: leave it to the lease
            log.error("no renderer for outbox messages", extra={"kind": kind})
            continue
        rendered = await renderer.render(tx, ctx, mine, now=now)
        outgoing += rendered.outgoing
        expired += rendered.expired
    await expire(tx, expired, now=now)
    return len(claimed), outgoing


_SENT = Sql(
    "UPDATE outbox_messages SET status = 'sent', claimed_until = NULL, sent_at = :now, "
    "carrier = :carrier, carrier_message_id = :carrier_message_id, "
    "delivery_status = :status WHERE id = :id AND status = 'sending'"
)
_RETRY = Sql(
    "UPDATE outbox_messages SET status = 'pending', claimed_until = NULL, "
    "error_code = :code, next_attempt_at = :next WHERE id = :id AND status = 'sending'"
)
_FAILED = Sql(
    "UPDATE outbox_messages SET status = 'failed', claimed_until = NULL, "
    "error_code = :code WHERE id = :id AND status = 'sending'"
)


async def record_outcomes(
    tx: Tx, *, outcomes: Sequence[tuple[Claimed, SendResult | SendError]], now: dt.datetime
) -> None:
    """Mark sent messages with the carrier's id; retry transient failures with backoff and
    jitter; fail permanent ones (or those out of attempts) for good."""
    sent: list[dict[str, object]] = []
    retry: list[dict[str, object]] = []
    failed: list[dict[str, object]] = []
    events = []
    for message, outcome in outcomes:
        if isinstance(outcome, SendResult):
            sent.append(
                {
                    "id": message.id,
                    "now": now,
                    "carrier": outcome.carrier,
                    "carrier_message_id": outcome.message_id,
                    "status": outcome.status,
                }
            )
            events.append(
                event(
                    Tag.SMS_SENT,
                    actor="outbox",
                    at=now,
                    subject=message.id,
                    details={"carrier": outcome.carrier},
                )
            )
        elif outcome.permanent or message.attempts >= MAX_ATTEMPTS:
            failed.append({"id": message.id, "code": outcome.code})
            events.append(
                event(
                    Tag.SMS_FAILED,
                    actor="outbox",
                    at=now,
                    subject=message.id,
                    details={"code": outcome.code, "permanent": outcome.permanent},
                )
            )
        else:
            delay = min(2**message.attempts, 60) * (0.5 + random.random())  # noqa: S311 (jitter)
            retry.append(
                {"id": message.id, "code": outcome.code, "next": now + dt.timedelta(seconds=delay)}
            )
    await tx.run_many(_SENT, sent)
    await tx.run_many(_RETRY, retry)
    await tx.run_many(_FAILED, failed)
    await record_events(tx, events)


class OutboxWorker:
    """Drains the outbox: in-process in the service, or as `smsreg worker`."""

    def __init__(
        self,
        db: Database,
        ctx: Context,
        sender: SmsSender,
        renderers: Mapping[str, Renderer],
        *,
        batch: int = 50,
    ) -> None:
        self.db = db
        self.ctx = ctx
        self.sender = sender
        self.renderers = renderers
        self.batch = batch
        self._wake = asyncio.Event()

    def kick(self) -> None:
        """Wake the worker: something was just queued."""
        self._wake.set()

    async def drain(self, *, whole: bool = True) -> int:
        """Send everything due now; return how many messages were handled.

        With ``whole=False`` (the in-process worker), stop after a batch that was not
        full when a kick came in while it was sent: what came due meanwhile is left to
        the next batch, after the linger.
        """
        handled = 0
        while True:
            async with self.db.transaction() as tx:
                claimed, batch = await claim_and_render(
                    tx, self.ctx, self.renderers, now=self.ctx.clock.now(), limit=self.batch
                )
            if not claimed:
                return handled
            outcomes: list[tuple[Claimed, SendResult | SendError]] = []
            for item in batch:
                renderer = self.renderers[item.message.kind]
                async with self.db.transaction() as tx:
                    wanted = await renderer.still_wanted(tx, item.message, now=self.ctx.clock.now())
                if wanted:
                    outcomes.append((item.message, await self._send(item)))
            if outcomes:
                async with self.db.transaction() as tx:
                    await record_outcomes(tx, outcomes=outcomes, now=self.ctx.clock.now())
            handled += claimed
            if not whole and claimed < self.batch and self._wake.is_set():
                return handled

    async def _send(self, item: Outgoing) -> SendResult | SendError:
        try:
            if self.sender.blocking:
                return await anyio.to_thread.run_sync(
                    lambda: self.sender.send(to=item.to, body=item.body)
                )
            return self.sender.send(to=item.to, body=item.body)
        except SendError as error:
            log.warning(
                "sms send failed", extra={"message_id": item.message.id, "code": error.code}
            )
            return error

    async def run_forever(self, *, poll_seconds: float = 1.0, linger_seconds: float = 0.02) -> None:
        """Drain soon after every kick, and at least once per poll interval."""
        while True:
            self._wake.clear()
            try:
                await self.drain(whole=False)
            except Exception:  # a bad row or a database blip must not stop sending
                log.exception("outbox drain failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
            except TimeoutError:
                continue
            # Kicked: let the rest of a burst of starts queue up for a moment, so one
            # claim and one commit serve many messages.
            await asyncio.sleep(linger_seconds)
