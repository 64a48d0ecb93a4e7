"""Disclosure requests: request -> review (approve or reject) -> release, recorded.

Service functions take the acting staff member as plain values (:class:`Actor`), so
they can run from the CLI, tests or, later, routes behind staff sessions. They never
commit: the caller's unit of work does, so a release and its ledger entry land
together or not at all.

Rules (DESIGN.md, issue 5):

- operators and privacy officers request; only a privacy officer other than the
  requester approves or rejects, with a note; a privacy officer releases;
- legal bases: ``consent``, ``law``, ``investigation_compelled``,
  ``emergency_life_body_property``; ``law`` and ``investigation_compelled`` need the
  request document's reference (a CCP Art. 197(2) inquiry or a warrant);
- a subject who stopped third-party provision is refused unless the basis is ``law``
  or ``investigation_compelled``; ``consent`` needs each subject's live consent to
  this recipient. Both are checked at request, at approval and again at release;
- a release builds the package (JSON and CSV, with the numbers) and appends the ledger
  entry (no number: subject ids and the package's SHA-256) in the same transaction;
  a request is released once.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import phonenumbers
from pydantic import BaseModel, Field

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Row, Tx
from app.core.errors import InvalidInput
from app.core.ids import new_id
from app.ledger import canonical, chain
from app.ledger import repository as repo
from app.ledger.cells import cell
from app.ledger.errors import (
    AlreadyReleased,
    ConsentMissing,
    ProvisionStopped,
    RequestNotFound,
    RoleNotAllowed,
    SelfApproval,
    SubjectGone,
    WrongState,
)
from app.registry import repository as registry
from app.registry.repository import subscriber_aad

OPERATOR = "operator"
PRIVACY_OFFICER = "privacy_officer"
LEGAL_BASES = ("consent", "law", "investigation_compelled", "emergency_life_body_property")
# The two bases that override a subject's stop of third-party provision (APPI Art. 27(1)).
COMPELLED = frozenset({"law", "investigation_compelled"})
NEEDS_REFERENCE = COMPELLED
# What a package may hold, in the order its columns appear.
DATA_ITEMS = (
    "phone_number",
    "subscriber_id",
    "verified_purposes",
    "registered_at",
    "last_verified_at",
)
MAX_SUBJECTS = 1000
PACKAGE_FORMAT = "smsreg-disclosure-package/1"
_SUBJECT_ID = re.compile(r"^[A-Za-z0-9_\-]{1,40}$")
_ALLOWED_CONTROLS = {"\n", "\t"}


@dataclass(frozen=True)
class Actor:
    """The staff member taking a step: their account id and role."""

    staff_id: str
    role: str


class RecipientIn(BaseModel):
    """Who receives the data."""

    organisation: str = Field(description="1-200 characters, e.g. the police station")
    officer: str = Field(description="1-200 characters: the officer in charge")
    contact: str = Field(description="1-300 characters: address, phone or e-mail")


class DisclosureRequestCreate(BaseModel):
    """A request to provide subjects' data to a third party."""

    recipient: RecipientIn
    legal_basis: str = Field(description="one of " + ", ".join(LEGAL_BASES))
    purpose: str = Field(description="purpose or reason, 10-2000 characters")
    request_reference: str | None = Field(
        default=None,
        description="the request document (CCP Art. 197(2) inquiry, warrant); required for "
        "`law` and `investigation_compelled`, 3-200 characters",
    )
    data_items: list[str] = Field(description="some of " + ", ".join(DATA_ITEMS))
    subject_ids: list[str] = Field(description=f"subscriber ids, 1-{MAX_SUBJECTS}")
    necessity_review: str = Field(description="why this provision is necessary, 10-4000 chars")


@dataclass(frozen=True)
class Release:
    """A released disclosure: the package (shown once, never stored) and its ledger entry."""

    request_id: str
    entry: Row
    package_json: bytes
    package_csv: bytes


# --- validation ----------------------------------------------------------------------


