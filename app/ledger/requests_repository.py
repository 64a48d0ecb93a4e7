"""Every query on disclosure requests."""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import sqlalchemy as sa

from app.core import sql
from app.core.tx import Tx
from app.models.ledger import DisclosureRequest, LedgerEntry
from app.models.types import table

requests = table(DisclosureRequest)
_r = requests.c
entries = table(LedgerEntry)
_e = entries.c


class Unrecorded(NamedTuple):
    """A released request and what its ledger entry records (None: no entry)."""

    request_id: str
    ledger_seq: int
    entry_request_id: str | None


def _request(row: Any) -> DisclosureRequest:
    return DisclosureRequest(**row._mapping)


async def insert(tx: Tx, request: DisclosureRequest) -> None:
    """Insert a new request."""
    await tx.execute(sa.insert(requests).values(request.model_dump()))


async def get(tx: Tx, request_id: str, *, lock: bool = False) -> DisclosureRequest | None:
    """A request; ``lock`` holds its row until the transaction ends (PostgreSQL; SQLite's
    transaction holds the write lock already)."""
    statement = sa.select(requests).where(_r.id == request_id)
    if lock and not tx.sqlite:
        statement = statement.with_for_update()
    row = (await tx.execute(statement)).one_or_none()
    return None if row is None else _request(row)


async def made_by(tx: Tx, requester: str) -> tuple[int, DisclosureRequest | None]:
    """How many requests a person made, and the newest of them."""
    statement = sql.made_by(requests, _r.requested_by, requester, _r.requested_at)
    row = (await tx.execute(statement)).first()
    return (0, None) if row is None else (row.made, DisclosureRequest(**sql.without_made(row)))


async def list_newest(tx: Tx, *, status: str | None, limit: int) -> list[DisclosureRequest]:
    """Requests, newest first, optionally of one status."""
    statement = sa.select(requests).order_by(_r.requested_at.desc(), _r.id).limit(limit)
    if status is not None:
        statement = statement.where(_r.status == status)
    return [_request(row) for row in await tx.execute(statement)]


async def decide(
    tx: Tx, *, request_id: str, status: str, by: str, at: dt.datetime, note: str
) -> bool:
    """Approve or reject a pending request; False if it was no longer pending."""
    result = await tx.execute(
        sa.update(requests)
        .where(_r.id == request_id, _r.status == "requested")
        .values(status=status, decided_by=by, decided_at=at, decision_note=note)
    )
    return result.rowcount == 1


async def mark_released(tx: Tx, *, request_id: str, entry: LedgerEntry) -> bool:
    """Mark an approved request released as ``entry`` (who, when, its seq, and the consent
    and package sums it records); False if it was not (still) approved."""
    result = await tx.execute(
        sa.update(requests)
        .where(_r.id == request_id, _r.status == "approved")
        .values(
            status="released",
            released_by=entry.released_by,
            released_at=entry.recorded_at,
            ledger_seq=entry.seq,
            consent=entry.consent,
            package_sha256=entry.package_sha256,
            package_csv_sha256=entry.package_csv_sha256,
        )
    )
    return result.rowcount == 1


async def set_stop_overridden(tx: Tx, *, request_id: str, subjects: list[str] | None) -> None:
    """Record which subjects' stop of provision the request now overrides."""
    await tx.execute(
        sa.update(requests).where(_r.id == request_id).values(stop_overridden=subjects)
    )


async def first_unrecorded_release(tx: Tx, *, after_seq: int) -> Unrecorded | None:
    """The released request, lowest seq first, after ``after_seq`` whose entry is missing
    or records another request (a released request without a seq counts as at seq 1)."""
    seq = sa.func.coalesce(_r.ledger_seq, 1)
    row = (
        await tx.execute(
            sa.select(_r.id, seq.label("seq"), _e.request_id)
            .select_from(requests.outerjoin(entries, _e.seq == _r.ledger_seq))
            .where(
                _r.status == "released",
                sa.or_(_r.ledger_seq.is_(None), _r.ledger_seq > after_seq),
                sa.or_(_e.seq.is_(None), _e.request_id != _r.id),
            )
            .order_by(seq)
            .limit(1)
        )
    ).one_or_none()
    return None if row is None else Unrecorded(row.id, int(row.seq), row.request_id)


