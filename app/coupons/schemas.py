"""Request and response shapes of /v1/coupons/{coupon_id}/redemptions."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from app.registry.schemas import SUBSCRIBER_ID_PATTERN

COUPON_ID_PATTERN = r"^[A-Za-z0-9_.\-]+$"
VERIFICATION_ID_PATTERN = r"^ver_[A-Za-z0-9_\-]+$"


def not_dots_only(coupon_id: str) -> str:
    """Refuse an id of dots alone: a "." or ".." path segment, which HTTP clients rewrite
    before sending (the pattern allows every other id)."""
    if not coupon_id.strip("."):
        raise ValueError("must not be dots only")
    return coupon_id


class RedemptionCreate(BaseModel):
    """Who redeems: a fresh approved verification of this client, or a verified subscriber.

    Exactly one of the two (a null counts as absent).
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("verification_id", "subscriber_id")
            ]
        },
    )

    verification_id: str | None = Field(
        default=None,
        min_length=5,
        max_length=40,
        pattern=VERIFICATION_ID_PATTERN,
        description="a verification of this client, approved for coupon_usage, still fresh",
    )
    subscriber_id: str | None = Field(
        default=None,
        min_length=5,
        max_length=40,
        pattern=SUBSCRIBER_ID_PATTERN,
        description="a subscriber whose number was verified for coupon_usage",
    )


class RedemptionPublic(BaseModel):
    """One redemption: never the number, only the registry's opaque subscriber id."""

    id: str
    coupon_id: str
    subscriber_id: str
    verification_id: str | None = Field(
        description="the verification that backed it, when this client recorded it that way"
    )
    redeemed_at: dt.datetime


class RedemptionCreatedPublic(RedemptionPublic):
    """A recorded redemption and how many more this number may make of the coupon."""

    limit: int = Field(description="redemptions allowed per number for this coupon")
    remaining: int


class RedemptionsPublic(BaseModel):
    """A number's redemptions of one coupon (every client's: they all count to the limit)."""

    coupon_id: str
    subscriber_id: str
    limit: int
    counted: int = Field(
        description="the redemptions that count toward the limit: those listed, and those "
        "the number made as an earlier subscriber since erased or moved away, which are "
        "counted but never listed (they may have been another person's)"
    )
    remaining: int = Field(description="limit - counted, at least 0")
    redemptions: list[RedemptionPublic]
