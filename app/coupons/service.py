"""Coupon redemptions, counted per number (the subscriber), not per account.

Many accounts on one number are one subscriber, so a per-number limit is what stops one
person redeeming a coupon through many accounts. Coupon ids form one namespace for the
whole deployment: every service client's redemptions count toward the same limit (a
rotated API key, or a second key for the same frontend, starts no fresh count).
"""

from __future__ import annotations

import datetime as dt

from app.audit.events import Tag, record_event
from app.clients.service import Client
from app.core.context import Context
from app.core.errors import AppError, FieldProblem, InvalidInput
from app.core.ids import new_id
from app.core.tx import Tx
from app.coupons import repository as repo
from app.coupons.schemas import (
    RedemptionCreate,
    RedemptionCreatedPublic,
    RedemptionPublic,
    RedemptionsPublic,
)
from app.models.coupon import CouponRedemption
from app.purposes import POLICIES
from app.registry import service as registry
from app.registry.service import NotVerifiedForPurpose, SubscriberNotFound
from app.verification import service as verifications
from app.verification.states import VerificationNotFound

# The purpose whose approval backs a redemption (app.purposes: gates_redemptions).
(PURPOSE,) = (purpose.value for purpose, p in POLICIES.items() if p.gates_redemptions)
APPROVED = "approved"


class VerificationNotApproved(AppError):
    status = 409
    slug = "verification-not-approved"
    title = "The verification is not approved; check its code first"


class VerificationApprovalExpired(AppError):
    status = 410
    slug = "verification-approval-expired"
    title = "The verification was approved too long ago; verify the number again"


class VerificationAlreadyUsed(AppError):
    status = 409
    slug = "verification-already-used"
    title = "This verification already backs a redemption; one verification, one redemption"


class CouponAlreadyRedeemed(AppError):
    status = 409
    slug = "coupon-already-redeemed"
    title = "This number has already redeemed this coupon as often as allowed"
    commit = True  # the refusal's audit event is kept: repeated tries are a fraud signal


class _RedeemedConcurrently(CouponAlreadyRedeemed):
    # The database refused the row (unique key): its transaction is spoilt on PostgreSQL,
    # so nothing can be committed; only reached if the locks below failed.
    commit = False


def limit_for(ctx: Context, coupon_id: str) -> int:
    """Redemptions allowed per number for a coupon: its own setting, else the default."""
    s = ctx.settings
    return s.coupon_redemption_limits.get(coupon_id, s.coupon_redemptions_per_number)


def _problem(field: str, detail: str) -> list[FieldProblem]:
    return [FieldProblem(location="body", field=field, detail=detail)]


async def _subscriber_of_verification(
    tx: Tx, ctx: Context, *, client: Client, verification_id: str, now: dt.datetime
) -> str:
    row = await verifications.for_redemption(
        tx, verification_id=verification_id, client_id=client.id
    )
    if row is None:  # unknown, or another client's: the same answer
        raise VerificationNotFound()
    if row.purpose != PURPOSE:
        raise NotVerifiedForPurpose(
            f"the verification was made for {row.purpose}, not {PURPOSE}",
            errors=_problem("verification_id", f"not a {PURPOSE} verification"),
        )
    if row.status != APPROVED or row.approved_at is None:
        raise VerificationNotApproved(errors=_problem("verification_id", "is not approved"))
    window = dt.timedelta(minutes=ctx.settings.coupon_verification_window_minutes)
    if row.approved_at + window <= now:
        raise VerificationApprovalExpired(
            errors=_problem("verification_id", "was approved too long ago")
        )
    if row.subscriber_id is None:  # an approved coupon_usage check always registers
        raise SubscriberNotFound()
    # The subscriber's lock (taken by _verified_subscriber), then what it guards: an erasure
    # that came first is seen (a 404), one that comes later waits until the redemption
    # commits; two redemptions of one verification run one after the other. A stop of
    # coupon use since the approval counts too: the purpose must still be held.
    await _verified_subscriber(tx, subscriber_id=row.subscriber_id, field="verification_id")
    used = await repo.backed_by(tx, verification_id=verification_id)
    if used is not None:
        raise VerificationAlreadyUsed(
            errors=_problem("verification_id", "already backs a redemption"), redemption_id=used
        )
    return row.subscriber_id


async def _verified_subscriber(tx: Tx, *, subscriber_id: str, field: str = "subscriber_id") -> str:
    # The subscriber's lock first: a stop of coupon use or an erasure made meanwhile waits
    # until the redemption commits, so none answers before a redemption then recorded.
    await registry.lock_subscribers(tx, [subscriber_id])
    found = await registry.verified_for(tx, subscriber_id=subscriber_id, purpose=PURPOSE)
    if found is None:
        raise SubscriberNotFound()
    if found.verified_at is None:
        raise NotVerifiedForPurpose(
            f"the number is not verified for {PURPOSE} (never, or its use was stopped)",
            errors=_problem(field, f"not verified for {PURPOSE}"),
        )
    return subscriber_id


