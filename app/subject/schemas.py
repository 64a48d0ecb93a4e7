"""Request and response shapes of /v1/subject (the data subject's own routes) and of the
subject requests staff record for them."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.ledger.schemas import SubjectRecordPublic
from app.verification.schemas import Purpose


class RequestKind(enum.StrEnum):
    """What a data subject asked for."""

    ACCESS = "access"  # what is held
    DISCLOSURE_RECORDS = "disclosure_records"  # APPI Art. 33(5)
    WITHDRAW_DELIVERY = "withdraw_delivery"  # delivery consent
    STOP_USAGE = "stop_usage"  # coupon_usage use of the number
    STOP_PROVISION = "stop_provision"  # APPI Art. 35
    RESUME_PROVISION = "resume_provision"
    ERASE = "erase"
    CORRECT = "correct"


Channel = Literal["self_service", "phone", "letter", "email", "in_person", "retention"]
StaffChannel = Literal["phone", "letter", "email", "in_person"]


class SubjectStart(BaseModel):
    """Send a code to one's own number, to prove control of it."""

    model_config = ConfigDict(extra="forbid")

    # A number of the default region, which the body's other examples (none) leave it in.
    phone: str = Field(min_length=1, max_length=32, examples=["090-1234-5678"])
    country: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z]{2}$",
        description="the region a national-format number is read in (default: from locale)",
    )
    locale: str | None = Field(default=None, pattern=r"^(ja|ko|en)(-[A-Za-z]{2})?$")


class SubjectVerificationPublic(BaseModel):
    """A code on its way: check it within ``expires_at``."""

    verification_id: str
    phone_masked: str
    expires_at: dt.datetime
    attempts_left: int


class SubjectCodeCheck(BaseModel):
    """The code received by SMS, for the verification it belongs to."""

    model_config = ConfigDict(extra="forbid")

    verification_id: str = Field(min_length=5, max_length=40, pattern=r"^ver_[A-Za-z0-9_\-]+$")
    code: str = Field(pattern=r"^[0-9]{4,10}$", examples=["123456"])


class SubjectSessionPublic(BaseModel):
    """A subject session: the token is shown once; send it as ``Authorization: Bearer``."""

    token: str = Field(description="`smsreg_st_...`; valid on /v1/subject routes only")
    expires_at: dt.datetime
    subject_id: str = Field(description="the pseudonymous id the records name")


class PurposeHeldPublic(BaseModel):
    purpose: Purpose
    since: dt.datetime | None = Field(
        description="when the number was first verified for it (null: before this was kept)"
    )
    verified_at: dt.datetime = Field(description="when the number was last verified for it")


class ConsentHeldPublic(BaseModel):
    purpose: str
    action: str
    source: str
    policy_version: str | None
    at: dt.datetime


class RedemptionsHeldPublic(BaseModel):
    coupon_id: str
    count: int
    first_at: dt.datetime
    last_at: dt.datetime


class DeliveryHeldPublic(BaseModel):
    delivery_id: str
    queued_at: dt.datetime
    sent_at: dt.datetime | None
    state: str


class SubjectDataPublic(BaseModel):
    """Everything held about the subject's number (the number itself masked)."""

    subject_id: str
    phone_masked: str
    registered_at: dt.datetime
    last_verified_at: dt.datetime
    purposes: list[PurposeHeldPublic]
    consent_history: list[ConsentHeldPublic] = Field(description="newest first, at most 200")
    consent_history_total: int = Field(description="how many changes the history holds")
    redemptions: list[RedemptionsHeldPublic] = Field(description="per coupon, every one counted")
    deliveries: list[DeliveryHeldPublic] = Field(description="newest first, at most 200")
    deliveries_total: int = Field(description="how many coupon messages are kept")
    provision_stopped_at: dt.datetime | None = Field(
        description="when third-party provision was stopped (null: not stopped)"
    )
    session_expires_at: dt.datetime


class SubjectDisclosuresPublic(BaseModel):
    """The disclosure records about the subject, oldest first."""

    records: list[SubjectRecordPublic]


class ProvisionChoice(BaseModel):
    """Stop or resume third-party provision."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["stop", "resume"]


class ActionDonePublic(BaseModel):
    """A subject's request, done at once: its id in the request register."""

    request_id: str
    kind: RequestKind
    changed: bool = Field(description="false when nothing was left to change")
    done_at: dt.datetime


class CorrectedPublic(BaseModel):
    """The records now belong to the new number."""

    request_id: str
    phone_masked: str
    done_at: dt.datetime


class ErasureConfirm(BaseModel):
    """Erasure cannot be undone: the caller confirms it."""

    model_config = ConfigDict(extra="forbid")

    confirm: Literal[True]

    @field_validator("confirm", mode="before")
    @classmethod
    def _exactly_true(cls, value: object) -> object:
        # A Literal compares by ==, so 1 would pass as True: only JSON true confirms.
        if value is not True:
            raise ValueError("must be true")
        return value


class KeptPublic(BaseModel):
    what: str
    count: int
    why: str


class ErasureReceiptPublic(BaseModel):
    """What an erasure destroyed and what is kept, and why; recorded under ``id``."""

    id: str
    subject_id: str
    erased_at: dt.datetime
    erased: dict[str, int] = Field(description="rows deleted, by table")
    kept: list[KeptPublic]


class SubjectRequestCreate(BaseModel):
    """A subject's request received by phone, letter or in person, recorded by staff."""

    model_config = ConfigDict(extra="forbid")

    subject_id: str | None = Field(
        default=None,
        pattern=r"^sub_[A-Za-z0-9_\-]{1,36}$",
        description="the subscriber, once found (search by number first); null: not yet",
    )
    kind: RequestKind
    channel: StaffChannel
    reason: str = Field(min_length=10, max_length=500, description="what was asked, and how")


class SubjectRequestDone(BaseModel):
    """Close a request: done (carried out for the subject) or refused, with a note."""

    model_config = ConfigDict(extra="forbid")

    outcome: Literal["done", "refused"]
    note: str = Field(min_length=10, max_length=500)


class SubjectRequestPublic(BaseModel):
    """A subject request in the register."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    subject_id: str | None
    kind: RequestKind
    channel: Channel
    reason: str | None
    status: Literal["open", "done", "refused"]
    received_at: dt.datetime
    due_at: dt.datetime
    overdue: bool
    recorded_by: str
    done_at: dt.datetime | None
    done_by: str | None
    note: str | None
    receipt: dict[str, Any] | None


class SubjectRequestsPublic(BaseModel):
    requests: list[SubjectRequestPublic]
