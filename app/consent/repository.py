"""Every query on consent: the append-only history and the current state derived from it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.core.sql import in_chunks
from app.core.tx import Tx
from app.models.consent import Consent, ConsentEvent
from app.models.types import table

consents = table(Consent)
events = table(ConsentEvent)


async def current(tx: Tx, *, subscriber_id: str, purpose: str | None = None) -> list[Consent]:
    """The current state per purpose (one purpose, or all), by purpose."""
    statement = sa.select(consents).where(consents.c.subscriber_id == subscriber_id)
    if purpose is not None:
        statement = statement.where(consents.c.purpose == purpose)
    rows = await tx.execute(statement.order_by(consents.c.purpose))
    return [Consent(**row._mapping) for row in rows]


class State(NamedTuple):
    """A subscriber's current consent to one purpose, as campaigns read it in bulk."""

    subscriber_id: str
    status: str
    locale: str


async def states(tx: Tx, subscriber_ids: Sequence[str], *, purpose: str) -> dict[str, State]:
    """The current state of ``purpose`` for those of ``subscriber_ids`` that have one."""
    c = consents.c
    found: dict[str, State] = {}
    for chunk in in_chunks(subscriber_ids):
        rows = await tx.execute(
            sa.select(c.subscriber_id, c.status, c.locale).where(
                c.purpose == purpose, c.subscriber_id.in_(chunk)
            )
        )
        found.update(
            (row.subscriber_id, State(row.subscriber_id, row.status, row.locale)) for row in rows
        )
    return found


async def history(tx: Tx, *, subscriber_id: str, limit: int) -> list[ConsentEvent]:
    """The newest ``limit`` changes of a subscriber's consent, newest first."""
    rows = await tx.execute(
        sa.select(events)
        .where(events.c.subscriber_id == subscriber_id)
        .order_by(events.c.id.desc())
        .limit(limit)
    )
    return [ConsentEvent(**row._mapping) for row in rows]


async def history_count(tx: Tx, *, subscriber_id: str) -> int:
    """How many changes of a subscriber's consent are kept."""
    found = await tx.scalar(
        sa.select(sa.func.count())
        .select_from(events)
        .where(events.c.subscriber_id == subscriber_id)
    )
    return int(found or 0)


async def append(tx: Tx, event: ConsentEvent) -> int:
    """Add one change to the history (never updated or deleted); returns its id."""
    event_id = await tx.scalar(
        sa.insert(events).values(event.model_dump(exclude={"id"})).returning(events.c.id)
    )
    return int(event_id)


async def set_state(tx: Tx, consent: Consent) -> None:
    """Make a history row the current state (same transaction as :func:`append`)."""
    insert = (sqlite.insert if tx.sqlite else postgresql.insert)(consents)
    values = consent.model_dump()
    statement = insert.values(values).on_conflict_do_update(
        index_elements=[consents.c.subscriber_id, consents.c.purpose],
        set_={
            name: insert.excluded[name]
            for name in values
            if name not in ("subscriber_id", "purpose")
        },
    )
    await tx.execute(statement)
