"""Request and response shapes of /v1/verifications."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.sms.outbox.messages import DeliveryState

Purpose = Literal["coupon_usage", "coupon_delivery", "data_subject"]
Status = Literal["pending", "approved", "expired", "exhausted", "superseded"]


class VerificationStart(BaseModel):
    """Start a verification: send a code to this number."""

    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=1, max_length=32, examples=["090-1234-5678"])
    purpose: Purpose
    locale: str | None = Field(
        default=None,
        pattern=r"^(ja|ko|en)(-[A-Za-z]{2})?$",
        description="message language: ja, ko or en (a region suffix like ja-JP is allowed)",
    )
    country: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z]{2}$",
        examples=["JP"],  # the phone example's: a generated request must be taken
        description="the region a national-format number is read in (ISO 3166 code); "
        "default: implied by locale (ko: KR, ja: JP), else the service's default region",
    )


class VerificationCheck(BaseModel):
    """The code the person typed."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=r"^[0-9]{4,10}$", examples=["123456"])


class DeliveryPublic(BaseModel):
    """What happened to the latest SMS of a verification."""

    state: DeliveryState = Field(
        description="queued (waiting), sending, sent (the carrier has it), delivered, "
        "undelivered, failed, expired (not sent in time), unknown (the send's outcome was "
        "lost: never sent again), cancelled"
    )
    error_code: str | None = None
    sent_at: dt.datetime | None = None


class VerificationPublic(BaseModel):
    """A verification as its client sees it: never the full number, never the code."""

    id: str
    status: Status
    purpose: Purpose
    phone_masked: str
    expires_at: dt.datetime
    resend_after: dt.datetime
    attempts_left: int
    delivery: DeliveryPublic | None = None
    subscriber_id: str | None = None


class CheckResultPublic(BaseModel):
    """A successful check."""

    id: str
    status: Literal["approved"]
    purpose: Purpose
    subscriber_id: str | None = Field(
        description="the registry's opaque id for the number; null for data_subject checks "
        "of a number not in the registry"
    )
