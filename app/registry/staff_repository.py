"""UNCONVERTED: the registry's staff views and access log, to be rewritten (issue 13)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from app.core.db import Row, Tx

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
