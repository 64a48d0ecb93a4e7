"""Changing one's own password, proving the current one; one's other sessions end.

Three steps, so that argon2 (~100 ms) and zxcvbn run with no transaction open: read the
stored hash (:func:`current_hash`); check the new password's policy, verify the current
one and hash the new one in worker threads (:func:`check_change`); then store it, the
account held and the session checked again (:func:`finish_change`).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import AppError, FieldProblem
from app.core.tx import Tx
from app.credentials import passwords
from app.credentials.passwords import PasswordCheck
from app.models.staff import StaffAccount
from app.staff import lockout, roles
from app.staff import repository as repo
from app.staff.accounts import held
from app.staff.auth import Staff, reauthenticate


class WrongPassword(AppError):
    status = 422
    slug = "wrong-password"
    title = "The current password is not correct"
    commit = True  # the failure counts towards the lockout even though the request fails


@dataclass(frozen=True)
class CheckedChange:
    """A change checked outside any transaction: whether the current password matched the
    hash it was verified against, and the new password's hash (only if it matched)."""

    verified_hash: str
    check: PasswordCheck
    new_hash: str | None


async def current_hash(tx: Tx, ctx: Context, *, staff: Staff) -> str:
    """The signed-in person's password hash, to verify their current password against."""
    account = await held(tx, staff.id)
    lockout.refuse_if_locked(account, ctx.clock.now())  # before argon2 is spent on a guess
    return account.password_hash


async def check_change(
    ctx: Context, *, staff: Staff, stored: str, current_password: str, new_password: str
) -> CheckedChange:
    """The policy for the new password, then the current one verified, then the new one
    hashed: in worker threads, outside any transaction. InvalidInput for a bad new one."""
    passwords.must_differ(current_password, new_password)
    await passwords.check_policy_apart(
        new_password, settings=ctx.settings, username=staff.username, field="new_password"
    )
    check = await passwords.verify_password(ctx.settings, stored, current_password)
    new_hash = await passwords.hash_password(ctx.settings, new_password) if check.ok else None
    return CheckedChange(verified_hash=stored, check=check, new_hash=new_hash)


async def finish_change(
    tx: Tx, ctx: Context, *, staff: Staff, checked: CheckedChange
) -> StaffAccount:
    """Store the new password and end the person's other sessions; a wrong current
    password counts towards the lockout (WrongPassword), and while the account is locked
    none is tried (AccountLocked)."""
    staff = await reauthenticate(tx, ctx, staff=staff, allowed=roles.ALL_ROLES, restricted_ok=True)
    now = ctx.clock.now()
    account = await held(tx, staff.id)
    lockout.refuse_if_locked(account, now)  # locked meanwhile, by a concurrent guess
    # A hash changed since it was verified is a password changed meanwhile.
    if checked.new_hash is None or account.password_hash != checked.verified_hash:
        await lockout.count_failure(tx, ctx, account=account, now=now)
        await record_event(
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
    await repo.update_account(
        tx, staff.id, password_hash=checked.new_hash, password_changed_at=now, failed_logins=0
    )
    ended = await repo.end_sessions(tx, account_id=staff.id, now=now, keep_session=staff.session_id)
    await record_event(
        tx,
        Tag.STAFF_PASSWORD_CHANGED,
        actor=staff.actor,
        at=now,
        subject=staff.id,
        details={"other_sessions_ended": ended},
    )
    return account.model_copy(
        update={"password_hash": checked.new_hash, "password_changed_at": now, "failed_logins": 0}
    )
