"""Queries on staff accounts, sessions and the permission history (SQLAlchemy Core on the
SQLModel tables)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app.core.tx import Tx
from app.models.staff import StaffAccount, StaffPermissionChange, StaffSession
from app.models.staff_mfa import StaffTotp
from app.models.types import table

accounts = table(StaffAccount)
sessions = table(StaffSession)
history = table(StaffPermissionChange)
totp = table(StaffTotp)
_a = accounts.c
_s = sessions.c
_h = history.c


class SessionOfStaff(NamedTuple):
    """A session with what authenticating a request needs of its account."""

    session_id: str
    staff_id: str
    expires_at: dt.datetime
    last_seen_at: dt.datetime
    revoked_at: dt.datetime | None
    username: str
    display_name: str
    role: str
    disabled_at: dt.datetime | None
    password_changed_at: dt.datetime
    totp_confirmed_at: dt.datetime | None
    activation_pending: bool
    account_expires_at: dt.datetime | None


def _session_of_staff() -> sa.Select[Any]:
    t = totp.c
    return (
        sa.select(
            _s.id.label("session_id"),
            _s.staff_id,
            _s.expires_at,
            _s.last_seen_at,
            _s.revoked_at,
            _a.username,
            _a.display_name,
            _a.role,
            _a.disabled_at,
            _a.password_changed_at,
            # Whether a second factor is confirmed: a role that needs one without it is
            # restricted (the staff_totp table is app.credentials'; only read here).
            t.confirmed_at.label("totp_confirmed_at"),
            _a.activation_pending,
            _a.expires_at.label("account_expires_at"),
        )
        .select_from(sessions)
        .join(accounts, _a.id == _s.staff_id)
        .outerjoin(totp, t.staff_id == _s.staff_id)
    )


async def session_by_id(tx: Tx, session_id: str) -> SessionOfStaff | None:
    """A session with its account and whether a TOTP second factor is confirmed; None if
    there is none."""
    row = (await tx.execute(_session_of_staff().where(_s.id == session_id))).first()
    return None if row is None else SessionOfStaff(**row._mapping)


async def use_session(
    tx: Tx,
    *,
    now: dt.datetime,
    seen_since: dt.datetime,
    hashes: Sequence[str] = (),
    session_id: str | None = None,
) -> str | None:
    """Record a live session's use (its idle timeout counts from now), found by its
    token's hashes or its id; its id, or None if no such session is live (revoked, past
    its end, unseen since ``seen_since``).

    Its row stays locked until the unit ends, and it is taken before the request reads
    its rights: what takes rights away takes the account's sessions first
    (:func:`end_sessions`, :func:`hold_sessions`), so either the request ends before, or
    it waits, and then finds the session ended or reads the new rights.
    """
    found = _s.id == session_id if session_id is not None else _s.token_hash.in_(list(hashes))
    statement = (
        sa.update(sessions)
        .where(found, _s.revoked_at.is_(None), _s.expires_at > now, _s.last_seen_at > seen_since)
        .values(last_seen_at=now)
        .returning(_s.id)
    )
    used: str | None = (await tx.execute(statement)).scalar()
    return used


async def hold_sessions(tx: Tx, *, account_id: str) -> None:
    """Lock every session of an account that has not ended, before its rights change:
    its requests in flight end first, and those that come later wait for this unit and
    then read the account as it left it (see :func:`use_session`)."""
    await tx.execute(
        sa.select(_s.id)
        .where(_s.staff_id == account_id, _s.revoked_at.is_(None))
        .order_by(_s.id)  # one order, whoever takes them
        .with_for_update()
    )


async def insert_session(tx: Tx, session: StaffSession) -> None:
    """Store a new session (its token only as a keyed hash)."""
    await tx.execute(sa.insert(sessions).values(session.model_dump()))


async def get_session(tx: Tx, session_id: str) -> StaffSession | None:
    """One session, or None."""
    row = (await tx.execute(sa.select(sessions).where(_s.id == session_id))).one_or_none()
    return None if row is None else StaffSession(**row._mapping)


async def revoke_session(tx: Tx, *, session_id: str, now: dt.datetime) -> None:
    """End one session (if it has not ended already)."""
    await tx.execute(
        sa.update(sessions)
        .where(_s.id == session_id, _s.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def end_sessions(
    tx: Tx, *, account_id: str, now: dt.datetime, keep_session: str | None = None
) -> int:
    """Revoke every live session of an account (but ``keep_session``); how many ended."""
    statement = sa.update(sessions).where(
        _s.staff_id == account_id, _s.revoked_at.is_(None), _s.expires_at > now
    )
    if keep_session is not None:
        statement = statement.where(_s.id != keep_session)
    result = await tx.execute(statement.values(revoked_at=now))
    return int(result.rowcount)


async def count_live_sessions(tx: Tx, *, account_id: str, now: dt.datetime) -> int:
    """Sessions of an account neither revoked nor past their absolute end."""
    found = await tx.scalar(
        sa.select(sa.func.count())
        .select_from(sessions)
        .where(_s.staff_id == account_id, _s.revoked_at.is_(None), _s.expires_at > now)
    )
    return int(found)


# -- accounts ---------------------------------------------------------------------------


def _account(row: Any) -> StaffAccount:
    return StaffAccount(**row._mapping)


async def insert_account(tx: Tx, account: StaffAccount) -> bool:
    """Store a new account; False if the username is taken."""
    insert = sqlite.insert if tx.sqlite else postgresql.insert
    statement = (
        insert(accounts)
        .values(account.model_dump())
        .on_conflict_do_nothing(index_elements=[_a.username])
    )
    result = await tx.execute(statement)
    return result.rowcount == 1


async def get_account(tx: Tx, account_id: str, *, for_update: bool = False) -> StaffAccount | None:
    """One account, or None; ``for_update`` holds it until commit (PostgreSQL; SQLite's
    write lock already does), so concurrent changes of it run one after the other."""
    statement = sa.select(accounts).where(_a.id == account_id)
    if for_update and not tx.sqlite:
        statement = statement.with_for_update()
    row = (await tx.execute(statement)).one_or_none()
    return None if row is None else _account(row)


async def account_by_username(tx: Tx, username: str) -> StaffAccount | None:
    """The account with this (normalised) username, or None."""
    row = (await tx.execute(sa.select(accounts).where(_a.username == username))).one_or_none()
    return None if row is None else _account(row)


async def usernames(tx: Tx, ids: Sequence[str]) -> dict[str, str]:
    """The usernames of the accounts with these ids, by id."""
    if not ids:
        return {}
    rows = await tx.execute(sa.select(_a.id, _a.username).where(_a.id.in_(sorted(set(ids)))))
    return {row.id: row.username for row in rows}


async def list_accounts(tx: Tx) -> list[StaffAccount]:
    """Every account, disabled ones included, by username."""
    return [_account(row) for row in await tx.execute(sa.select(accounts).order_by(_a.username))]


async def passwords_changed_by(tx: Tx, instant: dt.datetime) -> list[StaffAccount]:
    """Enabled accounts whose password was last changed at or before ``instant``."""
    rows = await tx.execute(
        sa.select(accounts)
        .where(_a.disabled_at.is_(None), _a.password_changed_at <= instant)
        .order_by(_a.id)
    )
    return [_account(row) for row in rows]


async def _admins(tx: Tx, *conditions: sa.ColumnElement[bool]) -> int:
    """How many enabled, activated admins meet ``conditions``."""
    found = await tx.scalar(
        sa.select(sa.func.count())
        .select_from(accounts)
        .where(
            _a.role == "admin",
            _a.disabled_at.is_(None),
            _a.activation_pending.is_(False),
            *conditions,
        )
    )
    return int(found)


async def other_active_admins(tx: Tx, account_id: str) -> int:
    """How many enabled admins there are besides ``account_id``."""
    # A break-glass admin ends by itself: it never counts as the admin that remains.
    return await _admins(tx, _a.expires_at.is_(None), _a.id != account_id)


async def admins_who_can_act(tx: Tx, now: dt.datetime) -> int:
    """How many admins can act: enabled, active and not past their end (a break-glass
    admin counts until it ends). One locked out counts too: a lockout ends by itself, and
    only someone who knew the password could cause it, so it is no admin gone (an admin
    who locked themself out made break-glass theirs, past the other admin)."""
    return await _admins(tx, sa.or_(_a.expires_at.is_(None), _a.expires_at > now))


async def update_account(tx: Tx, account_id: str, **values: Any) -> None:
    """Change columns of one account (role, disabled_at, the lockout, the password...)."""
    await tx.execute(sa.update(accounts).where(_a.id == account_id).values(**values))


# -- the permission history -------------------------------------------------------------


async def record_permission(tx: Tx, change: StaffPermissionChange) -> None:
    """Add a grant, change, revocation or offboarding to an account's history."""
    await tx.execute(sa.insert(history).values(change.model_dump(exclude={"id"})))


