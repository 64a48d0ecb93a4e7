"""Staff accounts: argon2id passwords, roles, the permission history, disabling.

Passwords are hashed and verified outside any database transaction, in a worker
thread (see :func:`hash_password` and :func:`verify_password`): an argon2id
verification costs ~100 ms of CPU, which must neither hold SQLite's single write
lock nor stall the event loop that SQLite work runs on.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import secrets
import threading
import unicodedata
from dataclasses import dataclass
from typing import Protocol

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.audit.events import Tag, record_event
from app.core.config import Settings
from app.core.context import Context
from app.core.db import Database, Row, Tx, xact_lock
from app.core.errors import AppError, FieldProblem, Forbidden, InvalidInput, NotFound
from app.core.ids import new_id
from app.staff import passwords
from app.staff.roles import Role

MAX_PASSWORD_LENGTH = passwords.MAX_PASSWORD_LENGTH
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._\-]{2,63}$")
# At most this many argon2 computations at once in the process: each takes
# password_hash_memory_kib of memory (64 MiB by default), so a burst of logins must
# queue rather than exhaust memory; CPU is the real limit anyway (2 cores here).
_HASH_SLOTS = threading.BoundedSemaphore(4)

_ACCOUNT_COLUMNS = (
    "id, username, display_name, role, password_changed_at, failed_logins, locked_until, "
    "disabled_at, created_by, created_at, last_login_at"
)


class StaffNotFound(NotFound):
    slug = "staff-not-found"
    title = "No such staff account"


class UsernameTaken(AppError):
    status = 409
    slug = "staff-username-taken"
    title = "A staff account with this username exists"


class AccountDisabled(AppError):
    status = 409
    slug = "staff-account-disabled"
    title = "The staff account is disabled"


class LastAdmin(AppError):
    status = 409
    slug = "last-admin"
    title = "This would leave no active admin"


class OwnAccount(Forbidden):
    slug = "own-account"
    title = "Another admin must change this account"


class WrongPassword(AppError):
    status = 422
    slug = "wrong-password"
    title = "The current password is not correct"
    commit = True  # the failure counts towards the lockout even though the request fails


@dataclass(frozen=True)
class Staff:
    """An authenticated staff member: what the rest of a request needs to know."""

    id: str
    username: str
    display_name: str
    role: Role
    session_id: str
    # What the session may only do until it is resolved (password_expired,
    # totp_enrolment_required); empty for a full session. See app.staff.auth.
    restrictions: tuple[str, ...] = ()

    @property
    def actor(self) -> str:
        """How audit rows and histories name this person."""
        return f"staff:{self.id}"


# -- passwords -------------------------------------------------------------------------


def normalize_password(password: str) -> str:
    """NFKC, so the same password typed on another keyboard or device still matches
    (NIST SP 800-63B 5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def check_password_policy(
    password: str, *, settings: Settings, username: str | None = None, field: str = "password"
) -> None:
    """Refuse a password that breaks the policy (InvalidInput naming ``field``).

    Every caller passes the username; the policy itself is app.staff.passwords.
    """
    passwords.check_policy(password, settings=settings, username=username, field=field)


@functools.lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def hasher(settings: Settings) -> PasswordHasher:
    """The argon2id hasher with the configured parameters."""
    return _hasher(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )


@functools.lru_cache(maxsize=8)
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    # A hash of a random password nobody knows, with the same parameters as real ones:
    # verifying against it costs what verifying a real account's hash costs.
    return _hasher(time_cost, memory_kib, parallelism).hash(secrets.token_urlsafe(32))


def dummy_hash(settings: Settings) -> str:
    """What a login for a missing account is verified against, so it takes as long."""
    return _dummy_hash(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )


def hash_password_sync(settings: Settings, password: str) -> str:
    """argon2id hash of a password (blocking; ~100 ms with the default parameters)."""
    with _HASH_SLOTS:
        return hasher(settings).hash(normalize_password(password))


@dataclass(frozen=True)
class PasswordCheck:
    """Whether a password matched, and its new hash if the parameters have changed."""

    ok: bool
    rehash: str | None = None


def verify_password_sync(settings: Settings, stored: str | None, password: str) -> PasswordCheck:
    """Verify a password against a stored hash, or against the dummy hash when there is
    none (a missing account), so both cost the same time. Blocking."""
    ph = hasher(settings)
    candidate = normalize_password(password)
    # Made (once per process) whatever the account, so even the first login of a
    # missing account costs no more than the first of an existing one.
    dummy = dummy_hash(settings)
    with _HASH_SLOTS:
        try:
            ph.verify(stored if stored is not None else dummy, candidate)
        except (VerificationError, InvalidHashError):
            return PasswordCheck(ok=False)
        if stored is None:  # unreachable: nobody knows the dummy password
            return PasswordCheck(ok=False)
        rehash = ph.hash(candidate) if ph.check_needs_rehash(stored) else None
    return PasswordCheck(ok=True, rehash=rehash)


async def hash_password(settings: Settings, password: str) -> str:
    """:func:`hash_password_sync` in a worker thread."""
    return await anyio.to_thread.run_sync(hash_password_sync, settings, password)


async def verify_password(settings: Settings, stored: str | None, password: str) -> PasswordCheck:
    """:func:`verify_password_sync` in a worker thread."""
    return await anyio.to_thread.run_sync(verify_password_sync, settings, stored, password)


# -- validation ------------------------------------------------------------------------


def normalize_username(username: str) -> str:
    """Usernames are compared in lower case."""
    return username.strip().lower()


def check_new_account(
    settings: Settings, *, username: str, display_name: str, role: str, password: str
) -> tuple[str, str, Role]:
    """Validate a new account before its password is hashed; returns the clean values."""
    name = normalize_username(username)
    if not USERNAME.fullmatch(name):
        raise InvalidInput.field(
            "username", "must be 3 to 64 characters: letters, digits, '.', '_' or '-'"
        )
    shown = " ".join(display_name.split())
    if not 1 <= len(shown) <= 100 or not shown.isprintable():
        raise InvalidInput.field("display_name", "must be 1 to 100 printable characters")
    try:
        checked_role = Role(role)
    except ValueError:
        raise InvalidInput.field("role", f"must be one of {[r.value for r in Role]}") from None
    check_password_policy(password, settings=settings, username=name)
    return name, shown, checked_role


# -- queries and changes ---------------------------------------------------------------


def _aware(row: Row | None) -> Row | None:
    # Tx turns columns named *_at into aware datetimes; locked_until needs the same.
    if row is not None and isinstance(row.get("locked_until"), str):
        row["locked_until"] = dt.datetime.fromisoformat(row["locked_until"] + "+00:00")
    return row


def get(tx: Tx, account_id: str) -> Row | None:
    """One account (never its password hash)."""
    return _aware(
        tx.one(
            f"SELECT {_ACCOUNT_COLUMNS} FROM staff_accounts WHERE id = :id",  # noqa: S608
            {"id": account_id},
        )
    )


def get_for_update(tx: Tx, account_id: str) -> Row | None:
    lock = "" if tx.sqlite else " FOR UPDATE"
    return _aware(
        tx.one(
            f"SELECT {_ACCOUNT_COLUMNS}, password_hash FROM staff_accounts "  # noqa: S608
            f"WHERE id = :id{lock}",
            {"id": account_id},
        )
    )


def find_for_login(tx: Tx, username: str) -> Row | None:
    """The account a login names, with its password hash, or None."""
    return _aware(
        tx.one(
            f"SELECT {_ACCOUNT_COLUMNS}, password_hash FROM staff_accounts "  # noqa: S608
            "WHERE username = :username",
            {"username": normalize_username(username)},
        )
    )


def list_accounts(tx: Tx) -> list[Row]:
    """Every account, disabled ones included, by username."""
    rows = tx.all(
        f"SELECT {_ACCOUNT_COLUMNS} FROM staff_accounts ORDER BY username"  # noqa: S608
    )
    return [row for row in (_aware(row) for row in rows) if row is not None]


def list_for(tx: Tx, ctx: Context, *, staff: Staff) -> list[Row]:
    """Every account, for an admin or auditor (the action form of :func:`list_accounts`)."""
    del ctx, staff
    return list_accounts(tx)


def detail(tx: Tx, ctx: Context, *, staff: Staff, account_id: str) -> tuple[Row, list[Row]]:
    """One account and its permission history, for an admin or auditor."""
    del ctx, staff
    account = get(tx, account_id)
    if account is None:
        raise StaffNotFound(f"no staff account {account_id}")
    return account, permission_history(tx, account_id)


def permission_history(tx: Tx, account_id: str) -> list[Row]:
    """The grants, changes and revocations of an account's role, oldest first."""
    return tx.all(
        "SELECT change, old_role, new_role, actor, changed_at FROM staff_permission_history "
        "WHERE staff_id = :staff_id ORDER BY changed_at, id",
        {"staff_id": account_id},
    )


def _record_permission(
    tx: Tx,
    *,
    account_id: str,
    change: str,
    old_role: str | None,
    new_role: str | None,
    actor: str,
    at: dt.datetime,
) -> None:
    tx.execute(
        "INSERT INTO staff_permission_history (staff_id, change, old_role, new_role, actor, "
        "changed_at) VALUES (:staff_id, :change, :old_role, :new_role, :actor, :at)",
        {
            "staff_id": account_id,
            "change": change,
            "old_role": old_role,
            "new_role": new_role,
            "actor": actor,
            "at": at,
        },
    )


def create(
    tx: Tx,
    ctx: Context,
    *,
    actor: str,
    username: str,
    display_name: str,
    role: Role,
    password_hash: str,
) -> Row:
    """Create an account with a hashed password; its role is granted in the history."""
    now = ctx.clock.now()
    account = Row(
        id=new_id("stf"),
        username=username,
        display_name=display_name,
        role=role.value,
        password_changed_at=now,
        failed_logins=0,
        locked_until=None,
        disabled_at=None,
        created_by=actor,
        created_at=now,
        last_login_at=None,
    )
    inserted = tx.execute(
        "INSERT INTO staff_accounts (id, username, display_name, role, password_hash, "
        "password_changed_at, failed_logins, created_by, created_at) VALUES (:id, :username, "
        ":display_name, :role, :password_hash, :password_changed_at, 0, :created_by, "
        ":created_at) ON CONFLICT (username) DO NOTHING",
        {**account, "password_hash": password_hash},
    )
    if inserted != 1:
        raise UsernameTaken(f"the username {username!r} is taken")
    _record_permission(
        tx,
        account_id=account.id,
        change="grant",
        old_role=None,
        new_role=role.value,
        actor=actor,
        at=now,
    )
    record_event(
        tx,
        Tag.STAFF_CREATED,
        actor=actor,
        at=now,
        subject=account.id,
        details={"username": username, "role": role.value},
    )
    return account


def _other_active_admins(tx: Tx, account_id: str) -> int:
    # Serialise changes that could remove the last admin (PostgreSQL; SQLite's write
    # lock already does), so two admins demoting each other cannot both succeed.
    xact_lock(tx, "staff:admins")
    return int(
        tx.scalar(
            "SELECT count(*) AS n FROM staff_accounts WHERE role = 'admin' "
            "AND disabled_at IS NULL AND id <> :id",
            {"id": account_id},
        )
    )


def _for_admin_change(tx: Tx, *, staff: Staff, account_id: str) -> Row:
    if account_id == staff.id:
        raise OwnAccount("an admin cannot change or disable their own account")
    account = get_for_update(tx, account_id)
    if account is None:
        raise StaffNotFound(f"no staff account {account_id}")
    if account.disabled_at is not None:
        raise AccountDisabled(f"staff account {account_id} is disabled")
    return account


def change_role(tx: Tx, ctx: Context, *, staff: Staff, account_id: str, role: Role) -> Row:
    """Give an account another role; recorded in the permission history at once.

    The role is read afresh on every request, so the change applies to the account's
    live sessions at once too.
    """
    account = _for_admin_change(tx, staff=staff, account_id=account_id)
    if account.role == role.value:
        return get(tx, account_id) or account  # nothing changes, nothing is recorded
    if account.role == Role.ADMIN and _other_active_admins(tx, account_id) == 0:
        raise LastAdmin("this account is the last active admin")
    now = ctx.clock.now()
    tx.execute(
        "UPDATE staff_accounts SET role = :role WHERE id = :id",
        {"role": role.value, "id": account_id},
    )
    _record_permission(
        tx,
        account_id=account_id,
        change="change",
        old_role=account.role,
        new_role=role.value,
        actor=staff.actor,
        at=now,
    )
    record_event(
        tx,
        Tag.STAFF_ROLE_CHANGED,
        actor=staff.actor,
        at=now,
        subject=account_id,
        details={"from": account.role, "to": role.value},
    )
    return get(tx, account_id) or account


def disable(tx: Tx, ctx: Context, *, staff: Staff | None, account_id: str) -> Row:
    """Disable an account and end every session of it at once; its role is revoked in the
    permission history. ``staff`` None is the command line."""
    if staff is not None:
        account = _for_admin_change(tx, staff=staff, account_id=account_id)
    else:
        found = get_for_update(tx, account_id)
        if found is None:
            raise StaffNotFound(f"no staff account {account_id}")
        if found.disabled_at is not None:
            raise AccountDisabled(f"staff account {account_id} is disabled")
        account = found
    if account.role == Role.ADMIN and _other_active_admins(tx, account_id) == 0:
        raise LastAdmin("this account is the last active admin")
    actor = staff.actor if staff is not None else "cli"
    now = ctx.clock.now()
    tx.execute(
        "UPDATE staff_accounts SET disabled_at = :now WHERE id = :id",
        {"now": now, "id": account_id},
    )
    ended = end_sessions(tx, account_id=account_id, now=now)
    _record_permission(
        tx,
        account_id=account_id,
        change="revoke",
        old_role=account.role,
        new_role=None,
        actor=actor,
        at=now,
    )
    record_event(
        tx,
        Tag.STAFF_DISABLED,
        actor=actor,
        at=now,
        subject=account_id,
        details={"role": account.role, "sessions_ended": ended},
    )
    return get(tx, account_id) or account


def end_sessions(
    tx: Tx, *, account_id: str, now: dt.datetime, keep_session: str | None = None
) -> int:
    """Revoke every live session of an account (but ``keep_session``); how many ended."""
    return tx.execute(
        "UPDATE staff_sessions SET revoked_at = :now WHERE staff_id = :staff_id "
        "AND revoked_at IS NULL AND expires_at > :now AND id <> :keep",
        {"now": now, "staff_id": account_id, "keep": keep_session or ""},
    )


# -- logins and password changes: the database half ------------------------------------


def count_failure(tx: Tx, ctx: Context, *, account: Row, now: dt.datetime) -> bool:
    """Count a wrong password; lock the account after too many. True if it locked now."""
    failures = account.failed_logins + 1
    if failures >= ctx.settings.login_max_failures:
        until = now + dt.timedelta(minutes=ctx.settings.login_lockout_minutes)
        tx.execute(
            "UPDATE staff_accounts SET failed_logins = 0, locked_until = :until WHERE id = :id",
            {"until": until, "id": account.id},
        )
        record_event(
            tx,
            Tag.STAFF_LOGIN_LOCKED,
            actor=f"staff:{account.id}",
            at=now,
            subject=account.id,
            details={"failures": failures, "locked_until": until.isoformat()},
        )
        return True
    tx.execute(
        "UPDATE staff_accounts SET failed_logins = :failures WHERE id = :id",
        {"failures": failures, "id": account.id},
    )
    return False


def is_locked(account: Row, now: dt.datetime) -> bool:
    """Whether a lockout is running."""
    return account.locked_until is not None and account.locked_until > now


def password_hash_of(tx: Tx, ctx: Context, *, staff: Staff) -> str:
    """The signed-in person's password hash, to verify their current password."""
    del ctx
    stored: str = tx.scalar(
        "SELECT password_hash FROM staff_accounts WHERE id = :id", {"id": staff.id}
    )
    return stored


def finish_password_change(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    verified_hash: str,
    check: PasswordCheck,
    new_hash: str,
) -> Row:
    """Store a new password once the current one was verified; end the person's other
    sessions. A wrong current password counts towards the lockout."""
    now = ctx.clock.now()
    account = get_for_update(tx, staff.id)
    if account is None:  # unreachable: the session was just authenticated
        raise StaffNotFound()
    if not check.ok or account.password_hash != verified_hash:
        count_failure(tx, ctx, account=account, now=now)
        record_event(
            tx,
            Tag.STAFF_LOGIN_FAILED,
            actor=staff.actor,
            at=now,
            subject=staff.id,
            details={"reason": "wrong_current_password"},
        )
        raise WrongPassword(
            "the current password is not correct",
            errors=[
                FieldProblem(location="body", field="current_password", detail="is not correct")
            ],
        )
    tx.execute(
        "UPDATE staff_accounts SET password_hash = :hash, password_changed_at = :now, "
        "failed_logins = 0 WHERE id = :id",
        {"hash": new_hash, "now": now, "id": staff.id},
    )
    ended = end_sessions(tx, account_id=staff.id, now=now, keep_session=staff.session_id)
    record_event(
        tx,
        Tag.STAFF_PASSWORD_CHANGED,
        actor=staff.actor,
        at=now,
        subject=staff.id,
        details={"other_sessions_ended": ended},
    )
    return get(tx, staff.id) or account


# -- the two-step flows: authorise, hash outside the transaction, then write ------------


class Authorizes(Protocol):
    """A request's credentials, checked inside a transaction (app.staff.auth.StaffCaller)."""

    def authorize(self, tx: Tx, ctx: Context) -> Staff: ...


def _create_as(
    tx: Tx,
    ctx: Context,
    *,
    caller: Authorizes,
    username: str,
    display_name: str,
    role: Role,
    password_hash: str,
) -> Row:
    staff = caller.authorize(tx, ctx)
    return create(
        tx,
        ctx,
        actor=staff.actor,
        username=username,
        display_name=display_name,
        role=role,
        password_hash=password_hash,
    )


async def create_by_admin(
    db: Database,
    ctx: Context,
    *,
    caller: Authorizes,
    username: str,
    display_name: str,
    role: str,
    password: str,
) -> Row:
    """Create an account for an admin: the caller is checked before any password is
    hashed (so no stranger can make the service spend argon2 time), and again in the
    transaction that writes."""
    await db.run(caller.authorize, ctx)
    # zxcvbn takes up to ~20 ms of CPU: off the event loop, like argon2.
    name, shown, checked_role = await anyio.to_thread.run_sync(
        functools.partial(
            check_new_account,
            ctx.settings,
            username=username,
            display_name=display_name,
            role=role,
            password=password,
        )
    )
    password_hash = await hash_password(ctx.settings, password)
    return await db.run(
        _create_as,
        ctx,
        caller=caller,
        username=name,
        display_name=shown,
        role=checked_role,
        password_hash=password_hash,
    )


def _current_hash(tx: Tx, ctx: Context, *, caller: Authorizes) -> tuple[Staff, str]:
    staff = caller.authorize(tx, ctx)
    return staff, password_hash_of(tx, ctx, staff=staff)


def _finish_change_as(
    tx: Tx,
    ctx: Context,
    *,
    caller: Authorizes,
    verified_hash: str,
    check: PasswordCheck,
    new_hash: str,
) -> Row:
    staff = caller.authorize(tx, ctx)
    return finish_password_change(
        tx, ctx, staff=staff, verified_hash=verified_hash, check=check, new_hash=new_hash
    )


async def change_password(
    db: Database,
    ctx: Context,
    *,
    caller: Authorizes,
    current_password: str,
    new_password: str,
) -> Row:
    """Change the signed-in person's own password, proving the current one first."""
    staff, stored = await db.run(_current_hash, ctx, caller=caller)
    passwords.must_differ(current_password, new_password)
    await anyio.to_thread.run_sync(
        functools.partial(
            check_password_policy,
            new_password,
            settings=ctx.settings,
            username=staff.username,
            field="new_password",
        )
    )
    check = await verify_password(ctx.settings, stored, current_password)
    new_hash = await hash_password(ctx.settings, new_password) if check.ok else ""
    return await db.run(
        _finish_change_as,
        ctx,
        caller=caller,
        verified_hash=stored,
        check=check,
        new_hash=new_hash,
    )
