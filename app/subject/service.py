"""What a data subject sees and changes of their own data, with a subject session.

Each change is the owning area's own (consent, registry, ledger provision), named as the
subject's act, and recorded done in the request register in the same transaction.
"""

from __future__ import annotations

from app.audit.events import Tag, record_event
from app.consent import service as consent
from app.consent.schemas import SELF_SERVICE_SOURCE, STAFF_SOURCE
from app.core.context import Context
from app.core.errors import Unauthenticated
from app.core.phone import mask
from app.core.tx import Tx
from app.coupons import service as coupons
from app.ledger import provision
from app.ledger.rules import COMPELLED
from app.models.subscriber import Subscriber
from app.purposes import Purpose
from app.registry import service as registry
from app.sms import campaigns
from app.subject import register
from app.subject.schemas import (
    ActionDonePublic,
    ConsentHeldPublic,
    DeliveryHeldPublic,
    PurposeHeldPublic,
    RedemptionsHeldPublic,
    RequestKind,
    SubjectDataPublic,
    SubjectDisclosuresPublic,
)
from app.subject.sessions import Subject

HISTORY_LIMIT = 200


async def _subscriber(tx: Tx, subject: Subject) -> Subscriber:
    subscriber = await registry.get(tx, subject.subscriber_id)
    if subscriber is None:  # erased meanwhile: the session went with it
        raise Unauthenticated("the subject session is unknown, expired or ended")
    return subscriber


async def held(tx: Tx, ctx: Context, *, subject: Subject) -> SubjectDataPublic:
    """Everything held about the subject's number, the number masked (APPI Art. 33)."""
    subscriber = await _subscriber(tx, subject)
    sid = subscriber.id
    state = await provision.provision_state(tx, ctx, subscriber_id=sid)
    await record_event(
        tx,
        Tag.SUBJECT_DATA_READ,
        actor=subject.actor,
        at=ctx.clock.now(),
        subject=sid,
        details={"view": "data"},
    )
    return SubjectDataPublic(
        subject_id=sid,
        phone_masked=mask(registry.phone_number(ctx, subscriber)),
        registered_at=subscriber.created_at,
        last_verified_at=subscriber.last_verified_at,
        purposes=[
            PurposeHeldPublic(purpose=row.purpose, since=row.since, verified_at=row.verified_at)
            for row in await registry.purposes_of(tx, sid)
        ],
        consent_history=[
            ConsentHeldPublic.model_validate(event, from_attributes=True)
            for event in await consent.history(tx, subscriber_id=sid, limit=HISTORY_LIMIT)
        ],
        consent_history_total=await consent.history_count(tx, subscriber_id=sid),
        redemptions=[
            RedemptionsHeldPublic(
                coupon_id=tally.coupon_id,
                count=tally.count,
                first_at=tally.first_at,
                last_at=tally.last_at,
            )
            for tally in await coupons.tallies_of(tx, subscriber_id=sid)
        ],
        deliveries=[
            DeliveryHeldPublic.model_validate(message, from_attributes=True)
            for message in await campaigns.received_by(tx, subscriber_id=sid, limit=HISTORY_LIMIT)
        ],
        deliveries_total=await campaigns.received_count(tx, subscriber_id=sid),
        provision_stopped_at=state.stopped_at,
        session_expires_at=subject.expires_at,
    )


async def disclosures(tx: Tx, ctx: Context, *, subject: Subject) -> SubjectDisclosuresPublic:
    """The disclosure records about the subject (APPI Art. 33(5)), oldest first."""
    await _subscriber(tx, subject)
    records = [
        # An inquiry's reference could tip off its subject and hinder the investigation:
        # the subject sees who, when, on which basis and what, not the reference
        # (APPI Art. 33(2)); staff reading for them see it.
        record.model_copy(update={"request_reference": None})
        if record.legal_basis in COMPELLED
        else record
        for record in await provision.subject_records(
            tx, ctx, subscriber_id=subject.subscriber_id, limit=1000
        )
    ]
    await record_event(
        tx,
        Tag.SUBJECT_DATA_READ,
        actor=subject.actor,
        at=ctx.clock.now(),
        subject=subject.subscriber_id,
        details={"view": "disclosures"},
    )
    return SubjectDisclosuresPublic(records=records)


