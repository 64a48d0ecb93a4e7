"""The lockout: too many wrong passwords or second-factor codes lock an account for a while."""

from __future__ import annotations

import datetime as dt

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Tx
from app.models.staff import StaffAccount
from app.staff import repository as repo


def is_locked(account: StaffAccount, now: dt.datetime) -> bool:
    """Whether a lockout is running."""
    return account.locked_until is not None and account.locked_until > now


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
