"""Sliding-window send limits, shared by every worker and replica through the database.

A number's own limits are exact: its recent sends are one row (send_windows), checked
and extended by the statement that records the send (app.verification.repository.
record_start), whose row lock serialises two sends to one number, so no burst of
concurrent starts can send a person more than the limit.

The address, prefix and country limits are velocity guards shared by many numbers. A
start reads their counts in one statement, together with the prefix's pumping block
(app.verification.pumping), before it writes anything; the send is added to them once it
has committed, by the process's single counter writer (app.core.counters), in minute
slots. They are not locked, so that unrelated starts never wait for each other, and
concurrent starts may pass them by the number in flight at once.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

from app.core.addresses import counted_as
from app.core.context import Context
from app.core.counters import CounterBuffer
from app.core.errors import RateLimited
from app.core.metrics import LIMIT_REFUSALS
from app.core.phone import Phone
from app.core.sql import Sql
from app.core.tx import Tx
from app.verification.repository import WRITES_SEEN, Hit, SendWindow, micros

_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # where minute slots are counted from
_UNIX = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MINUTE = dt.timedelta(minutes=1)
_HOUR = dt.timedelta(hours=1)
_DAY = dt.timedelta(days=1)


class Limit(NamedTuple):
    """At most ``limit`` sends per ``window`` for one shared bucket, counted in slots."""

    name: str
    bucket: str
    limit: int
    window: dt.timedelta
    # Sends are counted in slots of this size (one row per slot instead of one per send):
    # a country's hourly cap of thousands would otherwise mean summing thousands of rows
    # on every send.
    slot: dt.timedelta = _MINUTE

    def counted_at(self, now: dt.datetime) -> dt.datetime:
        """The slot a send at ``now`` is counted in."""
        return now - (now - _EPOCH) % self.slot


class Allowed(NamedTuple):
    """What the shared limits allowed: the hits the send adds once it has committed, the
    sends each bucket already holds over its widest window, and the prefix's pumping
    block."""

    hits: list[Hit]
    counts: dict[str, int]
    blocked_until: dt.datetime | None


def prefix_index(ctx: Context, phone: Phone) -> str:
    """The keyed hash of a number's prefix: the unit of prefix limits and the pumping guard."""
    return ctx.keys.blind_index(phone.prefix(ctx.settings.prefix_digits), kind="prefix")


def _number_limits(
    ctx: Context, *, self_service: bool
) -> tuple[tuple[str, int, dt.timedelta], ...]:
    s = ctx.settings
    if self_service:
        return (
            ("number_hour", s.self_service_sends_per_number_hour, _HOUR),
            ("number_day", s.self_service_sends_per_number_day, _DAY),
        )
    return (
        ("number_hour", s.sends_per_number_hour, _HOUR),
        ("number_day", s.sends_per_number_day, _DAY),
    )


# A number's sends are counted per kind of caller: the API's clients share one window,
# the self-service pages (/my/, /v1/subject/...) have their own, with smaller limits of
# their own. An anonymous caller of the pages would otherwise read from their refusals
# (how many sends were let through, and Retry-After) how often the coupon site texted a
# number lately, and could use the number's allowance up and stop its coupons. A number
# gets at most both windows' limits: SENDS_PER_NUMBER_* plus SELF_SERVICE_SENDS_PER_NUMBER_*.
_NUMBER_BUCKETS = {False: "n", True: "ns"}


def number_bucket(number_index: str, *, self_service: bool) -> str:
    """The bucket of a number's sends, for the API's clients or the self-service pages."""
    return f"{_NUMBER_BUCKETS[self_service]}:{number_index}"


def number_buckets(indexes: Sequence[str]) -> list[str]:
    """Every bucket of a number's sends, under each of its blind ``indexes``."""
    return [f"{kind}:{index}" for index in indexes for kind in _NUMBER_BUCKETS.values()]


def number_window(
    ctx: Context, *, number_index: str, now: dt.datetime, self_service: bool
) -> SendWindow:
    """One send to a number, as its exact limits count it (to the microsecond: a person
    sees its Retry-After)."""
    limits = _number_limits(ctx, self_service=self_service)
    widest = max(window for _, _, window in limits)
    return SendWindow(
        bucket=number_bucket(number_index, self_service=self_service),
        now=now,
        since=micros(now - widest),
        limits=tuple((micros(now - window), most) for _, most, window in limits),
        keep_until=now + widest,
    )


def number_refusal(
    ctx: Context, sent_at: Sequence[int] | None, now: dt.datetime, *, self_service: bool
) -> RateLimited:
    """The refusal of a send its number's limits did not allow, from the sends its row held."""
    limits = _number_limits(ctx, self_service=self_service)
    for name, most, window in limits:
        inside = sorted(t for t in sent_at or () if t > micros(now - window))
        if len(inside) >= most:
            # The count falls below the limit when this send leaves the window.
            leaves = _UNIX + dt.timedelta(microseconds=inside[len(inside) - most]) + window
            return _refused(name, math.ceil((leaves - now).total_seconds()))
    # Two sends raced and the row was read from before the other: the narrowest window.
    name, _, window = min(limits, key=lambda limit: limit[2])
    return _refused(name, math.ceil(window.total_seconds()))


def _refused(name: str, retry_after: int) -> RateLimited:
    LIMIT_REFUSALS.labels(name).inc()
    return RateLimited(
        f"send limit '{name}' reached; try again later",
        retry_after=max(1, retry_after),
        limit=name,
    )


def client_index(ctx: Context, ip: str) -> str:
    """The keyed hash a client address is counted by (an IPv6 one by its /64:
    app.core.addresses.counted_as), in the per-address limit and the pumping guard's
    sources alike."""
    return ctx.keys.blind_index(counted_as(ip), kind="ip")


