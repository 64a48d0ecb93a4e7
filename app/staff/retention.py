"""The staff area's purge steps (run by ``smsreg purge``, app/retention): permission
history after ``permission_history_retention_days`` (at least 3 years), sessions a day
after they ended, and login attempts a day after they were made (the throttles look 15
minutes back; logins are audited). Accounts, grant proposals and invitations are never
purged: they are the record of who was given access.
"""

from __future__ import annotations

import datetime as dt

from app.core.db import Tx
from app.core.retention import Cursor, PurgeBatch, PurgeStep, delete_batch
from app.models.staff import StaffLoginAttempt, StaffPermissionChange, StaffSession
from app.models.types import table

permission_history = table(StaffPermissionChange)
staff_sessions = table(StaffSession)
login_attempts = table(StaffLoginAttempt)


async def purge_permission_history(
    tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
) -> PurgeBatch:
    """One batch of grants, changes and revocations made before ``before``."""
    c = permission_history.c
    return await delete_batch(
        tx,
        table=permission_history,
        key=(c.changed_at, c.id),  # ix_staff_permission_history_changed_at
        due=c.changed_at < before,
        after=after,
        limit=limit,
    )


async def purge_sessions(
    tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
) -> PurgeBatch:
    """One batch of sessions whose absolute end was before ``before``."""
    c = staff_sessions.c
    # No index on expires_at: a run walks the primary key once (staff sessions are few).
    return await delete_batch(
        tx,
        table=staff_sessions,
        key=(c.id,),
        due=c.expires_at < before,
        after=after,
        limit=limit,
    )


async def purge_login_attempts(
    tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
) -> PurgeBatch:
    """One batch of login attempts made before ``before``."""
    c = login_attempts.c
    return await delete_batch(
        tx,
        table=login_attempts,
        key=(c.at, c.id),  # ix_staff_login_attempts_at
        due=c.at < before,
        after=after,
        limit=limit,
    )


STEPS = (
    PurgeStep(
        "staff_permission_history",
        keep=lambda s: dt.timedelta(days=s.permission_history_retention_days),
        run=purge_permission_history,
    ),
    # A session is of no use once it has ended (12 h at most); logins are audited.
    PurgeStep("staff_sessions", keep=lambda s: dt.timedelta(days=1), run=purge_sessions),
    PurgeStep(
        "staff_login_attempts", keep=lambda s: dt.timedelta(days=1), run=purge_login_attempts
    ),
)