def _text(value: object, field: str, *, low: int, high: int, optional: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if optional:
            return None
        raise InvalidInput.field(field, "is required")
    if not isinstance(value, str):
        raise InvalidInput.field(field, "must be text")
    text = value.strip()
    if not low <= len(text) <= high:
        raise InvalidInput.field(field, f"must be {low} to {high} characters")
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cs") and char not in _ALLOWED_CONTROLS:
            raise InvalidInput.field(field, "must not contain control characters")
    return text


def _required(value: object, field: str, *, low: int, high: int) -> str:
    text = _text(value, field, low=low, high=high)
    assert text is not None  # noqa: S101 (required text is never None)
    return text


def recipient_key(organisation: str) -> str:
    """The recipient as consent and filters match it: NFKC, case-folded, spaces collapsed."""
    return " ".join(unicodedata.normalize("NFKC", organisation).casefold().split())


def _no_subscriber_number(tx: Tx, ctx: Context, field: str, text: str | None) -> None:
    """Refuse free text that holds a registered subscriber's number: the request and the
    ledger name subjects by id only, never by number."""
    if not text:
        return
    s = ctx.settings
    # Read as a number of every region served, and looked up under every index key in
    # the ring, so neither a foreign number nor one not yet re-indexed slips through.
    for region in dict.fromkeys([s.default_region, *s.allowed_regions]):
        leniency = phonenumbers.Leniency.POSSIBLE
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency):
            e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            if registry.find_id(tx, phone_index=ctx.keys.blind_indexes(e164, kind="number")):
                raise InvalidInput.field(
                    field, "must not contain a subscriber's phone number; name subjects by id"
                )


def _require_role(actor: Actor, allowed: set[str], step: str) -> None:
    if not isinstance(actor.staff_id, str) or not 1 <= len(actor.staff_id) <= 80:
        raise RoleNotAllowed("the acting staff id is missing or too long")
    if actor.role not in allowed:
        raise RoleNotAllowed(f"role {actor.role!r} may not {step} a disclosure")


def _subject_ids(tx: Tx, values: Sequence[object]) -> list[str]:
    if not isinstance(values, list | tuple) or not 1 <= len(values) <= MAX_SUBJECTS:
        raise InvalidInput.field("subject_ids", f"must list 1 to {MAX_SUBJECTS} subscriber ids")
    ids: list[str] = []
    for value in values:
        if not isinstance(value, str) or not _SUBJECT_ID.match(value):
            raise InvalidInput.field("subject_ids", "holds a malformed subscriber id")
        ids.append(value)
    if len(set(ids)) != len(ids):
        raise InvalidInput.field("subject_ids", "must not repeat a subscriber id")
    unknown = sorted(set(ids) - repo.existing_subscribers(tx, ids))
    if unknown:
        raise InvalidInput.field("subject_ids", f"unknown subscriber id(s): {', '.join(unknown)}")
    return sorted(ids)


def _data_items(values: Sequence[object]) -> list[str]:
    if not isinstance(values, list | tuple) or not values:
        raise InvalidInput.field("data_items", f"must list some of {list(DATA_ITEMS)}")
    unknown = [value for value in values if value not in DATA_ITEMS]
    if unknown:
        raise InvalidInput.field("data_items", f"must be some of {list(DATA_ITEMS)}")
    if len(set(values)) != len(values):
        raise InvalidInput.field("data_items", "must not repeat an item")
    return [item for item in DATA_ITEMS if item in values]


def check_subjects(
    tx: Tx, *, subject_ids: Sequence[str], legal_basis: str, recipient: str
) -> dict[str, Any] | None:
    """Refuse stopped subjects (unless compelled) and, for ``consent``, missing consent.

    Returns, for ``consent``, the fact of consent per subject (time and source), which
    the ledger entry records (APPI Art. 29 / PPC rule 21); else None.
    """
    stopped = repo.stopped_subjects(tx, subject_ids)
    if stopped and legal_basis not in COMPELLED:
        raise ProvisionStopped(
            f"{len(stopped)} subject(s) stopped third-party provision; basis {legal_basis!r} "
            "does not override that",
            subject_ids=sorted(stopped),
        )
    if legal_basis != "consent":
        return None
    live = repo.live_consents(tx, subject_ids, recipient_key=recipient)
    missing = sorted(set(subject_ids) - set(live))
    if missing:
        raise ConsentMissing(
            f"{len(missing)} subject(s) have no live consent to this recipient",
            subject_ids=missing,
        )
    return {
        subject: {
            "granted_at": canonical.timestamp(live[subject]["granted_at"]),
            "source": live[subject]["source"],
        }
        for subject in sorted(subject_ids)
    }


# --- the steps -----------------------------------------------------------------------


