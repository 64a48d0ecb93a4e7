"""The data subject's say over third-party provision, and their view of the ledger.

- consent to provide to one recipient, given and withdrawn (a ``consent`` disclosure
  needs it for every subject);
- a stop of third-party provision (APPI Art. 35(5)): after it, only ``law`` and
  ``investigation_compelled`` disclosures may include the subject;
- the disclosure records about the subject (APPI Art. 33(5)).

The first functions are the subject's own actions (``actor`` None: the subject). Staff
who handle a subject's request by phone or letter go through :func:`staff_change_stop`
and its siblings, which name the staff member and put the access in the access log, in
the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.errors import InvalidInput
from app.core.tx import Tx
from app.ledger import canonical
from app.ledger import repository as ledger
from app.ledger import subjects_repository as subjects
from app.ledger.errors import SubjectNotFound
from app.ledger.rules import recipient_key
from app.ledger.schemas import (
    ProvisionConsentChange,
    ProvisionStopChange,
    RecipientPublic,
    SubjectConsentPublic,
    SubjectRecordPublic,
)
from app.models.ledger import DisclosureConsent, DisclosureStop
from app.registry import access_log
from app.registry import service as registry
from app.staff.auth import Staff


@dataclass(frozen=True)
class ProvisionState:
    """A subject's stop (if any) and consents to provide."""

    stopped_at: dt.datetime | None
    consents: list[DisclosureConsent]


async def _subject(tx: Tx, subscriber_id: str) -> str:
    """The subject, before a change to their provision: after any release in progress
    (a release checks its subjects under the same lock)."""
    await registry.lock_subscribers(tx, [subscriber_id])
    if not await subjects.existing_subscribers(tx, [subscriber_id]):
        raise SubjectNotFound()
    return subscriber_id


async def give_consent(
    tx: Tx,
    ctx: Context,
    *,
    subscriber_id: str,
    actor: str | None = None,
    recipient: str,
    source: str,
) -> DisclosureConsent:
    """Record the subject's consent to have their data provided to ``recipient``."""
    subject = await _subject(tx, subscriber_id)
    now = ctx.clock.now()
    consent = DisclosureConsent(
        subscriber_id=subject,
        recipient_key=recipient_key(recipient),
        recipient_organisation=recipient,
        source=source,
        granted_at=now,
    )
    await subjects.upsert_consent(tx, consent)
    await record_event(
        tx,
        Tag.PROVISION_CONSENT_GIVEN,
        actor=actor or f"subject:{subject}",
        at=now,
        subject=subject,
        details={"recipient_key": consent.recipient_key, "source": source},
    )
    return consent


async def withdraw_consent(
    tx: Tx,
    ctx: Context,
    *,
    subscriber_id: str,
    actor: str | None = None,
    recipient: str,
    source: str,
) -> bool:
    """Withdraw that consent at once; False if none was live."""
    subject = await _subject(tx, subscriber_id)
    key = recipient_key(recipient)
    now = ctx.clock.now()
    withdrawn = await subjects.withdraw_consent(
        tx, subscriber_id=subject, recipient_key=key, at=now
    )
    if withdrawn:
        await record_event(
            tx,
            Tag.PROVISION_CONSENT_WITHDRAWN,
            actor=actor or f"subject:{subject}",
            at=now,
            subject=subject,
            details={"recipient_key": key, "source": source},
        )
    return withdrawn


async def stop_provision(
    tx: Tx, ctx: Context, *, subscriber_id: str, actor: str | None = None, source: str
) -> DisclosureStop:
    """Stop third-party provision for the subject (idempotent: the first stop stays)."""
    subject = await _subject(tx, subscriber_id)
    now = ctx.clock.now()
    stop = DisclosureStop(subscriber_id=subject, source=source, stopped_at=now)
    if await subjects.insert_stop(tx, stop):
        await record_event(
            tx,
            Tag.PROVISION_STOPPED,
            actor=actor or f"subject:{subject}",
            at=now,
            subject=subject,
            details={"source": source},
        )
        return stop
    kept = await subjects.stop_of(tx, subject)
    return kept if kept is not None else stop


async def resume_provision(
    tx: Tx, ctx: Context, *, subscriber_id: str, actor: str | None = None, source: str
) -> bool:
    """Lift the subject's stop (their own choice); False if there was none."""
    subject = await _subject(tx, subscriber_id)
    now = ctx.clock.now()
    lifted = await subjects.delete_stop(tx, subscriber_id=subject)
    if lifted:
        await record_event(
            tx,
            Tag.PROVISION_RESUMED,
            actor=actor or f"subject:{subject}",
            at=now,
            subject=subject,
            details={"source": source},
        )
    return lifted


