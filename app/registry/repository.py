"""Queries on the registry of verified numbers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.core.db import Row, Tx
from app.core.ids import new_id


def subscriber_aad(phone_index: str) -> bytes:
    """Associated data binding a subscriber's ciphertext to its own blind index."""
    return b"subscriber:" + phone_index.encode()


def upsert_verified(
    tx: Tx,
    *,
    phone_index: str,
    ciphertext: bytes,
    key_id: str,
    purpose: str,
    now: dt.datetime,
    older_indexes: Sequence[str] = (),
) -> str:
    """Find or create the subscriber for a number and record the purpose it was verified for.

    ``older_indexes`` are the number's blind indexes under the ring's older index keys
    (see ``Keys.blind_indexes``): a subscriber still indexed under one of them is the
    same number, so it is moved to ``phone_index`` (with ``ciphertext``, which is bound
    to that index) instead of a second subscriber being created beside it.
    """
    if older_indexes:
        _move_to_index(
            tx, phone_index=phone_index, ciphertext=ciphertext, key_id=key_id, older=older_indexes
        )
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


def find_id(tx: Tx, *, phone_index: str | Sequence[str]) -> str | None:
    """The subscriber id for a number's blind index, if registered.

    Given every index of the number (``Keys.blind_indexes``), it also finds a subscriber
    an index-key rotation has not re-indexed yet.
    """
    indexes = [phone_index] if isinstance(phone_index, str) else list(phone_index)
    if len(indexes) == 1:
        found: str | None = tx.scalar(
            "SELECT id FROM subscribers WHERE phone_index = :phone_index",
            {"phone_index": indexes[0]},
        )
        return found
    marks, params = _in_list("i", indexes)
    # Oldest first: should a race ever have made two, the older subscriber is the one.
    found = tx.scalar(
        f"SELECT id FROM subscribers WHERE phone_index IN ({marks}) "  # noqa: S608 (fixed marks)
        "ORDER BY created_at, id LIMIT 1",
        params,
    )
    return found


def _in_list(name: str, values: Sequence[str]) -> tuple[str, dict[str, str]]:
    params = {f"{name}{i}": value for i, value in enumerate(values)}
    return ", ".join(":" + key for key in params), params


def _move_to_index(
    tx: Tx, *, phone_index: str, ciphertext: bytes, key_id: str, older: Sequence[str]
) -> None:
    marks, params = _in_list("o", older)
    # Only when nothing holds the new index yet (phone_index is UNIQUE), and one row at
    # most. Concurrent movers (``smsreg keys rotate index``) guard on the old index, so
    # whichever commits second finds nothing left to move.
    tx.execute(
        "UPDATE subscribers SET phone_index = :phone_index, phone_ciphertext = :ciphertext, "  # noqa: S608
        "phone_key_id = :key_id WHERE id = (SELECT id FROM subscribers WHERE phone_index IN "
        f"({marks}) ORDER BY created_at, id LIMIT 1) AND NOT EXISTS "
        "(SELECT 1 FROM subscribers WHERE phone_index = :phone_index)",
        {**params, "phone_index": phone_index, "ciphertext": ciphertext, "key_id": key_id},
    )


# -- staff views of the registry and the access log ------------------------------------


def get_subscriber(tx: Tx, *, subscriber_id: str) -> Row | None:
    """A subscriber with its (encrypted) number and dates."""
    return tx.one(
        "SELECT id, phone_ciphertext, phone_key_id, phone_index, created_at, last_verified_at "
        "FROM subscribers WHERE id = :id",
        {"id": subscriber_id},
    )


def purposes_of(tx: Tx, *, subscriber_id: str) -> list[Row]:
    """The purposes a subscriber's number was verified for, and when."""
    return tx.all(
        "SELECT purpose, verified_at FROM subscriber_purposes "
        "WHERE subscriber_id = :subscriber_id ORDER BY purpose",
        {"subscriber_id": subscriber_id},
    )


def insert_access(tx: Tx, entry: dict[str, Any]) -> None:
    """Append one entry to the access log (never a number)."""
    tx.execute(
        "INSERT INTO access_log (accessed_at, staff_id, staff_username, staff_role, source_ip, "
        "subscriber_id, action, reason) VALUES (:accessed_at, :staff_id, :staff_username, "
        ":staff_role, :source_ip, :subscriber_id, :action, :reason)",
        entry,
    )


@dataclass(frozen=True)
class AccessFilter:
    """Which access-log entries an auditor asks for (every field optional)."""

    since: dt.datetime | None = None
    until: dt.datetime | None = None
    staff_id: str | None = None
    subscriber_id: str | None = None
    action: str | None = None

    def clauses(self) -> tuple[list[str], dict[str, Any]]:
        """SQL conditions (fixed text, chosen by which filters are set) and their values."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        for column, op, name, value in (
            ("accessed_at", ">=", "since", self.since),
            ("accessed_at", "<", "until", self.until),
            ("staff_id", "=", "staff_id", self.staff_id),
            ("subscriber_id", "=", "subscriber_id", self.subscriber_id),
            ("action", "=", "action", self.action),
        ):
            if value is not None:
                clauses.append(f"{column} {op} :{name}")
                params[name] = value
        return clauses, params


_ACCESS_COLUMNS = (
    "SELECT id, accessed_at, staff_id, staff_username, staff_role, source_ip, subscriber_id, "
    "action, reason FROM access_log"
)


def access_page(tx: Tx, flt: AccessFilter, *, before_id: int | None, limit: int) -> list[Row]:
    """Up to ``limit`` entries, newest first, older than ``before_id`` (keyset pages)."""
    clauses, params = flt.clauses()
    if before_id is not None:
        clauses.append("id < :before_id")
        params["before_id"] = before_id
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    params["limit"] = limit
    sql = f"{_ACCESS_COLUMNS}{where} ORDER BY id DESC LIMIT :limit"  # noqa: S608 (fixed parts)
    return tx.all(sql, params)


def access_batch(
    tx: Tx, flt: AccessFilter, *, after_id: int, upto_id: int, limit: int
) -> list[Row]:
    """Up to ``limit`` entries in id order after ``after_id`` and at most ``upto_id``."""
    clauses, params = flt.clauses()
    clauses += ["id > :after_id", "id <= :upto_id"]
    params.update(after_id=after_id, upto_id=upto_id, limit=limit)
    sql = f"{_ACCESS_COLUMNS} WHERE {' AND '.join(clauses)} ORDER BY id LIMIT :limit"  # noqa: S608
    return tx.all(sql, params)


def last_access_id(tx: Tx) -> int:
    """The newest access-log entry's id (0 when empty): where an export stops."""
    return int(tx.scalar("SELECT coalesce(max(id), 0) AS n FROM access_log"))
