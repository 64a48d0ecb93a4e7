"""Request and response shapes of the staff's registry views and the access log."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

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
]
MIN_REASON, MAX_REASON = 10, 500


class SubscriberSearch(BaseModel):
    """Find a subscriber by number. The number travels in the body, never in a URL."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=32, examples=["090-1234-5678"])


class RevealRequest(BaseModel):
    """Why the full number is needed: stated, and kept in the access log."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=MIN_REASON,
        max_length=MAX_REASON,
        description="10 to 500 characters; must not contain a phone number",
        examples=["Subject's access request #2026-118 by letter"],
    )


class PurposePublic(BaseModel):
    """A purpose the number was verified for."""

    purpose: str
    verified_at: dt.datetime


class ConsentSummaryPublic(BaseModel):
    """The current consent to one purpose."""

    purpose: str
    status: str = Field(description="opted_in or opted_out")
    source: str
    policy_version: str | None
    changed_at: dt.datetime


class SubscriberStaffView(BaseModel):
    """A subscriber as operators and privacy officers see it: the number masked."""

    id: str
    phone_masked: str = Field(examples=["+81 90-****-5678"])
    purposes: list[PurposePublic]
    consents: list[ConsentSummaryPublic]
    created_at: dt.datetime
    last_verified_at: dt.datetime


class SubscriberSearchResult(BaseModel):
    """The subscribers holding the number: none or one."""

    subscribers: list[SubscriberStaffView]


class RevealedPublic(BaseModel):
    """A full number, for a privacy officer; the view is in the access log."""

    subscriber_id: str
    phone: str = Field(description="E.164", examples=["+819012345678"])


class AccessLogEntryPublic(BaseModel):
    """Who looked at which subscriber, when, from where, how and why. Never the number."""

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
