"""The registry's purge step (run by ``smsreg purge``, app/retention): the access log
after ``access_log_retention_days`` (at least a year).

The subscribers themselves are not purged: the registry is what the service keeps.
"""

from __future__ import annotations

import datetime as dt

from app.core.retention import PurgeStep
from app.models.access_log import AccessLogEntry
from app.models.types import table

access_log = table(AccessLogEntry)

STEPS = (
    PurgeStep(
        "access_log",
        keep=lambda s: dt.timedelta(days=s.access_log_retention_days),
        table=access_log,
        index="ix_access_log_accessed_at",
        key=(access_log.c.accessed_at, access_log.c.id),
        time=access_log.c.accessed_at,
    ),
)
