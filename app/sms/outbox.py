"""The SMS outbox: rows written with the verification, sent by a worker, each at most once.

A message is claimed with a lease in one atomic statement (``FOR UPDATE SKIP LOCKED``
on PostgreSQL; SQLite has a single writer), sent, then marked. A worker that dies
holding a lease leaves the row to be reclaimed when the lease runs out, so nothing
is lost. The body is built at send time from the verification, so the table never
holds a code, and a message whose code has expired is dropped instead of sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from sqlmodel import Session

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Database
from app.core.ids import new_id
from app.models import OutboxMessage, Verification
from app.sms.base import SendError, SendResult, SmsSender
from app.sms.templates import language_for, render_code_message
from app.verification import codes
from app.verification.phone import parse_mobile

log = logging.getLogger("smsreg.outbox")
outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
verifications = Verification.__table__  # type: ignore[attr-defined]

MAX_ATTEMPTS = 8
LEASE = dt.timedelta(seconds=60)


def verification_aad(verification_id: str) -> bytes:
    """Associated data binding a verification's phone ciphertext to its row."""
    return b"verification:" + verification_id.encode()


def enqueue(
    session: Session, *, verification_id: str, now: dt.datetime, expires_at: dt.datetime
) -> str:
    """Queue the code SMS of a verification, in the caller's transaction."""
    message_id = new_id("msg")
    session.execute(
        outbox.insert().values(
            id=message_id,
            verification_id=verification_id,
            status="pending",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
            expires_at=expires_at,
        )
    )
    return message_id


def claim(session: Session, *, now: dt.datetime, limit: int) -> list[Any]:
    """Take up to ``limit`` due messages under a lease; rows another worker holds are skipped."""
    c = outbox.c
    due = (
        sa.select(c.id)
        .where(
            sa.or_(
                sa.and_(c.status == "pending", c.next_attempt_at <= now),
                sa.and_(c.status == "sending", c.claimed_until <= now),
            )
        )
        .order_by(c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.execute(
        outbox.update()
        .where(c.id.in_(due.scalar_subquery()))
        .values(status="sending", claimed_until=now + LEASE, attempts=c.attempts + 1)
        .returning(c.id, c.verification_id, c.attempts, c.expires_at)
    ).all()
    return list(rows)


def _finish(session: Session, message_id: str, **values: Any) -> None:
    session.execute(
        outbox.update()
        .where(outbox.c.id == message_id, outbox.c.status == "sending")
        .values(claimed_until=None, **values)
    )


@dataclass(frozen=True)
class Outgoing:
    """A claimed message, ready to send (or None if it must not be sent)."""

    message_id: str
    to: str
    body: str


def build(session: Session, ctx: Context, *, message: Any, now: dt.datetime) -> Outgoing | None:
    """Render the message of a claimed row; mark it expired instead when its code is dead."""
    v = session.execute(
        sa.select(verifications).where(verifications.c.id == message.verification_id)
    ).one()
    if v.status != "pending" or v.expires_at <= now or message.expires_at <= now:
        _finish(session, message.id, status="expired")
        return None
    to = ctx.keys.decrypt(v.phone_ciphertext, key_id=v.phone_key_id, context=verification_aad(v.id))
    code = codes.derive(
        ctx.keys.code,
        key_id=v.code_key_id,
        verification_id=v.id,
        purpose=v.purpose,
        salt=v.code_salt,
        length=v.code_length,
    )
    s = ctx.settings
    region = parse_mobile(
        to, default_region=s.default_region, allowed_regions=[s.default_region, *s.allowed_regions]
    ).region
    body = render_code_message(
        language=language_for(v.locale, region),
        service=s.service_name,
        code=code,
        minutes=max(1, s.code_ttl_seconds // 60),
        webotp_domain=s.webotp_domain,
    )
    return Outgoing(message_id=message.id, to=to, body=body)


def record_sent(session: Session, *, message_id: str, result: SendResult, now: dt.datetime) -> None:
    """Mark a message sent with the carrier's id."""
    _finish(
        session,
        message_id,
        status="sent",
        sent_at=now,
        carrier=result.carrier,
        carrier_message_id=result.message_id,
        delivery_status=result.status,
    )
    record_event(
        session,
        Tag.SMS_SENT,
        actor="outbox",
        at=now,
        subject=message_id,
        details={"carrier": result.carrier},
    )


def record_failure(session: Session, *, message: Any, error: SendError, now: dt.datetime) -> None:
    """Retry a transient failure later with backoff and jitter; fail a permanent one for good."""
    if error.permanent or message.attempts >= MAX_ATTEMPTS:
        _finish(session, message.id, status="failed", error_code=error.code)
        record_event(
            session,
            Tag.SMS_FAILED,
            actor="outbox",
            at=now,
            subject=message.id,
            details={"code": error.code, "permanent": error.permanent},
        )
        return
    delay = min(2**message.attempts, 60) * (0.5 + random.random())  # noqa: S311 (jitter, not a secret)
    _finish(
        session,
        message.id,
        status="pending",
        error_code=error.code,
        next_attempt_at=now + dt.timedelta(seconds=delay),
    )


class OutboxWorker:
    """Drains the outbox: in-process in the service, or as `smsreg worker`."""

    def __init__(self, db: Database, ctx: Context, sender: SmsSender, *, batch: int = 50) -> None:
        self.db = db
        self.ctx = ctx
        self.sender = sender
        self.batch = batch
        self._wake = asyncio.Event()

    def kick(self) -> None:
        """Wake the worker: something was just queued."""
        self._wake.set()

    async def drain(self) -> int:
        """Send everything due now; return how many messages were handled."""
        handled = 0
        while True:
            claimed = await self.db.run(claim, now=self.ctx.clock.now(), limit=self.batch)
            if not claimed:
                return handled
            for message in claimed:
                await self._deliver(message)
                handled += 1

    async def _deliver(self, message: Any) -> None:
        outgoing = await self.db.run(build, self.ctx, message=message, now=self.ctx.clock.now())
        if outgoing is None:
            return
        try:
            if self.sender.blocking:
                result = await anyio.to_thread.run_sync(
                    lambda: self.sender.send(to=outgoing.to, body=outgoing.body)
                )
            else:
                result = self.sender.send(to=outgoing.to, body=outgoing.body)
        except SendError as error:
            log.warning("sms send failed", extra={"message_id": message.id, "code": error.code})
            await self.db.run(
                record_failure, message=message, error=error, now=self.ctx.clock.now()
            )
            return
        await self.db.run(
            record_sent, message_id=message.id, result=result, now=self.ctx.clock.now()
        )

    async def run_forever(self, *, poll_seconds: float = 1.0) -> None:
        """Drain on every kick, and at least once per poll interval."""
        while True:
            try:
                await self.drain()
            except Exception:  # a bad row or a database blip must not stop sending
                log.exception("outbox drain failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
            except TimeoutError:
                pass
            self._wake.clear()
