"""Staff sessions: log in to an opaque token (shown once, stored as a keyed hash), with an
absolute lifetime, an idle timeout, login throttles (app.staff.throttle), and revocation
that takes effect at once (every request checks the session in the database).

A login is two short transactions with the password's verification between them
(argon2 takes ~100 ms in a worker thread, and must hold no transaction meanwhile):
:func:`start_login` (the throttles: a throttled source is refused before any password
is verified), then app.credentials.passwords.verify_password, then
:func:`finish_login`. The route runs them in that order.

Wrong passwords hold back only their source (address and username), never the account
everywhere. Wrong second-factor codes, which only someone with the password can send,
also count towards the account's own lockout (app.staff.lockout).
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import Unauthenticated
from app.core.ids import new_id
from app.core.tx import Tx
from app.credentials import passwords, totp
from app.credentials.passwords import PasswordCheck
from app.models.staff import StaffAccount, StaffSession
from app.staff import lockout, throttle
from app.staff import repository as repo
from app.staff.accounts import StaffNotFound
from app.staff.auth import TOKEN_PREFIX, Staff, idle_deadline, restrictions
from app.staff.new_account import normalize_username
from app.staff.roles import Role

MAX_IP_LENGTH = 64


class InvalidCredentials(Unauthenticated):
    slug = "invalid-credentials"
    title = "Wrong username, password or authenticator code"
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


@dataclass(frozen=True)
class LoginStart:
    """A login attempt, counted: the account it names (None: no such account), with the
    password hash to verify."""

    account: StaffAccount | None
    username: str
    attempt_id: int


async def start_login(tx: Tx, ctx: Context, *, username: str, ip: str) -> LoginStart:
    """Count a login attempt, or refuse it (429 LoginThrottled) when its source or address
    is throttled; the account it names, to verify the password against."""
    name = normalize_username(username)
    account = await repo.account_by_username(tx, name)
    attempt_id = await throttle.begin(
        tx, ctx, ip=ip[:MAX_IP_LENGTH], username=name,
        staff_id=account.id if account is not None else None,
    )  # fmt: skip
    return LoginStart(account=account, username=name, attempt_id=attempt_id)


async def finish_login(
    tx: Tx,
    ctx: Context,
    *,
    start: LoginStart,
    check: PasswordCheck,
    ip: str,
    totp_code: str | None = None,
    recovery_code: str | None = None,
) -> NewSession:
    """Open a session once the password was verified (``check``, against the account's
    hash, or the dummy hash when there is no such account), or raise InvalidCredentials.

    The account is read again and held. Every refusal answers the same 401: a wrong
    password, an unknown username, a disabled, inactive or locked account cannot be told
    apart from outside (admins see the lockout instead).
    """
    now = ctx.clock.now()
    ip = ip[:MAX_IP_LENGTH]
    seen = start.account
    ended = functools.partial(
        throttle.finish, tx, ctx, attempt_id=start.attempt_id, ip=ip, username=start.username,
        staff_id=seen.id if seen is not None else None,
    )  # fmt: skip
    if seen is None:
        await ended(ok=False)
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
    elif account.activation_pending:
        reason = "not_active"  # invited: enrolment or the second admin still to come
    elif account.expires_at is not None and account.expires_at <= now:
        reason = "expired"  # a break-glass admin past its end
    elif lockout.is_locked(account, now):
        reason = "locked"  # even with the right password, until the lock ends
    elif not check.ok or account.password_hash != seen.password_hash:
        # (A hash changed since it was verified is a password changed meanwhile.) Counted
        # against this source only: a stranger cannot lock the owner out.
        reason = "wrong_password"
    else:
        # The second factor, once the password is right: a wrong code also counts towards
        # the account's lockout; a missing one answers 401 totp-required, not a failure.
        try:
            reason = await totp.second_factor(
                tx, ctx, staff_id=account.id, totp=totp_code, recovery_code=recovery_code
            )
        except totp.TotpRequired:
            await throttle.set_outcome(tx, attempt_id=start.attempt_id, outcome="incomplete")
            raise
        if reason is not None and reason not in totp.REPLAYS:
            await lockout.count_failure(tx, ctx, account=account, now=now)
    await ended(ok=reason is None)
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
