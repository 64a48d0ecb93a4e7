"""Erasing a number: every row anywhere that holds it, or links to its subscriber, in one
transaction.

This is the one module outside an area's repository that deletes other areas' rows for a
request (like key rotation, docs/architecture.md): erasure must see at once every table
that holds the number (its ciphertext or blind index) or the subscriber id, or it is not
an erasure. What stays is listed in the receipt (app/subject/erasure.py): the disclosure
ledger, the access log and audit events, which name only the pseudonymous subject id;
and for a while, what :func:`keep_redemptions` and :func:`keep_consent_records` copy
aside before the rows go.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.core.tx import Tx
from app.models.access_log import AccessLogEntry
from app.models.audit import AuditEvent
from app.models.consent import Consent, ConsentEvent, ErasedConsentEvent
from app.models.coupon import CouponRedemption, ErasedRedemptions
from app.models.idempotency import IdempotencyRecord
from app.models.ledger import (
    DisclosureConsent,
    DisclosureRequest,
    DisclosureStop,
    LedgerEntrySubject,
)
from app.models.outbox import OutboxMessage
from app.models.rate_limit import RateLimitHit, SendWindow
from app.models.subject import SubjectRequest, SubjectSession
from app.models.subscriber import Subscriber, SubscriberPurpose
from app.models.types import table
from app.models.verification import Verification
from app.verification import limits

verifications = table(Verification)
outbox = table(OutboxMessage)
idempotency = table(IdempotencyRecord)
windows = table(SendWindow)
hits = table(RateLimitHit)
subscribers = table(Subscriber)
redemptions = table(CouponRedemption)
erased_redemptions = table(ErasedRedemptions)
consent_events = table(ConsentEvent)
erased_consent_events = table(ErasedConsentEvent)
# The Act on Specified Electronic Mail (Art. 3(3), Enforcement Rules Art. 4) asks a sender
# to keep the record of consent for a month after its last message: 31 days.
CONSENT_RECORD_MONTH = dt.timedelta(days=31)
# Rows that name the subscriber and nothing else, deleted in this order (foreign keys).
# Each table has an index that begins with the subscriber (tests/retention/test_plans.py).
BY_SUBSCRIBER = (
    table(Consent),
    table(ConsentEvent),
    table(CouponRedemption),
    table(SubscriberPurpose),
    table(DisclosureConsent),
    table(DisclosureStop),
    table(SubjectSession),
)


async def verifications_of(
    tx: Tx, *, subscriber_id: str | None, indexes: Sequence[str]
) -> list[str]:
    """The ids of every verification of the number (under any index key) or linked to
    the subscriber."""
    query = verifications_query(subscriber_id=subscriber_id, indexes=indexes)
    return [row.id for row in await tx.execute(query)]


async def hold_verifications(tx: Tx, *, subscriber_id: str | None, indexes: Sequence[str]) -> None:
    """Hold the number's verifications until commit (PostgreSQL), as a check or a
    redemption holds the one it works on before it takes the subscriber."""
    if not tx.sqlite:
        query = verifications_query(subscriber_id=subscriber_id, indexes=indexes)
        # In one order whatever plan finds them: two holders never take them crosswise.
        await tx.execute(query.order_by(verifications.c.id).with_for_update())


def verifications_query(*, subscriber_id: str | None, indexes: Sequence[str]) -> sa.Select[Any]:
    """The ids of the number's verifications (its blind index) or its subscriber's (a
    verification under a blind-index key no longer in the ring): each found through
    an index."""
    c = verifications.c
    condition: sa.ColumnElement[bool] = c.phone_index.in_(list(indexes))
    if subscriber_id is not None:
        condition = sa.or_(condition, c.subscriber_id == subscriber_id)
    return sa.select(c.id).where(condition)


def answers_of(verification_ids: Sequence[str]) -> sa.Delete:
    """Delete the stored first answers to these verifications' starts (each names its
    verification and the masked number)."""
    c = idempotency.c
    return sa.delete(idempotency).where(c.verification_id.in_(list(verification_ids)))


def messages_of(*, verification_ids: Sequence[str], subscriber_id: str | None) -> sa.Delete:
    """Delete the code SMS of these verifications and the subscriber's campaign SMS."""
    o = outbox.c
    condition: sa.ColumnElement[bool] = o.verification_id.in_(list(verification_ids))
    if subscriber_id is not None:
        condition = sa.or_(condition, o.subscriber_id == subscriber_id)
    return sa.delete(outbox).where(condition)


