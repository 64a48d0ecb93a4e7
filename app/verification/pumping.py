"""The pumping guard: a prefix whose sends stop turning into approvals is blocked.

SMS pumping (toll fraud) sends codes to ranges of premium or attacker-owned numbers
that never enter them. Its mark is conversion: a normal prefix turns most sends into
approvals, a pumped one turns almost none. The watch compares, per prefix (the same
keyed-hash unit as the prefix send limit), the sends and approvals of a sliding
window. When a prefix has enough sends and too few of them converted, it is blocked
for a cool-off: every start to it is refused, an audit event is written and a metric
counted. The block lifts by itself when the cool-off ends, or at once by an admin.

Sends younger than a grace period are left out: their recipients may still be typing
the code. Sends from before a prefix's last block ended are left out too, so a lifted
prefix starts afresh instead of being blocked again by the same burst.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Row, Tx
from app.core.errors import AppError, InvalidInput, NotFound
from app.core.ids import new_id
from app.core.metrics import PUMPING_BLOCKS


class PrefixBlocked(AppError):
    status = 429
    slug = "prefix-blocked"
    title = "Sends to this number range are paused"
    # The block (and its audit event) is committed before the refusal is answered.
    commit = True

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


class BlockNotActive(AppError):
    status = 409
    slug = "block-not-active"
    title = "The block has already been lifted or has expired"


# One statement on every send: the prefix's block in force, and its sends (settled ones,
# see the module's docstring) and approvals since the window began or its last block
# ended, whichever is later.
_LAST_BLOCK_END = (
    "coalesce((SELECT max(CASE WHEN lifted_at IS NOT NULL AND lifted_at < ends_at "
    "THEN lifted_at ELSE ends_at END) FROM pumping_blocks WHERE prefix_index = :prefix), "
    ":since)"
)
_BLOCKED = (
    "SELECT max(ends_at) AS ends_at FROM pumping_blocks WHERE prefix_index = :prefix "
    "AND lifted_at IS NULL AND ends_at > :now"
)
_WATCH = (  # fixed fragments only
    "SELECT "  # noqa: S608
    "(SELECT max(ends_at) FROM pumping_blocks WHERE prefix_index = :prefix "
    " AND lifted_at IS NULL AND ends_at > :now) AS ends_at, "
    "(SELECT coalesce(sum(hits), 0) FROM rate_limit_hits WHERE bucket = :sends "
    f" AND at > :since AND at <= :settled AND at > {_LAST_BLOCK_END}) AS sends, "
    "(SELECT coalesce(sum(hits), 0) FROM rate_limit_hits WHERE bucket = :approvals "
    f" AND at > :since AND at > {_LAST_BLOCK_END}) AS approvals"
)


def approvals_bucket(prefix_index: str) -> str:
    """The rate_limit_hits bucket that counts a prefix's approvals."""
    return f"a:{prefix_index}"