async def provision_state(tx: Tx, ctx: Context, *, subscriber_id: str) -> ProvisionState:
    """The subject's stop (if any) and consents to provide."""
    subject = await _subject(tx, subscriber_id)
    stop = await subjects.stop_of(tx, subject)
    return ProvisionState(
        stopped_at=None if stop is None else stop.stopped_at,
        consents=await subjects.consents_of(tx, subject),
    )


async def subject_records(
    tx: Tx, ctx: Context, *, subscriber_id: str, after_seq: int = 0, limit: int = 100
) -> list[SubjectRecordPublic]:
    """The disclosure records about one subject, oldest first (APPI Art. 33(5)).

    Each says when, to whom, on which basis, for what, which items, and (for
    ``consent``) the subject's own consent; other subjects of the same disclosure are
    only counted, never named.
    """
    subject = await _subject(tx, subscriber_id)
    found = await ledger.for_subject(tx, subject_id=subject, after_seq=after_seq, limit=limit)
    return [
        SubjectRecordPublic(
            seq=entry.seq,
            recorded_at=canonical.timestamp(entry.recorded_at),
            recipient=RecipientPublic(
                organisation=entry.recipient_organisation,
                officer=entry.recipient_officer,
                contact=entry.recipient_contact,
            ),
            legal_basis=entry.legal_basis,
            purpose=entry.purpose,
            request_reference=entry.request_reference,
            data_items=entry.data_items,
            consent=(
                SubjectConsentPublic.model_validate(entry.consent[subject])
                if entry.consent and subject in entry.consent
                else None
            ),
            stop_overridden=subject in (entry.stop_overridden or ()),
            other_subjects=len(entry.subject_ids) - 1,
            entry_hash=entry.entry_hash,
        )
        for entry in found
    ]


# -- staff handling a subject's request -------------------------------------------------


async def staff_change_stop(
    tx: Tx, ctx: Context, *, staff: Staff, ip: str, subscriber_id: str, change: ProvisionStopChange
) -> ProvisionState:
    """Record a subject's stop (or resume) of provision taken by staff; logged as an access."""
    step = stop_provision if change.action == "stop" else resume_provision
    await step(tx, ctx, subscriber_id=subscriber_id, actor=staff.actor, source=change.source)
    await access_log.log_access(
        tx,
        ctx,
        staff=staff,
        ip=ip,
        subscriber_id=subscriber_id,
        action="provision_change",
        reason=f"{change.action} third-party provision (source: {change.source})",
    )
    return await provision_state(tx, ctx, subscriber_id=subscriber_id)


async def staff_change_consent(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    ip: str,
    subscriber_id: str,
    change: ProvisionConsentChange,
) -> ProvisionState:
    """Record a subject's consent (or withdrawal) taken by staff; logged as an access. A
    withdrawal that matches no live consent is refused (422 on ``recipient``, nothing
    written): it answered as done, and a release went on under the consent the person
    had asked to withdraw, written another way (ｶﾌﾞｼｷｶﾞｲｼｬ for 株式会社)."""
    step = give_consent if change.action == "give" else withdraw_consent
    changed = await step(
        tx,
        ctx,
        subscriber_id=subscriber_id,
        actor=staff.actor,
        recipient=change.recipient,
        source=change.source,
    )
    if changed is False:
        raise InvalidInput.field(
            "recipient",
            "no live consent to this recipient: type it as the consent names it "
            "(the subscriber's provision state lists them)",
        )
    await access_log.log_access(
        tx,
        ctx,
        staff=staff,
        ip=ip,
        subscriber_id=subscriber_id,
        action="provision_change",
        reason=f"{change.action} consent to provide to {change.recipient[:100]} "
        f"(source: {change.source})",
    )
    return await provision_state(tx, ctx, subscriber_id=subscriber_id)


async def staff_read_state(
    tx: Tx, ctx: Context, *, staff: Staff, ip: str, subscriber_id: str
) -> ProvisionState:
    """A subject's provision state, read by staff; logged as an access."""
    state = await provision_state(tx, ctx, subscriber_id=subscriber_id)
    await access_log.log_access(
        tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, action="provision_read"
    )
    return state


async def staff_read_records(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    ip: str,
    subscriber_id: str,
    after_seq: int,
    limit: int,
) -> list[SubjectRecordPublic]:
    """A subject's disclosure records, read by staff for the subject; logged as an access."""
    records = await subject_records(
        tx, ctx, subscriber_id=subscriber_id, after_seq=after_seq, limit=limit
    )
    await access_log.log_access(
        tx, ctx, staff=staff, ip=ip, subscriber_id=subscriber_id, action="disclosures_read"
    )
    return records
