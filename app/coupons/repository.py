"""Every query on coupon redemptions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from app.core.tx import Tx
from app.models.coupon import CouponRedemption, ErasedRedemptions
from app.models.types import table

redemptions = table(CouponRedemption)
_c = redemptions.c
erased = table(ErasedRedemptions)


async def backed_by(tx: Tx, *, verification_id: str) -> str | None:
    """The redemption a verification already backs, if any."""
    found: str | None = await tx.scalar(
        sa.select(_c.id).where(_c.verification_id == verification_id)
    )
    return found


async def tally(tx: Tx, *, coupon_id: str, subscriber_id: str) -> tuple[int, int]:
    """How many redemptions of the coupon the number has, and the highest ``seq`` used."""
    row = (
        await tx.execute(
            sa.select(
                sa.func.count().label("n"),
                sa.func.coalesce(sa.func.max(_c.seq), 0).label("last"),
            ).where(_c.coupon_id == coupon_id, _c.subscriber_id == subscriber_id)
        )
    ).one()
    return int(row.n), int(row.last)


async def erased_tally(
    tx: Tx, *, coupon_id: str, indexes: Sequence[str], subscriber_id: str
) -> int:
    """How often the number (by its blind ``indexes``, one per index key) redeemed the
    coupon as subscribers it no longer has: erased ones, or others that moved away; not
    ``subscriber_id``'s own, which its redemptions count already."""
    e = erased.c
    found = await tx.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(e.redeemed), 0)).where(
            e.coupon_id == coupon_id,
            e.phone_index.in_(list(indexes)),
            e.moved_by != subscriber_id,
        )
    )
    return int(found)


@dataclass(frozen=True)
class Tally:
    """How often one coupon was redeemed, and when first and last."""

    coupon_id: str
    count: int
    first_at: dt.datetime
    last_at: dt.datetime


async def tallies_of(tx: Tx, *, subscriber_id: str) -> list[Tally]:
    """A subscriber's redemptions counted per coupon, by first redemption."""
    first = sa.func.min(_c.redeemed_at)
    rows = await tx.execute(
        sa.select(
            _c.coupon_id,
            sa.func.count().label("n"),
            first.label("first_at"),
            sa.func.max(_c.redeemed_at).label("last_at"),
        )
        .where(_c.subscriber_id == subscriber_id)
        .group_by(_c.coupon_id)
        .order_by(first, _c.coupon_id)
    )
    return [Tally(row.coupon_id, int(row.n), row.first_at, row.last_at) for row in rows]


async def insert(tx: Tx, redemption: CouponRedemption) -> bool:
    """Record one redemption; False when the database refused it as a duplicate (its
    unique keys), which spoils the transaction on PostgreSQL: roll it back."""
    try:
        await tx.execute(sa.insert(redemptions).values(redemption.model_dump()))
    except sa.exc.IntegrityError:
        return False
    return True


async def list_for(tx: Tx, *, coupon_id: str, subscriber_id: str) -> list[CouponRedemption]:
    """A number's redemptions of one coupon, oldest first."""
    rows = await tx.execute(
        sa.select(redemptions)
        .where(_c.coupon_id == coupon_id, _c.subscriber_id == subscriber_id)
        .order_by(_c.seq)
    )
    return [CouponRedemption(**row._mapping) for row in rows]


async def of_subscriber(tx: Tx, *, subscriber_id: str, limit: int) -> list[CouponRedemption]:
    """A number's redemptions of every coupon, newest first."""
    rows = await tx.execute(
        sa.select(redemptions)
        .where(_c.subscriber_id == subscriber_id)
        .order_by(_c.redeemed_at.desc(), _c.id)
        .limit(limit)
    )
    return [CouponRedemption(**row._mapping) for row in rows]
