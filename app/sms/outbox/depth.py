"""How many messages wait, by kind and status; how long the oldest due one has, and how
long since the oldest still unsent was queued."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from app.core.sql import Sql
from app.core.tx import Tx


class Depth(NamedTuple):
    """How many messages wait in one kind and state, and when the oldest was queued."""

    kind: str
    status: str
    messages: int
    queued: dt.datetime


_DEPTH = Sql(
    "SELECT kind, status, count(*), min(created_at) FROM outbox_messages "
    "WHERE status IN ('pending', 'sending') GROUP BY kind, status",
    Depth,
)


class _Oldest(NamedTuple):
    due: dt.datetime | None


_OLDEST = Sql("SELECT min(next_attempt_at) FROM outbox_messages WHERE status = 'pending'", _Oldest)


async def depth(tx: Tx) -> tuple[list[Depth], dt.datetime | None]:
    """What waits in the outbox, and since when the oldest due message has been due."""
    oldest = await tx.fetch_one(_OLDEST)
    return await tx.fetch(_DEPTH), None if oldest is None else oldest.due
