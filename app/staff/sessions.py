"""Staff sessions: log in to an opaque token (shown once, stored as a keyed hash), with an
absolute lifetime, an idle timeout, a lockout after repeated failures, and revocation
that takes effect at once (every request checks the session in the database).

A login is two short transactions with the password's verification between them
(argon2 takes ~100 ms in a worker thread, and must hold no transaction meanwhile):
:func:`find_for_login`, then app.credentials.passwords.verify_password, then
:func:`finish_login`. The route runs them in that order.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Tx
from app.core.errors import Unauthenticated
from app.core.ids import new_id
from app.credentials import passwords, totp
from app.credentials.passwords import PasswordCheck
from app.models.staff import StaffAccount, StaffSession
from app.staff import lockout
from app.staff import repository as repo
from app.staff.accounts import StaffNotFound
from app.staff.auth import TOKEN_PREFIX, Staff, idle_deadline, restrictions
from app.staff.new_account import normalize_username
from app.staff.roles import Role

MAX_IP_LENGTH = 64


class InvalidCredentials(Unauthenticated):
    slug = "invalid-credentials"
    title = "Wrong username or password"
    # The failure is counted (and may lock the account) even though the login fails.
    commit = True


@dataclass(frozen=True)
class NewSession:
    """A fresh login: the only moment the raw token exists."""

    token: str
    session: StaffSession
    staff: Staff
    idle_expires_at: dt.datetime
    password_expires_at: dt.datetime | None


@dataclass(frozen=True)
class Me:
    """The signed-in account and its current session (GET /v1/staff/me)."""

    account: StaffAccount
    session: StaffSession
    idle_expires_at: dt.datetime
    restrictions: tuple[str, ...]
    password_expires_at: dt.datetime | None


async def find_for_login(tx: Tx, ctx: Context, *, username: str) -> StaffAccount | None:
    """The account a login names, with its password hash to verify, or None."""
    return await repo.account_by_username(tx, normalize_username(username))


async def finish_login(
    tx: Tx,
    ctx: Context,
    *,
    seen: StaffAccount | None,
    check: PasswordCheck,
    ip: str,
    totp_code: str | None = None,
    recovery_code: str | None = None,
) -> NewSession:
    """Open a session once the password was verified (``check``, against ``seen``'s hash,
    or the dummy hash when there is no such account), or raise InvalidCredentials.

    The account is read again and held, so concurrent failures are each counted. Every
    refusal answers the same 401: a wrong password, an unknown username, a disabled or a
    locked account cannot be told apart from outside (admins see the lockout instead).
    """
    now = ctx.clock.now()
    ip = ip[:MAX_IP_LENGTH]
    if seen is None:
        # No username in the event: a mistyped one is often the password itself.
        await record_event(
            tx,
            Tag.STAFF_LOGIN_FAILED,
            actor="anonymous",
            at=now,
            details={"reason": "unknown_account", "ip": ip},
        )
        raise InvalidCredentials()
    account = await repo.get_account(tx, seen.id, for_update=True)
    if account is None:  # unreachable: accounts are never deleted
        raise InvalidCredentials()
    reason = None
    if account.disabled_at is not None:
        reason = "disabled"
    elif lockout.is_locked(account, now):
        reason = "locked"  # even with the right password, until the lock ends
    elif not check.ok or account.password_hash != seen.password_hash:
        # (A hash changed since it was verified is a password changed meanwhile.)
        reason = "wrong_password"
        await lockout.count_failure(tx, ctx, account=account, now=now)
    else:
        # The second factor, once the password is right: a wrong code counts towards the
        # same lockout; a missing one answers 401 totp-required.
        reason = await totp.second_factor(
            tx, ctx, staff_id=account.id, totp=totp_code, recovery_code=recovery_code
        )
        if reason is not None:
            await lockout.count_failure(tx, ctx, account=account, now=now)
    if reason is not None:
        await record_event(
            tx,
            Tag.STAFF_LOGIN_FAILED,
            actor=f"staff:{account.id}",
            at=now,
            subject=account.id,
            details={"reason": reason, "ip": ip},
        )
        raise InvalidCredentials()
    return await _open(tx, ctx, account=account, rehash=check.rehash, ip=ip, now=now)


async def _open(
    tx: Tx, ctx: Context, *, account: StaffAccount, rehash: str | None, ip: str, now: dt.datetime
) -> NewSession:
    await repo.update_account(
        tx,
        account.id,
        failed_logins=0,
        locked_until=None,
        last_login_at=now,
        password_hash=rehash or account.password_hash,
    )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session = StaffSession(
        id=new_id("ses"),
        staff_id=account.id,
        token_hash=ctx.keys.token_hash(token),
        token_key_id=ctx.keys.token.active_id,
        source_ip=ip,
        created_at=now,
        expires_at=now + dt.timedelta(hours=ctx.settings.session_max_hours),
        last_seen_at=now,
    )
    await repo.insert_session(tx, session)
    await record_event(
        tx,
        Tag.STAFF_LOGIN_SUCCEEDED,
        actor=f"staff:{account.id}",
        at=now,
        subject=account.id,
        details={"session_id": session.id, "ip": ip, "rehashed": rehash is not None},
    )
    staff = Staff(
        id=account.id,
        username=account.username,
        display_name=account.display_name,
        role=Role(account.role),
        session_id=session.id,
        restrictions=restrictions(
            ctx,
            role=account.role,
            password_changed_at=account.password_changed_at,
            totp_enrolled=await totp.enrolled(tx, account.id),
            now=now,
        ),
    )
    return NewSession(
        token=token,
        session=session,
        staff=staff,
        idle_expires_at=idle_deadline(ctx, session.last_seen_at),
        password_expires_at=passwords.expires_at(ctx.settings, account.password_changed_at),
    )


async def me(tx: Tx, ctx: Context, *, staff: Staff) -> Me:
    """The signed-in account with its current session's deadlines."""
    account = await repo.get_account(tx, staff.id)
    session = await repo.get_session(tx, staff.session_id)
    if account is None or session is None:  # unreachable: just authenticated
        raise StaffNotFound()
    return Me(
        account=account,
        session=session,
        idle_expires_at=idle_deadline(ctx, session.last_seen_at),
        restrictions=staff.restrictions,
        password_expires_at=passwords.expires_at(ctx.settings, account.password_changed_at),
    )


async def logout(tx: Tx, ctx: Context, *, staff: Staff) -> None:
    """End the session the request came with, at once."""
    now = ctx.clock.now()
    await repo.revoke_session(tx, session_id=staff.session_id, now=now)
    await record_event(
        tx,
        Tag.STAFF_LOGGED_OUT,
        actor=staff.actor,
        at=now,
        subject=staff.id,
        details={"session_id": staff.session_id},
    )


async def revoke_all(tx: Tx, ctx: Context, *, staff: Staff, account_id: str) -> int:
    """End every session of an account at once (an admin's action); how many ended."""
    if await repo.get_account(tx, account_id) is None:
        raise StaffNotFound(f"no staff account {account_id}")
    now = ctx.clock.now()
    ended = await repo.end_sessions(tx, account_id=account_id, now=now)
    await record_event(
        tx,
        Tag.STAFF_SESSIONS_REVOKED,
        actor=staff.actor,
        at=now,
        subject=account_id,
        details={"sessions_ended": ended},
    )
    return ended
