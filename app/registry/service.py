"""The registry as other areas use it: find a number's subscriber, log a staff access.

Numbers enter the registry only through an approved verification
(app/verification/repository.py); the staff views live in staff_service.py.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.core.context import Context
from app.core.db import Tx
from app.models.access_log import AccessLogEntry
from app.registry import repository as repo
from app.staff.auth import Staff

MAX_IP_LENGTH = 64


async def find_id(tx: Tx, *, phone_index: str | Sequence[str]) -> str | None:
    """The subscriber id of a number's blind index (or of any of its indexes, one per
    index key in the ring), if the number is registered."""
    return await repo.find_id(tx, phone_index=phone_index)


async def move_to_index(
    tx: Tx, *, phone_index: str, ciphertext: bytes, key_id: str, older: Sequence[str]
) -> None:
    """Re-index a subscriber still indexed under an older index key (see app.keys)."""
    await repo.move_to_index(
        tx, phone_index=phone_index, ciphertext=ciphertext, key_id=key_id, older=older
    )


async def log_access(
    tx: Tx,
    ctx: Context,
    *,
    staff: Staff,
    ip: str,
    subscriber_id: str | None,
    action: str,
    reason: str | None = None,
) -> None:
    """Record a staff member's access to a subscriber in the access log, in the caller's
    transaction: the access and its record commit together or not at all."""
    await repo.insert_access(
        tx,
        AccessLogEntry(
            accessed_at=ctx.clock.now(),
            staff_id=staff.id,
            staff_username=staff.username,
            staff_role=staff.role.value,
            source_ip=ip[:MAX_IP_LENGTH],
            subscriber_id=subscriber_id,
            action=action,
            reason=reason,
        ),
    )
