"""The registry of verified numbers: what other areas look up, and what staff see of it.

Numbers enter the registry only through an approved verification
(app/verification/repository/checks.py). Other areas find a number's subscriber, read a
subscriber and the purposes it was verified for, and log a staff access here. Staff
search and read subscribers masked, and a privacy officer reveals a number with a
stated reason; each of those writes the access log in the same transaction. Which roles
may call what is decided by the routes' permission aliases (app.staff.auth); these
functions take the already authorised ``staff``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.crypto import subscriber_aad
from app.core.errors import AppError, NotFound
from app.core.phone import mask, parse_mobile
from app.core.tx import Tx
from app.models.subscriber import Subscriber, SubscriberPurpose
from app.registry import repository as repo
from app.registry.access_log import log_access, log_search
from app.registry.free_text import check_reason
from app.registry.repository import Sealed, VerifiedFor
from app.registry.schemas import RevealedPublic
from app.staff.auth import Staff


class SubscriberNotFound(NotFound):
    slug = "subscriber-not-found"
    title = "No such subscriber"


class NotVerifiedForPurpose(AppError):
    status = 409
    slug = "not-verified-for-purpose"
    title = "The number was not verified by SMS for this purpose"


# -- what other areas look up -------------------------------------------------------------


async def find_id(tx: Tx, *, phone_index: str | Sequence[str]) -> str | None:
    """The subscriber id of a number's blind index (or of any of its indexes, one per
    index key in the ring), if the number is registered."""
    return await repo.find_id(tx, phone_index=phone_index)


async def move_to_index(
    tx: Tx, *, phone_index: str, ciphertext: bytes, key_id: str, older: Sequence[str]
) -> None:
    """Re-index a subscriber still indexed under an older index key (see app.keys)."""
    await repo.move_to_index(
        tx, phone_index=phone_index, ciphertext=ciphertext, key_id=key_id, older=older
    )


async def contacted(tx: Tx, subscriber_ids: Sequence[str], *, at: dt.datetime) -> None:
    """A redemption or campaign message for these subscribers at ``at``: they are not
    dormant until ``dormant_after_days`` after it (app.subject.retention)."""
    if subscriber_ids:
        await repo.contacted(tx, subscriber_ids, at=at)


async def get(tx: Tx, subscriber_id: str, *, lock: bool = False) -> Subscriber | None:
    """One subscriber (its number encrypted), or None; with ``lock``, its row held as a
    delete holds it (an erasure, before it deletes what refers to the subscriber)."""
    return await repo.get(tx, subscriber_id, lock=lock)


async def present(tx: Tx, subscriber_ids: Sequence[str]) -> set[str]:
    """Which of ``subscriber_ids`` exist, each kept from being deleted until the
    transaction ends (for writing rows that refer to many at once: a campaign's batch)."""
    return await repo.present(tx, subscriber_ids)


async def lock_subscribers(tx: Tx, subscriber_ids: Sequence[str]) -> None:
    """Hold, until the transaction ends, each subscriber's lock: what a change to a
    subscriber's uses or its erasure takes first, and what a use that must see them
    unchanged until it commits takes first too (a redemption, a release naming them).

    Taken before any row lock and in id order, so two holders never wait on each other
    in a circle. PostgreSQL: transaction-scoped advisory locks, one per subscriber;
    SQLite: the write lock every transaction already holds.
    """
    await tx.lock_all([f"subscriber:{sid}" for sid in sorted(set(subscriber_ids))])


async def numbers(tx: Tx, subscriber_ids: Sequence[str]) -> dict[str, Sealed]:
    """The stored (encrypted) numbers of those of ``subscriber_ids`` that still exist, by
    id: for :func:`phone_number`."""
    return await repo.numbers(tx, subscriber_ids)


def phone_number(ctx: Context, subscriber: Subscriber | Sealed) -> str:
    """A subscriber's number in E.164, decrypted (only to send to it or to reveal it)."""
    return ctx.keys.decrypt(
        subscriber.phone_ciphertext,
        key_id=subscriber.phone_key_id,
        context=subscriber_aad(subscriber.phone_index),
    )


async def verified_for(tx: Tx, *, subscriber_id: str, purpose: str) -> VerifiedFor | None:
    """Whether a subscriber exists (None if not), and when it was verified for ``purpose``
    (``verified_at`` None: never)."""
    return await repo.verified_for(tx, subscriber_id=subscriber_id, purpose=purpose)


async def verified_among(tx: Tx, subscriber_ids: Sequence[str], *, purpose: str) -> set[str]:
    """Which of ``subscriber_ids`` are (still) verified for ``purpose``."""
    return await repo.verified_among(tx, subscriber_ids, purpose=purpose)


async def verified_after(tx: Tx, *, purpose: str, after: str, limit: int) -> list[str]:
    """The next ``limit`` subscribers verified for ``purpose`` after the id ``after``, in
    id order: a keyset walk that keeps memory flat however many there are."""
    return await repo.verified_after(tx, purpose=purpose, after=after, limit=limit)


# -- staff views ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskedSubscriber:
    """A subscriber as operators and privacy officers see it: the number masked."""

    id: str
    phone_masked: str
    purposes: list[SubscriberPurpose]
    created_at: dt.datetime
    last_verified_at: dt.datetime


async def _masked(tx: Tx, ctx: Context, *, subscriber: Subscriber) -> MaskedSubscriber:
    return MaskedSubscriber(
        id=subscriber.id,
        phone_masked=mask(phone_number(ctx, subscriber)),
        purposes=await repo.purposes_of(tx, subscriber.id),
        created_at=subscriber.created_at,
        last_verified_at=subscriber.last_verified_at,
    )


async def search_by_number(
    tx: Tx, ctx: Context, *, staff: Staff, phone: str, ip: str
) -> list[MaskedSubscriber]:
    """The subscriber holding a number (found by its blind index), masked; the search is
    logged whether or not it finds anyone."""
    s = ctx.settings
    parsed = parse_mobile(phone, default_region=s.default_region, allowed_regions=s.allowed_regions)
    subscriber_id = await repo.find_id(
        tx, phone_index=ctx.keys.blind_indexes(parsed.e164, kind="number")
    )
    subscriber = None if subscriber_id is None else await repo.get(tx, subscriber_id)
    await log_search(
        tx, ctx, staff=staff, ip=ip, found=None if subscriber is None else subscriber.id
    )
    return [] if subscriber is None else [await _masked(tx, ctx, subscriber=subscriber)]


async def read(
    tx: Tx, ctx: Context, *, staff: Staff, subscriber_id: str, ip: str
) -> MaskedSubscriber:
    """One subscriber by id, masked; logged."""
    subscriber = await repo.get(tx, subscriber_id)
    if subscriber is None:
        raise SubscriberNotFound()
    await log_access(tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber.id, action="read")
    await record_event(
        tx, Tag.STAFF_SUBSCRIBER_READ, actor=staff.actor, at=ctx.clock.now(), subject=subscriber.id
    )
    return await _masked(tx, ctx, subscriber=subscriber)


async def reveal(
    tx: Tx, ctx: Context, *, staff: Staff, subscriber_id: str, reason: str, ip: str
) -> RevealedPublic:
    """The full number, for a privacy officer with a stated reason. The reveal and its
    access-log entry commit together, or neither does."""
    cleaned = await check_reason(tx, ctx, reason, staff=staff, ip=ip)  # before any write
    subscriber = await repo.get(tx, subscriber_id)
    if subscriber is None:
        raise SubscriberNotFound()
    e164 = phone_number(ctx, subscriber)
    await log_access(
        tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber.id, action="reveal", reason=cleaned
    )
    await record_event(
        tx,
        Tag.STAFF_SUBSCRIBER_REVEALED,
        actor=staff.actor,
        at=ctx.clock.now(),
        subject=subscriber.id,
        details={"reason": cleaned},
    )
    return RevealedPublic(subscriber_id=subscriber.id, phone=e164)


# -- the subject's own changes (app.subject) ---------------------------------------------


async def purposes_of(tx: Tx, subscriber_id: str) -> list[SubscriberPurpose]:
    """The purposes a subscriber's number was verified for, and when last."""
    return await repo.purposes_of(tx, subscriber_id)


async def drop_purpose(tx: Tx, *, subscriber_id: str, purpose: str) -> bool:
    """Stop the use of a subscriber's number for one purpose until it is verified for it
    again; False if it was not verified for it."""
    return await repo.drop_purpose(tx, subscriber_id=subscriber_id, purpose=purpose)


async def renumber(tx: Tx, ctx: Context, *, subscriber_id: str, e164: str) -> bool:
    """Move a subscriber to another (verified) number: encrypted and indexed anew. False
    if the subscriber is gone or the number is another's; roll the unit back then."""
    phone_index = ctx.keys.blind_index(e164, kind="number")
    key_id, ciphertext = ctx.keys.encrypt(e164, context=subscriber_aad(phone_index))
    return await repo.renumber(
        tx,
        subscriber_id=subscriber_id,
        phone_index=phone_index,
        ciphertext=ciphertext,
        key_id=key_id,
    )