def request(tx: Tx, ctx: Context, *, actor: Actor, data: DisclosureRequestCreate) -> Row:
    """Open a disclosure request (operator or privacy officer)."""
    _require_role(actor, {OPERATOR, PRIVACY_OFFICER}, "request")
    if data.legal_basis not in LEGAL_BASES:
        raise InvalidInput.field("legal_basis", f"must be one of {list(LEGAL_BASES)}")
    organisation = _required(data.recipient.organisation, "recipient.organisation", low=1, high=200)
    officer = _required(data.recipient.officer, "recipient.officer", low=1, high=200)
    contact = _required(data.recipient.contact, "recipient.contact", low=1, high=300)
    purpose = _required(data.purpose, "purpose", low=10, high=2000)
    reference = _text(data.request_reference, "request_reference", low=3, high=200, optional=True)
    if reference is None and data.legal_basis in NEEDS_REFERENCE:
        raise InvalidInput.field(
            "request_reference",
            f"is required for {data.legal_basis!r}: the inquiry (CCP Art. 197(2)) or warrant",
        )
    necessity = _required(data.necessity_review, "necessity_review", low=10, high=4000)
    items = _data_items(data.data_items)
    subjects = _subject_ids(tx, data.subject_ids)
    for field, text in (
        ("recipient.organisation", organisation),
        ("recipient.officer", officer),
        ("purpose", purpose),
        ("request_reference", reference),
        ("necessity_review", necessity),
    ):
        _no_subscriber_number(tx, ctx, field, text)
    key = recipient_key(organisation)
    check_subjects(tx, subject_ids=subjects, legal_basis=data.legal_basis, recipient=key)
    now = ctx.clock.now()
    row = Row(
        id=new_id("dsr"),
        status="requested",
        recipient_organisation=organisation,
        recipient_officer=officer,
        recipient_contact=contact,
        recipient_key=key,
        legal_basis=data.legal_basis,
        purpose=purpose,
        request_reference=reference,
        data_items=canonical.dumps(items).decode(),
        subject_ids=canonical.dumps(subjects).decode(),
        necessity_review=necessity,
        requested_by=actor.staff_id,
        requester_role=actor.role,
        requested_at=now,
    )
    repo.insert_request(tx, row)
    record_event(
        tx,
        Tag.DISCLOSURE_REQUESTED,
        actor=f"staff:{actor.staff_id}",
        at=now,
        subject=row.id,
        details={"legal_basis": data.legal_basis, "subjects": len(subjects), "items": items},
    )
    return row


def _decide(
    tx: Tx, ctx: Context, *, actor: Actor, request_id: str, note: str, approve: bool
) -> Row:
    _require_role(actor, {PRIVACY_OFFICER}, "approve or reject")
    row = repo.get_request(tx, request_id, lock=True)
    if row is None:
        raise RequestNotFound()
    if row.requested_by == actor.staff_id:
        raise SelfApproval()
    if row.status != "requested":
        raise WrongState(f"the request is {row.status}, not awaiting review")
    text = _required(note, "note", low=3, high=2000)
    _no_subscriber_number(tx, ctx, "note", text)
    if approve:
        check_subjects(
            tx,
            subject_ids=orjson.loads(row.subject_ids),
            legal_basis=row.legal_basis,
            recipient=row.recipient_key,
        )
    now = ctx.clock.now()
    status = "approved" if approve else "rejected"
    if not repo.decide_request(
        tx, request_id=row.id, status=status, by=actor.staff_id, at=now, note=text
    ):
        raise WrongState("the request was decided meanwhile")
    record_event(
        tx,
        Tag.DISCLOSURE_APPROVED if approve else Tag.DISCLOSURE_REJECTED,
        actor=f"staff:{actor.staff_id}",
        at=now,
        subject=row.id,
    )
    row.update(status=status, decided_by=actor.staff_id, decided_at=now, decision_note=text)
    return row


def approve(tx: Tx, ctx: Context, *, actor: Actor, request_id: str, note: str) -> Row:
    """Approve a request: a privacy officer who is not its requester, with a note."""
    return _decide(tx, ctx, actor=actor, request_id=request_id, note=note, approve=True)


def reject(tx: Tx, ctx: Context, *, actor: Actor, request_id: str, note: str) -> Row:
    """Reject a request: a privacy officer who is not its requester, with a note."""
    return _decide(tx, ctx, actor=actor, request_id=request_id, note=note, approve=False)


