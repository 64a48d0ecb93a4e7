"""Retention: delete what the schedule says is no longer needed, in short batches.

The schedule (DESIGN.md; every period a setting):

- verifications that never succeeded (pending, expired, exhausted, superseded): 24 h
  after they were started (``unverified_retention_hours``);
- approved verifications: 6 months (``verification_retention_days``); the subscriber
  they created stays, it is the registry;
- the outbox messages of a deleted verification go with it; campaign messages go
  ``verification_retention_days`` after they were queued;
- send-limit hits older than any window needs (a day, or the pumping window if longer);
- idempotency records older than their replay period (``idempotency_ttl_hours``);
- the access log after ``access_log_retention_days`` (at least a year), staff permission
  history after ``permission_history_retention_days`` (at least 3 years), and staff
  sessions a day after they ended.

Each batch is its own short transaction, so the service keeps running and SQLite's
write lock is never held for long. Run it from cron (``smsreg purge``); it is
idempotent, and an interrupted run simply continues on the next.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Database, Tx

BATCH = 1000


@dataclass
class PurgeReport:
    """Rows deleted per kind."""

    deleted: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int) -> None:
        self.deleted[kind] = self.deleted.get(kind, 0) + n


def cutoffs(ctx: Context, now: dt.datetime) -> dict[str, dt.datetime]:
    """The instant before which each kind of row is deleted."""
    s = ctx.settings
    hits_keep = max(dt.timedelta(days=1), dt.timedelta(minutes=s.pumping_window_minutes))
    return {
        "unverified": now - dt.timedelta(hours=s.unverified_retention_hours),
        "approved": now - dt.timedelta(days=s.verification_retention_days),
        "campaign_messages": now - dt.timedelta(days=s.verification_retention_days),
        "rate_limit_hits": now - hits_keep,
        "idempotency_records": now - dt.timedelta(hours=s.idempotency_ttl_hours),
        "access_log": now - dt.timedelta(days=s.access_log_retention_days),
        "staff_permission_history": now - dt.timedelta(days=s.permission_history_retention_days),
        # A session is of no use once it has ended (12 h at most); logins are audited.
        "staff_sessions": now - dt.timedelta(days=1),
    }


def _verifications(tx: Tx, *, approved: bool, before: dt.datetime, limit: int) -> int:
    """Delete one batch of verifications (and their outbox messages); how many went."""
    status = "status = 'approved'" if approved else "status <> 'approved'"
    ids = [
        row.id
        for row in tx.all(
            f"SELECT id FROM verifications WHERE {status} AND created_at < :before "  # noqa: S608
            "ORDER BY created_at LIMIT :limit",
            {"before": before, "limit": limit},
        )
    ]
    if not ids:
        return 0
    params = {f"v{i}": vid for i, vid in enumerate(ids)}
    marks = ", ".join(f":{name}" for name in params)
    tx.execute(f"DELETE FROM outbox_messages WHERE verification_id IN ({marks})", params)  # noqa: S608
    return tx.execute(f"DELETE FROM verifications WHERE id IN ({marks})", params)  # noqa: S608


def _by_time(table: str, column: str, where: str = "") -> Callable[..., int]:
    def purge(tx: Tx, *, before: dt.datetime, limit: int) -> int:
        # A keyed batch (no DELETE ... LIMIT on PostgreSQL): the oldest rows first.
        sql = (
            f"DELETE FROM {table} WHERE {column} < :before {where} AND {column} <= ("  # noqa: S608
            f"SELECT max({column}) FROM (SELECT {column} FROM {table} "
            f"WHERE {column} < :before {where} ORDER BY {column} LIMIT :limit) AS oldest)"
        )
        return tx.execute(sql, {"before": before, "limit": limit})

    return purge


_STEPS: dict[str, Callable[..., int]] = {
    "unverified": lambda tx, **kw: _verifications(tx, approved=False, **kw),
    "approved": lambda tx, **kw: _verifications(tx, approved=True, **kw),
    "campaign_messages": _by_time("outbox_messages", "created_at", "AND kind = 'campaign'"),
    "rate_limit_hits": _by_time("rate_limit_hits", "at"),
    "idempotency_records": _by_time("idempotency_records", "created_at"),
    "access_log": _by_time("access_log", "accessed_at"),
    "staff_permission_history": _by_time("staff_permission_history", "changed_at"),
    "staff_sessions": _by_time("staff_sessions", "expires_at"),
}


def purge(
    db: Database,
    ctx: Context,
    *,
    batch: int = BATCH,
    progress: Callable[[str, int], None] | None = None,
) -> PurgeReport:
    """Apply the whole schedule once; each batch commits on its own."""
    now = ctx.clock.now()
    report = PurgeReport()
    for kind, before in cutoffs(ctx, now).items():
        step = _STEPS[kind]
        while True:
            n = db.call(step, before=before, limit=batch)
            report.add(kind, n)
            if progress is not None and n:
                progress(kind, n)
            if n < batch:
                break
    db.call(
        record_event,
        Tag.RETENTION_PURGED,
        actor="system:retention",
        at=now,
        details={kind: n for kind, n in report.deleted.items()},
    )
    return report
