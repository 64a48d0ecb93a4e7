"""Request and response shapes of the staff's registry views and the access log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

from app.core.instants import Instant
from app.core.text import no_phone_number, visible

# A subscriber's opaque id, as every route takes it.
SUBSCRIBER_ID_PATTERN = r"^sub_[A-Za-z0-9_\-]+$"
SubscriberIdPath = Annotated[str, Path(min_length=5, max_length=40, pattern=SUBSCRIBER_ID_PATTERN)]
AccessAction = Literal[
    "search_number",
    "read",
    "reveal",
    # A disclosure package left with the subject's full number (one row per subject).
    "disclosure_release",
    # A subject's request about third-party provision, handled by staff: read or change.
    "provision_read",
    "provision_change",
    "disclosures_read",
    # A data subject's request recorded or carried out by staff (app/subject/register.py).
    "subject_request",
]
MIN_REASON, MAX_REASON = 10, 500


def clean_reason(reason: str) -> str:
    """A stated reason with its runs of whitespace made one space: 10 to 500 printable
    characters once cleaned, else ValueError. (Whether it holds a phone number depends on
    the regions served: app.registry.free_text.check_reason.)"""
    cleaned = " ".join(reason.split())
    if not MIN_REASON <= len(cleaned) <= MAX_REASON:
        raise ValueError(f"must be {MIN_REASON} to {MAX_REASON} characters")
    if not cleaned.isprintable():
        raise ValueError("must be printable text")
    return visible(no_phone_number(cleaned))


class SubscriberSearch(BaseModel):
    """Find a subscriber by number. The number travels in the body, never in a URL."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=32, examples=["090-1234-5678"])


class RevealRequest(BaseModel):
    """Why the full number is needed: stated, and kept in the access log."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[
        str,
        Field(
            min_length=MIN_REASON,
            max_length=MAX_REASON,
            description="10 to 500 characters; must not contain a phone number",
            examples=["Subject's access request #2026-118 by letter"],
        ),
        AfterValidator(clean_reason),
    ]


class PurposePublic(BaseModel):
    """A purpose the number was verified for."""

    purpose: str
    verified_at: dt.datetime


class RevealedPublic(BaseModel):
    """A full number, for a privacy officer; the view is in the access log."""

    subscriber_id: str
    phone: str = Field(description="E.164", examples=["+819012345678"])


class AccessLogFilter(BaseModel):
    """Which access-log entries an auditor asks for (query parameters, all optional)."""

    since: Instant | None = Field(None, description="from this instant (inclusive, RFC 3339)")
    until: Instant | None = Field(None, description="to this instant (exclusive, RFC 3339)")
    staff_id: str | None = Field(
        None, max_length=40, pattern=r"^stf_[A-Za-z0-9_\-]+$", description="one account"
    )
    subscriber_id: str | None = Field(
        None, max_length=40, pattern=SUBSCRIBER_ID_PATTERN, description="one subject"
    )
    action: AccessAction | None = None

    @field_validator("until")
    @classmethod
    def _after_since(cls, until: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        since = info.data.get("since")
        if until is not None and since is not None and until <= since:
            raise ValueError("must be after since")
        return until


class AccessLogEntryPublic(BaseModel):
    """Who looked at which subscriber, when, from where, how and why. Never the number."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    accessed_at: dt.datetime
    staff_id: str
    staff_username: str
    staff_role: str
    source_ip: str
    subscriber_id: str | None = Field(description="null for a search that found no one")
    action: AccessAction
    reason: str | None


class AccessLogPage(BaseModel):
    """A page of the access log, newest first."""

    entries: list[AccessLogEntryPublic]
    next_cursor: int | None = Field(description="pass as `cursor` for the next (older) page")
