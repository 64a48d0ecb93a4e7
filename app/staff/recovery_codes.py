"""One-time recovery codes: ten per account, shown once, stored as a keyed hash.

A code stands in for a TOTP code at one login (a lost or broken phone). Each is an
HMAC under the token key ring, bound to the account, with the key id beside it; a
lookup tries every key still in the ring, so rotating the token key keeps them.
"""

from __future__ import annotations

import datetime as dt
import secrets

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Row, Tx
from app.staff.accounts import Staff

COUNT = 10
# 31 unambiguous characters (no 0/o, 1/l/i), 12 of them: ~59 bits per code.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_CHARS = 12


def _hash(ctx: Context, staff_id: str, code: str, key_id: str) -> str:
    return ctx.keys.token.mac(f"recovery:{staff_id}:{code}".encode(), key_id=key_id).hex()


def issue(tx: Tx, ctx: Context, *, staff: Staff, now: dt.datetime) -> list[str]:
    """Replace the account's recovery codes with ten new ones; the codes, shown once."""
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(_CHARS)) for _ in range(COUNT)]
    key_id = ctx.keys.token.active_id
    tx.execute("DELETE FROM staff_recovery_codes WHERE staff_id = :id", {"id": staff.id})
    tx.executemany(
        "INSERT INTO staff_recovery_codes (staff_id, code_hash, key_id, created_at) "
        "VALUES (:staff_id, :code_hash, :key_id, :now)",
        [
            {
                "staff_id": staff.id,
                "code_hash": _hash(ctx, staff.id, code, key_id),
                "key_id": key_id,
                "now": now,
            }
            for code in codes
        ],
    )
    record_event(
        tx,
        Tag.STAFF_RECOVERY_CODES_ISSUED,
        actor=staff.actor,
        at=now,
        subject=staff.id,
        details={"codes": len(codes)},
    )
    return ["-".join(code[i : i + 4] for i in range(0, _CHARS, 4)) for code in codes]


def left(tx: Tx, staff_id: str) -> int:
    """How many unused recovery codes an account has."""
    return int(
        tx.scalar(
            "SELECT count(*) AS n FROM staff_recovery_codes WHERE staff_id = :id "
            "AND used_at IS NULL",
            {"id": staff_id},
        )
    )


def use(tx: Tx, ctx: Context, *, account: Row, code: str) -> bool:
    """Spend one unused recovery code of the account; False if it is not one."""
    typed = "".join(code.lower().replace("-", "").split())
    if len(typed) != _CHARS or set(typed) - set(_ALPHABET):
        return False
    hashes = {
        f"h{i}": _hash(ctx, account.id, typed, key_id)
        for i, key_id in enumerate(ctx.keys.token.ids())
    }
    found = tx.one(
        "SELECT id FROM staff_recovery_codes WHERE staff_id = :staff_id AND used_at IS NULL "  # noqa: S608
        f"AND code_hash IN ({', '.join(':' + name for name in hashes)})",
        {"staff_id": account.id, **hashes},
    )
    if found is None:
        return False
    now = ctx.clock.now()
    # The guard makes a code single-use even if two logins race with it.
    if (
        tx.execute(
            "UPDATE staff_recovery_codes SET used_at = :now WHERE id = :id AND used_at IS NULL",
            {"now": now, "id": found.id},
        )
        != 1
    ):
        return False
    record_event(
        tx,
        Tag.STAFF_RECOVERY_CODE_USED,
        actor=f"staff:{account.id}",
        at=now,
        subject=account.id,
        details={"left": left(tx, account.id)},
    )
    return True


def remove(tx: Tx, *, account_id: str) -> int:
    """Delete every recovery code of an account; how many."""
    return tx.execute("DELETE FROM staff_recovery_codes WHERE staff_id = :id", {"id": account_id})