async def permission_history(tx: Tx, account_id: str) -> list[StaffPermissionChange]:
    """An account's role history, oldest first."""
    rows = await tx.execute(
        sa.select(history).where(_h.staff_id == account_id).order_by(_h.changed_at, _h.id)
    )
    return [StaffPermissionChange(**row._mapping) for row in rows]


async def left_role_since(tx: Tx, account_id: str, role: str, since: dt.datetime) -> bool:
    """Whether the account's role history says it left ``role`` (changed or revoked it)
    after ``since``. Only the leaving counts: the entry that gave it the role, stamped by
    another process whose clock runs ahead, says nothing against what it did since."""
    found = await tx.scalar(
        sa.select(sa.func.count())
        .select_from(history)
        .where(_h.staff_id == account_id, _h.old_role == role, _h.changed_at > since)
    )
    return bool(found)


async def admins_ever(tx: Tx) -> int:
    """How many accounts hold the admin role, whatever their state (bootstrap: none)."""
    found = await tx.scalar(
        sa.select(sa.func.count()).select_from(accounts).where(_a.role == "admin")
    )
    return int(found)


# The changes that give an account its role. Taking rights away (disabling, revoking an
# invitation, offboarding) makes no one depend on whoever did it.
_GIVING = ("grant", "change", "break_glass")