def release(tx: Tx, ctx: Context, *, actor: Actor, request_id: str) -> Release:
    """Build the package and append its ledger entry, in this one transaction."""
    _require_role(actor, {PRIVACY_OFFICER}, "release")
    row = repo.get_request(tx, request_id, lock=True)
    if row is None:
        raise RequestNotFound()
    if row.status == "released":
        raise AlreadyReleased(
            f"released at {row.released_at.isoformat()} as entry {row.ledger_seq}"
        )
    if row.status != "approved":
        raise WrongState(f"the request is {row.status}; only an approved request is released")
    subjects: list[str] = orjson.loads(row.subject_ids)
    consent = check_subjects(
        tx, subject_ids=subjects, legal_basis=row.legal_basis, recipient=row.recipient_key
    )
    chain.lock(tx)  # from here the head is ours until commit
    now = ctx.clock.now()
    seq = chain.head(tx)[0] + 1
    package_json, package_csv = build_package(tx, ctx, request=row, seq=seq, released_at=now)
    entry = chain.append(
        tx,
        {
            "recorded_at": now,
            "request_id": row.id,
            "recipient_organisation": row.recipient_organisation,
            "recipient_officer": row.recipient_officer,
            "recipient_contact": row.recipient_contact,
            "recipient_key": row.recipient_key,
            "legal_basis": row.legal_basis,
            "purpose": row.purpose,
            "request_reference": row.request_reference,
            "data_items": orjson.loads(row.data_items),
            "subject_ids": subjects,
            "requested_by": row.requested_by,
            "approved_by": row.decided_by,
            "released_by": actor.staff_id,
            "necessity_review": row.necessity_review,
            "approval_note": row.decision_note,
            "consent": consent,
            "package_sha256": canonical.sha256_hex(package_json),
            "package_csv_sha256": canonical.sha256_hex(package_csv),
        },
    )
    if not repo.mark_released(
        tx, request_id=row.id, by=actor.staff_id, at=now, ledger_seq=entry["seq"]
    ):
        raise AlreadyReleased()  # rolls the entry back with it
    record_event(
        tx,
        Tag.DISCLOSURE_RELEASED,
        actor=f"staff:{actor.staff_id}",
        at=now,
        subject=row.id,
        details={"ledger_seq": entry["seq"], "package_sha256": entry["package_sha256"]},
    )
    return Release(
        request_id=row.id, entry=entry, package_json=package_json, package_csv=package_csv
    )


def build_package(
    tx: Tx, ctx: Context, *, request: Row, seq: int, released_at: Any
) -> tuple[bytes, bytes]:
    """The package for the recipient, as JSON and as CSV (the same records)."""
    subjects: list[str] = orjson.loads(request.subject_ids)
    items: list[str] = orjson.loads(request.data_items)
    rows = {row.id: row for row in repo.subscribers_for_package(tx, subjects)}
    gone = sorted(set(subjects) - set(rows))
    if gone:
        raise SubjectGone(subject_ids=gone)
    purposes = repo.purposes_of(tx, subjects) if "verified_purposes" in items else {}
    records = []
    for subject in subjects:
        row = rows[subject]
        record: dict[str, Any] = {}
        for item in items:
            if item == "phone_number":
                record[item] = ctx.keys.decrypt(
                    row.phone_ciphertext,
                    key_id=row.phone_key_id,
                    context=subscriber_aad(row.phone_index),
                )
            elif item == "subscriber_id":
                record[item] = row.id
            elif item == "verified_purposes":
                record[item] = purposes.get(row.id, [])
            elif item == "registered_at":
                record[item] = canonical.timestamp(row.created_at)
            elif item == "last_verified_at":
                record[item] = canonical.timestamp(row.last_verified_at)
        records.append(record)
    document = {
        "format": PACKAGE_FORMAT,
        "request_id": request.id,
        "ledger_seq": seq,
        "released_at": canonical.timestamp(released_at),
        "recipient": {
            "organisation": request.recipient_organisation,
            "officer": request.recipient_officer,
            "contact": request.recipient_contact,
        },
        "legal_basis": request.legal_basis,
        "purpose": request.purpose,
        "request_reference": request.request_reference,
        "data_items": items,
        "records": records,
    }
    as_json = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(items)
    for record in records:
        writer.writerow(
            [
                cell(" ".join(value) if isinstance(value, list) else str(value))
                for value in record.values()
            ]
        )
    return as_json, buffer.getvalue().encode()


def get(tx: Tx, *, request_id: str) -> Row:
    """One request (no number is ever in it)."""
    row = repo.get_request(tx, request_id)
    if row is None:
        raise RequestNotFound()
    return row


def list_requests(tx: Tx, *, status: str | None = None, limit: int = 100) -> list[Row]:
    """Requests, newest first."""
    if status is not None and status not in ("requested", "approved", "rejected", "released"):
        raise InvalidInput.field("status", "must be requested, approved, rejected or released")
    if not 1 <= limit <= 1000:
        raise InvalidInput.field("limit", "must be 1 to 1000", location="query")
    return repo.list_requests(tx, status=status, limit=limit)
