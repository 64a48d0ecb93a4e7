"""Request and response shapes of /v1/api-keys: never a key beyond the answer that makes it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.clients.rotation import MAX_GRACE_HOURS, RotatedApiKey
from app.clients.scopes import Scope
from app.clients.service import state
from app.core.text import NO_CONTROL_CHARACTERS, Visible
from app.models.api_key import ApiKey


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

    name: Annotated[str, Visible] = Field(
        min_length=1, max_length=100, pattern=NO_CONTROL_CHARACTERS, examples=["coupon-frontend"]
    )
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_days: int | None = Field(
        None,
        strict=True,
        ge=1,
        description="default and maximum: SMSREG_API_KEY_MAX_AGE_DAYS (180)",
    )


class NewApiKeyPublic(BaseModel):
    """A new key: the token is shown this once."""

    key: ApiKeyPublic
    token: str = Field(description="`smsreg_sk_...`; stored only as a keyed hash")


class ApiKeyRotate(BaseModel):
    """How long the old key keeps working after its successor is issued."""

    model_config = ConfigDict(extra="forbid")

    grace_hours: int | None = Field(
        None,
        strict=True,
        ge=0,
        le=MAX_GRACE_HOURS,
        description="default SMSREG_API_KEY_GRACE_HOURS (24)",
    )


class RotatedApiKeyPublic(BaseModel):
    """A rotation: the old key (with its shortened expiry) and its successor, shown once."""

    old: ApiKeyPublic
    new: ApiKeyPublic
    token: str = Field(description="the successor's key, shown this once")


class ApiKeyListPublic(BaseModel):
    """Every API key, newest first."""

    api_keys: list[ApiKeyPublic]


def key_public(key: ApiKey, now: dt.datetime) -> ApiKeyPublic:
    """A key as admins see it, with its state at ``now``."""
    return ApiKeyPublic.model_validate(
        {**key.model_dump(exclude={"token_hash", "token_key_id"}), "state": state(key, now)}
    )


def rotated_public(rotated: RotatedApiKey, now: dt.datetime) -> RotatedApiKeyPublic:
    """A rotation as admins see it: both keys, and the successor's token once."""
    return RotatedApiKeyPublic(
        old=key_public(rotated.old, now),
        new=key_public(rotated.new.key, now),
        token=rotated.new.token,
    )