async def granted_by(tx: Tx, *, actor: str, since: dt.datetime) -> list[StaffAccount]:
    """Accounts created, or granted a role (as proposer or confirmer), by ``actor`` since
    ``since``: the review list when that person leaves."""
    touched = sa.select(_h.staff_id).where(
        sa.or_(_h.actor == actor, _h.confirmed_by == actor),
        _h.change.in_(_GIVING),
        _h.changed_at >= since,
    )
    rows = await tx.execute(
        sa.select(accounts)
        .where(
            sa.or_(
                sa.and_(_a.created_by == actor, _a.created_at >= since),
                _a.id.in_(touched),
            )
        )
        .order_by(_a.username)
    )
    return [_account(row) for row in rows]


async def related(tx: Tx, first: str, second: str) -> bool:
    """Whether either account was created by the other, or had a role granted (proposed
    or confirmed) by the other, ever."""
    pairs = ((first, f"staff:{second}"), (second, f"staff:{first}"))
    created = sa.or_(*(sa.and_(_a.id == a, _a.created_by == b) for a, b in pairs))
    if await tx.scalar(sa.select(sa.func.count()).select_from(accounts).where(created)):
        return True
    granted = sa.and_(
        _h.change.in_(_GIVING),
        sa.or_(
            *(
                sa.and_(_h.staff_id == a, sa.or_(_h.actor == b, _h.confirmed_by == b))
                for a, b in pairs
            )
        ),
    )
    return bool(await tx.scalar(sa.select(sa.func.count()).select_from(history).where(granted)))
