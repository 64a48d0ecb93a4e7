"""The tables the key rings reach into, as stored bytes and key ids."""

from __future__ import annotations

from app.models.api_key import ApiKey
from app.models.coupon import ErasedRedemptions
from app.models.pumping import PumpingBlock
from app.models.staff import StaffInvitation, StaffSession
from app.models.staff_mfa import StaffRecoveryCode, StaffTotp
from app.models.subject import SubjectSession
from app.models.subscriber import Subscriber
from app.models.types import table
from app.models.verification import Verification

subscribers = table(Subscriber)
verifications = table(Verification)
pumping_blocks = table(PumpingBlock)
staff_totp = table(StaffTotp)
# Also under the token ring: open invitations and unused recovery codes.
staff_invitations = table(StaffInvitation)
staff_recovery_codes = table(StaffRecoveryCode)
# An erased number's coupon tallies: under the index key of the day, never rewritten (the
# number is gone), so that key stays in the ring until they are purged.
erased_redemptions = table(ErasedRedemptions)
# Tables whose rows hold a token's keyed hash, counted while live by `keys status`.
TOKEN_TABLES = tuple(table(model) for model in (ApiKey, StaffSession, SubjectSession))

# The tables whose numbers are sealed with the phone key and rewritten by a rotation.
PHONE_TABLES = {"subscribers": subscribers, "verifications": verifications}
