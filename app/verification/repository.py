"""Every query on verifications and idempotency records, as fixed SQL for the hot paths."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from typing import Any

from app.core.db import Row, Tx

_COLUMNS = (
    "id, client_id, purpose, locale, phone_ciphertext, phone_key_id, phone_index, code_salt, "
    "code_key_id, code_length, status, attempts, max_attempts, send_count, created_at, "
    "expires_at, last_sent_at, approved_at, subscriber_id, prefix_index"
)


def insert(tx: Tx, row: dict[str, Any]) -> None:
    """Insert one verification."""
    tx.execute(
        f"INSERT INTO verifications ({_COLUMNS}) VALUES "  # noqa: S608 (fixed column list)
        "(:id, :client_id, :purpose, :locale, :phone_ciphertext, :phone_key_id, :phone_index, "
        ":code_salt, :code_key_id, :code_length, :status, :attempts, :max_attempts, :send_count, "
        ":created_at, :expires_at, :last_sent_at, :approved_at, :subscriber_id, :prefix_index)",
        row,
    )


def supersede_pending(
    tx: Tx, *, client_id: str, phone_indexes: Sequence[str], purpose: str
) -> None:
    """A new start replaces the caller's older pending verification for the same number.

    ``phone_indexes`` is the number's blind index under every index key in the ring, so
    a verification started before an index-key rotation is replaced too.
    """
    params: dict[str, Any] = {"client_id": client_id, "purpose": purpose}
    params.update((f"i{i}", index) for i, index in enumerate(phone_indexes))
    tx.execute(_supersede_sql(len(phone_indexes)), params)


@functools.lru_cache(maxsize=8)
def _supersede_sql(n: int) -> str:
    match = "phone_index = :i0" if n == 1 else f"phone_index IN ({_marks('i', n)})"
    return (
        f"UPDATE verifications SET status = 'superseded' WHERE {match} "  # noqa: S608
        "AND client_id = :client_id AND purpose = :purpose AND status = 'pending'"
    )


def _marks(name: str, n: int) -> str:
    return ", ".join(f":{name}{i}" for i in range(n))


def get(tx: Tx, *, verification_id: str, client_id: str, lock: bool = False) -> Row | None:
    """One verification of this client, or None. ``lock`` holds the row until commit."""
    sql = f"SELECT {_COLUMNS} FROM verifications WHERE id = :id AND client_id = :client_id"  # noqa: S608
    if lock and not tx.sqlite:
        sql += " FOR UPDATE"
    return tx.one(sql, {"id": verification_id, "client_id": client_id})


def get_for_check(tx: Tx, *, verification_id: str, client_id: str) -> Row | None:
    """What a code check needs of one verification of this client, held until commit.

    Only these columns: each timestamp read costs a parse, and a check needs one.
    """
    sql = (
        "SELECT id, purpose, phone_ciphertext, phone_key_id, phone_index, code_salt, "
        "code_key_id, code_length, status, attempts, max_attempts, expires_at, prefix_index "
        "FROM verifications WHERE id = :id AND client_id = :client_id"
    )
    if not tx.sqlite:
        sql += " FOR UPDATE"
    return tx.one(sql, {"id": verification_id, "client_id": client_id})


def get_many(tx: Tx, verification_ids: Sequence[str]) -> dict[str, Row]:
    """What the outbox needs to render the codes of verifications by id, whoever owns
    them: one query for a batch, and only those columns (each timestamp read costs a
    parse)."""
    if not verification_ids:
        return {}
    rows = tx.all(
        _get_many_sql(len(verification_ids)), {f"v{i}": v for i, v in enumerate(verification_ids)}
    )
    return {row.id: row for row in rows}


@functools.lru_cache(maxsize=64)
def _get_many_sql(n: int) -> str:
    wanted = ", ".join(f":v{i}" for i in range(n))
    return (
        "SELECT id, purpose, locale, phone_ciphertext, phone_key_id, code_salt, code_key_id, "  # noqa: S608
        f"code_length, status, expires_at FROM verifications WHERE id IN ({wanted})"
    )


def count_attempt(tx: Tx, *, verification_id: str, now: dt.datetime) -> bool:
    """Count one (wrong) check against a live verification; False if it is not live.

    The caller holds the row (see :func:`get` with ``lock``), so checks are counted one
    by one and never pass the limit; the guards repeat the rules all the same.
    """
    counted = tx.execute(
        "UPDATE verifications SET attempts = attempts + 1 WHERE id = :id "
        "AND status = 'pending' AND attempts < max_attempts AND expires_at > :now",
        {"id": verification_id, "now": now},
    )
    return counted == 1


def approve(tx: Tx, *, verification_id: str, now: dt.datetime, subscriber_id: str | None) -> bool:
    """Count the (right) check as an attempt and approve, in one statement; False if the
    verification is no longer live."""
    changed = tx.execute(
        "UPDATE verifications SET attempts = attempts + 1, status = 'approved', "
        "approved_at = :now, subscriber_id = :subscriber_id WHERE id = :id "
        "AND status = 'pending' AND attempts < max_attempts AND expires_at > :now",
        {"id": verification_id, "now": now, "subscriber_id": subscriber_id},
    )
    return changed == 1


def mark_resent(tx: Tx, *, verification_id: str, now: dt.datetime) -> None:
    """Count one more send."""
    tx.execute(
        "UPDATE verifications SET send_count = send_count + 1, last_sent_at = :now WHERE id = :id",
        {"id": verification_id, "now": now},
    )


def latest_delivery(tx: Tx, *, verification_id: str) -> Row | None:
    """The newest outbox message of a verification (its delivery state)."""
    return tx.one(
        "SELECT status, delivery_status, error_code, sent_at FROM outbox_messages "
        "WHERE verification_id = :id ORDER BY created_at DESC, id DESC LIMIT 1",
        {"id": verification_id},
    )


def get_idempotent(tx: Tx, *, client_id: str, key: str) -> Row | None:
    """The stored first answer for an Idempotency-Key, or None."""
    return tx.one(
        "SELECT fingerprint, status_code, response, created_at FROM idempotency_records "
        "WHERE client_id = :client_id AND key = :key",
        {"client_id": client_id, "key": key},
    )


def save_idempotent(tx: Tx, row: dict[str, Any], *, replace: bool) -> None:
    """Store the first answer for an Idempotency-Key (replacing an expired one)."""
    if replace:
        tx.execute(
            "DELETE FROM idempotency_records WHERE client_id = :client_id AND key = :key",
            {"client_id": row["client_id"], "key": row["key"]},
        )
    tx.execute(
        "INSERT INTO idempotency_records (client_id, key, fingerprint, status_code, response, "
        "created_at) VALUES (:client_id, :key, :fingerprint, :status_code, :response, :created_at)",
        row,
    )
