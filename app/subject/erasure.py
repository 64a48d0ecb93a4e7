"""Erasure and correction of a subject's number.

Erasure is crypto-shredding by deletion: the number's ciphertext and blind index, in the
registry and in every verification, go with every row linked to the subscriber (purposes,
consent history, redemptions, SMS, send limits, sessions, stops and consents to provide).
What is kept names only the pseudonymous subject id, never the number (the redemption
tallies name it by its keyed hash, so that a coupon's limit per number outlives the
erasure), and the receipt says what and why. A correction moves the redemptions with
the subscriber and counts them under the number it leaves too (never against the
subscriber itself, should it come back): an erasure and a correction onto the erased
number, repeated, renewed a number's coupons each time otherwise. A later verification
of the same number finds no subscriber, so it starts a new one. On SQLite
deleted bytes are overwritten (``secure_delete``) and the write-ahead log is emptied
after the commit (:meth:`Database.checkpoint`).
"""

from __future__ import annotations

import datetime as dt

from app.audit.events import Tag, record_event
from app.clients import service as clients
from app.core.context import Context
from app.core.db import Database
from app.core.errors import AppError, FieldProblem, Unauthenticated
from app.core.ids import new_id
from app.core.phone import mask
from app.core.tx import Tx
from app.ledger.errors import SubjectNotFound
from app.models.subscriber import Subscriber
from app.registry import service as registry
from app.sms import campaigns
from app.subject import register, sessions, shredding
from app.subject import repository as repo
from app.subject.schemas import (
    CorrectedPublic,
    ErasureReceiptPublic,
    KeptPublic,
    RequestKind,
    SubjectCodeCheck,
)
from app.subject.sessions import Subject
from app.verification import service as verification

# What an erasure keeps, and why: each names the subject only by its pseudonymous id.
KEPT_WHY = {
    "ledger_entry_subjects": "disclosure ledger entries naming the subject id: records of "
    "provision to third parties, kept three years and append-only (APPI Art. 29 and 30)",
    "access_log": "staff accesses to the record (who, when, why): the security record, "
    "kept one year",
    "audit_events": "what was done and when, by whom; never the number. Counted: the "
    "events about the subject; the events of its verifications and redemptions name its "
    "id too (a verification's go after 183 days)",
    "erased_redemptions": "how often the number redeemed each coupon, under a keyed hash "
    "of the number: erasing does not renew a coupon's limit per number; deleted a year "
    "after the last redemption",
    "erased_consent_events": "the history of consent to coupon messages, which the law "
    "asks a sender to keep for a month after its last message (Act on Specified "
    "Electronic Mail Art. 3(3)); deleted then",
    "disclosure_requests": "requests to disclose data to a third party that name the "
    "subject id, released or not: kept three years with the ledger (APPI Art. 29 and 30)",
    "subject_requests": "the register of the subject's requests and this receipt: proof "
    "that the requests were answered, kept three years",
}


class NumberTaken(AppError):
    status = 409
    slug = "subject-number-taken"
    title = "The new number is already in the registry as another subscriber"

    def __init__(self) -> None:
        # Named as its sibling (the current number verified) names it: the code check's
        # verification proved the number that is taken.
        detail = "verified a number another subscriber holds"
        super().__init__(
            errors=[FieldProblem(location="body", field="verification_id", detail=detail)]
        )


async def erase(
    tx: Tx,
    ctx: Context,
    *,
    subscriber_id: str,
    actor: str,
    channel: str = "self_service",
    request_id: str | None = None,
    record: bool = True,
) -> ErasureReceiptPublic:
    """Erase a subscriber and its number everywhere; the receipt, recorded unless the
    caller closes a request with it (``record`` False)."""
    # The number's verifications first: a check (or a redemption) holds its verification,
    # then the subscriber, and an erasure that took the subscriber first and then waited
    # to delete that verification deadlocked with it (the check answered 503).
    seen = await registry.get(tx, subscriber_id)
    if seen is None:
        raise SubjectNotFound()
    await shredding.hold_verifications(tx, subscriber_id=subscriber_id, indexes=_indexes(ctx, seen))
    # Then the subscriber's lock before anything is deleted: a release naming them or a
    # redemption in progress commits first (the receipt counts its entry; each delete
    # below sees what it wrote), and one that comes later finds the subscriber gone.
    # Its row too: a campaign's batch, which holds its subscribers' rows rather than
    # their locks, writes its message first (deleted below) or finds the subscriber gone.
    await registry.lock_subscribers(tx, [subscriber_id])
    subscriber = await registry.get(tx, subscriber_id, lock=True)
    if subscriber is None:
        raise SubjectNotFound()
    indexes = _indexes(ctx, subscriber)
    now = ctx.clock.now()
    folded = await shredding.keep_redemptions(
        tx, subscriber_id=subscriber_id, phone_index=subscriber.phone_index, erased=True
    )
    ttl = dt.timedelta(hours=ctx.settings.delivery_ttl_hours)
    await shredding.keep_consent_records(tx, subscriber_id=subscriber_id, now=now, ttl=ttl)
    kept = await shredding.kept_naming(tx, subscriber_id, indexes)
    kept["erased_redemptions"] += folded  # the tallies of numbers it had moved away from
    erased = await shredding.erase_subscriber(tx, subscriber_id=subscriber_id, indexes=indexes)
    receipt = ErasureReceiptPublic(
        id=request_id or new_id("sjr"),
        subject_id=subscriber_id,
        erased_at=now,
        erased=erased,
        kept=[
            # The register counts this erasure too: recorded below, or the request it closes;
            # and the audit log its event, recorded below.
            KeptPublic(
                what=name,
                why=why,
                count=kept[name]
                + (1 if record and name == "subject_requests" else 0)
                + (1 if name == "audit_events" else 0),
            )
            for name, why in KEPT_WHY.items()
        ],
    )
    if record:
        await register.record_done(
            tx,
            ctx,
            subscriber_id=subscriber_id,
            kind=RequestKind.ERASE,
            actor=actor,
            channel=channel,
            receipt=receipt.model_dump(mode="json"),
            request_id=receipt.id,
        )
    await record_event(
        tx,
        Tag.SUBJECT_ERASED,
        actor=actor,
        at=now,
        subject=subscriber_id,
        details={"request_id": receipt.id, "erased": erased},
    )
    return receipt


