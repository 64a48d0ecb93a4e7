"""The command line's admin: the first one (bootstrap), or a break-glass one that expires.

``smsreg staff create --role admin`` makes the first admin of an installation, when no
account has ever held the role. After that the command refuses, unless the operator
asks for ``--break-glass`` (every admin locked out or gone): the account it makes is
recorded (permission history ``break_glass``, audit event), logged at WARNING, and ends
by itself after ``SMSREG_BREAK_GLASS_HOURS``. Break-glass is refused while two or more
admins can act: then one of them can confirm what another proposes, and an admin with
the host's shell must not become a second pair of eyes of their own. With one admin who
can act (an installation's second admin to confirm, or the others locked out) it is
allowed, and the record shows it. Either way the person at the terminal
chooses their own password: the command is how the host's operator gets in, not a way
to make accounts for others (those come by invitation).
"""

from __future__ import annotations

import datetime as dt
import logging

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import AppError
from app.core.ids import new_id
from app.core.tx import Tx
from app.models.staff import StaffAccount
from app.staff import accounts
from app.staff import repository as repo
from app.staff.new_account import NewAccount
from app.staff.roles import Role

log = logging.getLogger("smsreg.staff")


class AdminExists(AppError):
    status = 409
    slug = "admin-exists"
    title = (
        "An admin exists: new staff come by invitation; in an emergency the command "
        "line's --break-glass makes a recorded admin that expires"
    )


class AdminsCanAct(AppError):
    status = 409
    slug = "break-glass-refused"
    title = "Admins who can act exist: ask one of them; break-glass is for when at most one can"


class CommandLineRole(AppError):
    status = 422
    slug = "command-line-admin-only"
    title = "The command line makes admins only; other staff come by invitation"


async def create_admin(
    tx: Tx, ctx: Context, *, new: NewAccount, password_hash: str, break_glass: bool = False
) -> StaffAccount:
    """The first admin, or (``break_glass``) a recorded admin that expires."""
    if new.role != Role.ADMIN:
        raise CommandLineRole(f"not {new.role.value}: invite them (POST /v1/staff/invitations)")
    await tx.lock("staff:admins")  # two bootstraps at once make one first admin
    first = await repo.admins_ever(tx) == 0
    if not first and not break_glass:
        raise AdminExists("an admin exists; refusing without --break-glass")
    now = ctx.clock.now()
    if not first and (able := await repo.admins_who_can_act(tx, now)) >= 2:
        raise AdminsCanAct(f"{able} admins can act; break-glass needs at most one")
    expires = None if first else now + dt.timedelta(hours=ctx.settings.break_glass_hours)
    account = StaffAccount(
        id=new_id("stf"),
        username=new.username,
        display_name=new.display_name,
        role=Role.ADMIN.value,
        password_hash=password_hash,
        password_changed_at=now,
        failed_logins=0,
        created_by=accounts.CLI_ACTOR,
        created_at=now,
        expires_at=expires,
    )
    if not await repo.insert_account(tx, account):
        raise accounts.UsernameTaken(f"the username {new.username!r} is taken")
    await accounts.record_permission(
        tx, account_id=account.id, change="grant" if first else "break_glass", old_role=None,
        new_role=account.role, actor=accounts.CLI_ACTOR, at=now,
    )  # fmt: skip
    details: dict[str, object] = {"username": account.username, "role": account.role}
    if expires is not None:
        details["expires_at"] = expires.isoformat()
        await record_event(
            tx, Tag.STAFF_BREAK_GLASS, actor=accounts.CLI_ACTOR, at=now, subject=account.id,
            details=details,
        )  # fmt: skip
        extra = {"staff_id": account.id, "expires_at": expires.isoformat()}
        tx.after_commit(
            lambda: log.warning("break-glass admin created on the command line", extra=extra)
        )
    else:
        await record_event(
            tx, Tag.STAFF_CREATED, actor=accounts.CLI_ACTOR, at=now, subject=account.id,
            details=details,
        )  # fmt: skip
    return account
