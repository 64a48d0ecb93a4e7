"""Every query on the second-factor tables: TOTP secrets and recovery codes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import NamedTuple

import sqlalchemy as sa

from app.core.tx import Tx
from app.models.staff_mfa import StaffRecoveryCode, StaffTotp
from app.models.types import table

totp = table(StaffTotp)
codes = table(StaffRecoveryCode)
_t = totp.c
_r = codes.c


class CodesUnderKey(NamedTuple):
    """How many unused recovery codes of an account were hashed under one token key."""

    staff_id: str
    key_id: str
    n: int


# -- TOTP secrets -------------------------------------------------------------------------


async def totp_of(tx: Tx, staff_id: str, *, for_update: bool = False) -> StaffTotp | None:
    """An account's TOTP secret, pending or confirmed; ``for_update`` holds it until commit
    (PostgreSQL; SQLite's write lock already does), so one code is accepted once."""
    statement = sa.select(totp).where(_t.staff_id == staff_id)
    if for_update and not tx.sqlite:
        statement = statement.with_for_update()
    row = (await tx.execute(statement)).one_or_none()
    return None if row is None else StaffTotp(**row._mapping)


async def replace_totp(tx: Tx, secret: StaffTotp) -> None:
    """Store a new (pending) secret in place of any earlier one."""
    await tx.execute(sa.delete(totp).where(_t.staff_id == secret.staff_id))
    await tx.execute(sa.insert(totp).values(secret.model_dump()))


async def confirm_totp(tx: Tx, *, staff_id: str, at: dt.datetime, step: int) -> None:
    """Mark a pending secret confirmed by the code of ``step``."""
    await tx.execute(
        sa.update(totp).where(_t.staff_id == staff_id).values(confirmed_at=at, last_used_step=step)
    )


async def accept_step(tx: Tx, *, staff_id: str, step: int) -> None:
    """Remember the last accepted 30-second step (codes of it or earlier are refused)."""
    await tx.execute(sa.update(totp).where(_t.staff_id == staff_id).values(last_used_step=step))


async def store_secret(tx: Tx, *, staff_id: str, ciphertext: bytes, key_id: str) -> None:
    """Store a secret encrypted anew (under another phone key)."""
    await tx.execute(
        sa.update(totp)
        .where(_t.staff_id == staff_id)
        .values(secret_ciphertext=ciphertext, secret_key_id=key_id)
    )


async def totp_confirmed(tx: Tx, staff_id: str) -> bool:
    """Whether an account has a confirmed TOTP secret."""
    found = await tx.scalar(
        sa.select(sa.func.count())
        .select_from(totp)
        .where(_t.staff_id == staff_id, _t.confirmed_at.is_not(None))
    )
    return int(found) > 0


async def delete_totp(tx: Tx, staff_id: str) -> bool:
    """Delete an account's secret; whether it had one."""
    result = await tx.execute(sa.delete(totp).where(_t.staff_id == staff_id))
    return result.rowcount > 0


async def totps_not_under(tx: Tx, key_id: str) -> list[StaffTotp]:
    """Every secret encrypted under another phone key than ``key_id``."""
    rows = await tx.execute(sa.select(totp).where(_t.secret_key_id != key_id).order_by(_t.staff_id))
    return [StaffTotp(**row._mapping) for row in rows]


# -- recovery codes -----------------------------------------------------------------------


async def replace_codes(tx: Tx, *, staff_id: str, new: Sequence[StaffRecoveryCode]) -> None:
    """Delete an account's recovery codes and store ``new`` instead."""
    await tx.execute(sa.delete(codes).where(_r.staff_id == staff_id))
    # The id is the database's own (an identity column): left out of the insert.
    await tx.execute(sa.insert(codes).values([code.model_dump(exclude={"id"}) for code in new]))


async def codes_left(tx: Tx, staff_id: str) -> int:
    """How many unused recovery codes an account has."""
    found = await tx.scalar(
        sa.select(sa.func.count())
        .select_from(codes)
        .where(_r.staff_id == staff_id, _r.used_at.is_(None))
    )
    return int(found)


async def unused_code(tx: Tx, *, staff_id: str, hashes: Sequence[str]) -> int | None:
    """The id of an unused recovery code of the account with one of ``hashes``, or None."""
    found: int | None = await tx.scalar(
        sa.select(_r.id)
        .where(_r.staff_id == staff_id, _r.used_at.is_(None), _r.code_hash.in_(list(hashes)))
        .limit(1)
    )
    return found


async def used_code(tx: Tx, *, staff_id: str, hashes: Sequence[str]) -> bool:
    """Whether the account has a used recovery code with one of ``hashes``."""
    found = await tx.scalar(
        sa.select(_r.id)
        .where(_r.staff_id == staff_id, _r.used_at.is_not(None), _r.code_hash.in_(list(hashes)))
        .limit(1)
    )
    return found is not None


async def spend_code(tx: Tx, *, code_id: int, at: dt.datetime) -> bool:
    """Mark a code used; False if it already was (two logins racing with it)."""
    result = await tx.execute(
        sa.update(codes).where(_r.id == code_id, _r.used_at.is_(None)).values(used_at=at)
    )
    return result.rowcount == 1


async def delete_codes(tx: Tx, staff_id: str) -> int:
    """Delete every recovery code of an account; how many."""
    result = await tx.execute(sa.delete(codes).where(_r.staff_id == staff_id))
    return int(result.rowcount)


async def unused_codes_by_key(tx: Tx) -> list[CodesUnderKey]:
    """Unused recovery codes counted per account and token key."""
    rows = await tx.execute(
        sa.select(_r.staff_id, _r.key_id, sa.func.count().label("n"))
        .where(_r.used_at.is_(None))
        .group_by(_r.staff_id, _r.key_id)
        .order_by(_r.staff_id, _r.key_id)
    )
    return [CodesUnderKey(**row._mapping) for row in rows]
