"""Request and response shapes of /v1/subscribers/{id}/consents, and of the staff's view
of a subscriber, which shows its consent."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.core.text import NoPhoneNumber
from app.registry.schemas import PurposePublic

# The purposes that rest on consent (app.purposes: needs_consent), by value: a refusal
# then says "Input should be 'coupon_delivery'", not the enum member's repr.
ConsentPurpose = Literal["coupon_delivery"]
Action = Literal["opt_in", "opt_out"]
State = Literal["opted_in", "opted_out", "none"]

# The sources the service writes itself: the person on /my/, a STOP by SMS, the carrier's
# report of one, staff closing a person's request. The person's own page names them in
# words ("this page"), so a client may not claim them.
SELF_SERVICE_SOURCE = "self_service"
SMS_SOURCE = "sms"
CARRIER_SOURCE = "carrier"
STAFF_SOURCE = "staff"
SERVICE_SOURCES = (SELF_SERVICE_SOURCE, SMS_SOURCE, CARRIER_SOURCE, STAFF_SOURCE)
# The sources a frontend is offered by name (any other it gives is shown as it is): the
# person's page says these in words too.
SUGGESTED_SOURCES = ("web", "app", "store")


def _not_the_services(source: str) -> str:
    if source in SERVICE_SOURCES:
        raise ValueError(f"'{source}' is a source the service records itself")
    return source


class ConsentChange(BaseModel):
    """Record an opt-in or opt-out, as the person gave it."""

    model_config = ConfigDict(extra="forbid")

    purpose: ConsentPurpose = Field(description="only coupon_delivery rests on consent")
    action: Action
    source: Annotated[str, NoPhoneNumber, AfterValidator(_not_the_services)] = Field(
        pattern=r"^[a-z][a-z0-9_\-]{0,31}$",
        description="where the person gave it: web, app, store, ... (not one of the "
        "sources the service records itself)",
        examples=["web"],
        json_schema_extra={"not": {"enum": list(SERVICE_SOURCES)}},
    )
    policy_version: Annotated[str | None, NoPhoneNumber] = Field(
        default=None,
        pattern=r"^[\x21-\x7e][\x20-\x7e]{0,63}$",
        description="the privacy policy version shown; required to opt in",
        examples=["2026-04"],
    )
    locale: str | None = Field(
        default=None,
        pattern=r"^(ja|ko|en)(-[A-Za-z]{2})?$",
        description="language of campaign messages; default: the number's country's",
    )


class ConsentPublic(BaseModel):
    """The current state of consent to one purpose."""

    purpose: ConsentPurpose
    status: State = Field(description="none when nothing was ever recorded")
    locale: str | None = None
    source: str | None = None
    policy_version: str | None = None
    changed_at: dt.datetime | None = None


class ConsentChangePublic(ConsentPublic):
    """The state after a change."""

    subscriber_id: str


class ConsentEventPublic(BaseModel):
    """One entry of the history: never changed, never deleted."""

    model_config = ConfigDict(from_attributes=True)

    at: dt.datetime
    purpose: ConsentPurpose
    action: Action
    source: str
    policy_version: str | None
    client_ip: str | None = Field(
        description="the address the change came from, on the entries the reading client "
        "made; null on any other (another client's, the person's own, staff's, an SMS STOP)"
    )
    actor: str = Field(
        description="api_key:<id>; subject:<subscriber id> (the person, on the self-service "
        "pages); staff:<id>; or sms:twilio for an inbound STOP"
    )


class ConsentsPublic(BaseModel):
    """A subscriber's consent: the current state per purpose and the history, newest first."""

    subscriber_id: str
    consents: list[ConsentPublic]
    history: list[ConsentEventPublic]


# -- the staff's view of a subscriber -----------------------------------------------------


class ConsentSummaryPublic(BaseModel):
    """The current consent to one purpose."""

    model_config = ConfigDict(from_attributes=True)

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
