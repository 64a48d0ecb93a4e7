"""Staff accounts: list, read with the permission history, change a role, disable.

New accounts come by invitation (app.staff.invitations), a privileged role by a
confirmed proposal (app.staff.grants), the first admin and a break-glass admin from the
command line (app.staff.bootstrap).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import AppError, Forbidden, InvalidInput, NotFound
from app.core.tx import Tx
from app.models.staff import StaffAccount, StaffPermissionChange
from app.staff import repository as repo
from app.staff import roles
from app.staff.auth import Staff
from app.staff.new_account import normalize_username
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


class NeedsSecondAdmin(AppError):
    status = 409
    slug = "grant-needs-second-admin"
    title = (
        "Granting privacy_officer or admin is a proposal another admin confirms: "
        "POST /v1/staff/{staff_id}/grants"
    )


# -- reading ---------------------------------------------------------------------------


async def list_accounts(tx: Tx, ctx: Context) -> list[StaffAccount]:
    """Every account, disabled ones included, by username."""
    return await repo.list_accounts(tx)


async def usernames_of(tx: Tx, ctx: Context, actors: Iterable[str | None]) -> dict[str, str]:
    """For the staff among ``actors`` (``staff:<id>``, as records name who acted), their
    usernames, by actor: a page names people, not ids."""
    ids = {
        actor: actor.removeprefix("staff:")
        for actor in actors
        if actor and actor.startswith("staff:")
    }
    found = await repo.usernames(tx, list(ids.values()))
    return {actor: found[staff_id] for actor, staff_id in ids.items() if staff_id in found}


def standing(account: StaffAccount, now: dt.datetime) -> str:
    """What an account can do now: ``disabled``; ``pending`` (invited, not active yet);
    ``ended`` (a break-glass admin past its end, which can no longer sign in); ``active``."""
    if account.disabled_at is not None:
        return "disabled"
    if account.activation_pending:
        return "pending"
    if account.expires_at is not None and account.expires_at <= now:
        return "ended"
    return "active"


async def admin_who_can_act(tx: Tx, actor: str, now: dt.datetime, *, since: dt.datetime) -> bool:
    """Whether ``actor`` (``staff:<id>``, or the command line) is an admin who can act
    now, and has not left the role since ``since``: what stands behind a proposal or an
    invitation it made then, only while it holds. An admin made admin again later does
    not bring back what they made before they left the role."""
    account_id = actor.removeprefix("staff:")
    if account_id == actor:
        return True  # the command line (the first admin, a break-glass one)
    account = await repo.get_account(tx, account_id)
    if account is None or account.role != Role.ADMIN or standing(account, now) != "active":
        return False
    return not await repo.left_role_since(tx, account_id, Role.ADMIN.value, since)


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


async def password_changed_at(tx: Tx, account_id: str) -> dt.datetime:
    """When an account's password was last set; StaffNotFound if there is none."""
    account = await repo.get_account(tx, account_id)
    if account is None:
        raise StaffNotFound(f"no staff account {account_id}")
    return account.password_changed_at


async def held_with_sessions(tx: Tx, account_id: str) -> StaffAccount:
    """An account whose rights are about to change, held until commit with its sessions.

    Its sessions first, then the account: the order a request of that account takes them
    in (its session as it authenticates, then its account if it changes it), so the two
    wait for each other and never deadlock. The account's requests in flight end first;
    those that come later read the account as this unit leaves it (repo.use_session).
    Two admins acting on each other's accounts at the same moment each hold their own
    session and wait for the other's: PostgreSQL ends one of them (503, to be retried).
    """
    await repo.hold_sessions(tx, account_id=account_id)
    return await held(tx, account_id)


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
    confirmed_by: str | None = None,
) -> None:
    """Add a grant, change, revocation or offboarding to an account's history; a
    privileged grant names its proposer (``actor``) and its confirmer."""
    await repo.record_permission(
        tx,
        StaffPermissionChange(
            staff_id=account_id,
            change=change,
            old_role=old_role,
            new_role=new_role,
            actor=actor,
            confirmed_by=confirmed_by,
            changed_at=at,
        ),
    )


async def related(tx: Tx, ctx: Context, *, first: str, second: str) -> bool:
    """Whether either of two accounts created the other or granted the other's role (as
    its proposer or its confirmer): such a pair are not independent eyes."""
    return await repo.related(tx, first, second)


async def granted_by(
    tx: Tx, ctx: Context, *, account_id: str, days: int | None = None
) -> list[StaffAccount]:
    """The accounts a person created or granted a role to (as proposer or confirmer) in
    the last ``days`` (default ``SMSREG_OFFBOARDING_REVIEW_DAYS``, 90), for review."""
    if await repo.get_account(tx, account_id) is None:
        raise StaffNotFound(f"no staff account {account_id}")
    days = days or ctx.settings.offboarding_review_days
    since = ctx.clock.now() - dt.timedelta(days=days)
    return await repo.granted_by(tx, actor=f"staff:{account_id}", since=since)


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
    account = await held_with_sessions(tx, account_id)
    if account.disabled_at is not None:
        raise AccountDisabled(f"staff account {account_id} is disabled")
    return account


async def change_role(
    tx: Tx, ctx: Context, *, staff: Staff, account_id: str, role: Role
) -> StaffAccount:
    """Give an account another, unprivileged role; recorded in the permission history at
    once. A privileged role (privacy_officer, admin) is refused: it is a proposal another
    admin confirms (app.staff.grants).

    The role is read afresh on every request, so the change applies to the account's
    live sessions at once too.
    """
    account = await _for_change(tx, staff=staff, account_id=account_id)
    if account.role == role.value:
        return account  # nothing changes, nothing is recorded
    if account.activation_pending:
        # Its invitation's role awaits a second admin, who must confirm what the account
        # will hold, not a role changed under the proposal.
        raise InvalidInput.field("role", "the account is invited: revoke and invite anew")
    if role in roles.PRIVILEGED:
        raise NeedsSecondAdmin(f"propose it: POST /v1/staff/{account_id}/grants")
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
