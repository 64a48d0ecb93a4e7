"""Audit events named by a tag enum, written in the caller's transaction."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlmodel import Session

from app.models import AuditEvent


class Tag(enum.StrEnum):
    API_KEY_CREATED = "service:api_key:created"
    API_KEY_REVOKED = "service:api_key:revoked"
    VERIFICATION_STARTED = "verification:started"
    VERIFICATION_RESENT = "verification:resent"
    VERIFICATION_APPROVED = "verification:approved"
    VERIFICATION_CHECK_FAILED = "verification:check_failed"
    SEND_LIMITED = "verification:send_limited"
    SMS_SENT = "sms:sent"
    SMS_FAILED = "sms:failed"


def record_event(
    session: Session,
    tag: Tag,
    *,
    actor: str,
    at: dt.datetime,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add an audit event to the current transaction; it commits with the action."""
    session.add(
        AuditEvent(tag=tag.value, actor=actor, subject=subject, at=at, details=details or {})
    )
