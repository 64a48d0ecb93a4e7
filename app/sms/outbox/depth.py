"""How many messages wait, by kind and status; how long the oldest due one has, and how
long since the oldest still unsent was queued."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from app.core.sql import Sql
from app.core.tx import Tx


class Depth(NamedTuple):
    """How many messages wait in one kind and state."""

    kind: str
    status: str
    messages: int


_DEPTH = Sql(
    "SELECT kind, status, count(*) FROM outbox_messages "
    "WHERE status IN ('pending', 'sending') GROUP BY kind, status",
    Depth,
)


class Oldest(NamedTuple):
    """Since when the oldest pending message has been due (its next try may lie ahead),
    and when the oldest message not yet sent (pending or being sent) was queued."""

    due: dt.datetime | None
    queued: dt.datetime | None


_OLDEST = Sql(
    "SELECT min(CASE WHEN status = 'pending' THEN next_attempt_at END), min(created_at) "
    "FROM outbox_messages WHERE status IN ('pending', 'sending')",
    Oldest,
)


async def depth(tx: Tx) -> tuple[list[Depth], Oldest]:
    """What waits in the outbox, and how old the oldest of it is."""
    oldest = await tx.fetch_one(_OLDEST)
    return await tx.fetch(_DEPTH), oldest or Oldest(None, None)
