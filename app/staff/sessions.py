"""Staff sessions: log in to an opaque token (shown once, stored as a keyed hash), with an
absolute lifetime, an idle timeout, a lockout after repeated failures, and revocation
that takes effect at once (every request checks the session in the database).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Database, Row, Tx
from app.core.errors import Unauthenticated
from app.core.ids import new_id
from app.staff import accounts, passwords, totp
from app.staff.accounts import PasswordCheck, Staff, StaffNotFound
from app.staff.roles import Role

TOKEN_PREFIX = "smsreg_ss_"  # noqa: S105 (a label, not a secret)
MAX_TOKEN_LENGTH = 200
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
    session: Row
    staff: Staff
    password_expires_at: dt.datetime | None = None


async def login(
    db: Database,
    ctx: Context,
    *,
    username: str,
    password: str,
    ip: str,
    totp_code: str | None = None,
    recovery_code: str | None = None,
) -> NewSession:
    """Check a username and password and open a session, or raise InvalidCredentials.

    Three steps, so argon2 (~100 ms) runs in a worker thread outside any transaction:
    read the account; verify the password (against a dummy hash with the same
    parameters when the account does not exist, so a missing account costs the same
    time as a wrong password); then, in one transaction, re-read the account under a
    lock and either count the failure or open the session. Every refusal answers the
    same 401: a wrong password, an unknown username, a disabled or a locked account
    cannot be told apart from outside (the lockout is visible to admins instead).
    """
    seen = await db.run(accounts.find_for_login, username)
    check = await accounts.verify_password(
        ctx.settings, seen.password_hash if seen is not None else None, password
    )
    return await db.run(
        _finish_login,
        ctx,
        seen=seen,
        check=check,
        ip=ip[:MAX_IP_LENGTH],
        totp_code=totp_code,
        recovery_code=recovery_code,
    )


def _finish_login(
    tx: Tx,
    ctx: Context,
    *,
    seen: Row | None,
    check: PasswordCheck,
    ip: str,
    totp_code: str | None = None,
    recovery_code: str | None = None,
) -> NewSession:
    now = ctx.clock.now()
    if seen is None:
        # No username in the event: a mistyped one is often the password itself.
        record_event(
            tx,
            Tag.STAFF_LOGIN_FAILED,
            actor="anonymous",
            at=now,
            details={"reason": "unknown_account", "ip": ip},
        )
        raise InvalidCredentials()
    account = accounts.get_for_update(tx, seen.id)
    if account is None:  # unreachable: accounts are never deleted
        raise InvalidCredentials()
    actor = f"staff:{account.id}"
    reason = None
    if account.disabled_at is not None:
        reason = "disabled"
    elif accounts.is_locked(account, now):
        reason = "locked"  # even with the right password, until the lock ends
    elif not check.ok or account.password_hash != seen.password_hash:
        # (A hash changed since it was verified is a password changed meanwhile.)
        reason = "wrong_password"
        accounts.count_failure(tx, ctx, account=account, now=now)
    else:
        # The second factor, once the password is right (issue 6): a wrong code counts
        # towards the same lockout; a missing one answers 401 totp-required.
        reason = totp.second_factor(
            tx, ctx, account=account, totp=totp_code, recovery_code=recovery_code
        )
        if reason is not None:
            accounts.count_failure(tx, ctx, account=account, now=now)
    if reason is not None:
        record_event(
            tx,
            Tag.STAFF_LOGIN_FAILED,
            actor=actor,
            at=now,
            subject=account.id,
            details={"reason": reason, "ip": ip},
        )
        raise InvalidCredentials()
    tx.execute(
        "UPDATE staff_accounts SET failed_logins = 0, locked_until = NULL, "
        "last_login_at = :now, password_hash = :hash WHERE id = :id",
        {"now": now, "hash": check.rehash or account.password_hash, "id": account.id},
    )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session = Row(
        id=new_id("ses"),
        staff_id=account.id,
        source_ip=ip,
        created_at=now,
        expires_at=now + dt.timedelta(hours=ctx.settings.session_max_hours),
        last_seen_at=now,
        revoked_at=None,
    )
    tx.execute(
        "INSERT INTO staff_sessions (id, staff_id, token_hash, token_key_id, source_ip, "
        "created_at, expires_at, last_seen_at) VALUES (:id, :staff_id, :token_hash, "
        ":token_key_id, :source_ip, :created_at, :expires_at, :last_seen_at)",
        {
            **session,
            "token_hash": ctx.keys.token_hash(token),
            "token_key_id": ctx.keys.token.active_id,
        },
    )
    record_event(
        tx,
        Tag.STAFF_LOGIN_SUCCEEDED,
        actor=actor,
        at=now,
        subject=account.id,
        details={"session_id": session.id, "ip": ip, "rehashed": check.rehash is not None},
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
            totp_enrolled=totp.enrolled(tx, account.id),
            now=now,
        ),
    )
    return NewSession(
        token=token,
        session=session,
        staff=staff,
        password_expires_at=passwords.expires_at(ctx.settings, account.password_changed_at),
    )


def restrictions(
    ctx: Context,
    *,
    role: str,
    password_changed_at: dt.datetime,
    totp_enrolled: bool,
    now: dt.datetime,
) -> tuple[str, ...]:
    """What a session may only fix until it is fixed: a password past its maximum age, a
    role that needs TOTP without one enrolled. Worked out on every request, so a password
    expiring or a role changing applies to live sessions at once too."""
    found = []
    if passwords.is_expired(ctx.settings, password_changed_at, now):
        found.append(passwords.PASSWORD_EXPIRED)
    if totp.is_required(ctx.settings, role) and not totp_enrolled:
        found.append(totp.TOTP_ENROLMENT_REQUIRED)
    return tuple(found)


def idle_deadline(ctx: Context, last_seen_at: dt.datetime) -> dt.datetime:
    """When a session seen last at ``last_seen_at`` ends for want of use."""
    return last_seen_at + dt.timedelta(minutes=ctx.settings.session_idle_minutes)


def authenticate(tx: Tx, ctx: Context, *, token: str) -> Staff:
    """The live staff member behind a session token, or Unauthenticated (one answer for
    every failure: unknown, revoked, expired, idle too long, account disabled).

    An API key (``smsreg_sk_``) is never a session: the prefix differs, and the hash is
    looked up among sessions only.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        raise Unauthenticated("invalid or expired staff session")
    # Hash under every key still in the ring, so a rotated token key keeps sessions.
    hashes = {
        f"h{i}": ctx.keys.token.mac(token.encode(), key_id=key_id).hex()
        for i, key_id in enumerate(ctx.keys.token.keys)
    }
    row = tx.one(
        "SELECT s.id AS session_id, s.staff_id, s.expires_at, s.last_seen_at, s.revoked_at, "  # noqa: S608
        "a.username, a.display_name, a.role, a.disabled_at, a.password_changed_at, "
        "t.confirmed_at AS totp_confirmed_at FROM staff_sessions s "
        "JOIN staff_accounts a ON a.id = s.staff_id "
        "LEFT JOIN staff_totp t ON t.staff_id = s.staff_id "
        f"WHERE s.token_hash IN ({', '.join(':' + name for name in hashes)})",
        hashes,
    )
    now = ctx.clock.now()
    if (
        row is None
        or row.revoked_at is not None
        or row.disabled_at is not None
        or row.expires_at <= now
        or idle_deadline(ctx, row.last_seen_at) <= now
    ):
        raise Unauthenticated("invalid or expired staff session")
    tx.execute(
        "UPDATE staff_sessions SET last_seen_at = :now WHERE id = :id",
        {"now": now, "id": row.session_id},
    )
    # Authentication runs in the transaction of the action it allows: the use keeps
    # the session alive even if that action is then refused.
    tx.keep()
    return Staff(
        id=row.staff_id,
        username=row.username,
        display_name=row.display_name,
        role=Role(row.role),
        session_id=row.session_id,
        restrictions=restrictions(
            ctx,
            role=row.role,
            password_changed_at=row.password_changed_at,
            totp_enrolled=row.totp_confirmed_at is not None,
            now=now,
        ),
    )


