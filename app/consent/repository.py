"""Every query on consent: the append-only history, the current state, and who is live.

"Live" is written once, here: the subscriber's current state for the purpose is
``opted_in`` and the subscriber is (still) verified for that purpose.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from app.core.db import Row, Tx

DELIVERY_PURPOSE = "coupon_delivery"
OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"


def get_subscriber(tx: Tx, subscriber_id: str) -> Row | None:
    """The registry row of a subscriber (ciphertext included, for the language)."""
    return tx.one(
        "SELECT id, phone_ciphertext, phone_key_id, phone_index FROM subscribers WHERE id = :id",
        {"id": subscriber_id},
    )


def verified_for(tx: Tx, *, subscriber_id: str, purpose: str) -> bool:
    """Whether the subscriber's number was verified by SMS for this purpose."""
    found = tx.scalar(
        "SELECT 1 AS found FROM subscriber_purposes "
        "WHERE subscriber_id = :subscriber_id AND purpose = :purpose",
        {"subscriber_id": subscriber_id, "purpose": purpose},
    )
    return found is not None


def current(tx: Tx, *, subscriber_id: str, purpose: str | None = None) -> list[Row]:
    """The current state per purpose (one purpose, or all)."""
    sql = (
        "SELECT purpose, status, locale, source, policy_version, changed_at FROM consents "
        "WHERE subscriber_id = :subscriber_id"
    )
    params: dict[str, Any] = {"subscriber_id": subscriber_id}
    if purpose is not None:
        sql += " AND purpose = :purpose"
        params["purpose"] = purpose
    return tx.all(sql + " ORDER BY purpose", params)


def history(tx: Tx, *, subscriber_id: str, limit: int) -> list[Row]:
    """The newest ``limit`` changes of a subscriber's consent, newest first."""
    return tx.all(
        "SELECT id, purpose, action, source, policy_version, client_ip, actor, at "
        "FROM consent_events WHERE subscriber_id = :subscriber_id ORDER BY id DESC LIMIT :limit",
        {"subscriber_id": subscriber_id, "limit": limit},
    )


def append(tx: Tx, row: dict[str, Any]) -> int:
    """Add one change to the history (never updated or deleted); returns its id."""
    event_id = tx.scalar(
        "INSERT INTO consent_events (subscriber_id, purpose, action, source, policy_version, "
        "client_ip, actor, at) VALUES (:subscriber_id, :purpose, :action, :source, "
        ":policy_version, :client_ip, :actor, :at) RETURNING id",
        row,
    )
    return int(event_id)


def set_state(tx: Tx, row: dict[str, Any]) -> None:
    """Make a history row the current state (same transaction as :func:`append`)."""
    tx.execute(
        "INSERT INTO consents (subscriber_id, purpose, status, locale, source, policy_version, "
        "event_id, changed_at) VALUES (:subscriber_id, :purpose, :status, :locale, :source, "
        ":policy_version, :event_id, :changed_at) ON CONFLICT (subscriber_id, purpose) DO UPDATE "
        "SET status = excluded.status, locale = excluded.locale, source = excluded.source, "
        "policy_version = excluded.policy_version, event_id = excluded.event_id, "
        "changed_at = excluded.changed_at",
        row,
    )


def is_live(tx: Tx, *, subscriber_id: str, purpose: str) -> bool:
    """Whether the subscriber's opt-in to the purpose is live right now."""
    found = tx.scalar(
        "SELECT 1 AS live FROM consents c JOIN subscriber_purposes sp "
        "ON sp.subscriber_id = c.subscriber_id AND sp.purpose = c.purpose "
        "WHERE c.subscriber_id = :subscriber_id AND c.purpose = :purpose "
        "AND c.status = 'opted_in'",
        {"subscriber_id": subscriber_id, "purpose": purpose},
    )
    return found is not None


def recipients(tx: Tx, subscriber_ids: Sequence[str], *, purpose: str) -> dict[str, Row]:
    """Subscribers by id with their ciphertext and whether their opt-in is live (``live``)."""
    if not subscriber_ids:
        return {}
    params: dict[str, Any] = {f"s{i}": s for i, s in enumerate(subscriber_ids)}
    params["purpose"] = purpose
    rows = tx.all(_recipients_sql(len(subscriber_ids)), params)
    for row in rows:
        row["live"] = row.pop("status") == OPTED_IN and row.pop("verified") is not None
    return {row.id: row for row in rows}


@functools.lru_cache(maxsize=64)
def _recipients_sql(n: int) -> str:
    wanted = ", ".join(f":s{i}" for i in range(n))
    return (
        "SELECT s.id, s.phone_ciphertext, s.phone_key_id, s.phone_index, c.status, "  # noqa: S608
        "sp.purpose AS verified FROM subscribers s "
        "LEFT JOIN consents c ON c.subscriber_id = s.id AND c.purpose = :purpose "
        "LEFT JOIN subscriber_purposes sp ON sp.subscriber_id = s.id AND sp.purpose = :purpose "
        f"WHERE s.id IN ({wanted})"
    )


def audience(tx: Tx, *, purpose: str, after: str, limit: int) -> list[Row]:
    """The next ``limit`` subscribers verified for a purpose after ``after`` (keyset order),
    each with its consent state (``status`` is None when none was ever recorded)."""
    return tx.all(
        "SELECT sp.subscriber_id, c.status, c.locale FROM subscriber_purposes sp "
        "LEFT JOIN consents c ON c.subscriber_id = sp.subscriber_id AND c.purpose = sp.purpose "
        "WHERE sp.purpose = :purpose AND sp.subscriber_id > :after "
        "ORDER BY sp.subscriber_id LIMIT :limit",
        {"purpose": purpose, "after": after, "limit": limit},
    )
