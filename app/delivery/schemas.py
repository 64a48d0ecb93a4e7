"""Request and response shapes of /v1/deliveries."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.purposes import Purpose

Language = Literal["ja", "ko", "en"]
DeliveryStatus = Literal["queuing", "queued"]


class DeliveryCreate(BaseModel):
    """Deliver a campaign message to every subscriber with a live opt-in."""

    model_config = ConfigDict(extra="forbid")

    campaign_id: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$",
        description="the caller's id for the campaign; a repeat replays the first answer",
        examples=["spring-2026"],
    )
    messages: dict[Language, Annotated[str, Field(min_length=1, max_length=1600)]] = Field(
        min_length=1,
        description="the text per language; smsreg appends the opt-out line",
        examples=[{"ja": "春のクーポン: https://example.jp/c/1", "en": "Spring coupon"}],
    )
    default_locale: Language = Field(
        description="the text for subscribers whose language has none; must be in messages"
    )


class DeliveryCounts(BaseModel):
    """How the campaign's audience was split when it was queued."""

    eligible: int = Field(description="subscribers verified for coupon_delivery")
    queued: int = Field(description="those with a live opt-in: one message each")
    skipped: int = Field(description="the rest: never opted in, or opted out")


class CampaignDeliveryPublic(BaseModel):
    """A campaign delivery as its client sees it: counts, never a number."""

    id: str
    campaign_id: str
    purpose: Literal[Purpose.COUPON_DELIVERY]
    status: DeliveryStatus = Field(description="queuing while batches are written, then queued")
    default_locale: Language
    locales: list[Language]
    counts: DeliveryCounts
    created_at: dt.datetime
    queued_at: dt.datetime | None = None


class CampaignDeliveryStatePublic(CampaignDeliveryPublic):
    """A delivery with what happened to its messages so far."""

    states: dict[str, int] = Field(
        description="messages per state: queued, sending, sent (the carrier has it), "
        "delivered, undelivered, failed, expired, unknown (the send's outcome was lost: "
        "never sent again), cancelled (not to be sent: cancelled_reasons says why)"
    )
    cancelled_reasons: dict[str, int] = Field(
        description="cancelled messages per reason: opted_out (the opt-in was withdrawn "
        "before sending), no_recipient (the subscriber was erased), number_changed (the "
        "subscriber's number was corrected before sending), no_korean_text (a Korean "
        "number, and the campaign has no ko text)"
    )
