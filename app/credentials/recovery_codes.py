"""One-time recovery codes: ten per account, shown once, stored as a keyed hash.

A code stands in for a TOTP code at one login (a lost or broken phone). Each is an
HMAC under the token key ring, bound to the account, with the key id beside it; a
lookup tries every key still in the ring, so rotating the token key keeps them.
"""

from __future__ import annotations

import datetime as dt
import secrets
import unicodedata

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.tx import Tx
from app.credentials import repository as repo
from app.models.staff_mfa import StaffRecoveryCode

COUNT = 10
# 31 unambiguous characters (no 0/o, 1/l/i), 12 of them: ~59 bits per code.
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_CHARS = 12


def _hash(ctx: Context, staff_id: str, code: str, key_id: str) -> str:
    return ctx.keys.token.mac(f"recovery:{staff_id}:{code}".encode(), key_id=key_id).hex()


async def issue(tx: Tx, ctx: Context, *, staff_id: str, actor: str, now: dt.datetime) -> list[str]:
    """Replace the account's recovery codes with ten new ones; the codes, shown once."""
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(_CHARS)) for _ in range(COUNT)]
    key_id = ctx.keys.token.active_id
    await repo.replace_codes(
        tx,
        staff_id=staff_id,
        new=[
            StaffRecoveryCode(
                staff_id=staff_id,
                code_hash=_hash(ctx, staff_id, code, key_id),
                key_id=key_id,
                created_at=now,
            )
            for code in codes
        ],
    )
    await record_event(
        tx,
        Tag.STAFF_RECOVERY_CODES_ISSUED,
        actor=actor,
        at=now,
        subject=staff_id,
        details={"codes": len(codes)},
    )
    return ["-".join(code[i : i + 4] for i in range(0, _CHARS, 4)) for code in codes]


async def left(tx: Tx, staff_id: str) -> int:
    """How many unused recovery codes an account has."""
    return await repo.codes_left(tx, staff_id)


def _hashes(ctx: Context, staff_id: str, code: str) -> list[str]:
    """The code's keyed hashes under every token key; none if it cannot be a code."""
    # As typed by a Japanese input method too: full-width letters, digits and hyphen.
    typed = "".join(unicodedata.normalize("NFKC", code).lower().replace("-", "").split())
    if len(typed) != _CHARS or set(typed) - set(_ALPHABET):
        return []
    return [_hash(ctx, staff_id, typed, key_id) for key_id in ctx.keys.token.ids()]


async def spent(tx: Tx, ctx: Context, *, staff_id: str, code: str) -> bool:
    """Whether ``code`` is one of the account's codes that was used already (two logins
    racing with one code, or one sent twice): a replay, not a guess."""
    hashes = _hashes(ctx, staff_id, code)
    return bool(hashes) and await repo.used_code(tx, staff_id=staff_id, hashes=hashes)


async def use(tx: Tx, ctx: Context, *, staff_id: str, code: str) -> bool:
    """Spend one unused recovery code of the account; False if it is not one."""
    hashes = _hashes(ctx, staff_id, code)
    if not hashes:
        return False
    found = await repo.unused_code(tx, staff_id=staff_id, hashes=hashes)
    if found is None:
        return False
    now = ctx.clock.now()
    # The guard makes a code single-use even if two logins race with it.
    if not await repo.spend_code(tx, code_id=found, at=now):
        return False
    await record_event(
        tx,
        Tag.STAFF_RECOVERY_CODE_USED,
        actor=f"staff:{staff_id}",
        at=now,
        subject=staff_id,
        details={"left": await left(tx, staff_id)},
    )
    return True


async def remove(tx: Tx, *, staff_id: str) -> int:
    """Delete every recovery code of an account; how many."""
    return await repo.delete_codes(tx, staff_id)