def send_limits(ctx: Context, *, phone: Phone, client: str, prefix: str) -> list[Limit]:
    """The shared limits one SMS send is subject to, with buckets as keyed hashes
    (``client``: :func:`client_index`)."""
    s = ctx.settings
    country_cap = s.country_send_caps.get(phone.region, s.sends_per_country_hour)
    return [
        Limit("ip_hour", f"i:{client}", s.sends_per_ip_hour, _HOUR),
        Limit("prefix_hour", f"p:{prefix}", s.sends_per_prefix_hour, _HOUR),
        # A region code is no secret: the bucket names it.
        Limit("country_hour", f"c:{phone.region}", country_cap, _HOUR),
    ]


def source_bucket(prefix: str, ip_index: str) -> str:
    """The bucket of one client address's sends to one prefix: the pumping guard counts
    how many distinct addresses a range's sends came from. The address is named by the
    first 64 bits of its keyed hash: enough to tell a range's addresses apart, and the
    bucket stays within its column with index key ids of any allowed length."""
    return f"s:{prefix}:{ip_index.rsplit(':', 1)[-1][:16]}"


def source_hit(*, prefix: str, client: str, now: dt.datetime) -> Hit:
    """The hit recording where a send to a prefix came from (a minute's slot;
    ``client``: :func:`client_index`)."""
    at = now - (now - _EPOCH) % _MINUTE
    return Hit(bucket=source_bucket(prefix, client), at=at)


@functools.cache
def counts_sql(n: int) -> Sql[Any]:
    """One row: the prefix's block in force, this process's writes of shared counts the
    read includes, then each of ``n`` buckets' sends since its start, each read by the
    primary key (bucket, at)."""
    row = NamedTuple(  # type: ignore[misc]
        f"Counts{n}",
        [
            ("blocked_until", dt.datetime | None),
            ("seen", int | None),
            *((f"h{i}", int) for i in range(n)),
        ],
    )
    counts = ", ".join(
        f"(SELECT coalesce(sum(hits), 0) FROM rate_limit_hits "  # noqa: S608 (fixed text)
        f"WHERE bucket = :b{i} AND at > :s{i})"
        for i in range(n)
    )
    return Sql(
        "SELECT (SELECT max(ends_at) FROM pumping_blocks WHERE prefix_index = :prefix "  # noqa: S608
        f"AND lifted_at IS NULL AND ends_at > :now), {WRITES_SEEN}, {counts}",
        row,
        read_only=True,
    )


async def _counts(
    tx: Tx,
    buckets: Sequence[tuple[str, dt.datetime]],
    *,
    prefix: str,
    now: dt.datetime,
    writer: str,
) -> tuple[dt.datetime | None, int | None, list[int]]:
    params: dict[str, object] = {"prefix": prefix, "now": now, "writer": writer}
    for i, (bucket, since) in enumerate(buckets):
        params[f"b{i}"], params[f"s{i}"] = bucket, since
    row = await tx.fetch_one(counts_sql(len(buckets)), params)
    if row is None:  # a SELECT without FROM answers one row
        raise RuntimeError("count query returned nothing")
    blocked_until, seen, *hits = row
    return blocked_until, seen, [int(n) for n in hits]


class _Window(NamedTuple):
    hits: int
    oldest_at: dt.datetime | None
    seen: int | None


_WINDOW = Sql(
    f"SELECT coalesce(sum(hits), 0), min(at), {WRITES_SEEN} FROM rate_limit_hits "  # noqa: S608
    "WHERE bucket = :bucket AND at > :since",
    _Window,
    read_only=True,
)


async def check(
    tx: Tx,
    limits: Sequence[Limit],
    *,
    now: dt.datetime,
    prefix: str,
    counters: CounterBuffer,
) -> Allowed:
    """Raise RateLimited if any shared limit is reached; otherwise what the send adds.

    Each bucket is counted once, over its widest window; a narrower window is counted on
    its own only when the widest count could reach its limit. Counts include what this
    process has counted and not written yet.
    """
    widest: dict[str, dt.timedelta] = {}
    hit_at: dict[str, dt.datetime] = {}
    for limit in limits:
        if limit.window > widest.get(limit.bucket, dt.timedelta(0)):
            widest[limit.bucket] = limit.window
        hit_at[limit.bucket] = limit.counted_at(now)
    buckets = sorted(widest)
    blocked_until, seen, found = await _counts(
        tx,
        [(bucket, now - widest[bucket]) for bucket in buckets],
        prefix=prefix,
        now=now,
        writer=counters.writer,
    )
    counts = {
        bucket: n + counters.unflushed(bucket, now - widest[bucket], seen=seen)
        for bucket, n in zip(buckets, found, strict=True)
    }
    for limit in limits:
        if counts[limit.bucket] < limit.limit:
            continue
        since = now - limit.window
        window = await tx.fetch_one(
            _WINDOW, {"bucket": limit.bucket, "since": since, "writer": counters.writer}
        )
        if window is None:  # an aggregate without GROUP BY answers one row
            continue
        if window.hits + counters.unflushed(limit.bucket, since, seen=window.seen) < limit.limit:
            continue  # the narrower window is below its limit
        oldest = window.oldest_at or now  # only unwritten counts: as recent as now
        raise _refused(limit.name, math.ceil((oldest + limit.window - now).total_seconds()))
    return Allowed(
        hits=[Hit(bucket=bucket, at=hit_at[bucket]) for bucket in buckets],
        counts=counts,
        blocked_until=blocked_until,
    )