async def _earlier(tx: Tx, ctx: Context, *, coupon_id: str, subscriber_id: str) -> int:
    """How often the subscriber's number redeemed the coupon as subscribers it no longer
    has (erased, moved away), by its blind index under every index key in the ring."""
    subscriber = await registry.get(tx, subscriber_id)
    if subscriber is None:  # never: it is held, and was found verified
        raise SubscriberNotFound()
    indexes = ctx.keys.blind_indexes(registry.phone_number(ctx, subscriber), kind="number")
    return await repo.erased_tally(
        tx, coupon_id=coupon_id, indexes=indexes, subscriber_id=subscriber_id
    )


async def redeem(
    tx: Tx, ctx: Context, *, client: Client, coupon_id: str, data: RedemptionCreate
) -> RedemptionCreatedPublic:
    """Record a redemption for the number behind a fresh verification or a subscriber."""
    # "Exactly one of two" names both fields, which a pydantic validator cannot: it
    # reports a model-level error on the body as a whole.
    if (data.verification_id is None) == (data.subscriber_id is None):
        detail = "give exactly one of verification_id and subscriber_id"
        raise InvalidInput(
            detail, errors=_problem("verification_id", detail) + _problem("subscriber_id", detail)
        )
    now = ctx.clock.now()
    if data.verification_id is not None:
        subscriber_id = await _subscriber_of_verification(
            tx, ctx, client=client, verification_id=data.verification_id, now=now
        )
    else:
        subscriber_id = await _verified_subscriber(tx, subscriber_id=str(data.subscriber_id))
    limit = limit_for(ctx, coupon_id)
    # One number and coupon at a time across replicas (PostgreSQL advisory lock; SQLite's
    # BEGIN IMMEDIATE already serialises writers), so the count below cannot go stale.
    await tx.lock(f"coupon:{coupon_id}:{subscriber_id}")
    count, last = await repo.tally(tx, coupon_id=coupon_id, subscriber_id=subscriber_id)
    # And the number's redemptions as subscribers it no longer has (erased, moved away).
    count += await _earlier(tx, ctx, coupon_id=coupon_id, subscriber_id=subscriber_id)
    if count >= limit:
        await record_event(
            tx,
            Tag.COUPON_REDEMPTION_REFUSED,
            actor=client.actor,
            at=now,
            subject=subscriber_id,
            details={"coupon_id": coupon_id, "redeemed": count, "limit": limit},
        )
        raise CouponAlreadyRedeemed(limit=limit, redeemed=count)
    redemption = CouponRedemption(
        id=new_id("red"),
        coupon_id=coupon_id,
        subscriber_id=subscriber_id,
        seq=last + 1,
        client_id=client.id,
        verification_id=data.verification_id,
        redeemed_at=now,
    )
    if not await repo.insert(tx, redemption):
        raise _RedeemedConcurrently(limit=limit, redeemed=count)
    await registry.contacted(tx, [subscriber_id], at=now)
    await record_event(
        tx,
        Tag.COUPON_REDEEMED,
        actor=client.actor,
        at=now,
        subject=redemption.id,
        details={
            "coupon_id": coupon_id,
            "subscriber_id": subscriber_id,
            "verification_id": data.verification_id,
        },
    )
    return RedemptionCreatedPublic(
        **_public(redemption, client).model_dump(),
        limit=limit,
        remaining=max(0, limit - count - 1),
    )


def _public(redemption: CouponRedemption, client: Client) -> RedemptionPublic:
    return RedemptionPublic(
        id=redemption.id,
        coupon_id=redemption.coupon_id,
        subscriber_id=redemption.subscriber_id,
        # Another client's verification id is of no use to this one: not shown.
        verification_id=redemption.verification_id if redemption.client_id == client.id else None,
        redeemed_at=redemption.redeemed_at,
    )


async def list_redemptions(
    tx: Tx, ctx: Context, *, client: Client, coupon_id: str, subscriber_id: str
) -> RedemptionsPublic:
    """A number's redemptions of one coupon, with how many it may still make."""
    if await registry.get(tx, subscriber_id) is None:
        raise SubscriberNotFound()
    found = await repo.list_for(tx, coupon_id=coupon_id, subscriber_id=subscriber_id)
    limit = limit_for(ctx, coupon_id)
    # What the number used as subscribers since erased counts too, as redeem counts it.
    counted = len(found) + await _earlier(tx, ctx, coupon_id=coupon_id, subscriber_id=subscriber_id)
    return RedemptionsPublic(
        coupon_id=coupon_id,
        subscriber_id=subscriber_id,
        limit=limit,
        counted=counted,
        remaining=max(0, limit - counted),
        redemptions=[_public(redemption, client) for redemption in found],
    )


async def redemptions_of(tx: Tx, *, subscriber_id: str, limit: int) -> list[CouponRedemption]:
    """A number's newest ``limit`` redemptions of every coupon, newest first (the console)."""
    return await repo.of_subscriber(tx, subscriber_id=subscriber_id, limit=limit)


async def tallies_of(tx: Tx, *, subscriber_id: str) -> list[repo.Tally]:
    """A subscriber's redemptions counted per coupon (the subject's own view)."""
    return await repo.tallies_of(tx, subscriber_id=subscriber_id)
