"""Staff accounts: create, list, read with the permission history, change a role, disable.

A new account's password is hashed (argon2, ~100 ms) before the transaction that
stores it: the route and the command line check and hash it first
(app.staff.new_account), then call :func:`create`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Tx
from app.core.errors import AppError, Forbidden, NotFound
from app.core.ids import new_id
from app.models.staff import StaffAccount, StaffPermissionChange
from app.staff import repository as repo
from app.staff import roles
from app.staff.auth import Staff, reauthenticate
from app.staff.new_account import NewAccount, normalize_username
from app.staff.roles import Role

CLI_ACTOR = "cli"


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


# -- reading ---------------------------------------------------------------------------


async def list_accounts(tx: Tx, ctx: Context) -> list[StaffAccount]:
    """Every account, disabled ones included, by username."""
    return await repo.list_accounts(tx)


@dataclass(frozen=True)
class AccountDetail:
    """An account and its permission history, oldest first."""

    account: StaffAccount
    history: list[StaffPermissionChange]


async def detail(tx: Tx, ctx: Context, *, account_id: str) -> AccountDetail:
    """One account and its permission history, for an admin or auditor."""
    account = await repo.get_account(tx, account_id)
    if account is None:
        raise StaffNotFound(f"no staff account {account_id}")
    return AccountDetail(account=account, history=await repo.permission_history(tx, account_id))


async def by_username(tx: Tx, ctx: Context, *, username: str) -> StaffAccount:
    """The account with this username (the command line names people so)."""
    account = await repo.account_by_username(tx, normalize_username(username))
    if account is None:
        raise StaffNotFound(f"no staff account named {username!r}")
    return account


async def held(tx: Tx, account_id: str) -> StaffAccount:
    """An account, held until commit; StaffNotFound if there is none."""
    account = await repo.get_account(tx, account_id, for_update=True)
    if account is None:
        raise StaffNotFound(f"no staff account {account_id}")
    return account


# -- changes ---------------------------------------------------------------------------


async def record_permission(
    tx: Tx,
    *,
    account_id: str,
    change: str,
    old_role: str | None,
    new_role: str | None,
    actor: str,
    at: dt.datetime,
) -> None:
    """Add a grant, change, revocation or offboarding to an account's history."""
    await repo.record_permission(
        tx,
        StaffPermissionChange(
            staff_id=account_id,
            change=change,
            old_role=old_role,
            new_role=new_role,
            actor=actor,
            changed_at=at,
        ),
    )


async def create(
    tx: Tx, ctx: Context, *, staff: Staff | None, new: NewAccount, password_hash: str
) -> StaffAccount:
    """Store an account with a hashed password; its role is granted in the history.

    By an admin (checked again here: the password was hashed since the request's session
    was checked), or the command line (``staff`` None).
    """
    actor = CLI_ACTOR
    if staff is not None:
        staff = await reauthenticate(tx, ctx, staff=staff, allowed=roles.STAFF_ADMIN)
        actor = staff.actor
    now = ctx.clock.now()
    account = StaffAccount(
        id=new_id("stf"),
        username=new.username,
        display_name=new.display_name,
        role=new.role.value,
        password_hash=password_hash,
        password_changed_at=now,
        failed_logins=0,
        created_by=actor,
        created_at=now,
    )
    if not await repo.insert_account(tx, account):
        raise UsernameTaken(f"the username {new.username!r} is taken")
    await record_permission(
        tx, account_id=account.id, change="grant", old_role=None, new_role=account.role,
        actor=actor, at=now,
    )  # fmt: skip
    await record_event(
        tx,
        Tag.STAFF_CREATED,
        actor=actor,
        at=now,
        subject=account.id,
        details={"username": account.username, "role": account.role},
    )
    return account


async def _last_admin_guard(tx: Tx, account: StaffAccount) -> None:
    if account.role != Role.ADMIN:
        return
    # Serialise changes that could remove the last admin (PostgreSQL; SQLite's write
    # lock already does), so two admins demoting each other cannot both succeed.
    await tx.lock("staff:admins")
    if await repo.other_active_admins(tx, account.id) == 0:
        raise LastAdmin("this account is the last active admin")


async def _for_change(tx: Tx, *, staff: Staff | None, account_id: str) -> StaffAccount:
    if staff is not None and account_id == staff.id:
        raise OwnAccount("an admin cannot change or disable their own account")
    account = await held(tx, account_id)
    if account.disabled_at is not None:
        raise AccountDisabled(f"staff account {account_id} is disabled")
    return account


async def change_role(
    tx: Tx, ctx: Context, *, staff: Staff, account_id: str, role: Role
) -> StaffAccount:
    """Give an account another role; recorded in the permission history at once.

    The role is read afresh on every request, so the change applies to the account's
    live sessions at once too.
    """
    account = await _for_change(tx, staff=staff, account_id=account_id)
    if account.role == role.value:
        return account  # nothing changes, nothing is recorded
    await _last_admin_guard(tx, account)
    now = ctx.clock.now()
    await repo.update_account(tx, account_id, role=role.value)
    await record_permission(
        tx, account_id=account_id, change="change", old_role=account.role, new_role=role.value,
        actor=staff.actor, at=now,
    )  # fmt: skip
    await record_event(
        tx,
        Tag.STAFF_ROLE_CHANGED,
        actor=staff.actor,
        at=now,
        subject=account_id,
        details={"from": account.role, "to": role.value},
    )
    return account.model_copy(update={"role": role.value})


async def disable(tx: Tx, ctx: Context, *, staff: Staff | None, account_id: str) -> StaffAccount:
    """Disable an account and end every session of it at once; its role is revoked in the
    permission history. ``staff`` None is the command line (which may disable anyone)."""
    account = await _for_change(tx, staff=staff, account_id=account_id)
    await _last_admin_guard(tx, account)
    actor = staff.actor if staff is not None else CLI_ACTOR
    now = ctx.clock.now()
    await repo.update_account(tx, account_id, disabled_at=now)
    ended = await repo.end_sessions(tx, account_id=account_id, now=now)
    await record_permission(
        tx, account_id=account_id, change="revoke", old_role=account.role, new_role=None,
        actor=actor, at=now,
    )  # fmt: skip
    await record_event(
        tx,
        Tag.STAFF_DISABLED,
        actor=actor,
        at=now,
        subject=account_id,
        details={"role": account.role, "sessions_ended": ended},
    )
    return account.model_copy(update={"disabled_at": now})
