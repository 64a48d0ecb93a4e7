"""Credentials due: every staff password, API key and second factor near or past its end,
with its owner; and what a scheduled job can honestly rotate without a person.

Unattended, a job cannot choose a person's password, and it cannot hand a new API key
to the client that needs it: a key rotated by cron would only leave the frontend with a
key that dies after the grace period. So :func:`rotate_due` does the one thing that
needs nobody (TOTP secrets still encrypted under an older phone key are re-encrypted
under the active one) and reports the rest, each with what a person must do.

The report lives with the staff accounts, not in app.credentials: it names each
credential's owner (an account) and lists the service API keys (app.clients), two
areas above app.credentials.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from app.clients import rotation
from app.core.context import Context
from app.core.errors import InvalidInput
from app.core.tx import Tx
from app.credentials import due as credentials_due
from app.credentials import totp
from app.credentials.due import DueItem
from app.staff import repository as repo

MAX_WITHIN_DAYS = 365


@dataclass(frozen=True)
class RotationReport:
    """What ``smsreg credentials rotate --due`` did, and what it left to a person."""

    totp_reencrypted: int
    left: list[DueItem] = field(default_factory=list)


async def due(tx: Tx, ctx: Context, *, within_days: int | None = None) -> list[DueItem]:
    """Everything due within ``within_days`` (default: each kind's own setting), soonest
    first; items without a date (a key problem) last."""
    if within_days is not None and not 0 <= within_days <= MAX_WITHIN_DAYS:
        raise InvalidInput.field("within_days", f"must be 0 to {MAX_WITHIN_DAYS}")
    everyone = await repo.list_accounts(tx)
    names = {account.id: account.username for account in everyone}
    items: list[DueItem] = []
    horizon = credentials_due.password_horizon(ctx, within_days=within_days)
    if horizon is not None:
        items += credentials_due.password_items(ctx, await repo.passwords_changed_by(tx, horizon))
    for key in await rotation.due(tx, ctx, within_days=within_days):
        items.append(
            DueItem(
                kind="api_key",
                id=key.key.id,
                owner=_owner(key.key.created_by, names),
                name=key.key.name,
                due_at=key.due_at,
                state=key.state,
                action=f"smsreg api-keys rotate {key.key.id}, then hand the new key to its client",
            )
        )
    live = {account.id: account.username for account in everyone if account.disabled_at is None}
    items += await credentials_due.second_factor_items(tx, ctx, owners=live)
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(items, key=lambda item: (item.due_at or far, item.kind, item.id))


async def rotate_due(tx: Tx, ctx: Context, *, actor: str) -> RotationReport:
    """Rotate what needs no person (TOTP secrets onto the active phone key); report the rest."""
    done = await totp.reencrypt(tx, ctx, actor=actor)
    return RotationReport(totp_reencrypted=done, left=await due(tx, ctx))


def _owner(created_by: str, names: dict[str, str]) -> str:
    if created_by.startswith("staff:"):
        name = names.get(created_by.removeprefix("staff:"))
        return f"{created_by} ({name})" if name else created_by
    return created_by
