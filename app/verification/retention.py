"""The verification area's purge steps (run by ``smsreg purge``, app/retention).

- verifications that never succeeded (pending, expired, exhausted, superseded): 24 h
  after they were started (``unverified_retention_hours``);
- approved verifications: 6 months (``verification_retention_days``); the subscriber
  they created stays, it is the registry;
- a verification's code SMS go with it;
- send-limit hits older than any window needs (a day, or the pumping window if longer);
- a number's send window once its last send has left it (a day after that send);
- idempotency records older than their replay period (``idempotency_ttl_hours``).

These are the area's purge queries, beside its repository: each walks one index from a
cursor (app/core/retention.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa

from app.core.config import Settings
from app.core.db import Tx
from app.core.retention import Cursor, PurgeBatch, PurgeStep, delete_batch
from app.models.idempotency import IdempotencyRecord
from app.models.outbox import OutboxMessage
from app.models.rate_limit import RateLimitHit, SendWindow
from app.models.types import table
from app.models.verification import Verification

verifications = table(Verification)
outbox_messages = table(OutboxMessage)
rate_limit_hits = table(RateLimitHit)
send_windows = table(SendWindow)
idempotency_records = table(IdempotencyRecord)


async def _verifications(
    tx: Tx,
    *,
    approved: bool,
    before: dt.datetime,
    after: Cursor | None,
    limit: int,
) -> PurgeBatch:
    c = verifications.c
    status = c.status == "approved" if approved else c.status != "approved"

    def code_messages(batch: sa.ColumnElement[bool]) -> Sequence[sa.Delete]:
        # Their SMS first (a foreign key), found through ix_outbox_messages_verification_id.
        ids = sa.select(c.id).where(batch)
        return [sa.delete(outbox_messages).where(outbox_messages.c.verification_id.in_(ids))]

    # By ix_verifications_created_at; there is no index on status, so a run walks past
    # the approved verifications of the last six months once, in the unverified step.
    return await delete_batch(
        tx,
        table=verifications,
        key=(c.created_at, c.id),
        due=sa.and_(c.created_at < before, status),
        after=after,
        limit=limit,
        dependents=code_messages,
    )


async def purge_unverified(
    tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
) -> PurgeBatch:
    """One batch of verifications that never succeeded, started before ``before``."""
    return await _verifications(tx, approved=False, before=before, after=after, limit=limit)


async def purge_approved(
    tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
) -> PurgeBatch:
    """One batch of approved verifications started before ``before``."""
    return await _verifications(tx, approved=True, before=before, after=after, limit=limit)


async def purge_rate_limit_hits(
    tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
) -> PurgeBatch:
    """One batch of send-limit hits counted before ``before``."""
    c = rate_limit_hits.c
    # No index on "at" alone, on purpose (app/models/rate_limit.py): a run walks the
    # primary key (bucket, at) once, from a cursor.
    return await delete_batch(
        tx,
        table=rate_limit_hits,
        key=(c.bucket, c.at),
        due=c.at < before,
        after=after,
        limit=limit,
    )


async def purge_send_windows(
    tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
) -> PurgeBatch:
    """One batch of numbers' send windows whose last send left them before ``before``."""
    c = send_windows.c
    return await delete_batch(
        tx,
        table=send_windows,
        key=(c.expires_at, c.bucket),
        due=c.expires_at < before,
        after=after,
        limit=limit,
    )


async def purge_idempotency_records(
    tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
) -> PurgeBatch:
    """One batch of idempotency records made before ``before``."""
    c = idempotency_records.c
    return await delete_batch(
        tx,
        table=idempotency_records,
        key=(c.created_at, c.client_id, c.key),
        due=c.created_at < before,
        after=after,
        limit=limit,
    )


def _hits_kept(s: Settings) -> dt.timedelta:
    # What the send limits and the pumping guard still count.
    return max(dt.timedelta(days=1), dt.timedelta(minutes=s.pumping_window_minutes))


STEPS = (
    PurgeStep(
        "unverified",
        keep=lambda s: dt.timedelta(hours=s.unverified_retention_hours),
        run=purge_unverified,
    ),
    PurgeStep(
        "approved",
        keep=lambda s: dt.timedelta(days=s.verification_retention_days),
        run=purge_approved,
    ),
    PurgeStep("rate_limit_hits", keep=_hits_kept, run=purge_rate_limit_hits),
    PurgeStep("send_windows", keep=lambda s: dt.timedelta(0), run=purge_send_windows),
    PurgeStep(
        "idempotency_records",
        keep=lambda s: dt.timedelta(hours=s.idempotency_ttl_hours),
        run=purge_idempotency_records,
    ),
)
