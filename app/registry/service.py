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
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import anyio.to_thread
import phonenumbers
from phonenumbers import Leniency

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.crypto import subscriber_aad
from app.core.errors import AppError, InvalidInput, NotFound
from app.core.phone import mask, numbers_in, parse_mobile
from app.core.text import digit_runs
from app.core.tx import Tx
from app.models.access_log import AccessLogEntry
from app.models.subscriber import Subscriber, SubscriberPurpose
from app.registry import repository as repo
from app.registry.repository import Sealed, VerifiedFor
from app.registry.schemas import RevealedPublic, clean_reason
from app.staff.auth import Staff

MAX_IP_LENGTH = 64


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


async def get(tx: Tx, subscriber_id: str) -> Subscriber | None:
    """One subscriber (its number encrypted), or None."""
    return await repo.get(tx, subscriber_id)


async def lock_subscribers(tx: Tx, subscriber_ids: Sequence[str]) -> None:
    """Hold, until the transaction ends, each subscriber's lock: what a change to a
    subscriber's uses or its erasure takes first, and what a use that must see them
    unchanged until it commits takes first too (a redemption, a release naming them).

    Taken before any row lock and in id order, so two holders never wait on each other
    in a circle. PostgreSQL: transaction-scoped advisory locks, one per subscriber;
    SQLite: the write lock every transaction already holds.
    """
    for subscriber_id in sorted(set(subscriber_ids)):
        await tx.lock(f"subscriber:{subscriber_id}")


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


async def log_access(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    ip: str,
    subscriber_id: str | None,
    action: str,
    reason: str | None = None,
) -> None:
    """Record a staff member's access to a subscriber in the access log, in the caller's
    transaction: the access and its record commit together or not at all."""
    await repo.insert_access(
        tx,
        AccessLogEntry(
            accessed_at=ctx.clock.now(),
            staff_id=staff.id,
            staff_username=staff.username,
            staff_role=staff.role.value,
            source_ip=ip[:MAX_IP_LENGTH],
            subscriber_id=subscriber_id,
            action=action,
            reason=reason,
        ),
    )


# -- staff views ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MaskedSubscriber:
    """A subscriber as operators and privacy officers see it: the number masked."""

    id: str
    phone_masked: str
    purposes: list[SubscriberPurpose]
    created_at: dt.datetime
    last_verified_at: dt.datetime


async def check_reason(
    tx: Tx,
    ctx: Context,
    text: str,
    *,
    field: str = "reason",
    staff: Staff | None = None,
    ip: str = "",
) -> str:
    """A reason kept for years (a reveal's, a subject request's, or the note closing one),
    cleaned: 10 to 500 printable characters, no phone number of a region served, and no
    registered subscriber's number however written (:func:`refuse_registered_number`),
    else InvalidInput on ``field``. The message never repeats the input."""
    try:
        cleaned = clean_reason(text)
    except ValueError as exc:
        raise InvalidInput.field(field, str(exc)) from None
    s = ctx.settings
    for region in dict.fromkeys([s.default_region, *s.allowed_regions]):
        for _match in phonenumbers.PhoneNumberMatcher(cleaned, region, leniency=Leniency.VALID):
            raise InvalidInput.field(
                field, "must not contain a phone number (the access log never holds one)"
            )
    await refuse_registered_number(tx, ctx, field=field, text=cleaned, staff=staff, ip=ip)
    return cleaned


class NumberInText(InvalidInput):
    """A subscriber's number typed into a staff member's text: refused, and the lookup
    it was is kept in the access log (the refusal commits that row)."""

    commit = True


async def refuse_registered_number(
    tx: Tx,
    ctx: Context,
    *,
    field: str,
    text: str | None,
    staff: Staff | None = None,
    ip: str = "",
) -> None:
    """InvalidInput on ``field`` if ``text`` holds a registered subscriber's number,
    however written: records kept for years (the access log, the ledger, the request
    register) name a subject by id only. Read as a number of every region served (full-
    width, kanji and separated digits too, groups joined by any marks), and looked up
    under every index key in the ring, so neither a foreign number nor one not yet
    re-indexed slips through. Exact, so an ordinary date or amount never trips it.

    The refusal tells whoever typed the text that the number is registered: given the
    ``staff`` member (by a caller that has written nothing yet), it is a search by number
    as any other, kept in the access log with the subscriber found."""
    found = await _subscriber_in(tx, ctx, field=field, text=text)
    if found is None:
        return
    detail = "must not contain a subscriber's phone number; name subjects by id"
    if staff is None:
        raise InvalidInput.field(field, detail)
    reason = f"a subscriber's number typed in {field}"
    await log_access(
        tx, ctx, staff=staff, ip=ip, subscriber_id=found, action="search_number", reason=reason
    )
    await record_event(
        tx,
        Tag.STAFF_SUBSCRIBER_SEARCHED,
        actor=staff.actor,
        at=ctx.clock.now(),
        subject=found,
        details={"found": True, "field": field},
    )
    raise NumberInText.field(field, detail)


async def _subscriber_in(tx: Tx, ctx: Context, *, field: str, text: str | None) -> str | None:
    """The id of a subscriber whose number ``text`` holds (see refuse_registered_number)."""
    if not text:
        return None
    if any(len(run) > _LONGEST_RUN for run in digit_runs(text)):
        # Each stretch of a run is read as a number: a very long run would hold the event
        # loop, and no contact, reference or reason needs one.
        raise InvalidInput.field(field, f"holds a run of more than {_LONGEST_RUN} digits")
    s = ctx.settings
    regions = list(dict.fromkeys([s.default_region, *s.allowed_regions]))
    # Off the event loop: a long text of many short digit groups takes a good part of a
    # second to read every way, which would hold every other request of the process.
    found = await anyio.to_thread.run_sync(functools.partial(numbers_in, text, regions=regions))
    indexes = [i for e164 in sorted(found) for i in ctx.keys.blind_indexes(e164, kind="number")]
    for start in range(0, len(indexes), _LOOKUP):  # a few statement shapes, however long
        if found_id := await repo.find_id(tx, phone_index=indexes[start : start + _LOOKUP]):
            return found_id
    return None


_LOOKUP = 64  # indexes looked up in one statement
_LONGEST_RUN = 30  # digits in a row free text may hold


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
    await log_access(
        tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, action="search_number"
    )
    await record_event(
        tx,
        Tag.STAFF_SUBSCRIBER_SEARCHED,
        actor=staff.actor,
        at=ctx.clock.now(),
        subject=subscriber_id,
        details={"found": subscriber is not None},
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
