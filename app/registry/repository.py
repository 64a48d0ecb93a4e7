"""Queries on the registry of verified numbers."""

from __future__ import annotations

import datetime as dt

from app.core.db import Tx
from app.core.ids import new_id


def subscriber_aad(phone_index: str) -> bytes:
    """Associated data binding a subscriber's ciphertext to its own blind index."""
    return b"subscriber:" + phone_index.encode()


def upsert_verified(
    tx: Tx, *, phone_index: str, ciphertext: bytes, key_id: str, purpose: str, now: dt.datetime
) -> str:
    """Find or create the subscriber for a number and record the purpose it was verified for."""
    tx.execute(
        "INSERT INTO subscribers (id, phone_ciphertext, phone_key_id, phone_index, created_at, "
        "last_verified_at) VALUES (:id, :ciphertext, :key_id, :phone_index, :now, :now) "
        "ON CONFLICT (phone_index) DO UPDATE SET last_verified_at = excluded.last_verified_at",
        {
            "id": new_id("sub"),
            "ciphertext": ciphertext,
            "key_id": key_id,
            "phone_index": phone_index,
            "now": now,
        },
    )
    # Read back rather than RETURNING: on SQLite that builds and drops a temporary
    # table per statement (measured a few us more). The upsert holds the row until
    # commit, so the read sees this transaction's row.
    subscriber_id: str = tx.scalar(
        "SELECT id FROM subscribers WHERE phone_index = :phone_index", {"phone_index": phone_index}
    )
    tx.execute(
        "INSERT INTO subscriber_purposes (subscriber_id, purpose, verified_at) "
        "VALUES (:subscriber_id, :purpose, :now) ON CONFLICT (subscriber_id, purpose) "
        "DO UPDATE SET verified_at = excluded.verified_at",
        {"subscriber_id": subscriber_id, "purpose": purpose, "now": now},
    )
    return subscriber_id


def find_id(tx: Tx, *, phone_index: str) -> str | None:
    """The subscriber id for a number's blind index, if registered."""
    found: str | None = tx.scalar(
        "SELECT id FROM subscribers WHERE phone_index = :phone_index", {"phone_index": phone_index}
    )
    return found