async def _done(
    tx: Tx, ctx: Context, *, subject: Subject, kind: RequestKind, changed: bool
) -> ActionDonePublic:
    request = await register.record_done(
        tx, ctx, subscriber_id=subject.subscriber_id, kind=kind, actor=subject.actor
    )
    return ActionDonePublic(
        request_id=request.id, kind=kind, changed=changed, done_at=request.received_at
    )


async def receives_coupon_messages(tx: Tx, *, subject: Subject) -> bool:
    """Whether the subject's opt-in to coupon messages is live now (what the records page
    says, and whether it offers to stop them)."""
    purpose = Purpose.COUPON_DELIVERY.value
    return await consent.is_live(tx, subscriber_id=subject.subscriber_id, purpose=purpose)


async def withdraw_delivery(
    tx: Tx, ctx: Context, *, subject: Subject, ip: str | None, actor: str | None = None
) -> bool:
    """Withdraw consent to coupon deliveries; False if none was live. The subscriber's
    lock first: withdrawals at once each read the opt-in as live, and each recorded an
    opt-out."""
    await registry.lock_subscribers(tx, [subject.subscriber_id])
    subscriber = await _subscriber(tx, subject)
    purpose = Purpose.COUPON_DELIVERY.value
    live = await consent.is_live(tx, subscriber_id=subscriber.id, purpose=purpose)
    if live:
        await consent.change(
            tx,
            ctx,
            subscriber=subscriber,
            purpose=purpose,
            action="opt_out",
            source=SELF_SERVICE_SOURCE if actor is None else STAFF_SOURCE,
            policy_version=None,
            locale=None,
            client_ip=ip,
            actor=actor or subject.actor,
        )
    return live


async def stop_usage(tx: Tx, ctx: Context, *, subject: Subject, actor: str | None = None) -> bool:
    """Stop the use of the number for coupon_usage until it is verified for it again.
    After any redemption in progress (it holds the subscriber's lock until it commits)."""
    await registry.lock_subscribers(tx, [subject.subscriber_id])
    await _subscriber(tx, subject)
    purpose = Purpose.COUPON_USAGE.value
    dropped = await registry.drop_purpose(tx, subscriber_id=subject.subscriber_id, purpose=purpose)
    if dropped:
        await record_event(
            tx,
            Tag.SUBJECT_PURPOSE_STOPPED,
            actor=actor or subject.actor,
            at=ctx.clock.now(),
            subject=subject.subscriber_id,
            details={"purpose": purpose},
        )
    return dropped


async def change_provision(
    tx: Tx, ctx: Context, *, subject: Subject, action: str, actor: str | None = None
) -> bool:
    """Stop or resume third-party provision (APPI Art. 35); False if nothing changed."""
    await _subscriber(tx, subject)
    sid = subject.subscriber_id
    source = SELF_SERVICE_SOURCE if actor is None else STAFF_SOURCE
    if action == "stop":
        before = (await provision.provision_state(tx, ctx, subscriber_id=sid)).stopped_at
        await provision.stop_provision(
            tx, ctx, subscriber_id=sid, actor=actor or subject.actor, source=source
        )
        return before is None
    return await provision.resume_provision(
        tx, ctx, subscriber_id=sid, actor=actor or subject.actor, source=source
    )


async def act(
    tx: Tx, ctx: Context, *, subject: Subject, kind: RequestKind, ip: str
) -> ActionDonePublic:
    """Carry out one of the subject's own requests now, and record it done."""
    if kind is RequestKind.WITHDRAW_DELIVERY:
        changed = await withdraw_delivery(tx, ctx, subject=subject, ip=ip)
    elif kind is RequestKind.STOP_USAGE:
        changed = await stop_usage(tx, ctx, subject=subject)
    elif kind in (RequestKind.STOP_PROVISION, RequestKind.RESUME_PROVISION):
        action = "stop" if kind is RequestKind.STOP_PROVISION else "resume"
        changed = await change_provision(tx, ctx, subject=subject, action=action)
    else:  # pragma: no cover (the routes name only the kinds above)
        raise ValueError(f"not an action: {kind}")
    return await _done(tx, ctx, subject=subject, kind=kind, changed=changed)
