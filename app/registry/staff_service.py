"""UNCONVERTED (to be rewritten): the registry as staff see it: masked search and read,
and the access log every one of those writes to, in the same transaction.

Which roles may call what is decided by the routes' permission aliases
(app.staff.auth); these functions take the already authorised ``staff``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable
from typing import Any

import phonenumbers
from phonenumbers import Leniency

from app.audit.events import Tag, record_event
from app.consent import repository as consent_repo
from app.core.context import Context
from app.core.db import Database, Row, Tx
from app.core.errors import InvalidInput, NotFound
from app.registry import repository as repo
from app.registry.repository import AccessFilter
from app.registry.schemas import (
    MAX_REASON,
    MIN_REASON,
    AccessLogEntryPublic,
    AccessLogPage,
    ConsentSummaryPublic,
    PurposePublic,
    RevealedPublic,
    SubscriberStaffView,
)
from app.staff.accounts import Staff
from app.verification.phone import mask, parse_mobile

MAX_IP_LENGTH = 64
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


class SubscriberNotFound(NotFound):
    slug = "subscriber-not-found"
    title = "No such subscriber"


# -- the access log --------------------------------------------------------------------


def log_access(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    ip: str,
    subscriber_id: str | None,
    action: str,
    reason: str | None = None,
) -> None:
    now = ctx.clock.now()
    repo.insert_access(
        tx,
        {
            "accessed_at": now,
            "staff_id": staff.id,
            "staff_username": staff.username,
            "staff_role": staff.role.value,
            "source_ip": ip[:MAX_IP_LENGTH],
            "subscriber_id": subscriber_id,
            "action": action,
            "reason": reason,
        },
    )


def check_reason(ctx: Context, reason: str) -> str:
    """A reveal's reason, cleaned: 10 to 500 printable characters and no phone number
    in it (the access log must never hold one), else InvalidInput on ``reason``."""
    cleaned = " ".join(reason.split())
    if not MIN_REASON <= len(cleaned) <= MAX_REASON:
        raise InvalidInput.field("reason", f"must be {MIN_REASON} to {MAX_REASON} characters")
    if not cleaned.isprintable():
        raise InvalidInput.field("reason", "must be printable text")
    s = ctx.settings
    for region in dict.fromkeys([s.default_region, *s.allowed_regions]):
        for _match in phonenumbers.PhoneNumberMatcher(cleaned, region, leniency=Leniency.VALID):
            raise InvalidInput.field(
                "reason", "must not contain a phone number (the access log never holds one)"
            )
    return cleaned


# -- masked views ------------------------------------------------------------------------


def _view(tx: Tx, ctx: Context, row: Row) -> SubscriberStaffView:
    e164 = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=repo.subscriber_aad(row.phone_index)
    )
    return SubscriberStaffView(
        id=row.id,
        phone_masked=mask(e164),
        purposes=[
            PurposePublic(purpose=p.purpose, verified_at=p.verified_at)
            for p in repo.purposes_of(tx, subscriber_id=row.id)
        ],
        consents=[
            ConsentSummaryPublic(
                purpose=c.purpose,
                status=c.status,
                source=c.source,
                policy_version=c.policy_version,
                changed_at=c.changed_at,
            )
            for c in consent_repo.current(tx, subscriber_id=row.id)
        ],
        created_at=row.created_at,
        last_verified_at=row.last_verified_at,
    )


def search_by_number(
    tx: Tx, ctx: Context, *, staff: Staff, phone: str, ip: str
) -> list[SubscriberStaffView]:
    """The subscriber holding a number (found by its blind index), masked; the search is
    logged whether or not it finds anyone."""
    s = ctx.settings
    parsed = parse_mobile(phone, default_region=s.default_region, allowed_regions=s.allowed_regions)
    subscriber_id = repo.find_id(tx, phone_index=ctx.keys.blind_indexes(parsed.e164, kind="number"))
    row = repo.get_subscriber(tx, subscriber_id=subscriber_id) if subscriber_id else None
    log_access(tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, action="search_number")
    record_event(
        tx,
        Tag.STAFF_SUBSCRIBER_SEARCHED,
        actor=staff.actor,
        at=ctx.clock.now(),
        subject=subscriber_id,
        details={"found": row is not None},
    )
    return [] if row is None else [_view(tx, ctx, row)]


def read(tx: Tx, ctx: Context, *, staff: Staff, subscriber_id: str, ip: str) -> SubscriberStaffView:
    """One subscriber by id, masked; logged."""
    row = repo.get_subscriber(tx, subscriber_id=subscriber_id)
    if row is None:
        raise SubscriberNotFound()
    log_access(tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, action="read")
    record_event(
        tx, Tag.STAFF_SUBSCRIBER_READ, actor=staff.actor, at=ctx.clock.now(), subject=row.id
    )
    return _view(tx, ctx, row)


def reveal(
    tx: Tx, ctx: Context, *, staff: Staff, subscriber_id: str, reason: str, ip: str
) -> RevealedPublic:
    """The full number, for a privacy officer with a stated reason. The reveal and its
    access-log entry commit together, or neither does."""
    cleaned = check_reason(ctx, reason)
    row = repo.get_subscriber(tx, subscriber_id=subscriber_id)
    if row is None:
        raise SubscriberNotFound()
    e164 = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=repo.subscriber_aad(row.phone_index)
    )
    log_access(tx, ctx, staff=staff, ip=ip, subscriber_id=row.id, action="reveal", reason=cleaned)
    record_event(
        tx,
        Tag.STAFF_SUBSCRIBER_REVEALED,
        actor=staff.actor,
        at=ctx.clock.now(),
        subject=row.id,
        details={"reason": cleaned},
    )
    return RevealedPublic(subscriber_id=row.id, phone=e164)


# -- reading and exporting the access log --------------------------------------------------


def check_filter(flt: AccessFilter) -> AccessFilter:
    """Refuse a time range that ends before it starts."""
    if flt.since is not None and flt.until is not None and flt.until <= flt.since:
        raise InvalidInput.field("until", "must be after since", location="query")
    return flt


def _public(row: Row) -> AccessLogEntryPublic:
    return AccessLogEntryPublic.model_validate(dict(row))


def list_access(
    tx: Tx, ctx: Context, *, staff: Staff, flt: AccessFilter, cursor: int | None, limit: int
) -> AccessLogPage:
    """A page of the access log, newest first; the reading is itself audited."""
    check_filter(flt)
    rows = repo.access_page(tx, flt, before_id=cursor, limit=limit + 1)
    record_event(
        tx,
        Tag.STAFF_ACCESS_LOG_READ,
        actor=staff.actor,
        at=ctx.clock.now(),
        details=_filter_details(flt),
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return AccessLogPage(
        entries=[_public(row) for row in rows],
        next_cursor=rows[-1].id if more and rows else None,
    )


def _filter_details(flt: AccessFilter) -> dict[str, Any]:
    return {
        key: value.isoformat() if hasattr(value, "isoformat") else value
        for key, value in vars(flt).items()
        if value is not None
    }


def begin_export(tx: Tx, ctx: Context, *, staff: Staff, flt: AccessFilter) -> int:
    """Check and audit an export; returns the last entry id it covers, so entries
    written while it streams are left for the next export."""
    check_filter(flt)
    record_event(
        tx,
        Tag.STAFF_ACCESS_LOG_EXPORTED,
        actor=staff.actor,
        at=ctx.clock.now(),
        details=_filter_details(flt),
    )
    return repo.last_access_id(tx)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return str(value.isoformat(timespec="seconds"))
    text = str(value)
    # Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv_lines(rows: Iterable[Row | tuple[str, ...]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in rows:
        if isinstance(row, tuple):
            writer.writerow(row)
        else:
            writer.writerow([_cell(row[column]) for column in CSV_COLUMNS])
    return buffer.getvalue().encode()


async def export_csv(
    db: Database, flt: AccessFilter, *, upto_id: int, batch: int = EXPORT_BATCH
) -> AsyncIterator[bytes]:
    """The entries up to ``upto_id``, oldest first, as CSV: read in keyset batches, one
    short transaction each, so memory stays flat however long the log is."""
    yield _csv_lines([CSV_COLUMNS])
    after = 0
    while True:
        rows = await db.run(repo.access_batch, flt, after_id=after, upto_id=upto_id, limit=batch)
        if not rows:
            return
        yield _csv_lines(rows)
        after = rows[-1].id
