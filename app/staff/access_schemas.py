"""Request and response shapes of invitations, enrolment, role grants and unlocking: never
a password or a stored token hash; a new token, TOTP secret or recovery code only once."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.core.text import NoPhoneNumber
from app.credentials.passwords import MAX_PASSWORD_LENGTH
from app.models.staff import StaffInvitation
from app.staff.grants import GrantView, view
from app.staff.invitations import MAX_TOKEN_LENGTH, OpenInvitation
from app.staff.new_account import clean_display_name, clean_username
from app.staff.roles import Role
from app.staff.schemas import StaffPublic, StaffSummary

GrantStatus = Literal["pending", "confirmed", "rejected", "cancelled", "expired"]
# Kept in the permission history and audit events: never a number (app/core/text.py).
Reason = Annotated[str, Field(min_length=1, max_length=500), NoPhoneNumber]


class InvitationCreate(BaseModel):
    """A person to invite: they set their own password and enrol TOTP with the token."""

    model_config = ConfigDict(extra="forbid")

    username: Annotated[
        str,
        Field(
            min_length=1,
            max_length=64,
            examples=["hanako"],
            description="3 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or a "
            "digit; kept in lower case, surrounding spaces dropped (422 otherwise)",
        ),
        AfterValidator(clean_username),
    ]
    display_name: Annotated[
        str,
        Field(min_length=1, max_length=100, examples=["Hanako Yamada"]),
        AfterValidator(clean_display_name),
    ]
    role: Role


class GrantPublic(BaseModel):
    """A proposal to grant a privileged role, and where it stands."""

    id: str
    staff_id: str
    role: Role
    old_role: Role | None
    kind: Literal["invitation", "change"]
    status: GrantStatus
    proposed_by: str = Field(description="staff:<id> of the proposing admin")
    proposed_at: dt.datetime
    expires_at: dt.datetime
    decided_by: str | None = Field(None, description="who confirmed, rejected or cancelled it")
    decided_at: dt.datetime | None = None
    reason: str | None = None
    enrolled_at: dt.datetime | None = Field(
        None,
        description="in the list of proposals, an invitation's: when its owner finished "
        "enrolling (null: not yet, and it can be confirmed only after; always null for a "
        "promotion, and in the answers of single proposals)",
    )
    enrolled_from: str | None = Field(
        None, description="the address the owner finished enrolling from"
    )


class GrantListPublic(BaseModel):
    """Proposals, newest first."""

    grants: list[GrantPublic]


class GrantCreate(BaseModel):
    """The privileged role to propose for an account."""

    model_config = ConfigDict(extra="forbid")

    role: Role


class GrantRejection(BaseModel):
    """Why a proposal is rejected (or withdrawn)."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = None


class InvitationPublic(BaseModel):
    """An invitation (never its token)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    staff_id: str
    created_by: str
    created_at: dt.datetime
    expires_at: dt.datetime
    password_set_at: dt.datetime | None
    redeemed_at: dt.datetime | None
    redeemed_ip: str | None = Field(description="where the owner finished enrolling")
    revoked_at: dt.datetime | None
    revoked_by: str | None


class InvitationCreatedPublic(BaseModel):
    """A new invitation. The token is shown this once: hand it to the person, who alone
    takes the account up with it (POST /v1/staff/enrolment)."""

    token: str = Field(description="`smsreg_inv_...`; stored only as a keyed hash")
    invitation: InvitationPublic
    account: StaffPublic
    grant: GrantPublic | None = Field(
        description="for privacy_officer or admin: the proposal a second admin confirms"
    )


class OpenInvitationPublic(BaseModel):
    """An open invitation, its account, and the grant it waits for."""

    invitation: InvitationPublic
    account: StaffPublic
    grant: GrantPublic | None


class InvitationListPublic(BaseModel):
    """Invitations neither redeemed, revoked nor expired, oldest first."""

    invitations: list[OpenInvitationPublic]


Token = Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_LENGTH)]


class EnrolmentStart(BaseModel):
    """The invitation's token and the password its owner chooses."""

    model_config = ConfigDict(extra="forbid")

    token: Token
    password: str = Field(
        min_length=1,
        max_length=MAX_PASSWORD_LENGTH,
        description="at least SMSREG_PASSWORD_MIN_LENGTH characters (12 by default), not a "
        "common or easily guessed one, and not holding the username (422 otherwise)",
    )


class EnrolmentConfirm(BaseModel):
    """The invitation's token and a first code of the new TOTP secret."""

    model_config = ConfigDict(extra="forbid")

    token: Token
    code: str = Field(min_length=1, max_length=16)


class EnrolmentStartedPublic(BaseModel):
    """The password is set; the TOTP secret to enrol, shown this once."""

    username: str
    secret: str
    provisioning_uri: str


class EnrolledPublic(BaseModel):
    """The enrolment is done: the recovery codes, shown this once."""

    account: StaffSummary
    active: bool = Field(description="false: a privileged role waits for a second admin")
    recovery_codes: list[str]


class UnlockRequest(BaseModel):
    """Why an account is unlocked."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason


class UnlockPublic(BaseModel):
    """What an unlock lifted."""

    account: StaffPublic
    was_locked: bool
    failures_cleared: int = Field(description="failed logins forgiven, from any address")


def grant_public(found: GrantView, enrolled: StaffInvitation | None = None) -> GrantPublic:
    """A proposal with its effective status, and the invitation its owner enrolled with."""
    return GrantPublic(
        **found.grant.model_dump(exclude={"status"}),
        status=found.status,
        enrolled_at=None if enrolled is None else enrolled.redeemed_at,
        enrolled_from=None if enrolled is None else enrolled.redeemed_ip,
    )


def invitation_public(invitation: StaffInvitation) -> InvitationPublic:
    """An invitation (never its token hash)."""
    return InvitationPublic.model_validate(invitation)


def open_invitation_public(found: OpenInvitation, now: dt.datetime) -> OpenInvitationPublic:
    """An open invitation with its account and grant."""
    return OpenInvitationPublic(
        invitation=invitation_public(found.invitation),
        account=StaffPublic.model_validate(found.account),
        grant=None if found.grant is None else grant_public(view(found.grant, now)),
    )
