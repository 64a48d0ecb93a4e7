"""Sliding-window send limits shared by every worker and replica through the database."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from app.core.context import Context
from app.core.db import xact_lock
from app.core.errors import RateLimited
from app.models import RateLimitHit
from app.verification.phone import Phone

hits = RateLimitHit.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` sends per ``window`` for one bucket."""

    name: str
    bucket: str
    limit: int
    window: dt.timedelta


def send_limits(ctx: Context, *, phone: Phone, ip: str) -> list[Limit]:
    """The limits one SMS send is subject to, with buckets as keyed hashes."""
    s, keys = ctx.settings, ctx.keys
    number = keys.blind_index(phone.e164, kind="number")
    prefix = keys.blind_index(phone.prefix(s.prefix_digits), kind="prefix")
    client = keys.blind_index(ip, kind="ip")
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    return [
        Limit("number_hour", f"n:{number}", s.sends_per_number_hour, hour),
        Limit("number_day", f"n:{number}", s.sends_per_number_day, day),
        Limit("ip_hour", f"i:{client}", s.sends_per_ip_hour, hour),
        Limit("prefix_hour", f"p:{prefix}", s.sends_per_prefix_hour, hour),
    ]


def enforce(session: Session, limits: list[Limit], *, now: dt.datetime) -> None:
    """Raise RateLimited if any limit is reached; otherwise count one send against each."""
    buckets = sorted({limit.bucket for limit in limits})
    for bucket in buckets:  # sorted, so two transactions never lock in opposite orders
        xact_lock(session, f"limit:{bucket}")
    for limit in limits:
        since = now - limit.window
        count, oldest = session.execute(
            sa.select(sa.func.count(), sa.func.min(hits.c.at)).where(
                hits.c.bucket == limit.bucket, hits.c.at > since
            )
        ).one()
        if count >= limit.limit:
            retry = math.ceil((oldest + limit.window - now).total_seconds())
            raise RateLimited(
                f"send limit '{limit.name}' reached; try again later",
                retry_after=retry,
                limit=limit.name,
            )
    session.execute(hits.insert(), [{"bucket": bucket, "at": now} for bucket in buckets])


def purge(session: Session, *, now: dt.datetime, keep: dt.timedelta) -> int:
    """Delete hits older than any window needs."""
    result = session.execute(hits.delete().where(hits.c.at <= now - keep))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