class Unbacked(NamedTuple):
    """An entry and the request it names, as far as there is one."""

    seq: int
    request_id: str
    request_status: str | None  # None: there is no such request
    request_seq: int | None
    differs: tuple[str, ...] = ()  # the entry's fields its request says otherwise


# What a release copies from its request into the entry: (entry column, request column).
_COPIED = (
    (_e.recipient_organisation, _r.recipient_organisation),
    (_e.recipient_officer, _r.recipient_officer),
    (_e.recipient_contact, _r.recipient_contact),
    (_e.recipient_key, _r.recipient_key),
    (_e.legal_basis, _r.legal_basis),
    (_e.purpose, _r.purpose),
    (_e.request_reference, _r.request_reference),
    (_e.data_items, _r.data_items),
    (_e.subject_ids, _r.subject_ids),
    (_e.stop_overridden, _r.stop_overridden),
    (_e.necessity_review, _r.necessity_review),
    (_e.requested_by, _r.requested_by),
    (_e.approved_by, _r.decided_by),
    (_e.approval_note, _r.decision_note),
    (_e.released_by, _r.released_by),
    (_e.recorded_at, _r.released_at),
    (_e.consent, _r.consent),
    (_e.package_sha256, _r.package_sha256),
    (_e.package_csv_sha256, _r.package_csv_sha256),
)


async def first_unbacked_entry(tx: Tx, *, after_seq: int) -> Unbacked | None:
    """The entry, lowest seq first, after ``after_seq`` that no request was released as:
    its request is missing, not released, released as another entry, or says otherwise
    than the entry about what was given to whom, and who asked, approved and released."""
    differs = [entry.is_distinct_from(request).label(entry.key) for entry, request in _COPIED]
    row = (
        await tx.execute(
            sa.select(_e.seq, _e.request_id, _r.status, _r.ledger_seq, *differs)
            .select_from(entries.outerjoin(requests, _r.id == _e.request_id))
            .where(
                _e.seq > after_seq,
                sa.or_(
                    _r.id.is_(None),
                    _r.status != "released",
                    _r.ledger_seq.is_distinct_from(_e.seq),
                    *(entry.is_distinct_from(request) for entry, request in _COPIED),
                ),
            )
            .order_by(_e.seq)
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None
    fields = tuple(entry.key for entry, _ in _COPIED if row._mapping[entry.key])
    return Unbacked(int(row.seq), row.request_id, row.status, row.ledger_seq, fields)


def _past_retention(before: dt.datetime, anchored: int | None) -> sa.ColumnElement[bool]:
    """Requests past retention: a released one once its ledger entry is purged (at or
    below ``anchored``, the seq of the signed anchor a purge leaves, so an entry deleted
    any other way never takes its request along), any other once it was decided (or
    made) before ``before``."""
    released = sa.false() if anchored is None else _r.ledger_seq <= anchored
    return sa.or_(
        sa.and_(_r.status == "released", released),
        sa.and_(_r.status != "released", sa.func.coalesce(_r.decided_at, _r.requested_at) < before),
    )


async def purge(tx: Tx, *, before: dt.datetime, anchored: int | None, dry_run: bool = False) -> int:
    """Delete (``dry_run``: count) the requests past retention."""
    due = _past_retention(before, anchored)
    if dry_run:
        return int(await tx.scalar(sa.select(sa.func.count()).select_from(requests).where(due)))
    return int((await tx.execute(sa.delete(requests).where(due))).rowcount)
