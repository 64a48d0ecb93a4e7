"""The queries of key rotation: rows still on an older key, rewritten one guarded row at a time.

Every rewrite is a compare-and-set: ``WHERE id = :id`` and the old key id (and, where
the associated data depends on it, the old index) as read. A row a running service
changed in between is left alone (it was written under the active key anyway), never
overwritten with stale data. Rows are walked in id order after a cursor, so a row that
cannot be rewritten is passed over, not retried for ever; what is left after a run is
still "every row not on the active key", which is what the next run picks up.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.core.db import Row, Tx

# A row is on the active index key when its value starts with "<active id>:". substr
# with an integer length works alike on SQLite and PostgreSQL (LIKE does not: on
# SQLite it ignores case, and "_" is a wildcard in key ids). So the statements below
# select what is left with: substr(column, 1, CAST(:n AS INTEGER)) <> :lead


def _lead(active_id: str) -> dict[str, Any]:
    lead = active_id + ":"
    return {"lead": lead, "n": len(lead)}


# -- the phone-encryption key ----------------------------------------------------------


def phone_batch(tx: Tx, *, table: str, active_id: str, after: str, limit: int) -> list[Row]:
    """Up to ``limit`` rows of ``table`` whose number is not under the active phone key."""
    return tx.all(
        _PHONE_BATCH[table],
        {"active": active_id, "after": after, "limit": limit},
    )


_PHONE_BATCH = {
    "verifications": "SELECT id, phone_ciphertext, phone_key_id FROM verifications "
    "WHERE id > :after AND phone_key_id <> :active ORDER BY id LIMIT :limit",
    "subscribers": "SELECT id, phone_ciphertext, phone_key_id, phone_index FROM subscribers "
    "WHERE id > :after AND phone_key_id <> :active ORDER BY id LIMIT :limit",
}


def phone_remaining(tx: Tx, *, table: str, active_id: str) -> int:
    """Rows of ``table`` whose number is not under the active phone key."""
    sql = {
        "verifications": "SELECT count(*) AS n FROM verifications WHERE phone_key_id <> :active",
        "subscribers": "SELECT count(*) AS n FROM subscribers WHERE phone_key_id <> :active",
    }[table]
    return int(tx.scalar(sql, {"active": active_id}))


def rewrite_verification_phone(tx: Tx, *, row: Row, ciphertext: bytes, key_id: str) -> bool:
    """Store a verification's number re-encrypted, unless the row changed since read."""
    changed = tx.execute(
        "UPDATE verifications SET phone_ciphertext = :ciphertext, phone_key_id = :key_id "
        "WHERE id = :id AND phone_key_id = :old_key_id AND phone_ciphertext = :old",
        {
            "ciphertext": ciphertext,
            "key_id": key_id,
            "id": row.id,
            "old_key_id": row.phone_key_id,
            "old": row.phone_ciphertext,
        },
    )
    return changed == 1


def rewrite_subscriber(
    tx: Tx, *, row: Row, phone_index: str, ciphertext: bytes, key_id: str
) -> bool:
    """Store a subscriber's number (and index) anew, unless the row changed since read.

    The ciphertext's associated data is the index, so both change together.
    """
    changed = tx.execute(
        "UPDATE subscribers SET phone_index = :phone_index, phone_ciphertext = :ciphertext, "
        "phone_key_id = :key_id WHERE id = :id AND phone_index = :old_index "
        "AND phone_key_id = :old_key_id AND phone_ciphertext = :old",
        {
            "phone_index": phone_index,
            "ciphertext": ciphertext,
            "key_id": key_id,
            "id": row.id,
            "old_index": row.phone_index,
            "old_key_id": row.phone_key_id,
            "old": row.phone_ciphertext,
        },
    )
    return changed == 1


# -- the blind-index key ---------------------------------------------------------------

_INDEX_BATCH = {
    "subscribers": "SELECT id, phone_ciphertext, phone_key_id, phone_index FROM subscribers "
    "WHERE id > :after AND substr(phone_index, 1, CAST(:n AS INTEGER)) <> :lead "
    "ORDER BY id LIMIT :limit",
    "verifications": "SELECT id, phone_ciphertext, phone_key_id, phone_index, prefix_index "
    "FROM verifications WHERE id > :after "
    "AND (substr(phone_index, 1, CAST(:n AS INTEGER)) <> :lead "
    "OR (prefix_index IS NOT NULL AND substr(prefix_index, 1, CAST(:n AS INTEGER)) <> :lead)) "
    "ORDER BY id LIMIT :limit",
    "pumping_blocks": "SELECT id, prefix, prefix_index FROM pumping_blocks "
    "WHERE id > :after AND substr(prefix_index, 1, CAST(:n AS INTEGER)) <> :lead "
    "ORDER BY id LIMIT :limit",
}
_INDEX_REMAINING = {
    "subscribers": "SELECT count(*) AS n FROM subscribers WHERE "
    "substr(phone_index, 1, CAST(:n AS INTEGER)) <> :lead",
    "verifications": "SELECT count(*) AS n FROM verifications WHERE "
    "substr(phone_index, 1, CAST(:n AS INTEGER)) <> :lead "
    "OR (prefix_index IS NOT NULL AND substr(prefix_index, 1, CAST(:n AS INTEGER)) <> :lead)",
    "pumping_blocks": "SELECT count(*) AS n FROM pumping_blocks WHERE "
    "substr(prefix_index, 1, CAST(:n AS INTEGER)) <> :lead",
}


