"""The registry's purge step (run by ``smsreg purge``, app/retention): the access log
after ``access_log_retention_days`` (at least a year).

The subscribers themselves are not purged: the registry is what the service keeps.
"""

from __future__ import annotations

import datetime as dt

from app.core.db import Tx
from app.core.retention import Cursor, PurgeBatch, PurgeStep, delete_batch
from app.models.access_log import AccessLogEntry
from app.models.types import table

access_log = table(AccessLogEntry)


async def purge_access_log(
    tx: Tx, *, before: dt.datetime, after: Cursor | None, limit: int
) -> PurgeBatch:
    """One batch of access-log entries recorded before ``before``."""
    c = access_log.c
    return await delete_batch(
        tx,
        table=access_log,
        key=(c.accessed_at, c.id),  # ix_access_log_accessed_at
        due=c.accessed_at < before,
        after=after,
        limit=limit,
    )


STEPS = (
    PurgeStep(
        "access_log",
        keep=lambda s: dt.timedelta(days=s.access_log_retention_days),
        run=purge_access_log,
    ),
)
