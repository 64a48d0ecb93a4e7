"""Sliding-window send limits, shared by every worker and replica through the database.

Every send is counted in a few buckets (the number, the client's address, the number's
prefix, its country), each a keyed hash of what it limits. A start reads every bucket's
count in one statement, together with the prefix's pumping block (app.verification.
pumping); the caller then writes the new hits with the rest of what the send writes.

Only the number's bucket is exact: its count and its new hit are serialised by an
advisory lock (PostgreSQL; SQLite's one write lock serialises everything), so no burst
of concurrent starts can send a person more than the limit. The address, prefix and
country limits are velocity guards shared by many numbers: they are not locked, so that
unrelated starts never wait for each other, and concurrent starts may pass them by the
number in flight at once.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from app.core.context import Context
from app.core.counters import CounterBuffer
from app.core.db import Sql, Tx
from app.core.errors import RateLimited
from app.core.metrics import LIMIT_REFUSALS
from app.core.phone import Phone
from app.verification.repository import Hit

_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_MINUTE = dt.timedelta(minutes=1)
_HOUR = dt.timedelta(hours=1)
_DAY = dt.timedelta(days=1)


class Limit(NamedTuple):
    """At most ``limit`` sends per ``window`` for one bucket."""

    name: str
    bucket: str
    limit: int
    window: dt.timedelta
    # A coarse limit counts its sends in slots of this size (one row per slot instead
    # of one per send): a country's hourly cap of thousands would otherwise mean summing
    # thousands of rows on every send.
    slot: dt.timedelta | None = None
    # Whether the count and the new hit are serialised (see the module docstring).
    exact: bool = False

    def counted_at(self, now: dt.datetime) -> dt.datetime:
        """The instant a send at ``now`` is counted at."""
        if self.slot is None:
            return now
        return now - (now - _EPOCH) % self.slot


class Counted(NamedTuple):
    """What the limits allowed: the hits the send adds (``exact`` ones are written in the
    send's transaction, ``shared`` ones after it commits, app.core.counters), the sends
    each bucket already holds over its widest window, and the prefix's pumping block."""

    exact: list[Hit]
    shared: list[Hit]
    counts: dict[str, int]
    blocked_until: dt.datetime | None


def prefix_index(ctx: Context, phone: Phone) -> str:
    """The keyed hash of a number's prefix: the unit of prefix limits and the pumping guard."""
    return ctx.keys.blind_index(phone.prefix(ctx.settings.prefix_digits), kind="prefix")


def send_limits(
    ctx: Context, *, phone: Phone, ip: str, number_index: str, prefix: str
) -> list[Limit]:
    """The limits one SMS send is subject to, with buckets as keyed hashes.

    A number's sends are counted to the microsecond (a person sees its Retry-After);
    the shared buckets count whole minutes, one row per minute rather than per send.
    """
    s = ctx.settings
    client = ctx.keys.blind_index(ip, kind="ip")
    country_cap = s.country_send_caps.get(phone.region, s.sends_per_country_hour)
    return [
        Limit("number_hour", f"n:{number_index}", s.sends_per_number_hour, _HOUR, exact=True),
        Limit("number_day", f"n:{number_index}", s.sends_per_number_day, _DAY, exact=True),
        Limit("ip_hour", f"i:{client}", s.sends_per_ip_hour, _HOUR, _MINUTE),
        Limit("prefix_hour", f"p:{prefix}", s.sends_per_prefix_hour, _HOUR, _MINUTE),
        # A region code is no secret: the bucket names it.
        Limit("country_hour", f"c:{phone.region}", country_cap, _HOUR, _MINUTE),
    ]


def source_bucket(prefix: str, ip_index: str) -> str:
    """The bucket of one client address's sends to one prefix: the pumping guard counts
    how many distinct addresses a range's sends came from. The address is named by the
    first 64 bits of its keyed hash: enough to tell a range's addresses apart, and the
    bucket stays within its column with index key ids of any allowed length."""
    return f"s:{prefix}:{ip_index.rsplit(':', 1)[-1][:16]}"


def source_hit(ctx: Context, *, prefix: str, ip: str, now: dt.datetime) -> Hit:
    """The hit recording where a send to a prefix came from (a minute's slot)."""
    at = now - (now - _EPOCH) % _MINUTE
    return Hit(bucket=source_bucket(prefix, ctx.keys.blind_index(ip, kind="ip")), at=at)


@functools.cache
def _count_sql(n: int) -> Sql[Any]:
    # One row: the prefix's block in force, then each bucket's sends since its start.
    row = NamedTuple(  # type: ignore[misc]
        f"Counts{n}", [("blocked_until", dt.datetime | None), *((f"h{i}", int) for i in range(n))]
    )
    counts = ", ".join(
        f"(SELECT coalesce(sum(hits), 0) FROM rate_limit_hits "  # noqa: S608 (fixed text)
        f"WHERE bucket = :b{i} AND at > :s{i})"
        for i in range(n)
    )
    return Sql(
        "SELECT (SELECT max(ends_at) FROM pumping_blocks WHERE prefix_index = :prefix "  # noqa: S608
        f"AND lifted_at IS NULL AND ends_at > :now), {counts}",
        row,
    )


async def _counts(
    tx: Tx, buckets: Sequence[tuple[str, dt.datetime]], *, prefix: str, now: dt.datetime
) -> tuple[dt.datetime | None, list[int]]:
    params: dict[str, object] = {"prefix": prefix, "now": now}
    for i, (bucket, since) in enumerate(buckets):
        params[f"b{i}"], params[f"s{i}"] = bucket, since
    row = await tx.fetch_one(_count_sql(len(buckets)), params)
    if row is None:  # a SELECT without FROM answers one row
        raise RuntimeError("count query returned nothing")
    blocked_until, *hits = row
    return blocked_until, [int(n) for n in hits]


class _Window(NamedTuple):
    hits: int
    oldest_at: dt.datetime | None


_WINDOW = Sql(
    "SELECT coalesce(sum(hits), 0), min(at) FROM rate_limit_hits "
    "WHERE bucket = :bucket AND at > :since",
    _Window,
)


async def check(
    tx: Tx,
    limits: Sequence[Limit],
    *,
    now: dt.datetime,
    prefix: str,
    counters: CounterBuffer | None = None,
) -> Counted:
    """Raise RateLimited if any limit is reached; otherwise what the send adds.

    Each bucket is counted once, over its widest window (a number's hour and day limits
    share one); a narrower window is counted on its own only when the widest count could
    reach its limit.
    """
    widest: dict[str, dt.timedelta] = {}
    hit_at: dict[str, dt.datetime] = {}
    exact: set[str] = set()
    for limit in limits:
        if limit.window > widest.get(limit.bucket, dt.timedelta(0)):
            widest[limit.bucket] = limit.window
        hit_at[limit.bucket] = limit.counted_at(now)
        if limit.exact:
            exact.add(limit.bucket)
    buckets = sorted(widest)
    for bucket in buckets:  # sorted: two transactions never lock in opposite orders
        if bucket in exact:
            await tx.lock(f"limit:{bucket}")
    blocked_until, found = await _counts(
        tx, [(bucket, now - widest[bucket]) for bucket in buckets], prefix=prefix, now=now
    )
    counts = dict(zip(buckets, found, strict=True))
    if counters is not None:  # what this process counted and has not written yet
        for bucket in buckets:
            if bucket not in exact:
                counts[bucket] += counters.unflushed(bucket, now - widest[bucket])
    for limit in limits:
        hits = counts[limit.bucket]
        if hits < limit.limit:
            continue
        since = now - limit.window
        window = await tx.fetch_one(_WINDOW, {"bucket": limit.bucket, "since": since})
        if window is None:  # an aggregate without GROUP BY answers one row
            continue
        unwritten = (
            0 if counters is None or limit.exact else counters.unflushed(limit.bucket, since)
        )
        if window.hits + unwritten < limit.limit:
            continue  # the narrower window is below its limit
        oldest = window.oldest_at or now  # only unwritten counts: as recent as now
        retry = math.ceil((oldest + limit.window - now).total_seconds())
        LIMIT_REFUSALS.labels(limit.name).inc()
        raise RateLimited(
            f"send limit '{limit.name}' reached; try again later",
            retry_after=retry,
            limit=limit.name,
        )
    added = [Hit(bucket=bucket, at=hit_at[bucket]) for bucket in buckets]
    return Counted(
        exact=[hit for hit in added if hit.bucket in exact],
        shared=[hit for hit in added if hit.bucket not in exact],
        counts=counts,
        blocked_until=blocked_until,
    )
