"""Every query on the subjects of disclosures: their consents to provide, their stops of
provision, and what a package may hold of them.

The registry's own service answers single lookups by number; a disclosure needs its
subjects in bulk (up to a thousand ids), so their rows are read here, read-only, by id.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.core.sql import in_chunks
from app.core.tx import Tx
from app.models.ledger import DisclosureConsent, DisclosureStop
from app.models.subscriber import Subscriber, SubscriberPurpose
from app.models.types import table

consents = table(DisclosureConsent)
stops = table(DisclosureStop)
subscribers = table(Subscriber)
purposes = table(SubscriberPurpose)
# Ids per IN list: well within every driver's limit on bound parameters.
_IN_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    return in_chunks(values, _IN_CHUNK)


def _insert(tx: Tx, target: sa.Table) -> Any:
    # INSERT ... ON CONFLICT, which both databases speak: the dialect's own construct.
    return (sqlite.insert if tx.sqlite else postgresql.insert)(target)


def _consent(row: Any) -> DisclosureConsent:
    return DisclosureConsent(**row._mapping)


# -- the registry's rows ----------------------------------------------------------------


async def existing_subscribers(tx: Tx, subject_ids: Sequence[str]) -> set[str]:
    """Which of these subscriber ids exist."""
    found: set[str] = set()
    for chunk in _chunks(subject_ids):
        rows = await tx.execute(sa.select(subscribers.c.id).where(subscribers.c.id.in_(chunk)))
        found.update(row.id for row in rows)
    return found


async def subscribers_by_id(tx: Tx, subject_ids: Sequence[str]) -> dict[str, Subscriber]:
    """The registry rows of these subscribers (numbers still encrypted), by id."""
    found: dict[str, Subscriber] = {}
    for chunk in _chunks(subject_ids):
        rows = await tx.execute(sa.select(subscribers).where(subscribers.c.id.in_(chunk)))
        found.update((row.id, Subscriber(**row._mapping)) for row in rows)
    return found


async def purposes_of(tx: Tx, subject_ids: Sequence[str]) -> dict[str, list[str]]:
    """The purposes each subscriber was verified for."""
    out: dict[str, list[str]] = {}
    c = purposes.c
    for chunk in _chunks(subject_ids):
        rows = await tx.execute(
            sa.select(c.subscriber_id, c.purpose)
            .where(c.subscriber_id.in_(chunk))
            .order_by(c.subscriber_id, c.purpose)
        )
        for row in rows:
            out.setdefault(row.subscriber_id, []).append(row.purpose)
    return out


# -- stops ------------------------------------------------------------------------------


async def stopped_subjects(tx: Tx, subject_ids: Sequence[str]) -> set[str]:
    """Which of these subscribers asked to stop third-party provision."""
    found: set[str] = set()
    for chunk in _chunks(subject_ids):
        rows = await tx.execute(
            sa.select(stops.c.subscriber_id).where(stops.c.subscriber_id.in_(chunk))
        )
        found.update(row.subscriber_id for row in rows)
    return found


async def insert_stop(tx: Tx, stop: DisclosureStop) -> bool:
    """Record a stop of third-party provision; False if one was already recorded."""
    result = await tx.execute(_insert(tx, stops).values(stop.model_dump()).on_conflict_do_nothing())
    return result.rowcount == 1


async def delete_stop(tx: Tx, *, subscriber_id: str) -> bool:
    """Lift a stop (the subject's own choice); False if there was none."""
    result = await tx.execute(sa.delete(stops).where(stops.c.subscriber_id == subscriber_id))
    return result.rowcount == 1


async def stop_of(tx: Tx, subscriber_id: str) -> DisclosureStop | None:
    """A subscriber's stop, if any."""
    row = (
        await tx.execute(sa.select(stops).where(stops.c.subscriber_id == subscriber_id))
    ).one_or_none()
    return None if row is None else DisclosureStop(**row._mapping)


# -- consents to provide ----------------------------------------------------------------


async def live_consents(
    tx: Tx, subject_ids: Sequence[str], *, recipient_key: str
) -> dict[str, DisclosureConsent]:
    """The live consents of these subscribers to one recipient, by subscriber id."""
    c = consents.c
    found: dict[str, DisclosureConsent] = {}
    for chunk in _chunks(subject_ids):
        rows = await tx.execute(
            sa.select(consents).where(
                c.recipient_key == recipient_key,
                c.withdrawn_at.is_(None),
                c.subscriber_id.in_(chunk),
            )
        )
        found.update((row.subscriber_id, _consent(row)) for row in rows)
    return found


async def upsert_consent(tx: Tx, consent: DisclosureConsent) -> None:
    """Record (or renew) a subject's consent to one recipient."""
    statement = _insert(tx, consents).values(consent.model_dump())
    await tx.execute(
        statement.on_conflict_do_update(
            index_elements=[consents.c.subscriber_id, consents.c.recipient_key],
            set_={
                "recipient_organisation": statement.excluded.recipient_organisation,
                "source": statement.excluded.source,
                "granted_at": statement.excluded.granted_at,
                "withdrawn_at": None,
            },
        )
    )


async def withdraw_consent(
    tx: Tx, *, subscriber_id: str, recipient_key: str, at: dt.datetime
) -> bool:
    """Withdraw a live consent; False if there was none."""
    c = consents.c
    result = await tx.execute(
        sa.update(consents)
        .where(
            c.subscriber_id == subscriber_id,
            c.recipient_key == recipient_key,
            c.withdrawn_at.is_(None),
        )
        .values(withdrawn_at=at)
    )
    return result.rowcount == 1


async def consents_of(tx: Tx, subscriber_id: str) -> list[DisclosureConsent]:
    """Every consent-to-provide record of a subscriber."""
    rows = await tx.execute(
        sa.select(consents)
        .where(consents.c.subscriber_id == subscriber_id)
        .order_by(consents.c.recipient_key)
    )
    return [_consent(row) for row in rows]
