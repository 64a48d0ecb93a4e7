"""Sliding-window send limits shared by every worker and replica through the database."""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Callable, Mapping
from typing import NamedTuple

from app.core.context import Context
from app.core.db import Tx, xact_lock
from app.core.errors import RateLimited
from app.verification.phone import Phone


class Limit(NamedTuple):
    """At most ``limit`` sends per ``window`` for one bucket.

    A named tuple rather than a frozen dataclass: five are made for every send, and a
    frozen dataclass sets each field through ``object.__setattr__`` (~3x the cost).
    """

    name: str
    bucket: str
    limit: int
    window: dt.timedelta
    # A coarse limit counts its sends in slots of this size (one row per slot instead
    # of one per send) and takes no lock: a country's hourly cap of thousands would
    # otherwise mean summing thousands of rows, and serialising every send of the
    # country. Two racing sends may pass it by one; it is a velocity guard, not a quota.
    slot: dt.timedelta | None = None

    def counted_at(self, now: dt.datetime) -> dt.datetime:
        """The instant a send at ``now`` is counted at."""
        if self.slot is None:
            return now
        return now - (now - _EPOCH) % self.slot


_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def prefix_index(ctx: Context, phone: Phone) -> str:
    """The keyed hash of a number's prefix: the unit of prefix limits and the pumping guard."""
    return ctx.keys.blind_index(phone.prefix(ctx.settings.prefix_digits), kind="prefix")


def send_limits(
    ctx: Context,
    *,
    phone: Phone,
    ip: str,
    number_index: str | None = None,
    prefix: str | None = None,
) -> list[Limit]:
    """The limits one SMS send is subject to, with buckets as keyed hashes.

    ``number_index`` and ``prefix`` are the number's and its prefix's keyed hashes when
    the caller already has them.
    """
    s, keys = ctx.settings, ctx.keys
    number = number_index or keys.blind_index(phone.e164, kind="number")
    prefix = prefix or prefix_index(ctx, phone)
    client = keys.blind_index(ip, kind="ip")
    hour, day = dt.timedelta(hours=1), dt.timedelta(days=1)
    country_cap = s.country_send_caps.get(phone.region, s.sends_per_country_hour)
    return [
        Limit("number_hour", f"n:{number}", s.sends_per_number_hour, hour),
        Limit("number_day", f"n:{number}", s.sends_per_number_day, day),
        Limit("ip_hour", f"i:{client}", s.sends_per_ip_hour, hour),
        Limit("prefix_hour", f"p:{prefix}", s.sends_per_prefix_hour, hour),
        # A region code is no secret: the bucket names it.
        Limit("country_hour", f"c:{phone.region}", country_cap, hour, _MINUTE),
    ]


_MINUTE = dt.timedelta(minutes=1)


def enforce(
    tx: Tx,
    limits: list[Limit],
    *,
    now: dt.datetime,
    before_counting: Callable[[Mapping[str, int]], None] | None = None,
) -> None:
    """Raise RateLimited if any limit is reached; otherwise count one send against each.

    ``before_counting`` sees each bucket's hits over its widest window once every limit
    has allowed the send and before it is counted; it may still refuse the send.
    """
    # Each bucket once, sorted (so two transactions never lock in opposite orders),
    # with its widest window and the one hit a send adds to it (a number's hour and
    # day limits share theirs).
    widest: dict[str, dt.timedelta] = {}
    hit_at: dict[str, dt.datetime] = {}
    locked: set[str] = set()
    for limit in limits:
        if limit.window > widest.get(limit.bucket, _NO_WINDOW):
            widest[limit.bucket] = limit.window
        hit_at[limit.bucket] = limit.counted_at(now)
        if limit.slot is None:
            locked.add(limit.bucket)
    buckets = sorted(widest)
    if not tx.sqlite:
        for bucket in buckets:
            if bucket in locked:
                xact_lock(tx, f"limit:{bucket}")
    # One statement counts each bucket over its widest window: an index range count
    # (bucket, at > window start). A narrower window of the same bucket (a number's
    # hour inside its day) counts at most as much, so it is only counted on its own
    # when the widest count could reach its limit. A count never exceeds its limit by
    # much: a hit is written only for a send that every limit allowed.
    params: dict[str, object] = {}
    for i, bucket in enumerate(buckets):
        params[f"b{i}"], params[f"s{i}"] = bucket, now - widest[bucket]
    row = tx.one(_count_sql(len(buckets)), params)
    if row is None:  # scalar subqueries always answer one row
        raise RuntimeError("count query returned nothing")
    counted = {bucket: row[f"hits{i}"] for i, bucket in enumerate(buckets)}
    for limit in limits:
        hits = counted[limit.bucket]
        if hits < limit.limit:
            continue
        if limit.window < widest[limit.bucket]:
            hits = tx.scalar(
                "SELECT coalesce(sum(hits), 0) AS hits FROM rate_limit_hits "
                "WHERE bucket = :bucket AND at > :since",
                {"bucket": limit.bucket, "since": now - limit.window},
            )
        if hits >= limit.limit:
            oldest = tx.scalar(
                "SELECT min(at) AS oldest_at FROM rate_limit_hits "
                "WHERE bucket = :bucket AND at > :since",
                {"bucket": limit.bucket, "since": now - limit.window},
            )
            retry = math.ceil((oldest + limit.window - now).total_seconds())
            raise RateLimited(
                f"send limit '{limit.name}' reached; try again later",
                retry_after=retry,
                limit=limit.name,
            )
    if before_counting is not None:
        before_counting(counted)
    tx.executemany(
        "INSERT INTO rate_limit_hits (bucket, at, hits) VALUES (:bucket, :at, 1) "
        "ON CONFLICT (bucket, at) DO UPDATE SET hits = rate_limit_hits.hits + 1",
        [{"bucket": bucket, "at": at} for bucket, at in hit_at.items()],
    )


_NO_WINDOW = dt.timedelta(0)


@functools.lru_cache(maxsize=8)
def _count_sql(n: int) -> str:
    # Measured: one scan of a day of hits computing CASE sums and minimums for every
    # window took ~40 us of each start; per-bucket counts take ~15 us, and the oldest
    # hit (for Retry-After) is only looked up when a limit is reached.
    window = "FROM rate_limit_hits WHERE bucket = :b{i} AND at > :s{i}"
    counts = ", ".join(
        f"(SELECT coalesce(sum(hits), 0) {window.format(i=i)}) AS hits{i}" for i in range(n)
    )
    return f"SELECT {counts}"  # noqa: S608 (placeholders only)