def session_of(tx: Tx, ctx: Context, *, staff: Staff) -> Row:
    """The signed-in account with its current session's deadlines (GET /v1/staff/me)."""
    account = accounts.get(tx, staff.id)
    session = tx.one(
        "SELECT id, created_at, expires_at, last_seen_at FROM staff_sessions WHERE id = :id",
        {"id": staff.session_id},
    )
    if account is None or session is None:  # unreachable: just authenticated
        raise StaffNotFound()
    session["idle_expires_at"] = idle_deadline(ctx, session.last_seen_at)
    account["session"] = session
    account["restrictions"] = list(staff.restrictions)
    account["password_expires_at"] = passwords.expires_at(ctx.settings, account.password_changed_at)
    return account


def logout(tx: Tx, ctx: Context, *, staff: Staff) -> None:
    """End the session the request came with, at once."""
    now = ctx.clock.now()
    tx.execute(
        "UPDATE staff_sessions SET revoked_at = :now WHERE id = :id AND revoked_at IS NULL",
        {"now": now, "id": staff.session_id},
    )
    record_event(
        tx,
        Tag.STAFF_LOGGED_OUT,
        actor=staff.actor,
        at=now,
        subject=staff.id,
        details={"session_id": staff.session_id},
    )


def revoke_all(tx: Tx, ctx: Context, *, staff: Staff, account_id: str) -> int:
    """End every session of an account at once (an admin's action); how many ended."""
    if accounts.get(tx, account_id) is None:
        raise StaffNotFound(f"no staff account {account_id}")
    now = ctx.clock.now()
    ended = accounts.end_sessions(tx, account_id=account_id, now=now)
    record_event(
        tx,
        Tag.STAFF_SESSIONS_REVOKED,
        actor=staff.actor,
        at=now,
        subject=account_id,
        details={"sessions_ended": ended},
    )
    return ended
