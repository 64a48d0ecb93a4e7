"""Disclosure requests: request -> review (approve or reject) -> release, recorded.

The rules (who may take a step is the route's permission, app.staff.auth):

- operators and privacy officers request; only a privacy officer other than the
  requester approves or rejects, with a note; a privacy officer releases;
- the request is checked by its schema (app.ledger.schemas); here, what needs the
  database: its subjects exist, and no free text holds a subscriber's number;
- a subject who stopped third-party provision is refused under ``consent``; ``law``,
  ``investigation_compelled`` and ``emergency_life_body_property`` go on, and the
  request and its ledger entry name the subjects whose stop they overrode
  (``stop_overridden``); ``consent`` needs each subject's live consent to this
  recipient. Both are checked at request, at approval and again at release;
- independent eyes: the approver is not the requester, did not create the requester's
  account or grant its role, and was not created or granted by the requester
  (app.staff.accounts.related);
- a release builds the package (JSON and CSV, with the numbers), appends the ledger
  entry (no number: subject ids and the package's SHA-256) and, when the package holds
  numbers, logs each subject's in the access log, all in the caller's transaction; a
  request is released once.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import InvalidInput
from app.core.ids import new_id
from app.core.tx import Tx
from app.ledger import canonical, chain, package
from app.ledger import requests_repository as requests
from app.ledger import subjects_repository as subjects
from app.ledger.errors import (
    AlreadyReleased,
    DependentApprover,
    RequestNotFound,
    SelfApproval,
    SubjectGone,
    WrongState,
)
from app.ledger.rules import recipient_key
from app.ledger.schemas import DisclosureRequestCreate, ReleasePublic
from app.ledger.subject_checks import SubjectsChecked, check_subjects
from app.models.ledger import DisclosureRequest, LedgerEntry
from app.registry import access_log, free_text
from app.registry import service as registry
from app.staff import accounts
from app.staff.auth import Staff


@dataclass(frozen=True)
class Release:
    """A released disclosure: the package (shown once, never stored) and its ledger entry."""

    request_id: str
    entry: LedgerEntry
    package_json: bytes
    package_csv: bytes

    def public(self) -> ReleasePublic:
        """The release as its one answer shows it."""
        return ReleasePublic(
            request_id=self.request_id,
            ledger_seq=self.entry.seq,
            package_sha256=self.entry.package_sha256,
            package_csv_sha256=self.entry.package_csv_sha256,
            package=orjson.loads(self.package_json),
            package_json=self.package_json.decode(),
            package_csv=self.package_csv.decode(),
        )


async def refusal_of(
    tx: Tx, ctx: Context, *, staff: Staff, ip: str, data: DisclosureRequestCreate
) -> SubjectsChecked:
    """What :func:`request` refuses in ``data`` before anything is written: an unknown
    subject, a subscriber's number in its text (kept as the staff member's search, which
    commits), a subject who stopped provision under a basis that does not override the
    stop, a missing consent; else what the subjects' checks found. A form asks first, so
    that it can be shown again as typed."""
    known = await subjects.existing_subscribers(tx, data.subject_ids)
    unknown = sorted(set(data.subject_ids) - known)
    if unknown:
        raise InvalidInput.field("subject_ids", f"unknown subscriber id(s): {', '.join(unknown)}")
    for field, text in (
        ("recipient.organisation", data.recipient.organisation),
        ("recipient.officer", data.recipient.officer),
        # The recipient's own number may stand here; a subscriber's never.
        ("recipient.contact", data.recipient.contact),
        ("purpose", data.purpose),
        ("request_reference", data.request_reference),
        ("necessity_review", data.necessity_review),
    ):
        # Nothing is written yet: a number found is kept as the staff member's search.
        await free_text.refuse_registered_number(
            tx, ctx, field=field, text=text, staff=staff, ip=ip
        )
    return await check_subjects(
        tx,
        subject_ids=data.subject_ids,
        legal_basis=data.legal_basis,
        recipient=recipient_key(data.recipient.organisation),
    )


async def request(
    tx: Tx, ctx: Context, *, staff: Staff, ip: str, data: DisclosureRequestCreate
) -> DisclosureRequest:
    """Open a disclosure request (an operator or a privacy officer)."""
    checked = await refusal_of(tx, ctx, staff=staff, ip=ip, data=data)
    key = recipient_key(data.recipient.organisation)
    now = ctx.clock.now()
    found = DisclosureRequest(
        id=new_id("dsr"),
        status="requested",
        recipient_organisation=data.recipient.organisation,
        recipient_officer=data.recipient.officer,
        recipient_contact=data.recipient.contact,
        recipient_key=key,
        legal_basis=data.legal_basis,
        purpose=data.purpose,
        request_reference=data.request_reference,
        data_items=list(data.data_items),
        subject_ids=list(data.subject_ids),
        necessity_review=data.necessity_review,
        requested_by=staff.id,
        requester_role=staff.role.value,
        requested_at=now,
        stop_overridden=checked.stop_overridden,
    )
    await requests.insert(tx, found)
    await record_event(
        tx,
        Tag.DISCLOSURE_REQUESTED,
        actor=staff.actor,
        at=now,
        subject=found.id,
        details={
            "legal_basis": data.legal_basis,
            "subjects": len(data.subject_ids),
            "items": found.data_items,
            "stop_overridden": len(checked.stop_overridden or ()),
        },
    )
    return found


async def _pending(tx: Tx, ctx: Context, *, staff: Staff, request_id: str) -> DisclosureRequest:
    found = await requests.get(tx, request_id, lock=True)
    if found is None:
        raise RequestNotFound()
    if found.requested_by == staff.id:
        raise SelfApproval()
    # Independent eyes: whoever made the requester (created the account, granted its
    # role) cannot review the request, nor can someone the requester made.
    if await accounts.related(tx, ctx, first=found.requested_by, second=staff.id):
        raise DependentApprover(
            "the requester and the approver created or granted one another's account"
        )
    if found.status != "requested":
        raise WrongState(f"the request is {found.status}, not awaiting review")
    return found


async def decide(
    tx: Tx, ctx: Context, *, staff: Staff, ip: str, request_id: str, note: str, approve: bool
) -> DisclosureRequest:
    """Approve or reject a request: a privacy officer who is not its requester, with a note."""
    found = await _pending(tx, ctx, staff=staff, request_id=request_id)
    # Nothing is written yet: a number found is kept as the staff member's search.
    await free_text.refuse_registered_number(tx, ctx, field="note", text=note, staff=staff, ip=ip)
    if approve:
        checked = await check_subjects(
            tx,
            subject_ids=found.subject_ids,
            legal_basis=found.legal_basis,
            recipient=found.recipient_key,
        )
        if checked.stop_overridden != found.stop_overridden:
            # A stop came (or went) since the request: the approver decides on it.
            await requests.set_stop_overridden(
                tx, request_id=found.id, subjects=checked.stop_overridden
            )
            found.stop_overridden = checked.stop_overridden
    now = ctx.clock.now()
    status = "approved" if approve else "rejected"
    if not await requests.decide(
        tx, request_id=found.id, status=status, by=staff.id, at=now, note=note
    ):
        raise WrongState("the request was decided meanwhile")
    await record_event(
        tx,
        Tag.DISCLOSURE_APPROVED if approve else Tag.DISCLOSURE_REJECTED,
        actor=staff.actor,
        at=now,
        subject=found.id,
    )
    found.status, found.decided_by, found.decided_at = status, staff.id, now
    found.decision_note = note
    return found


async def release(tx: Tx, ctx: Context, *, staff: Staff, request_id: str, ip: str) -> Release:
    """Build the package and append its ledger entry, in this one transaction.

    The package holds full numbers when it lists ``phone_number``: like a reveal, each
    subject's then appears in the access log, in the transaction that appends the entry.
    """
    found = await requests.get(tx, request_id, lock=True)
    if found is None:
        raise RequestNotFound()
    if found.requested_by == staff.id:
        # The package may hold full numbers: not into the hands of who asked for them.
        raise SelfApproval("the requester may not release their own request")
    if found.status == "released":
        released_at = found.released_at.isoformat() if found.released_at else "?"
        raise AlreadyReleased(f"released at {released_at} as entry {found.ledger_seq}")
    if found.status != "approved":
        raise WrongState(f"the request is {found.status}; only an approved request is released")
    # The subjects as they are when the entry is appended: a stop, a withdrawal or an
    # erasure either committed before this check or waits until the release commits.
    await registry.lock_subscribers(tx, found.subject_ids)
    # An erased subject first: its consents and stop went with it, and "no consent" would
    # say the wrong thing about someone who is no longer in the registry.
    if gone := await gone_now(tx, found):
        raise SubjectGone(subject_ids=gone)
    checked = await check_subjects(
        tx,
        subject_ids=found.subject_ids,
        legal_basis=found.legal_basis,
        recipient=found.recipient_key,
    )
    if checked.stop_overridden != found.stop_overridden:
        await requests.set_stop_overridden(
            tx, request_id=found.id, subjects=checked.stop_overridden
        )
    await chain.lock(tx)  # from here the head is ours until commit
    now = ctx.clock.now()
    seq = (await chain.head(tx))[0] + 1
    package_json, package_csv = await package.build(
        tx, ctx, request=found, seq=seq, released_at=now
    )
    entry = await chain.append(
        tx,
        {
            "recorded_at": now,
            "request_id": found.id,
            "recipient_organisation": found.recipient_organisation,
            "recipient_officer": found.recipient_officer,
            "recipient_contact": found.recipient_contact,
            "recipient_key": found.recipient_key,
            "legal_basis": found.legal_basis,
            "purpose": found.purpose,
            "request_reference": found.request_reference,
            "data_items": found.data_items,
            "subject_ids": found.subject_ids,
            "requested_by": found.requested_by,
            "approved_by": found.decided_by,
            "released_by": staff.id,
            "necessity_review": found.necessity_review,
            "approval_note": found.decision_note,
            "consent": checked.consent,
            "stop_overridden": checked.stop_overridden,
            "package_sha256": canonical.sha256_hex(package_json),
            "package_csv_sha256": canonical.sha256_hex(package_csv),
        },
    )
    if not await requests.mark_released(tx, request_id=found.id, entry=entry):
        raise AlreadyReleased()  # rolls the entry back with it
    await record_event(
        tx,
        Tag.DISCLOSURE_RELEASED,
        actor=staff.actor,
        at=now,
        subject=found.id,
        details={"ledger_seq": entry.seq, "package_sha256": entry.package_sha256},
    )
    if "phone_number" in entry.data_items:
        for subject in entry.subject_ids:
            await access_log.log_access(
                tx,
                ctx,
                staff=staff,
                ip=ip,
                subscriber_id=subject,
                action="disclosure_release",
                reason=f"disclosure {found.id}, ledger entry {entry.seq}",
            )
    return Release(
        request_id=found.id, entry=entry, package_json=package_json, package_csv=package_csv
    )


async def made_by(tx: Tx, staff: Staff) -> tuple[int, DisclosureRequest | None]:
    """How many disclosure requests ``staff`` made, and the newest."""
    return await requests.made_by(tx, staff.id)


async def get(tx: Tx, ctx: Context, *, request_id: str) -> DisclosureRequest:
    """One request (no number is ever in it)."""
    found = await requests.get(tx, request_id)
    if found is None:
        raise RequestNotFound()
    return found


async def gone_now(tx: Tx, found: DisclosureRequest) -> list[str]:
    """The request's subjects erased since it was made: it can no longer be released
    (``409 disclosure-subject-gone``), and its page says so rather than offer it."""
    return sorted(
        set(found.subject_ids) - await subjects.existing_subscribers(tx, found.subject_ids)
    )


async def stopped_now(tx: Tx, found: DisclosureRequest) -> list[str]:
    """The request's subjects who have stopped third-party provision as of now: what its
    decision and release will meet (refused, or recorded as overridden), for the person
    who weighs it to see before deciding."""
    return sorted(await subjects.stopped_subjects(tx, found.subject_ids))


async def list_requests(
    tx: Tx, ctx: Context, *, status: str | None = None, limit: int = 100
) -> list[DisclosureRequest]:
    """Requests, newest first, optionally of one status."""
    return await requests.list_newest(tx, status=status, limit=limit)
