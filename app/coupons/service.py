"""Coupon redemptions, counted per number (the subscriber), not per account.

Many accounts on one number are one subscriber, so a per-number limit is what stops one
person redeeming a coupon through many accounts. Coupon ids form one namespace for the
whole deployment: every service client's redemptions count toward the same limit (a
rotated API key, or a second key for the same frontend, starts no fresh count).
"""

from __future__ import annotations

import datetime as dt
import sqlite3

import psycopg

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Row, Tx, xact_lock
from app.core.errors import AppError, FieldProblem, InvalidInput, NotFound
from app.core.ids import new_id
from app.coupons import repository as repo
from app.coupons.schemas import (
    RedemptionCreate,
    RedemptionCreatedPublic,
    RedemptionPublic,
    RedemptionsPublic,
)
from app.staff.api_keys import Client
from app.verification.service import VerificationNotFound

PURPOSE = "coupon_usage"


class SubscriberNotFound(NotFound):
    slug = "subscriber-not-found"
    title = "No such subscriber"


class NotVerifiedForPurpose(AppError):
    status = 409
    slug = "not-verified-for-purpose"
    title = "The number was not verified by SMS for this purpose"


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


def _check_coupon_id(coupon_id: str) -> None:
    # The route's pattern already allows only [A-Za-z0-9_.-]{1,64}; an id of dots alone
    # would be a "." or ".." path segment, which HTTP clients rewrite before sending.
    if not coupon_id.strip("."):
        raise InvalidInput.field("coupon_id", "must not be dots only", location="path")


def _problem(field: str, detail: str) -> list[FieldProblem]:
    return [FieldProblem(location="body", field=field, detail=detail)]


def _subscriber_of_verification(
    tx: Tx, ctx: Context, *, client: Client, verification_id: str, now: dt.datetime
) -> str:
    row = repo.verification(tx, verification_id=verification_id, client_id=client.id)
    if row is None:  # unknown, or another client's: the same answer
        raise VerificationNotFound()
    if row.purpose != PURPOSE:
        raise NotVerifiedForPurpose(
            f"the verification was made for {row.purpose}, not {PURPOSE}",
            errors=_problem("verification_id", f"not a {PURPOSE} verification"),
        )
    if row.status != "approved" or row.approved_at is None:
        raise VerificationNotApproved(errors=_problem("verification_id", "is not approved"))
    window = dt.timedelta(minutes=ctx.settings.coupon_verification_window_minutes)
    if row.approved_at + window <= now:
        raise VerificationApprovalExpired(
            errors=_problem("verification_id", "was approved too long ago")
        )
    used = repo.backed_by(tx, verification_id=verification_id)
    if used is not None:
        raise VerificationAlreadyUsed(
            errors=_problem("verification_id", "already backs a redemption"), redemption_id=used
        )
    if row.subscriber_id is None:  # an approved coupon_usage check always registers
        raise SubscriberNotFound()
    return str(row.subscriber_id)


def _verified_subscriber(tx: Tx, *, subscriber_id: str) -> str:
    row = repo.subscriber(tx, subscriber_id=subscriber_id, purpose=PURPOSE)
    if row is None:
        raise SubscriberNotFound()
    if row.verified_at is None:
        raise NotVerifiedForPurpose(
            f"the number was never verified for {PURPOSE}",
            errors=_problem("subscriber_id", f"not verified for {PURPOSE}"),
        )
    return subscriber_id


def redeem(
    tx: Tx, ctx: Context, *, client: Client, coupon_id: str, data: RedemptionCreate
) -> RedemptionCreatedPublic:
    """Record a redemption for the number behind a fresh verification or a subscriber."""
    _check_coupon_id(coupon_id)
    if (data.verification_id is None) == (data.subscriber_id is None):
        detail = "give exactly one of verification_id and subscriber_id"
        raise InvalidInput(
            detail, errors=_problem("verification_id", detail) + _problem("subscriber_id", detail)
        )
    now = ctx.clock.now()
    actor = f"api_key:{client.id}"
    if data.verification_id is not None:
        subscriber_id = _subscriber_of_verification(
            tx, ctx, client=client, verification_id=data.verification_id, now=now
        )
    else:
        subscriber_id = _verified_subscriber(tx, subscriber_id=str(data.subscriber_id))
    limit = limit_for(ctx, coupon_id)
    # One number and coupon at a time across replicas (PostgreSQL advisory lock; SQLite's
    # BEGIN IMMEDIATE already serialises writers), so the count below cannot go stale.
    xact_lock(tx, f"coupon:{coupon_id}:{subscriber_id}")
    count, last = repo.tally(tx, coupon_id=coupon_id, subscriber_id=subscriber_id)
    if count >= limit:
        record_event(
            tx,
            Tag.COUPON_REDEMPTION_REFUSED,
            actor=actor,
            at=now,
            subject=subscriber_id,
            details={"coupon_id": coupon_id, "redeemed": count, "limit": limit},
        )
        raise CouponAlreadyRedeemed(limit=limit, redeemed=count)
    redemption_id = new_id("red")
    row = {
        "id": redemption_id,
        "coupon_id": coupon_id,
        "subscriber_id": subscriber_id,
        "seq": last + 1,
        "client_id": client.id,
        "verification_id": data.verification_id,
        "redeemed_at": now,
    }
    try:
        repo.insert(tx, row)
    except (sqlite3.IntegrityError, psycopg.IntegrityError):
        raise _RedeemedConcurrently(limit=limit, redeemed=count) from None
    record_event(
        tx,
        Tag.COUPON_REDEEMED,
        actor=actor,
        at=now,
        subject=redemption_id,
        details={
            "coupon_id": coupon_id,
            "subscriber_id": subscriber_id,
            "verification_id": data.verification_id,
        },
    )
    return RedemptionCreatedPublic(
        id=redemption_id,
        coupon_id=coupon_id,
        subscriber_id=subscriber_id,
        verification_id=data.verification_id,
        redeemed_at=now,
        limit=limit,
        remaining=max(0, limit - count - 1),
    )


def _public(row: Row, client: Client) -> RedemptionPublic:
    return RedemptionPublic(
        id=row.id,
        coupon_id=row.coupon_id,
        subscriber_id=row.subscriber_id,
        # Another client's verification id is of no use to this one: not shown.
        verification_id=row.verification_id if row.client_id == client.id else None,
        redeemed_at=row.redeemed_at,
    )


def list_redemptions(
    tx: Tx, ctx: Context, *, client: Client, coupon_id: str, subscriber_id: str
) -> RedemptionsPublic:
    """A number's redemptions of one coupon, with how many it may still make."""
    _check_coupon_id(coupon_id)
    if repo.subscriber(tx, subscriber_id=subscriber_id, purpose=PURPOSE) is None:
        raise SubscriberNotFound()
    rows = repo.list_for(tx, coupon_id=coupon_id, subscriber_id=subscriber_id)
    limit = limit_for(ctx, coupon_id)
    return RedemptionsPublic(
        coupon_id=coupon_id,
        subscriber_id=subscriber_id,
        limit=limit,
        remaining=max(0, limit - len(rows)),
        redemptions=[_public(row, client) for row in rows],
    )