def index_batch(tx: Tx, *, table: str, active_id: str, after: str, limit: int) -> list[Row]:
    """Up to ``limit`` rows of ``table`` with a blind index not made with the active key."""
    return tx.all(_INDEX_BATCH[table], {**_lead(active_id), "after": after, "limit": limit})


def index_remaining(tx: Tx, *, table: str, active_id: str) -> int:
    """Rows of ``table`` with a blind index not made with the active key."""
    return int(tx.scalar(_INDEX_REMAINING[table], _lead(active_id)))


def subscriber_holding(tx: Tx, *, phone_index: str) -> str | None:
    """The subscriber that already holds this blind index, if any."""
    found: str | None = tx.scalar(
        "SELECT id FROM subscribers WHERE phone_index = :phone_index", {"phone_index": phone_index}
    )
    return found


def reindex_verification(tx: Tx, *, row: Row, phone_index: str, prefix_index: str | None) -> bool:
    """Store a verification's recomputed indexes, unless its index changed since read."""
    changed = tx.execute(
        "UPDATE verifications SET phone_index = :phone_index, prefix_index = :prefix_index "
        "WHERE id = :id AND phone_index = :old_index",
        {
            "phone_index": phone_index,
            "prefix_index": prefix_index,
            "id": row.id,
            "old_index": row.phone_index,
        },
    )
    return changed == 1


def reindex_block(tx: Tx, *, row: Row, prefix_index: str) -> bool:
    """Store a pumping block's recomputed prefix index, unless it changed since read."""
    changed = tx.execute(
        "UPDATE pumping_blocks SET prefix_index = :prefix_index "
        "WHERE id = :id AND prefix_index = :old_index",
        {"prefix_index": prefix_index, "id": row.id, "old_index": row.prefix_index},
    )
    return changed == 1


def savepoint(tx: Tx) -> None:
    """Mark a point one row's rewrite can be undone to (a duplicate index)."""
    tx.execute("SAVEPOINT key_rotation_row")


def release(tx: Tx) -> None:
    """Keep the row's rewrite."""
    tx.execute("RELEASE SAVEPOINT key_rotation_row")


def undo(tx: Tx) -> None:
    """Undo the row's rewrite (the transaction carries on)."""
    tx.execute("ROLLBACK TO SAVEPOINT key_rotation_row")
    tx.execute("RELEASE SAVEPOINT key_rotation_row")


# -- what still uses each key (``smsreg keys status``) ---------------------------------


def _key_of(tx: Tx, column: str) -> str:
    # The key id is the part of a blind index before the first ":".
    if tx.sqlite:
        return f"substr({column}, 1, instr({column}, ':') - 1)"
    return f"split_part({column}, ':', 1)"


def usage(tx: Tx, *, family: str, now: dt.datetime) -> list[Row]:
    """(what, key_id, rows) for every key id rows of one family name, active or not.

    ``what`` names the table and column. Only rows that still need the key count:
    for codes the live verifications, for tokens the live API keys and sessions.
    """
    out: list[Row] = []
    for what, sql in _usage_sql(tx, family):
        for row in tx.all(sql, {"now": now}):
            out.append(Row(what=what, key_id=row.key_id, rows=int(row.n)))
    return out


def _usage_sql(tx: Tx, family: str) -> list[tuple[str, str]]:
    if family == "phone":
        return [
            (f"{table}.phone_key_id", f"SELECT phone_key_id AS key_id, count(*) AS n FROM {table} "  # noqa: S608
             "GROUP BY phone_key_id")
            for table in ("subscribers", "verifications")
        ] + [
            # Staff TOTP secrets are sealed with the phone ring too; `smsreg credentials
            # rotate --due` re-encrypts them.
            ("staff_totp.secret_key_id", "SELECT secret_key_id AS key_id, count(*) AS n "
             "FROM staff_totp GROUP BY secret_key_id"),
        ]  # fmt: skip
    if family == "index":
        return [
            (
                f"{table}.{column}",
                f"SELECT {_key_of(tx, column)} AS key_id, count(*) AS n FROM {table} "  # noqa: S608
                f"WHERE {column} IS NOT NULL GROUP BY {_key_of(tx, column)}",
            )
            for table, column in (
                ("subscribers", "phone_index"),
                ("verifications", "phone_index"),
                ("verifications", "prefix_index"),
                ("pumping_blocks", "prefix_index"),
            )
        ]
    if family == "code":
        return [
            (
                "verifications.code_key_id (live)",
                "SELECT code_key_id AS key_id, count(*) AS n FROM verifications "
                "WHERE status = 'pending' AND expires_at > :now GROUP BY code_key_id",
            )
        ]
    if family == "token":
        return [
            (
                f"{table}.token_key_id (live)",
                f"SELECT token_key_id AS key_id, count(*) AS n FROM {table} "  # noqa: S608
                "WHERE revoked_at IS NULL AND expires_at > :now GROUP BY token_key_id",
            )
            for table in ("api_keys", "staff_sessions")
        ]
    raise ValueError(f"unknown key family {family!r}")
