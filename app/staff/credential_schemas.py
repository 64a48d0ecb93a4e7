"""Request and response shapes of TOTP, offboarding and the admins' API-key routes.

Secrets appear only in the answers that create them (a TOTP secret, recovery codes, a
new API key), once; never a hash, a ciphertext or a stored token.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.staff.api_keys import MAX_GRACE_HOURS
from app.staff.schemas import StaffPublic
from app.staff.scopes import Scope


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

    enrolled: bool
    pending: bool = Field(description="an enrolment was started but not confirmed")
    confirmed_at: dt.datetime | None
    required: bool = Field(description="whether the person's role requires TOTP")
    recovery_codes_left: int


class TotpResetPublic(BaseModel):
    """An admin's reset of someone's second factor."""

    staff_id: str
    had_totp: bool
    recovery_codes_removed: int
    sessions_ended: int


class ApiKeyPublic(BaseModel):
    """A service API key as admins see it (never the key itself, beyond its prefix)."""

    id: str
    name: str
    prefix: str = Field(description="the key's readable start, to recognise it")
    scopes: list[str]
    created_by: str = Field(description="staff:<id> or cli")
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    rotated_from: str | None
    rotated_to: str | None
    state: Literal["active", "rotated", "expired", "revoked"] = Field(
        description="rotated: a successor exists and this key dies at expires_at"
    )


class ApiKeyCreate(BaseModel):
    """A new API key for a service client."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, examples=["coupon-frontend"])
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_days: int | None = Field(
        None, ge=1, description="default and maximum: SMSREG_API_KEY_MAX_AGE_DAYS (180)"
    )


class NewApiKeyPublic(BaseModel):
    """A new key: the token is shown this once."""

    key: ApiKeyPublic
    token: str = Field(description="`smsreg_sk_...`; stored only as a keyed hash")


class ApiKeyRotate(BaseModel):
    """How long the old key keeps working after its successor is issued."""

    model_config = ConfigDict(extra="forbid")

    grace_hours: int | None = Field(
        None, ge=0, le=MAX_GRACE_HOURS, description="default SMSREG_API_KEY_GRACE_HOURS (24)"
    )


class RotatedApiKeyPublic(BaseModel):
    """A rotation: the old key (with its shortened expiry) and its successor, shown once."""

    old: ApiKeyPublic
    new: ApiKeyPublic
    token: str = Field(description="the successor's key, shown this once")


class ApiKeyListPublic(BaseModel):
    """Every API key, newest first."""

    api_keys: list[ApiKeyPublic]


class OffboardRequest(BaseModel):
    """Options of an offboarding (the body may be left out)."""

    model_config = ConfigDict(extra="forbid")

    grace_hours: int | None = Field(
        None,
        ge=0,
        le=MAX_GRACE_HOURS,
        description="how long the person's API keys keep working after their successors "
        "are issued; default SMSREG_API_KEY_GRACE_HOURS (24), 0 ends them at once",
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
