"""The access log: every staff access to a subscriber is recorded (:func:`log_access`,
in the access's own transaction); auditors read it in pages or export it as streamed CSV.

Every reading and every export is itself audited. The log never holds a number (the
reveal's reason is checked for one before it is written, app.registry.free_text), and the
CSV is written formula-safe (app.core.csvsafe), so an export opened in a spreadsheet
runs nothing a staff member typed into a reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.csvsafe import cell
from app.core.db import Database
from app.core.tx import Tx
from app.models.access_log import AccessLogEntry
from app.registry import repository as repo
from app.registry.repository import AccessFilter
from app.registry.schemas import AccessLogEntryPublic, AccessLogFilter, AccessLogPage
from app.staff.auth import Staff

EXPORT_BATCH = 1000
CSV_COLUMNS = (
    "id",
    "accessed_at",
    "staff_id",
    "staff_username",
    "staff_role",
    "source_ip",
    "subscriber_id",
    "action",
    "reason",
)


def access_filter(filters: AccessLogFilter) -> AccessFilter:
    """The repository's filter for the query an auditor sent."""
    return AccessFilter(**filters.model_dump())


def _details(flt: AccessFilter) -> dict[str, Any]:
    # What the auditor asked for, as JSON: the audit row records the question.
    return {
        key: value.isoformat() if isinstance(value, dt.datetime) else value
        for key, value in vars(flt).items()
        if value is not None
    }


async def list_access(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    filters: AccessLogFilter,
    cursor: int | None,
    limit: int,
) -> AccessLogPage:
    """A page of the access log, newest first; the reading is itself audited."""
    flt = access_filter(filters)
    entries = await repo.access_page(tx, flt, before_id=cursor, limit=limit + 1)
    await record_event(
        tx,
        Tag.STAFF_ACCESS_LOG_READ,
        actor=staff.actor,
        at=ctx.clock.now(),
        details=_details(flt),
    )
    more = len(entries) > limit
    entries = entries[:limit]
    return AccessLogPage(
        entries=[AccessLogEntryPublic.model_validate(entry) for entry in entries],
        next_cursor=entries[-1].id if more and entries else None,
    )


async def begin_export(
    tx: Tx, ctx: Context, *, db: Database, staff: Staff, filters: AccessLogFilter
) -> AsyncIterator[bytes]:
    """Audit an export and return its CSV stream. The stream stops at the newest entry
    when the export began, so entries written while it streams are left for the next."""
    flt = access_filter(filters)
    await record_event(
        tx,
        Tag.STAFF_ACCESS_LOG_EXPORTED,
        actor=staff.actor,
        at=ctx.clock.now(),
        details=_details(flt),
    )
    return export_csv(db, flt, upto_id=await repo.last_access_id(tx))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        # To the microsecond, as the JSON answers it: a release writes several entries in
        # one second, and a reader orders them by time.
        return value.isoformat(timespec="microseconds")
    return cell(str(value))


def _csv_lines(rows: Iterable[Iterable[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


def _values(entry: AccessLogEntry) -> list[str]:
    return [_cell(getattr(entry, column)) for column in CSV_COLUMNS]


async def export_csv(
    db: Database, flt: AccessFilter, *, upto_id: int, batch: int = EXPORT_BATCH
) -> AsyncIterator[bytes]:
    """The entries up to ``upto_id``, oldest first, as CSV: read in keyset batches, one
    short transaction each, so memory stays flat however long the log is and no
    transaction stays open while a slow reader takes its bytes."""
    yield _csv_lines([CSV_COLUMNS])
    after = 0
    while True:
        async with db.transaction() as tx:
            entries = await repo.access_batch(tx, flt, after_id=after, upto_id=upto_id, limit=batch)
        if not entries:
            return
        yield _csv_lines(_values(entry) for entry in entries)
        last = entries[-1].id
        if last is None:  # read back from the table, so never
            raise RuntimeError("an access-log entry without an id")
        after = last


MAX_IP_LENGTH = 64


async def log_access(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    ip: str,
    subscriber_id: str | None,
    action: str,
    reason: str | None = None,
) -> None:
    """Record a staff member's access to a subscriber in the access log, in the caller's
    transaction: the access and its record commit together or not at all."""
    await repo.insert_access(
        tx,
        AccessLogEntry(
            accessed_at=ctx.clock.now(),
            staff_id=staff.id,
            staff_username=staff.username,
            staff_role=staff.role.value,
            source_ip=ip[:MAX_IP_LENGTH],
            subscriber_id=subscriber_id,
            action=action,
            reason=reason,
        ),
    )


async def log_search(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    ip: str,
    found: str | None,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """A staff member's search by number, found or not: in the access log and as an
    audit event, in the search's own transaction."""
    await log_access(
        tx, ctx, staff=staff, ip=ip, subscriber_id=found, action="search_number", reason=reason
    )
    await record_event(
        tx,
        Tag.STAFF_SUBSCRIBER_SEARCHED,
        actor=staff.actor,
        at=ctx.clock.now(),
        subject=found,
        details={"found": found is not None, **(details or {})},
    )