async def erase_own(tx: Tx, ctx: Context, *, subject: Subject) -> ErasureReceiptPublic:
    """The subject's own erasure (their session goes with it).

    A second request of the same session that was let in before the first committed (a
    double click) finds the subscriber gone once it has the lock: it answers the receipt
    the first recorded, so the person sees what was done whichever answer the browser
    shows. With no receipt to show (erased otherwise), the session is over (401).
    """
    try:
        return await erase(tx, ctx, subscriber_id=subject.subscriber_id, actor=subject.actor)
    except SubjectNotFound:
        receipt = await repo.last_receipt(
            tx, subscriber_id=subject.subscriber_id, kind=RequestKind.ERASE.value
        )
        if receipt is None:
            raise Unauthenticated("the subject session is unknown, expired or ended") from None
        return ErasureReceiptPublic.model_validate(receipt)


async def correct(
    db: Database, ctx: Context, *, subject: Subject, data: SubjectCodeCheck
) -> CorrectedPublic:
    """Move the subject's registry entry to a new number once its code checks: the new
    number encrypted and indexed, the old one's verifications and send limits forgotten.
    """
    holder = await sessions.check_code(db, ctx, data=data)
    if holder == subject.subscriber_id:
        # Its code was asked for with the sign-in form, which lets the person's own
        # number through (the correction's start refuses it before any SMS).
        raise sessions.SameNumber(
            "the records are already under this number; nothing to move",
            errors=[
                FieldProblem(
                    location="body", field="verification_id", detail="verified the current number"
                )
            ],
        )
    if holder is not None:
        raise NumberTaken()
    async with db.transaction() as tx:
        # The old number's verifications first, which the move deletes, as an erasure and
        # a check hold them before the subscriber: a move that held the subscriber and then
        # waited to delete them deadlocked with an erasure of the same subscriber (503).
        seen = await registry.get(tx, subject.subscriber_id)
        if seen is None:
            raise SubjectNotFound()
        await shredding.hold_verifications(tx, subscriber_id=None, indexes=_indexes(ctx, seen))
        # Then the subscriber's lock, as an erasure, a release or a redemption takes it:
        # one of them in progress commits before the number changes under it.
        await registry.lock_subscribers(tx, [subject.subscriber_id])
        await sessions.still_live(tx, ctx, subject=subject)
        e164 = await verification.approved_number(
            tx, ctx, verification_id=data.verification_id, client_id=clients.SELF_SERVICE.id
        )
        subscriber = await registry.get(tx, subject.subscriber_id)
        if subscriber is None or e164 is None:
            raise SubjectNotFound()
        new_indexes = ctx.keys.blind_indexes(e164, kind="number")
        if await registry.find_id(tx, phone_index=new_indexes) not in (None, subscriber.id):
            raise NumberTaken()
        old_indexes = set(_indexes(ctx, subscriber))  # again: a move meanwhile changed it
        # The redemptions move with the subscriber, and are counted under the number it
        # leaves as well: verifying that number anew does not start its coupons afresh.
        await shredding.keep_redemptions(
            tx, subscriber_id=subscriber.id, phone_index=subscriber.phone_index, erased=False
        )
        if not await registry.renumber(tx, ctx, subscriber_id=subscriber.id, e164=e164):
            # Registered since the lookup above (a client's check that committed meanwhile).
            raise NumberTaken()
        # Nothing rendered to the old number goes out after the move.
        await campaigns.cancel_held_for(tx, subscriber_id=subscriber.id, now=ctx.clock.now())
        forgotten = await shredding.forget_number(
            tx, subscriber_id=None, indexes=sorted(old_indexes - set(new_indexes))
        )
        request = await register.record_done(
            tx, ctx, subscriber_id=subscriber.id, kind=RequestKind.CORRECT, actor=subject.actor
        )
        await record_event(
            tx,
            Tag.SUBJECT_NUMBER_CORRECTED,
            actor=subject.actor,
            at=request.received_at,
            subject=subscriber.id,
            details={"request_id": request.id, "forgotten": forgotten},
        )
    await db.checkpoint()
    return CorrectedPublic(
        request_id=request.id, phone_masked=mask(e164), done_at=request.received_at
    )


def _indexes(ctx: Context, subscriber: Subscriber) -> list[str]:
    """Every blind index the subscriber's number is kept under (any key of the ring)."""
    e164 = registry.phone_number(ctx, subscriber)
    return sorted({*ctx.keys.blind_indexes(e164, kind="number"), subscriber.phone_index})
