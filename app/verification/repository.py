"""Every query on verifications. Hot paths use single Core statements (UPDATE ... RETURNING)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from app.models import IdempotencyRecord, OutboxMessage, Verification

verifications = Verification.__table__  # type: ignore[attr-defined]
idempotency = IdempotencyRecord.__table__  # type: ignore[attr-defined]
outbox = OutboxMessage.__table__  # type: ignore[attr-defined]


def insert(session: Session, row: dict[str, Any]) -> None:
    """Insert one verification."""
    session.execute(verifications.insert().values(**row))


def supersede_pending(session: Session, *, client_id: str, phone_index: str, purpose: str) -> None:
    """A new start replaces the caller's older pending verification for the same number."""
    session.execute(
        verifications.update()
        .where(
            verifications.c.phone_index == phone_index,
            verifications.c.client_id == client_id,
            verifications.c.purpose == purpose,
            verifications.c.status == "pending",
        )
        .values(status="superseded")
    )


def get(session: Session, *, verification_id: str, client_id: str, lock: bool = False) -> Any:
    """One verification of this client, or None. ``lock`` holds the row until commit."""
    query = sa.select(verifications).where(
        verifications.c.id == verification_id, verifications.c.client_id == client_id
    )
    if lock:
        query = query.with_for_update()
    return session.execute(query).first()


def consume_attempt(
    session: Session, *, verification_id: str, client_id: str, now: dt.datetime
) -> Any:
    """Count one check against a live verification and return it; None if it is not live.

    One atomic statement: the row lock it takes on PostgreSQL (and SQLite's single
    writer) means concurrent checks are counted one by one and never pass the limit.
    """
    c = verifications.c
    return session.execute(
        verifications.update()
        .where(
            c.id == verification_id,
            c.client_id == client_id,
            c.status == "pending",
            c.attempts < c.max_attempts,
            c.expires_at > now,
        )
        .values(attempts=c.attempts + 1)
        .returning(
            c.id,
            c.purpose,
            c.phone_ciphertext,
            c.phone_key_id,
            c.phone_index,
            c.code_salt,
            c.code_key_id,
            c.code_length,
            c.attempts,
            c.max_attempts,
        )
    ).first()


def approve(
    session: Session, *, verification_id: str, now: dt.datetime, subscriber_id: str | None
) -> bool:
    """Mark a pending verification approved; False if something else got there first."""
    result = session.execute(
        verifications.update()
        .where(verifications.c.id == verification_id, verifications.c.status == "pending")
        .values(status="approved", approved_at=now, subscriber_id=subscriber_id)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_resent(session: Session, *, verification_id: str, now: dt.datetime) -> None:
    """Count one more send."""
    c = verifications.c
    session.execute(
        verifications.update()
        .where(c.id == verification_id)
        .values(send_count=c.send_count + 1, last_sent_at=now)
    )


def latest_delivery(session: Session, *, verification_id: str) -> Any:
    """The newest outbox message of a verification (its delivery state)."""
    c = outbox.c
    return session.execute(
        sa.select(c.status, c.delivery_status, c.error_code, c.sent_at)
        .where(c.verification_id == verification_id)
        .order_by(c.created_at.desc())
        .limit(1)
    ).first()


def get_idempotent(session: Session, *, client_id: str, key: str) -> Any:
    """The stored first answer for an Idempotency-Key, or None."""
    c = idempotency.c
    return session.execute(
        sa.select(idempotency).where(c.client_id == client_id, c.key == key)
    ).first()


def save_idempotent(session: Session, row: dict[str, Any], *, replace: bool) -> None:
    """Store the first answer for an Idempotency-Key (replacing an expired one)."""
    c = idempotency.c
    if replace:
        session.execute(
            idempotency.delete().where(c.client_id == row["client_id"], c.key == row["key"])
        )
    session.execute(idempotency.insert().values(**row))