def watch(
    tx: Tx,
    ctx: Context,
    *,
    prefix_index: str,
    prefix: str,
    region: str,
    now: dt.datetime,
    hour_sends: int | None = None,
) -> None:
    """Refuse a send to a blocked prefix, or block a prefix that stopped converting.

    Runs before the send is counted, so the send that trips the block is not counted.
    ``hour_sends`` is the prefix's sends in the last hour, when the send limits have
    just counted them: with fewer than the watch needs in a window of at most an hour,
    only the block is looked up (the common case, one index probe).
    """
    s = ctx.settings
    if (
        hour_sends is not None
        and hour_sends < s.pumping_min_sends
        and s.pumping_window_minutes <= 60
    ):
        ends_at = tx.scalar(_BLOCKED, {"prefix": prefix_index, "now": now})
        if ends_at is not None:
            raise _refusal(ends_at, now)
        return
    state = tx.one(
        _WATCH,
        {
            "prefix": prefix_index,
            "now": now,
            "sends": f"p:{prefix_index}",
            "approvals": approvals_bucket(prefix_index),
            "since": now - dt.timedelta(minutes=s.pumping_window_minutes),
            "settled": now - dt.timedelta(seconds=s.pumping_grace_seconds),
        },
    )
    if state is None:  # scalar subqueries always answer one row
        raise RuntimeError("pumping watch query returned nothing")
    if state.ends_at is not None:
        raise _refusal(state.ends_at, now)
    sends, approvals = int(state.sends), int(state.approvals)
    if sends < s.pumping_min_sends or approvals >= s.pumping_min_conversion * sends:
        return
    until = now + dt.timedelta(minutes=s.pumping_cooloff_minutes)
    block_id = new_id("blk")
    tx.execute(
        "INSERT INTO pumping_blocks (id, prefix_index, prefix, region, blocked_at, ends_at, "
        "sends, approvals) VALUES (:id, :prefix_index, :prefix, :region, :now, :until, :sends, "
        ":approvals)",
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
    record_event(
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
            "ends_at": until.isoformat(),
        },
    )
    PUMPING_BLOCKS.labels(region=region).inc()
    raise _refusal(until, now)


def count_approval(tx: Tx, *, prefix_index: str | None, now: dt.datetime) -> None:
    """Count an approval for its prefix (verifications from before the guard have none)."""
    if prefix_index is None:
        return
    tx.execute(
        "INSERT INTO rate_limit_hits (bucket, at, hits) VALUES (:bucket, :at, 1) "
        "ON CONFLICT (bucket, at) DO UPDATE SET hits = rate_limit_hits.hits + 1",
        {"bucket": approvals_bucket(prefix_index), "at": now},
    )


_BLOCK_COLUMNS = (
    "id, prefix, region, blocked_at, ends_at, sends, approvals, lifted_at, lifted_by, lift_reason"
)


def list_blocks(tx: Tx, ctx: Context, *, active_only: bool = True) -> list[Row]:
    """Blocks, newest first; by default only those still in force."""
    sql = f"SELECT {_BLOCK_COLUMNS} FROM pumping_blocks"  # noqa: S608 (fixed columns)
    params: dict[str, Any] = {}
    if active_only:
        sql += " WHERE lifted_at IS NULL AND ends_at > :now"
        params["now"] = ctx.clock.now()
    return tx.all(sql + " ORDER BY blocked_at DESC, id", params)


def lift(tx: Tx, ctx: Context, *, block_id: str, actor: str, reason: str) -> Row:
    """Lift a block at once (an admin who has checked the traffic is legitimate)."""
    reason = reason.strip()
    if not 3 <= len(reason) <= 500:
        raise InvalidInput.field("reason", "must be 3 to 500 characters")
    now = ctx.clock.now()
    block = tx.one(
        f"SELECT {_BLOCK_COLUMNS} FROM pumping_blocks WHERE id = :id",  # noqa: S608
        {"id": block_id},
    )
    if block is None:
        raise NotFound(f"no pumping block {block_id}")
    if block.lifted_at is not None or block.ends_at <= now:
        raise BlockNotActive(f"block {block_id} is no longer in force")
    tx.execute(
        "UPDATE pumping_blocks SET lifted_at = :now, lifted_by = :actor, lift_reason = :reason "
        "WHERE id = :id",
        {"now": now, "actor": actor, "reason": reason, "id": block_id},
    )
    record_event(
        tx,
        Tag.PUMPING_PREFIX_LIFTED,
        actor=actor,
        at=now,
        subject=block_id,
        details={"prefix": block.prefix, "region": block.region, "reason": reason},
    )
    block.update(lifted_at=now, lifted_by=actor, lift_reason=reason)
    return block


def _refusal(until: dt.datetime, now: dt.datetime) -> PrefixBlocked:
    retry = max(1, math.ceil((until - now).total_seconds()))
    return PrefixBlocked(
        "sends to this number range are paused after unusual traffic; try again later",
        retry_after=retry,
    )
