"""The pumping guard: a prefix whose sends stop turning into approvals is blocked.

SMS pumping (toll fraud) sends codes to ranges of premium or attacker-owned numbers
that never enter them. Its mark is conversion: a normal prefix turns most sends into
approvals, a pumped one turns almost none. The watch compares, per prefix (the same
keyed-hash unit as the prefix send limit), the sends and approvals of a sliding
window. When a prefix has enough sends, too few of them converted, and they came from
several client addresses (``pumping_min_sources``), it is blocked for a cool-off: every
start to it is refused, an audit event is written and a metric counted. The block lifts
by itself when the cool-off ends, or at once by an admin.

A single address can never block a range: it is throttled by its own send limit long
before its sends could, and the guard does not act on one or two sources. Otherwise 30
unchecked starts from one address would deny a million numbers to every client.

Sends younger than a grace period are left out: their recipients may still be typing
the code. Sends from before a prefix's last block ended are left out too, so a lifted
prefix starts afresh instead of being blocked again by the same burst.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import NamedTuple

import sqlalchemy as sa

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import AppError, InvalidInput, NotFound
from app.core.ids import new_id
from app.core.metrics import LIMIT_REFUSALS, PUMPING_BLOCKS
from app.core.sql import Sql
from app.core.text import no_controls, no_phone_number, visible
from app.core.tx import Tx
from app.models.pumping import PumpingBlock
from app.models.types import table
from app.verification.repository import WRITES_SEEN


class PrefixBlocked(AppError):
    status = 429
    slug = "prefix-blocked"
    title = "Sends to this number range are paused"
    # The block (and its audit event) is committed before the refusal is answered.
    commit = True
    answer_headers = {"Retry-After": "seconds until the number range's block ends"}

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class BlockNotActive(AppError):
    status = 409
    slug = "block-not-active"
    title = "The block has already been lifted or has expired"


# When a prefix has enough sends to be judged: its sends (settled ones, see the module's
# docstring) and approvals since the window began or its last block ended, whichever is
# later.
_LAST_BLOCK_END = (
    "coalesce((SELECT max(CASE WHEN lifted_at IS NOT NULL AND lifted_at < ends_at "
    "THEN lifted_at ELSE ends_at END) FROM pumping_blocks WHERE prefix_index = :prefix), "
    ":since)"
)


class _Conversion(NamedTuple):
    sends: int
    approvals: int
    judged_from: dt.datetime
    seen: int | None  # this process's writes of shared counts the read includes


class _Source(NamedTuple):
    bucket: str


# Sends are judged from the window's start or the end of the prefix's last block,
# whichever is later; unsettled sends are left out.
_WATCH = Sql(
    "SELECT "  # noqa: S608 (fixed fragments only)
    "(SELECT coalesce(sum(hits), 0) FROM rate_limit_hits WHERE bucket = :sends "
    f" AND at > :since AND at <= :settled AND at > {_LAST_BLOCK_END}), "
    "(SELECT coalesce(sum(hits), 0) FROM rate_limit_hits WHERE bucket = :approvals "
    f" AND at > :since AND at > {_LAST_BLOCK_END}), "
    f"{_LAST_BLOCK_END}, {WRITES_SEEN}",
    _Conversion,
    read_only=True,
)
# The client addresses the range's sends came from: the source buckets of one prefix are
# one range of keys (``s:<prefix>:<address>``), read off the index.
_SOURCES = Sql(
    "SELECT DISTINCT bucket FROM rate_limit_hits WHERE bucket > :first_source "
    "AND bucket < :after_sources AND at > :since",
    _Source,
    read_only=True,
)


class _Standing(NamedTuple):
    ends_at: dt.datetime | None


# The block in force on a prefix, if any (an aggregate: one row, its end None if none).
_STANDING = Sql(
    "SELECT max(ends_at) AS ends_at FROM pumping_blocks WHERE prefix_index = :prefix "
    "AND lifted_at IS NULL AND ends_at > :now",
    _Standing,
)
_BLOCK = Sql(
    "INSERT INTO pumping_blocks (id, prefix_index, prefix, region, blocked_at, ends_at, "
    "sends, approvals) VALUES (:id, :prefix_index, :prefix, :region, :now, :until, :sends, "
    ":approvals)"
)


def approvals_bucket(prefix_index: str) -> str:
    """The rate_limit_hits bucket that counts a prefix's approvals."""
    return f"a:{prefix_index}"


