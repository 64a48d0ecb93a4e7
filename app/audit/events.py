"""Audit events named by a tag enum, written in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from app.core.sql import Sql
from app.core.tx import Tx


class Tag(enum.StrEnum):
    API_KEY_CREATED = "service:api_key:created"
    API_KEY_REVOKED = "service:api_key:revoked"
    API_KEY_ROTATED = "service:api_key:rotated"
    COUPON_REDEEMED = "coupon:redeemed"
    COUPON_REDEMPTION_REFUSED = "coupon:redemption_refused"
    VERIFICATION_STARTED = "verification:started"
    VERIFICATION_RESENT = "verification:resent"
    VERIFICATION_APPROVED = "verification:approved"
    VERIFICATION_CHECK_FAILED = "verification:check_failed"
    SMS_SENT = "sms:sent"
    SMS_FAILED = "sms:failed"
    PUMPING_PREFIX_BLOCKED = "sms:pumping:prefix_blocked"
    PUMPING_PREFIX_LIFTED = "sms:pumping:prefix_lifted"
    SMS_EXPIRED = "sms:expired"
    SMS_UNKNOWN = "sms:unknown"
    RETENTION_PURGED = "retention:purged"
    SMS_CANCELLED = "sms:cancelled"
    CONSENT_OPTED_IN = "consent:opted_in"
    CONSENT_OPTED_OUT = "consent:opted_out"
    DELIVERY_CREATED = "delivery:created"
    DELIVERY_QUEUED = "delivery:queued"
    STAFF_LOGIN_SUCCEEDED = "staff:login:succeeded"
    STAFF_LOGIN_FAILED = "staff:login:failed"
    STAFF_LOGIN_LOCKED = "staff:login:locked"
    STAFF_LOGGED_OUT = "staff:session:logged_out"
    STAFF_SESSIONS_REVOKED = "staff:session:revoked_all"
    STAFF_CREATED = "staff:account:created"
    STAFF_ROLE_CHANGED = "staff:account:role_changed"
    STAFF_DISABLED = "staff:account:disabled"
    STAFF_PASSWORD_CHANGED = "staff:account:password_changed"  # noqa: S105 (a tag)
    STAFF_OFFBOARDED = "staff:account:offboarded"
    STAFF_BREAK_GLASS = "staff:account:break_glass"
    STAFF_UNLOCKED = "staff:account:unlocked"
    STAFF_ACTIVATED = "staff:account:activated"
    STAFF_INVITED = "staff:invitation:created"
    STAFF_INVITATION_REVOKED = "staff:invitation:revoked"
    STAFF_INVITATION_PASSWORD_SET = "staff:invitation:password_set"  # noqa: S105 (a tag)
    STAFF_INVITATION_REDEEMED = "staff:invitation:redeemed"
    STAFF_GRANT_PROPOSED = "staff:grant:proposed"
    STAFF_GRANT_CONFIRMED = "staff:grant:confirmed"
    STAFF_GRANT_REJECTED = "staff:grant:rejected"
    STAFF_GRANT_CANCELLED = "staff:grant:cancelled"
    STAFF_TOTP_ENROLMENT_STARTED = "staff:totp:enrolment_started"
    STAFF_TOTP_ENROLLED = "staff:totp:enrolled"
    STAFF_TOTP_RESET = "staff:totp:reset"
    STAFF_TOTP_REENCRYPTED = "staff:totp:reencrypted"
    STAFF_RECOVERY_CODES_ISSUED = "staff:recovery_codes:issued"
    STAFF_RECOVERY_CODE_USED = "staff:recovery_code:used"
    STAFF_SUBSCRIBER_SEARCHED = "staff:subscriber:searched"
    STAFF_SUBSCRIBER_READ = "staff:subscriber:read"
    STAFF_SUBSCRIBER_REVEALED = "staff:subscriber:revealed"
    STAFF_ACCESS_LOG_READ = "staff:access_log:read"
    STAFF_ACCESS_LOG_EXPORTED = "staff:access_log:exported"
    DISCLOSURE_REQUESTED = "disclosure:requested"
    DISCLOSURE_APPROVED = "disclosure:approved"
    DISCLOSURE_REJECTED = "disclosure:rejected"
    DISCLOSURE_RELEASED = "disclosure:released"
    PROVISION_CONSENT_GIVEN = "subject:provision_consent:given"
    PROVISION_CONSENT_WITHDRAWN = "subject:provision_consent:withdrawn"
    PROVISION_STOPPED = "subject:provision:stopped"
    PROVISION_RESUMED = "subject:provision:resumed"
    SUBJECT_SESSION_OPENED = "subject:session:opened"
    SUBJECT_DATA_READ = "subject:data:read"
    SUBJECT_PURPOSE_STOPPED = "subject:purpose:stopped"
    SUBJECT_NUMBER_CORRECTED = "subject:number:corrected"
    SUBJECT_ERASED = "subject:erased"
    SUBJECT_REQUEST_RECORDED = "subject:request:recorded"
    SUBJECT_REQUEST_CLOSED = "subject:request:closed"
    LEDGER_CHECKPOINTED = "ledger:checkpoint:created"
    LEDGER_EXPORTED = "ledger:exported"
    LEDGER_VERIFIED = "ledger:verified"
    LEDGER_PURGED = "ledger:purged"


# Fixed SQL: an event is written by every start and check (see app.core.db.Sql).
_INSERT = Sql(
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "VALUES (:tag, :actor, :subject, :at, :details)"
)


def event(
    tag: Tag,
    *,
    actor: str,
    at: dt.datetime,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An audit row, for record_events."""
    return {
        "tag": tag.value,
        "actor": actor,
        "subject": subject,
        "at": at,
        "details": details or {},
    }


async def record_event(
    tx: Tx,
    tag: Tag,
    *,
    actor: str,
    at: dt.datetime,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an audit event to the current transaction; it commits with the action or not at all."""
    await tx.run(_INSERT, event(tag, actor=actor, at=at, subject=subject, details=details))


async def record_events(tx: Tx, events: list[dict[str, Any]]) -> None:
    """Add several audit events in one round trip."""
    await tx.run_many(_INSERT, events)
