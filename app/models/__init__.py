"""SQLModel table classes only; importing this package registers every table."""

from sqlmodel import SQLModel

from app.models.access_log import AccessLogEntry
from app.models.api_key import ApiKey
from app.models.audit import AuditEvent
from app.models.campaign import Delivery, DeliveryText
from app.models.consent import Consent, ConsentEvent, ErasedConsentEvent
from app.models.coupon import CouponRedemption, ErasedRedemptions
from app.models.idempotency import IdempotencyRecord
from app.models.ledger import (
    DisclosureConsent,
    DisclosureRequest,
    DisclosureStop,
    LedgerCheckpoint,
    LedgerEntry,
    LedgerEntrySubject,
)
from app.models.outbox import OutboxMessage
from app.models.pumping import PumpingBlock
from app.models.rate_limit import RateLimitHit, SendWindow, SharedCountWriter
from app.models.staff import (
    StaffAccount,
    StaffInvitation,
    StaffLoginAttempt,
    StaffPermissionChange,
    StaffRoleGrant,
    StaffSession,
)
from app.models.staff_mfa import StaffRecoveryCode, StaffTotp
from app.models.subject import SubjectRequest, SubjectSession
from app.models.subscriber import Subscriber, SubscriberPurpose
from app.models.verification import Verification

# Every table of this release, by name: what the grants must cover (app.core.migrations).
TABLES = tuple(sorted(SQLModel.metadata.tables))

__all__ = [
    "TABLES",
    "AccessLogEntry",
    "ApiKey",
    "AuditEvent",
    "Consent",
    "ConsentEvent",
    "CouponRedemption",
    "Delivery",
    "DeliveryText",
    "DisclosureConsent",
    "DisclosureRequest",
    "DisclosureStop",
    "ErasedConsentEvent",
    "ErasedRedemptions",
    "IdempotencyRecord",
    "LedgerCheckpoint",
    "LedgerEntry",
    "LedgerEntrySubject",
    "OutboxMessage",
    "PumpingBlock",
    "RateLimitHit",
    "SendWindow",
    "SharedCountWriter",
    "StaffAccount",
    "StaffInvitation",
    "StaffLoginAttempt",
    "StaffPermissionChange",
    "StaffRoleGrant",
    "StaffRecoveryCode",
    "StaffSession",
    "StaffTotp",
    "SubjectRequest",
    "SubjectSession",
    "Subscriber",
    "SubscriberPurpose",
    "Verification",
]