async def watch(
    tx: Tx,
    ctx: Context,
    *,
    prefix_index: str,
    prefix: str,
    region: str,
    now: dt.datetime,
    blocked_until: dt.datetime | None,
    hour_sends: int,
) -> None:
    """Refuse a send to a blocked prefix, or block a prefix that stopped converting.

    Runs once the send limits allowed the send and before it is counted, so the send
    that trips the block is not counted. ``blocked_until`` and ``hour_sends`` come from
    the limits' own count: a block in force, and the prefix's sends in the last hour.
    With fewer sends than the watch needs in a window of at most an hour, nothing more
    is read (the common case).
    """
    if blocked_until is not None:
        raise _refusal(blocked_until, now)
    s = ctx.settings
    if hour_sends < s.pumping_min_sends and s.pumping_window_minutes <= 60:
        return
    since = now - dt.timedelta(minutes=s.pumping_window_minutes)
    settled = now - dt.timedelta(seconds=s.pumping_grace_seconds)
    state = await tx.fetch_one(
        _WATCH,
        {
            "prefix": prefix_index,
            "sends": f"p:{prefix_index}",
            "approvals": approvals_bucket(prefix_index),
            "since": since,
            "settled": settled,
            "writer": ctx.counters.writer if ctx.counters is not None else "",
        },
    )
    if state is None:  # a SELECT without FROM answers one row
        raise RuntimeError("pumping watch query returned nothing")
    sends, approvals = int(state.sends), int(state.approvals)
    if ctx.counters is not None:  # settled sends this process has not written yet
        bucket, seen = f"p:{prefix_index}", state.seen
        sends += ctx.counters.unflushed(bucket, state.judged_from, seen=seen) - (
            ctx.counters.unflushed(bucket, settled, seen=seen)
        )
    if sends < s.pumping_min_sends or approvals >= s.pumping_min_conversion * sends:
        return
    sources = await _sources(tx, ctx, prefix_index=prefix_index, since=state.judged_from)
    if sources < s.pumping_min_sources:
        # One or two addresses alone: their own limits throttle them; blocking the range
        # would let a single source deny service to everyone in it.
        return
    # One block per prefix: starts that tripped the watch together (each read the state
    # before either blocked) find the first one's block, and are refused by it.
    await tx.lock(f"pumping:{prefix_index}")
    standing = await tx.fetch_one(_STANDING, {"prefix": prefix_index, "now": now})
    if standing is not None and standing.ends_at is not None:
        raise _refusal(standing.ends_at, now)
    until = now + dt.timedelta(minutes=s.pumping_cooloff_minutes)
    block_id = new_id("blk")
    await tx.run(
        _BLOCK,
        {
            "id": block_id,
            "prefix_index": prefix_index,
            "prefix": prefix,
            "region": region,
            "now": now,
            "until": until,
            "sends": sends,
            "approvals": approvals,
        },
    )
    await record_event(
        tx,
        Tag.PUMPING_PREFIX_BLOCKED,
        actor="system:pumping_guard",
        at=now,
        subject=block_id,
        details={
            "prefix": prefix,
            "region": region,
            "sends": sends,
            "approvals": approvals,
            "sources": sources,
            "ends_at": until.isoformat(),
        },
    )
    PUMPING_BLOCKS.labels(region=region).inc()
    raise _refusal(until, now)


async def _sources(tx: Tx, ctx: Context, *, prefix_index: str, since: dt.datetime) -> int:
    """How many client addresses a prefix's sends came from since ``since``."""
    first, after = f"s:{prefix_index}:", f"s:{prefix_index};"  # ";" sorts right after ":"
    written = ctx.counters.committed if ctx.counters is not None else 0
    rows = await tx.fetch(_SOURCES, {"first_source": first, "after_sources": after, "since": since})
    found = {row.bucket for row in rows}
    if ctx.counters is not None:
        found |= ctx.counters.unflushed_between(first, after, since, seen=written)
    return len(found)


# -- staff: the blocks (cold paths) ----------------------------------------------------------

blocks = table(PumpingBlock)


async def list_blocks(tx: Tx, ctx: Context, *, active_only: bool = True) -> list[PumpingBlock]:
    """Blocks, newest first; by default only those still in force."""
    statement = sa.select(blocks).order_by(blocks.c.blocked_at.desc(), blocks.c.id)
    if active_only:
        statement = statement.where(
            blocks.c.lifted_at.is_(None), blocks.c.ends_at > ctx.clock.now()
        )
    return [PumpingBlock(**row._mapping) for row in await tx.execute(statement)]


async def lift(tx: Tx, ctx: Context, *, block_id: str, actor: str, reason: str) -> PumpingBlock:
    """Lift a block at once (an admin who has checked the traffic is legitimate)."""
    reason = reason.strip()
    if not 3 <= len(reason) <= 500:
        raise InvalidInput.field("reason", "must be 3 to 500 characters")
    try:  # the command line's reason too
        visible(no_phone_number(no_controls(reason)))
    except ValueError as exc:
        raise InvalidInput.field("reason", str(exc)) from None
    now = ctx.clock.now()
    row = (await tx.execute(sa.select(blocks).where(blocks.c.id == block_id))).one_or_none()
    if row is None:
        raise NotFound(f"no pumping block {block_id}")
    block = PumpingBlock(**row._mapping)
    if block.lifted_at is not None or block.ends_at <= now:
        raise BlockNotActive(f"block {block_id} is no longer in force")
    await tx.execute(
        sa.update(blocks)
        .where(blocks.c.id == block_id)
        .values(lifted_at=now, lifted_by=actor, lift_reason=reason)
    )
    await record_event(
        tx,
        Tag.PUMPING_PREFIX_LIFTED,
        actor=actor,
        at=now,
        subject=block_id,
        details={"prefix": block.prefix, "region": block.region, "reason": reason},
    )
    block.lifted_at, block.lifted_by, block.lift_reason = now, actor, reason
    return block


def _refusal(until: dt.datetime, now: dt.datetime) -> PrefixBlocked:
    LIMIT_REFUSALS.labels("prefix_blocked").inc()
    retry = max(1, math.ceil((until - now).total_seconds()))
    return PrefixBlocked(
        "sends to this number range are paused after unusual traffic; try again later",
        retry_after=retry,
    )
