"""Queries on staff accounts and sessions (SQLAlchemy Core on the SQLModel tables)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from app.core.db import Tx
from app.models.staff import StaffAccount, StaffSession
from app.models.staff_mfa import StaffTotp
from app.models.types import table

accounts = table(StaffAccount)
sessions = table(StaffSession)
totp = table(StaffTotp)


async def session_by_hashes(tx: Tx, hashes: Sequence[str]) -> Any:
    """The session whose token hashes to one of ``hashes``, with its account and whether a
    TOTP second factor is confirmed; None if there is none."""
    s, a, t = sessions.c, accounts.c, totp.c
    statement = (
        sa.select(
            s.id.label("session_id"),
            s.staff_id,
            s.expires_at,
            s.last_seen_at,
            s.revoked_at,
            a.username,
            a.display_name,
            a.role,
            a.disabled_at,
            a.password_changed_at,
            t.confirmed_at.label("totp_confirmed_at"),
        )
        .select_from(sessions)
        .join(accounts, a.id == s.staff_id)
        .outerjoin(totp, t.staff_id == s.staff_id)
        .where(s.token_hash.in_(list(hashes)))
    )
    return (await tx.execute(statement)).one_or_none()


async def touch_session(tx: Tx, *, session_id: str, now: dt.datetime) -> None:
    """Record a session's use: its idle timeout counts from now."""
    await tx.execute(
        sa.update(sessions).where(sessions.c.id == session_id).values(last_seen_at=now)
    )


async def insert_account(tx: Tx, account: StaffAccount) -> bool:
    """Store a new account; False if the username is taken."""
    statement = sa.insert(accounts).values(account.model_dump())
    result = await tx.execute(statement.prefix_with("OR IGNORE") if tx.sqlite else statement)
    return result.rowcount == 1


async def insert_session(tx: Tx, session: StaffSession) -> None:
    """Store a new session (its token only as a keyed hash)."""
    await tx.execute(sa.insert(sessions).values(session.model_dump()))
