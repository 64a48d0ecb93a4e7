"""Request and response shapes of the disclosure workflow and of the subjects' requests
about provision (the auditors' tools: audit_schemas.py)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from app.core.text import NoPhoneNumber
from app.ledger.rules import (
    DATA_ITEMS,
    MAX_SUBJECTS,
    NEEDS_REFERENCE,
    SOURCE_PATTERN,
    DataItem,
    LegalBasis,
    RequestStatus,
    no_controls,
)
from app.registry.schemas import SUBSCRIBER_ID_PATTERN

SubjectId = Annotated[
    str, StringConstraints(min_length=5, max_length=40, pattern=SUBSCRIBER_ID_PATTERN)
]
Source = Annotated[str, Field(min_length=1, max_length=40, pattern=SOURCE_PATTERN), NoPhoneNumber]

# Free text: trimmed, of a bounded length, without control characters but \n and \t, and
# (but for the contact and the reference, checked against the registry instead) without
# a run of 9 or more digits (app/core/text.py). The contact may hold the recipient's own
# number, never a subscriber's (app.ledger.workflow).
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(no_controls),
    NoPhoneNumber,
]
Contact = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=300),
    AfterValidator(no_controls),
]
Reference = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=200),
    AfterValidator(no_controls),
]
Note = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=2000),
    AfterValidator(no_controls),
    NoPhoneNumber,
]
Purpose = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=10, max_length=2000),
    AfterValidator(no_controls),
    NoPhoneNumber,
]
Review = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=10, max_length=4000),
    AfterValidator(no_controls),
    NoPhoneNumber,
]


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat a value")
    return values


def _in_package_order(items: list[str]) -> list[str]:
    return [item for item in DATA_ITEMS if item in items]


# -- the workflow -----------------------------------------------------------------------


class RecipientIn(BaseModel):
    """Who receives the data."""

    model_config = ConfigDict(extra="forbid")

    organisation: Name = Field(description="e.g. the police station")
    officer: Name = Field(description="the officer in charge")
    contact: Contact = Field(description="address, phone or e-mail")


class DisclosureRequestCreate(BaseModel):
    """A request to provide subjects' data to a third party (subjects by id, never by number)."""

    # A mistyped field (``request_refrence``) must not vanish from a record kept 3 years.
    model_config = ConfigDict(extra="forbid")

    recipient: RecipientIn
    legal_basis: LegalBasis
    purpose: Purpose = Field(description="purpose or reason")
    request_reference: Annotated[
        Reference | None,
        BeforeValidator(_blank_is_none),
    ] = Field(
        default=None,
        validate_default=True,
        description="the request document (CCP Art. 197(2) inquiry, warrant); required for "
        "`law` and `investigation_compelled`",
    )
    data_items: Annotated[
        list[DataItem],
        Field(min_length=1, max_length=len(DATA_ITEMS)),
        AfterValidator(_distinct),
        AfterValidator(_in_package_order),
    ]
    subject_ids: Annotated[
        list[SubjectId],
        Field(min_length=1, max_length=MAX_SUBJECTS, description="subscriber ids"),
        AfterValidator(_distinct),
        AfterValidator(sorted),
    ]
    necessity_review: Review = Field(description="why this provision is necessary")

    @field_validator("request_reference")
    @classmethod
    def _reference_when_compelled(cls, value: str | None, info: ValidationInfo) -> str | None:
        basis = info.data.get("legal_basis")
        if value is None and basis in NEEDS_REFERENCE:
            raise ValueError(f"is required for {basis!r}: the inquiry (CCP Art. 197(2)) or warrant")
        return value


class Decision(BaseModel):
    """A privacy officer's approval or rejection, with the reason."""

    model_config = ConfigDict(extra="forbid")

    note: Note = Field(description="why it is approved or rejected")


class DisclosurePublic(BaseModel):
    """A disclosure request as staff see it: subject ids, never numbers."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    status: RequestStatus
    recipient_organisation: str
    recipient_officer: str
    recipient_contact: str
    legal_basis: str
    purpose: str
    request_reference: str | None = None
    data_items: list[str]
    subject_ids: list[str]
    necessity_review: str
    requested_by: str
    requested_at: dt.datetime
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    decision_note: str | None = None
    released_by: str | None = None
    released_at: dt.datetime | None = None
    ledger_seq: int | None = None
    stop_overridden: list[str] | None = Field(
        None,
        description="subjects who had stopped third-party provision, which this basis "
        "(law, investigation, emergency) goes on despite; null: none had",
    )


class DisclosureList(BaseModel):
    """Disclosure requests, newest first."""

    requests: list[DisclosurePublic]


class ReleasePublic(BaseModel):
    """The released package, shown once: it holds the subjects' numbers."""

    request_id: str
    ledger_seq: int
    package_sha256: str = Field(description="SHA-256 of package_json's UTF-8 bytes")
    package_csv_sha256: str = Field(description="SHA-256 of package_csv's UTF-8 bytes")
    package: dict[str, Any] = Field(description="the package, as an object")
    package_json: str = Field(
        description="the package exactly as the ledger hashed it (keys sorted, indented "
        "by two spaces): the copy to hand over, whose SHA-256 is package_sha256"
    )
    package_csv: str = Field(description="the same package as CSV")


# -- the subjects' requests about provision ---------------------------------------------


class ProvisionStopChange(BaseModel):
    """A subject's request to stop (or resume) third-party provision."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["stop", "resume"]
    source: Source = Field(description="how the subject asked, e.g. phone")


class ProvisionConsentChange(BaseModel):
    """A subject's consent to (or withdrawal from) provision to one recipient."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["give", "withdraw"]
    # As a request names it: the consent must match the name a request will carry.
    recipient: Name = Field(description="the recipient organisation")
    source: Source = Field(description="how the subject consented")


class ProvisionConsentPublic(BaseModel):
    """A subject's consent to provide to one recipient."""

    model_config = ConfigDict(from_attributes=True)

    recipient_key: str = Field(description="the organisation, normalised as it is matched")
    recipient_organisation: str
    source: str
    granted_at: dt.datetime
    withdrawn_at: dt.datetime | None


class ProvisionStatePublic(BaseModel):
    """A subject's stop of third-party provision (if any) and consents to recipients."""

    stopped_at: dt.datetime | None
    consents: list[ProvisionConsentPublic]


class RecipientPublic(BaseModel):
    """Who received the data."""

    organisation: str
    officer: str
    contact: str


class SubjectConsentPublic(BaseModel):
    """The subject's own consent a `consent` disclosure relied on."""

    granted_at: str
    source: str


class SubjectRecordPublic(BaseModel):
    """One disclosure about the subject: when, to whom, on which basis, for what, which
    items; other subjects of the same disclosure are only counted."""

    seq: int
    recorded_at: str = Field(description="canonical UTC timestamp")
    recipient: RecipientPublic
    legal_basis: str
    purpose: str
    request_reference: str | None
    data_items: list[str]
    consent: SubjectConsentPublic | None
    stop_overridden: bool = Field(
        False, description="provided despite the subject's stop (law, investigation, emergency)"
    )
    other_subjects: int
    entry_hash: str


class SubscriberDisclosuresPublic(BaseModel):
    """The disclosure records about one subject, oldest first (APPI Art. 33(5))."""

    subscriber_id: str
    records: list[SubjectRecordPublic]
