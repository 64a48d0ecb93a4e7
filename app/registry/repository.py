"""Queries on the registry of verified numbers."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Session

from app.core.db import insert_on_conflict
from app.core.ids import new_id
from app.models import Subscriber, SubscriberPurpose

subscribers = Subscriber.__table__  # type: ignore[attr-defined]
purposes = SubscriberPurpose.__table__  # type: ignore[attr-defined]


def subscriber_aad(phone_index: str) -> bytes:
    """Associated data binding a subscriber's ciphertext to its own blind index."""
    return b"subscriber:" + phone_index.encode()


def upsert_verified(
    session: Session,
    *,
    phone_index: str,
    ciphertext: bytes,
    key_id: str,
    purpose: str,
    now: dt.datetime,
) -> str:
    """Find or create the subscriber for a number and record the purpose it was verified for."""
    insert = insert_on_conflict(session, subscribers).values(
        id=new_id("sub"),
        phone_ciphertext=ciphertext,
        phone_key_id=key_id,
        phone_index=phone_index,
        created_at=now,
        last_verified_at=now,
    )
    subscriber_id: str = session.execute(
        insert.on_conflict_do_update(
            index_elements=[subscribers.c.phone_index],
            set_={"last_verified_at": insert.excluded.last_verified_at},
        ).returning(subscribers.c.id)
    ).scalar_one()
    insert_purpose = insert_on_conflict(session, purposes).values(
        subscriber_id=subscriber_id, purpose=purpose, verified_at=now
    )
    session.execute(
        insert_purpose.on_conflict_do_update(
            index_elements=[purposes.c.subscriber_id, purposes.c.purpose],
            set_={"verified_at": insert_purpose.excluded.verified_at},
        )
    )
    return subscriber_id


def find_id(session: Session, *, phone_index: str) -> str | None:
    """The subscriber id for a number's blind index, if registered."""
    return session.execute(
        sa.select(subscribers.c.id).where(subscribers.c.phone_index == phone_index)
    ).scalar_one_or_none()
