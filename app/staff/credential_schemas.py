"""Request and response shapes of the TOTP and offboarding routes.

Secrets appear only in the answers that create them (a TOTP secret, recovery codes, the
successors of a leaver's API keys), once; never a hash, a ciphertext or a stored token.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.clients.rotation import MAX_GRACE_HOURS
from app.clients.schemas import ApiKeyPublic, RotatedApiKeyPublic, key_public, rotated_public
from app.staff.offboarding import Offboarded
from app.staff.schemas import StaffPublic, staff_public


class TotpEnrolmentPublic(BaseModel):
    """A new TOTP secret, shown once: scan the URI (or type the secret) into an
    authenticator app, then confirm with its first code."""

    secret: str = Field(description="base32; stored only encrypted")
    provisioning_uri: str = Field(description="otpauth://totp/... for a QR code")
    algorithm: Literal["SHA1"] = "SHA1"
    digits: Literal[6] = 6
    period: Literal[30] = 30


class TotpCode(BaseModel):
    """A code from the authenticator app."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=16, examples=["123456"])


class RecoveryCodesPublic(BaseModel):
    """Ten one-time recovery codes, shown once; each replaces a TOTP code at one login."""

    recovery_codes: list[str]


class TotpStatusPublic(BaseModel):
    """The signed-in person's second factor."""

    model_config = ConfigDict(from_attributes=True)

    enrolled: bool
    pending: bool = Field(description="an enrolment was started but not confirmed")
    confirmed_at: dt.datetime | None
    required: bool = Field(description="whether the person's role requires TOTP")
    recovery_codes_left: int


class TotpResetPublic(BaseModel):
    """An admin's reset of someone's second factor."""

    model_config = ConfigDict(from_attributes=True)

    staff_id: str
    had_totp: bool
    recovery_codes_removed: int
    sessions_ended: int


class OffboardRequest(BaseModel):
    """Options of an offboarding (the body may be left out)."""

    model_config = ConfigDict(extra="forbid")

    grace_hours: int | None = Field(
        None,
        strict=True,  # a JSON integer: not true, not "5"
        ge=0,
        le=MAX_GRACE_HOURS,
        description="how long the person's API keys keep working after their successors "
        "are issued; default SMSREG_OFFBOARDING_GRACE_HOURS (0: they end at once)",
    )


class OffboardPublic(BaseModel):
    """What an offboarding closed. The successor keys' tokens are shown this once, to the
    admin, who hands them to the clients."""

    staff: StaffPublic
    disabled_now: bool = Field(description="false: the account was already disabled")
    sessions_ended: int
    totp_removed: bool
    recovery_codes_removed: int
    rotated_keys: list[RotatedApiKeyPublic]
    ending_keys: list[ApiKeyPublic] = Field(
        description="keys the person created that were rotated before: no new successor; "
        "each ends at its expires_at"
    )
    grants_cancelled: list[str] = Field(
        default_factory=list, description="ids of the person's pending grant proposals"
    )
    invitations_revoked: list[str] = Field(
        default_factory=list, description="ids of the person's open invitations"
    )
    to_review: list[StaffPublic] = Field(
        default_factory=list,
        description="accounts the person created or granted a role to in the last "
        "SMSREG_OFFBOARDING_REVIEW_DAYS (90): they keep working; review each",
    )


def offboard_public(done: Offboarded, now: dt.datetime) -> OffboardPublic:
    """What an offboarding closed, with the successor keys' tokens shown this once."""
    return OffboardPublic(
        staff=staff_public(done.account),
        disabled_now=done.disabled_now,
        sessions_ended=done.sessions_ended,
        totp_removed=done.totp_removed,
        recovery_codes_removed=done.recovery_codes_removed,
        rotated_keys=[rotated_public(rotated, now) for rotated in done.rotated],
        ending_keys=[key_public(key, now) for key in done.ending],
        grants_cancelled=done.grants_cancelled,
        invitations_revoked=done.invitations_revoked,
        to_review=[staff_public(account) for account in done.to_review],
    )
