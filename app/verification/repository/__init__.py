"""Every query on verifications and idempotency records.

Starting and checking a verification are the service's hot paths, so their statements
are fixed SQL returning NamedTuples (app.core.db.Sql). On PostgreSQL each round trip
costs more than the statement itself, so what a start or a check writes goes in one
statement (data-modifying CTEs); SQLite, which has no round trips, runs the same writes
one statement after another.
"""

from app.verification.repository.checks import (
    Before,
    Checked,
    approve,
    count_failed_attempt,
    upsert_subscriber,
)
from app.verification.repository.reads import (
    NEWER_START,
    Delivery,
    ForCheck,
    ForMessage,
    ForRedemption,
    Idempotent,
    NewVerification,
    Verification,
    for_messages,
    for_redemption,
    get,
    get_for_check,
    get_idempotent,
    latest_delivery,
    newer_pending,
    save_idempotent,
)
from app.verification.repository.starts import record_resend, record_start
from app.verification.repository.windows import (
    SHARED_COUNT_PROGRESS,
    WRITES_SEEN,
    Counted,
    Hit,
    SendWindow,
    count_send,
    micros,
    shared_counts_sql,
)

__all__ = [
    "NEWER_START",
    "SHARED_COUNT_PROGRESS",
    "WRITES_SEEN",
    "Before",
    "Checked",
    "Counted",
    "Delivery",
    "ForCheck",
    "ForMessage",
    "ForRedemption",
    "Hit",
    "Idempotent",
    "NewVerification",
    "SendWindow",
    "Verification",
    "approve",
    "count_failed_attempt",
    "count_send",
    "for_messages",
    "for_redemption",
    "get",
    "get_for_check",
    "get_idempotent",
    "latest_delivery",
    "newer_pending",
    "micros",
    "record_resend",
    "record_start",
    "save_idempotent",
    "shared_counts_sql",
    "upsert_subscriber",
]
