"""The data subject's say over third-party provision, and their view of the ledger.

- consent to provide to one recipient, given and withdrawn (a ``consent`` disclosure
  needs it for every subject);
- a stop of third-party provision (APPI Art. 35(5)): after it, only ``law`` and
  ``investigation_compelled`` disclosures may include the subject;
- the disclosure records about the subject (APPI Art. 33(5)).

These are the subject's actions; the routes that prove the subject's identity (a
token from an SMS check made for that purpose) call them.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Row, Tx
from app.core.errors import InvalidInput
from app.ledger import canonical
from app.ledger import repository as repo
from app.ledger.errors import SubjectNotFound
from app.ledger.workflow import recipient_key

_SOURCE = re.compile(r"^[A-Za-z0-9_.:\-]{1,40}$")


def _subject(tx: Tx, subscriber_id: str) -> str:
    if not isinstance(subscriber_id, str) or not repo.existing_subscribers(tx, [subscriber_id]):
        raise SubjectNotFound()
    return subscriber_id


def _source(source: str) -> str:
    if not isinstance(source, str) or not _SOURCE.match(source):
        raise InvalidInput.field("source", "must be 1 to 40 of A-Z a-z 0-9 _ . : -")
    return source


def _organisation(value: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= 200 or not text.isprintable():
        raise InvalidInput.field("recipient", "must be 1 to 200 printable characters")
    return text


def give_consent(
    tx: Tx,
    ctx: Context,
    *,
    subscriber_id: str,
    actor: str | None = None,
    recipient: str,
    source: str,
) -> Row:
    """Record the subject's consent to have their data provided to ``recipient``."""
    subject = _subject(tx, subscriber_id)
    organisation = _organisation(recipient)
    now = ctx.clock.now()
    row = Row(
        subscriber_id=subject,
        recipient_key=recipient_key(organisation),
        recipient_organisation=organisation,
        source=_source(source),
        granted_at=now,
    )
    repo.upsert_consent(tx, row)
    record_event(
        tx,
        Tag.PROVISION_CONSENT_GIVEN,
        actor=actor or f"subject:{subject}",
        at=now,
        subject=subject,
        details={"recipient_key": row.recipient_key, "source": row.source},
    )
    return row


def withdraw_consent(
    tx: Tx,
    ctx: Context,
    *,
    subscriber_id: str,
    actor: str | None = None,
    recipient: str,
    source: str,
) -> bool:
    """Withdraw that consent at once; False if none was live."""
    subject = _subject(tx, subscriber_id)
    key = recipient_key(_organisation(recipient))
    now = ctx.clock.now()
    withdrawn = repo.withdraw_consent(tx, subscriber_id=subject, recipient_key=key, at=now)
    if withdrawn:
        record_event(
            tx,
            Tag.PROVISION_CONSENT_WITHDRAWN,
            actor=actor or f"subject:{subject}",
            at=now,
            subject=subject,
            details={"recipient_key": key, "source": _source(source)},
        )
    return withdrawn


def stop_provision(
    tx: Tx, ctx: Context, *, subscriber_id: str, actor: str | None = None, source: str
) -> Row:
    """Stop third-party provision for the subject (idempotent: the first stop stays)."""
    subject = _subject(tx, subscriber_id)
    now = ctx.clock.now()
    if repo.insert_stop(tx, subscriber_id=subject, source=_source(source), at=now):
        record_event(
            tx,
            Tag.PROVISION_STOPPED,
            actor=actor or f"subject:{subject}",
            at=now,
            subject=subject,
            details={"source": source},
        )
    stop = repo.stop_of(tx, subject)
    assert stop is not None  # noqa: S101 (just written or already there)
    return stop


def resume_provision(
    tx: Tx, ctx: Context, *, subscriber_id: str, actor: str | None = None, source: str
) -> bool:
    """Lift the subject's stop (their own choice); False if there was none."""
    subject = _subject(tx, subscriber_id)
    now = ctx.clock.now()
    lifted = repo.delete_stop(tx, subscriber_id=subject)
    if lifted:
        record_event(
            tx,
            Tag.PROVISION_RESUMED,
            actor=actor or f"subject:{subject}",
            at=now,
            subject=subject,
            details={"source": _source(source)},
        )
    return lifted


def provision_state(tx: Tx, *, subscriber_id: str) -> dict[str, Any]:
    """The subject's stop (if any) and consents to provide."""
    subject = _subject(tx, subscriber_id)
    stop = repo.stop_of(tx, subject)
    return {
        "stopped_at": None if stop is None else stop.stopped_at,
        "consents": repo.consents_of(tx, subject),
    }


def subject_records(
    tx: Tx, *, subscriber_id: str, after_seq: int = 0, limit: int = 100
) -> list[dict[str, Any]]:
    """The disclosure records about one subject, oldest first (APPI Art. 33(5)).

    Each says when, to whom, on which basis, for what, which items, and (for
    ``consent``) the subject's own consent; other subjects of the same disclosure are
    only counted, never named.
    """
    if not 1 <= limit <= 1000:
        raise InvalidInput.field("limit", "must be 1 to 1000", location="query")
    subject = _subject(tx, subscriber_id)
    records = []
    for row in repo.entries_for_subject(tx, subject_id=subject, limit=limit, after_seq=after_seq):
        consent = orjson.loads(row.consent) if row.consent else None
        records.append(
            {
                "seq": row.seq,
                "recorded_at": canonical.timestamp(row.recorded_at),
                "recipient": {
                    "organisation": row.recipient_organisation,
                    "officer": row.recipient_officer,
                    "contact": row.recipient_contact,
                },
                "legal_basis": row.legal_basis,
                "purpose": row.purpose,
                "request_reference": row.request_reference,
                "data_items": orjson.loads(row.data_items),
                "consent": None if consent is None else consent.get(subject),
                "other_subjects": len(orjson.loads(row.subject_ids)) - 1,
                "entry_hash": row.entry_hash,
            }
        )
    return records
