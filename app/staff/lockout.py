"""The account's lockout, and an admin's unlock.

Too many wrong second-factor codes (at login, or when replacing recovery codes) or wrong
current passwords lock an account for a while: only someone who holds its password or
session can cause that. Wrong passwords at login hold back only their source
(app.staff.throttle). An admin lifts both with a reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import AppError
from app.core.tx import Tx
from app.models.staff import StaffAccount
from app.staff import repository as repo
from app.staff import throttle
from app.staff.accounts import OwnAccount, held
from app.staff.auth import Staff


class AccountLocked(AppError):
    status = 429
    slug = "too-many-failures"
    title = "Too many wrong passwords or codes: the account is locked for a while"


def is_locked(account: StaffAccount, now: dt.datetime) -> bool:
    """Whether a lockout is running."""
    return account.locked_until is not None and account.locked_until > now


def refuse_if_locked(account: StaffAccount, now: dt.datetime) -> None:
    """AccountLocked while a lockout runs: what a signed-in session proves by a password
    or a code (a password change, new recovery codes) waits for its end, so a stolen
    session cannot go on guessing once the guesses have locked the account."""
    if is_locked(account, now):
        until = account.locked_until.isoformat() if account.locked_until else ""
        raise AccountLocked(f"locked until {until}")


async def count_failure(tx: Tx, ctx: Context, *, account: StaffAccount, now: dt.datetime) -> bool:
    """Count a wrong password or code (the account is held); lock it after too many.
    True if it locked now."""
    failures = account.failed_logins + 1
    if failures < ctx.settings.login_max_failures:
        await repo.update_account(tx, account.id, failed_logins=failures)
        return False
    until = now + dt.timedelta(minutes=ctx.settings.login_lockout_minutes)
    await repo.update_account(tx, account.id, failed_logins=0, locked_until=until)
    await record_event(
        tx,
        Tag.STAFF_LOGIN_LOCKED,
        actor=f"staff:{account.id}",
        at=now,
        subject=account.id,
        details={"failures": failures, "locked_until": until.isoformat()},
    )
    return True


@dataclass(frozen=True)
class Unlocked:
    """What an admin's unlock lifted."""

    account: StaffAccount
    was_locked: bool
    failures_cleared: int


async def unlock(tx: Tx, ctx: Context, *, staff: Staff, account_id: str, reason: str) -> Unlocked:
    """Lift an account's lockout and forgive every counted failed login on it, from any
    address (an admin's action, with a reason; audited). Not one's own account."""
    if staff.id == account_id:
        raise OwnAccount("another admin must unlock this account")
    account = await held(tx, account_id)
    now = ctx.clock.now()
    was_locked = is_locked(account, now)
    await repo.update_account(tx, account_id, failed_logins=0, locked_until=None)
    cleared = await throttle.clear_account(tx, ctx, staff_id=account_id)
    await record_event(
        tx,
        Tag.STAFF_UNLOCKED,
        actor=staff.actor,
        at=now,
        subject=account_id,
        details={"reason": reason, "was_locked": was_locked, "failures_cleared": cleared},
    )
    return Unlocked(
        account=account.model_copy(update={"failed_logins": 0, "locked_until": None}),
        was_locked=was_locked,
        failures_cleared=cleared,
    )
