"""The subject area's purge steps (run by ``smsreg purge``, app/retention): sessions a
day after they ended, what erasures kept aside once its time is up, and the request
register (with its erasure receipts) after ``subject_request_retention_days``; and the
dormant subscribers, erased only when ``dormant_erasure`` is on."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from app.core.context import Context
from app.core.db import Database
from app.core.retention import PurgeStep
from app.models.consent import ErasedConsentEvent
from app.models.coupon import ErasedRedemptions
from app.models.subject import SubjectRequest, SubjectSession
from app.models.subscriber import Subscriber
from app.models.types import table
from app.subject import erasure

sessions = table(SubjectSession)
requests = table(SubjectRequest)
erased_redemptions = table(ErasedRedemptions)
erased_consent_events = table(ErasedConsentEvent)
ACTOR = "system:retention"


STEPS = (
    # Sessions a day after they ended.
    PurgeStep(
        "subject_sessions",
        keep=lambda s: dt.timedelta(days=1),
        table=sessions,
        index="ix_subject_sessions_expires_at",
        key=(sessions.c.expires_at, sessions.c.id),
        time=sessions.c.expires_at,
    ),
    # What an erasure kept aside: the number's coupon tallies a while after its last
    # redemption, the consent history until the month the law asks for has passed.
    PurgeStep(
        "erased_redemptions",
        keep=lambda s: dt.timedelta(days=s.coupon_limit_memory_days),
        table=erased_redemptions,
        index="ix_erased_redemptions_last",
        key=(
            erased_redemptions.c.last_redeemed_at,
            erased_redemptions.c.coupon_id,
            erased_redemptions.c.phone_index,
            erased_redemptions.c.moved_by,
        ),
        time=erased_redemptions.c.last_redeemed_at,
    ),
    PurgeStep(
        "erased_consent_events",
        keep=lambda s: dt.timedelta(0),
        table=erased_consent_events,
        index="ix_erased_consent_events_kept_until",
        key=(
            erased_consent_events.c.kept_until,
            erased_consent_events.c.subscriber_id,
            erased_consent_events.c.id,
        ),
        time=erased_consent_events.c.kept_until,
    ),
    # Closed requests (with their receipts) after their period; open ones stay.
    PurgeStep(
        "subject_requests",
        keep=lambda s: dt.timedelta(days=s.subject_request_retention_days),
        table=requests,
        # From its answer: the register is the proof that a request was answered, so a
        # late answer to an old request is kept as long as a prompt one.
        index="ix_subject_requests_done",
        key=(requests.c.done_at, requests.c.id),
        time=requests.c.done_at,
        where=requests.c.status != "open",
    ),
)


def _dormant(before: dt.datetime) -> sa.ColumnElement[bool]:
    # No verification, redemption or campaign message since ``before``, as the subscriber's
    # own row says: redemptions and messages themselves may be purged sooner.
    s = table(Subscriber).c
    return sa.and_(
        s.last_verified_at < before,
        sa.or_(s.last_contact_at.is_(None), s.last_contact_at < before),
    )


def dormant_batch(before: dt.datetime, *, after: str | None, limit: int) -> sa.Select[Any]:
    """The ids of the next ``limit`` dormant subscribers after ``after``, in key order."""
    s = table(Subscriber).c
    query = sa.select(s.id).where(_dormant(before))
    if after is not None:
        query = query.where(s.id > after)
    return query.order_by(s.id).limit(limit)


# Subscribers erased per transaction: an erasure is a dozen statements, so a batch of
# them holds SQLite's write lock about as long as a thousand purged rows.
DORMANT_BATCH = 100


async def erase_dormant(
    db: Database,
    ctx: Context,
    *,
    batch: int,
    dry_run: bool,
    rest: Callable[[float], Awaitable[None]] | None = None,
) -> int:
    """Erase (with ``dry_run``: only count) the dormant subscribers, a batch per unit,
    with ``rest(seconds the batch took)`` awaited between batches.

    The subscribers are walked in key order from where the last batch ended, so each is
    looked at once a run: the ones kept (verified long ago but redeeming or messaged
    lately) are not read again by every batch."""
    before = ctx.clock.now() - dt.timedelta(days=ctx.settings.dormant_after_days)
    subscribers = table(Subscriber)
    if dry_run:
        async with db.transaction() as tx:
            query = sa.select(sa.func.count()).select_from(subscribers).where(_dormant(before))
            return int((await tx.execute(query)).scalar_one())
    size = min(batch, DORMANT_BATCH)
    total = 0
    after: str | None = None
    while True:
        began = time.monotonic()
        async with db.transaction() as tx:
            query = dormant_batch(before, after=after, limit=size)
            found = [row.id for row in await tx.execute(query)]
            for subscriber_id in found:
                await erasure.erase(
                    tx, ctx, subscriber_id=subscriber_id, actor=ACTOR, channel="retention"
                )
        total += len(found)
        if len(found) < size:
            break
        after = found[-1]
        if rest is not None:
            await rest(time.monotonic() - began)
    if total:
        await db.checkpoint()
    return total
