"""Queries on login attempts, the throttles' shared counts (SQLAlchemy Core)."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import sqlalchemy as sa

from app.core.tx import Tx
from app.models.staff import StaffLoginAttempt
from app.models.types import table

attempts = table(StaffLoginAttempt)
_t = attempts.c
# What counts against a throttle: a failure, or an attempt still being verified.
COUNTED = ("pending", "failed")


class Window(NamedTuple):
    """The counted attempts of a bucket since some instant, and the oldest of them."""

    failures: int
    oldest: dt.datetime | None


async def counted(
    tx: Tx, *, column: str, bucket: str, since: dt.datetime, in_flight: bool = True
) -> Window:
    """Failures, and (``in_flight``) attempts being verified, of one bucket
    (``ip_bucket`` or ``source_bucket``)."""
    where = attempts.c[column] == bucket
    row = (
        await tx.execute(
            sa.select(sa.func.count().label("failures"), sa.func.min(_t.at).label("oldest")).where(
                where, _t.at > since, _t.outcome.in_(COUNTED)
            )
        )
    ).one()
    return Window(**row._mapping)


async def insert(tx: Tx, attempt: StaffLoginAttempt) -> int:
    """Store an attempt; its id."""
    result = await tx.execute(
        sa.insert(attempts).values(attempt.model_dump(exclude={"id"})).returning(_t.id)
    )
    return int(result.scalar_one())


async def set_outcome(tx: Tx, attempt_id: int, outcome: str) -> None:
    """Record how an attempt ended."""
    await tx.execute(sa.update(attempts).where(_t.id == attempt_id).values(outcome=outcome))


async def clear_source(tx: Tx, *, source_bucket: str) -> None:
    """Forgive a source's failures (its owner got in)."""
    await tx.execute(
        sa.update(attempts)
        .where(_t.source_bucket == source_bucket, _t.outcome == "failed")
        .values(outcome="cleared")
    )


async def clear_staff(tx: Tx, *, staff_id: str, since: dt.datetime) -> int:
    """Forgive every counted attempt on an account since ``since`` (an admin's unlock);
    how many."""
    result = await tx.execute(
        sa.update(attempts)
        .where(_t.staff_id == staff_id, _t.at > since, _t.outcome.in_(COUNTED))
        .values(outcome="cleared")
    )
    return int(result.rowcount)
