"""The purposes a number may be verified for, and what each one means.

The guideline allows two uses of a number: tracking coupon use, and delivering coupons to
people who opted in. A third purpose lets a person prove control of their own number to
act on their data; it never registers anything. Every rule that differs by purpose is
read from here, so a new purpose is one entry, not a hunt through the code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Purpose(enum.StrEnum):
    COUPON_USAGE = "coupon_usage"
    COUPON_DELIVERY = "coupon_delivery"
    DATA_SUBJECT = "data_subject"


@dataclass(frozen=True)
class PurposePolicy:
    """What a verification for one purpose does."""

    # An approval enters (or refreshes) the number in the registry for this purpose.
    registers: bool
    # Use for this purpose needs a recorded, live opt-in (consent history).
    needs_consent: bool
    # An approval of this purpose backs a coupon redemption.
    gates_redemptions: bool


POLICIES: dict[Purpose, PurposePolicy] = {
    Purpose.COUPON_USAGE: PurposePolicy(
        registers=True, needs_consent=False, gates_redemptions=True
    ),
    Purpose.COUPON_DELIVERY: PurposePolicy(
        registers=True, needs_consent=True, gates_redemptions=False
    ),
    Purpose.DATA_SUBJECT: PurposePolicy(
        registers=False, needs_consent=False, gates_redemptions=False
    ),
}


def policy(purpose: str) -> PurposePolicy:
    """The policy of a purpose (ValueError for one that does not exist)."""
    return POLICIES[Purpose(purpose)]