async def forget_number(
    tx: Tx, *, subscriber_id: str | None, indexes: Sequence[str]
) -> dict[str, int]:
    """Delete the number's verifications, their SMS and stored answers, and its send
    limits: the rows that hold the number itself. Rows deleted, by table."""
    found = await verifications_of(tx, subscriber_id=subscriber_id, indexes=indexes)
    done: dict[str, int] = {}
    deleted = await tx.execute(messages_of(verification_ids=found, subscriber_id=subscriber_id))
    done["outbox_messages"] = deleted.rowcount
    done["idempotency_records"] = (await tx.execute(answers_of(found))).rowcount
    done["verifications"] = (
        await tx.execute(sa.delete(verifications).where(verifications.c.id.in_(found)))
    ).rowcount
    buckets = limits.number_buckets(indexes)
    done["send_windows"] = (
        await tx.execute(sa.delete(windows).where(windows.c.bucket.in_(buckets)))
    ).rowcount
    done["rate_limit_hits"] = (
        await tx.execute(sa.delete(hits).where(hits.c.bucket.in_(buckets)))
    ).rowcount
    return done


async def keep_redemptions(tx: Tx, *, subscriber_id: str, phone_index: str, erased: bool) -> int:
    """Count the subscriber's redemptions, by coupon, under the number it leaves, so that
    the number's next subscriber starts from them (app.coupons.service): on an erasure
    (``erased``) added to what the number made before as anyone's, and what the
    subscriber left on numbers it moved away from made anyone's too; on a correction as
    the subscriber's own (``moved_by``: never counted against it, replaced if it moves
    away again). A tally's last redemption is kept to the day, the later of the two.
    How many tally rows the erasure made anyone's (0 on a correction)."""
    r = redemptions.c
    tallies = (
        await tx.execute(
            sa.select(
                r.coupon_id,
                sa.func.count().label("redeemed"),
                sa.func.max(r.redeemed_at).label("last"),
            )
            .where(r.subscriber_id == subscriber_id)
            .group_by(r.coupon_id)
        )
    ).all()
    mover = "" if erased else subscriber_id
    rows = [
        {
            "coupon_id": t.coupon_id,
            "phone_index": phone_index,
            "moved_by": mover,
            "redeemed": t.redeemed,
            "last_redeemed_at": t.last.replace(hour=0, minute=0, second=0, microsecond=0),
        }
        for t in tallies
    ]
    if rows:
        await _upsert(tx, rows, add=erased)
    if not erased:
        return 0
    e = erased_redemptions.c
    # Not the number it is erased on, should it have moved away from it and back: its
    # redemptions are counted there just now, all of them.
    left = (
        await tx.execute(
            sa.select(erased_redemptions).where(
                e.moved_by == subscriber_id, e.phone_index != phone_index
            )
        )
    ).all()
    if left:
        await _upsert(tx, [{**row._mapping, "moved_by": ""} for row in left], add=True)
    # None names the erased subscriber afterwards.
    await tx.execute(sa.delete(erased_redemptions).where(e.moved_by == subscriber_id))
    return len(left)


