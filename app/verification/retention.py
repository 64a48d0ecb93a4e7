"""The verification area's purge steps (run by ``smsreg purge``, app/retention).

- verifications that never succeeded (pending, expired, exhausted, superseded): 24 h
  after they were started (``unverified_retention_hours``);
- approved verifications: 6 months (``verification_retention_days``); the subscriber
  they created stays, it is the registry;
- a verification's code SMS go with it;
- shared send-limit counts older than any window needs (a day, or the pumping window
  if longer);
- a number's send window once its last send has left it (a day after that send);
- idempotency records older than their replay period (``idempotency_ttl_hours``);
- a server process's tally of shared-count writes once it has counted nothing for as
  long as the counts themselves are kept (the process is gone);
- the audit events of verifications and SMS (``RECORD_TAGS``) with the approved
  verifications, ``verification_retention_days`` after they happened: the record of
  a verification goes with it, and a campaign SMS's with the message.

These are the area's purge queries, beside its repository: each walks one index whose
predicate is the step's (app/core/retention.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from app.core.config import Settings
from app.core.retention import PurgeStep, literal
from app.models.audit import RECORD_TAGS, AuditEvent
from app.models.idempotency import IdempotencyRecord
from app.models.outbox import OutboxMessage
from app.models.rate_limit import RateLimitHit, SendWindow, SharedCountWriter
from app.models.types import table
from app.models.verification import Verification

verifications = table(Verification)
outbox_messages = table(OutboxMessage)
rate_limit_hits = table(RateLimitHit)
send_windows = table(SendWindow)
count_writers = table(SharedCountWriter)
idempotency_records = table(IdempotencyRecord)
audit_events = table(AuditEvent)
v = verifications.c


def _code_messages(batch: sa.ColumnElement[bool]) -> Sequence[sa.Delete]:
    # Their SMS first (a foreign key), found through ix_outbox_messages_verification_id.
    ids = sa.select(v.id).where(batch)
    return [sa.delete(outbox_messages).where(outbox_messages.c.verification_id.in_(ids))]


def _hits_kept(s: Settings) -> dt.timedelta:
    # What the send limits and the pumping guard still count.
    return max(dt.timedelta(days=1), dt.timedelta(minutes=s.pumping_window_minutes))


def _by_time_or_by_key(
    kind: str, keep: Callable[[Settings], dt.timedelta], time: sa.Column[Any]
) -> tuple[PurgeStep, PurgeStep]:
    """The steps of a table keyed by a keyed hash, whose rows are due by ``time``.

    PostgreSQL walks the table's index on ``time``. On SQLite the table is its primary
    key's B-tree (WITHOUT ROWID) and has no such index: deleting in time order rewrote a
    page for nearly every row (rate_limit_hits at a million subscribers: 940 s of a
    25-minute purge), and the index cost every send a page written too. Walked in key
    order instead, each page is rewritten once. A batch reads past the rows kept
    between its due rows, at most the table once a run: these rows are kept about a
    day, so a daily run deletes about half of what it reads.
    """
    table = time.table
    key = tuple(table.primary_key.columns)
    by_time = PurgeStep(
        kind,
        keep=keep,
        table=table,
        index=f"ix_{table.name}_{time.name}",
        key=(time, *(column for column in key if column is not time)),
        time=time,
        database="postgresql",
    )
    return by_time, dataclasses.replace(by_time, index="PRIMARY KEY", key=key, database="sqlite")


def _verifications(
    kind: str, keep: Callable[[Settings], dt.timedelta], *, index: str, where: Any
) -> PurgeStep:
    """A step over the verifications one of their partial indexes holds (``where``, the
    index's condition as its text: app.core.retention.literal), with their code SMS."""
    return PurgeStep(
        kind,
        keep=keep,
        table=verifications,
        index=index,
        key=(v.created_at, v.id),
        time=v.created_at,
        where=where,
        dependents=_code_messages,
    )


STEPS = (
    _verifications(
        "unverified",
        lambda s: dt.timedelta(hours=s.unverified_retention_hours),
        index="ix_verifications_unapproved_created",
        where=v.status != literal("approved"),
    ),
    # A self-service (data_subject) verification opens a session on /my/, or proves a
    # correction's new number, within minutes: approved, it is kept no longer than an
    # unverified one, the number included, whether or not the registry held it.
    _verifications(
        "self_service",
        lambda s: dt.timedelta(hours=s.unverified_retention_hours),
        index="ix_verifications_self_service_created",
        where=sa.and_(v.status == literal("approved"), v.purpose == literal("data_subject")),
    ),
    _verifications(
        "approved",
        lambda s: dt.timedelta(days=s.verification_retention_days),
        index="ix_verifications_approved_created",
        where=v.status == literal("approved"),
    ),
    *_by_time_or_by_key("rate_limit_hits", _hits_kept, rate_limit_hits.c.at),
    PurgeStep(
        "shared_count_writers",
        keep=_hits_kept,
        table=count_writers,
        index="ix_shared_count_writers_seen_at",
        key=(count_writers.c.seen_at, count_writers.c.writer),
        time=count_writers.c.seen_at,
    ),
    *_by_time_or_by_key("send_windows", lambda s: dt.timedelta(0), send_windows.c.expires_at),
    PurgeStep(
        "idempotency_records",
        keep=lambda s: dt.timedelta(hours=s.idempotency_ttl_hours),
        table=idempotency_records,
        index="ix_idempotency_records_created_at",
        key=(
            idempotency_records.c.created_at,
            idempotency_records.c.client_id,
            idempotency_records.c.key,
        ),
        time=idempotency_records.c.created_at,
    ),
    PurgeStep(
        "record_events",
        keep=lambda s: dt.timedelta(days=s.verification_retention_days),
        table=audit_events,
        index="ix_audit_events_records_at",
        key=(audit_events.c.at, audit_events.c.id),
        time=audit_events.c.at,
        # The index's condition, as its text (app.core.retention.literal).
        where=audit_events.c.tag.in_([literal(tag) for tag in RECORD_TAGS]),
    ),
)
