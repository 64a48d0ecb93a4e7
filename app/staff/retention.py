"""The staff area's purge steps (run by ``smsreg purge``, app/retention): permission
history after ``permission_history_retention_days`` (at least 3 years), sessions a day
after they ended, and login attempts a day after they were made (the throttles look 15
minutes back; logins are audited). Accounts, grant proposals and invitations are never
purged: they are the record of who was given access.
"""

from __future__ import annotations

import datetime as dt

from app.core.retention import PurgeStep
from app.models.staff import StaffLoginAttempt, StaffPermissionChange, StaffSession
from app.models.types import table

permission_history = table(StaffPermissionChange)
staff_sessions = table(StaffSession)
login_attempts = table(StaffLoginAttempt)

STEPS = (
    PurgeStep(
        "staff_permission_history",
        keep=lambda s: dt.timedelta(days=s.permission_history_retention_days),
        table=permission_history,
        index="ix_staff_permission_history_changed_at",
        key=(permission_history.c.changed_at, permission_history.c.id),
        time=permission_history.c.changed_at,
    ),
    # A session is of no use once it has ended (12 h at most); logins are audited. Kept
    # by its expiry, also when it ended earlier: the purge walks that one index.
    PurgeStep(
        "staff_sessions",
        keep=lambda s: dt.timedelta(days=1),
        table=staff_sessions,
        index="ix_staff_sessions_expires_at",
        key=(staff_sessions.c.expires_at, staff_sessions.c.id),
        time=staff_sessions.c.expires_at,
    ),
    PurgeStep(
        "staff_login_attempts",
        keep=lambda s: dt.timedelta(days=1),
        table=login_attempts,
        index="ix_staff_login_attempts_at",
        key=(login_attempts.c.at, login_attempts.c.id),
        time=login_attempts.c.at,
    ),
)