async def _upsert(tx: Tx, rows: list[dict[str, Any]], *, add: bool) -> None:
    """Write tally rows: a row already there for its coupon, number and mover is added to
    (``add``) or replaced."""
    insert = (sqlite.insert if tx.sqlite else postgresql.insert)(erased_redemptions)
    statement = insert.values(rows)
    e, new = erased_redemptions.c, statement.excluded
    await tx.execute(
        statement.on_conflict_do_update(
            index_elements=["coupon_id", "phone_index", "moved_by"],
            set_={
                "redeemed": e.redeemed + new.redeemed if add else new.redeemed,
                "last_redeemed_at": sa.case(
                    (new.last_redeemed_at > e.last_redeemed_at, new.last_redeemed_at),
                    else_=e.last_redeemed_at,
                ),
            },
        )
    )


async def keep_consent_records(
    tx: Tx, *, subscriber_id: str, now: dt.datetime, ttl: dt.timedelta
) -> None:
    """Copy the subscriber's consent history aside while the law asks for it: until a month
    after its last campaign message could have been sent (queued, then ``ttl`` to send)."""
    o = outbox.c
    last = await tx.scalar(
        sa.select(sa.func.max(o.created_at)).where(
            o.subscriber_id == subscriber_id, o.delivery_id.is_not(None)
        )
    )
    if last is None or last + ttl + CONSENT_RECORD_MONTH <= now:
        return
    until = sa.literal(last + ttl + CONSENT_RECORD_MONTH, erased_consent_events.c.kept_until.type)
    e = consent_events.c
    columns = ["id", "subscriber_id", "purpose", "action", "source", "policy_version",
               "client_ip", "actor", "at"]  # fmt: skip
    await tx.execute(
        sa.insert(erased_consent_events).from_select(
            [*columns, "kept_until"],
            sa.select(*(e[name] for name in columns), until).where(
                e.subscriber_id == subscriber_id
            ),
        )
    )


async def erase_subscriber(tx: Tx, *, subscriber_id: str, indexes: Sequence[str]) -> dict[str, int]:
    """Delete the subscriber and everything that holds its number or links to it, but
    the ledger, the access log and audit events. Rows deleted, by table."""
    done = await forget_number(tx, subscriber_id=subscriber_id, indexes=indexes)
    for target in BY_SUBSCRIBER:
        result = await tx.execute(sa.delete(target).where(target.c.subscriber_id == subscriber_id))
        name = str(target.name)  # a quoted_name: JSON wants a plain str
        done[name] = done.get(name, 0) + result.rowcount
    result = await tx.execute(sa.delete(subscribers).where(subscribers.c.id == subscriber_id))
    done["subscribers"] = result.rowcount
    return {name: n for name, n in done.items() if n}


async def kept_naming(tx: Tx, subscriber_id: str, indexes: Sequence[str]) -> dict[str, int]:
    """How many rows of the kept tables name the subject id, or the number by its blind
    ``indexes`` (the receipt says why)."""
    counts = {}
    for target, column in (
        (table(LedgerEntrySubject), "subject_id"),
        (table(AccessLogEntry), "subscriber_id"),
        (table(AuditEvent), "subject"),
        (table(SubjectRequest), "subscriber_id"),
        (erased_consent_events, "subscriber_id"),
    ):
        query = sa.select(sa.func.count()).where(target.c[column] == subscriber_id)
        counts[str(target.name)] = int((await tx.execute(query)).scalar_one())
    tallies = sa.select(sa.func.count()).where(erased_redemptions.c.phone_index.in_(list(indexes)))
    counts[str(erased_redemptions.name)] = int((await tx.execute(tallies)).scalar_one())
    # A disclosure request names its subjects in a JSON list (a few thousand requests
    # in three years: read whole, as text; the id quoted, LIKE's marks escaped).
    requests = table(DisclosureRequest)
    naming = requests.c.subject_ids.cast(sa.Text).contains(f'"{subscriber_id}"', autoescape=True)
    query = sa.select(sa.func.count()).select_from(requests).where(naming)
    counts[str(requests.name)] = int((await tx.execute(query)).scalar_one())
    return counts
