"""Credentials due: every staff password, API key and second factor near or past its end,
with its owner; and what a scheduled job can honestly rotate without a person.

Unattended, a job cannot choose a person's password, and it cannot hand a new API key
to the client that needs it: a key rotated by cron would only leave the frontend with a
key that dies after the grace period. So ``rotate_due`` does the one thing that needs
nobody (TOTP secrets still encrypted under an older phone key are re-encrypted under the
active one) and reports the rest, each with what a person must do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from app.core.context import Context
from app.core.db import Tx
from app.core.errors import InvalidInput
from app.staff import api_keys, passwords, totp

MAX_WITHIN_DAYS = 365


@dataclass(frozen=True)
class DueItem:
    """One credential near or past its end."""

    kind: str  # password, api_key, totp_secret, recovery_codes
    id: str
    owner: str  # a username, or who created an API key (staff:<id> (username), cli)
    name: str
    due_at: dt.datetime | None
    state: str  # due, overdue, expired, old_key, key_missing
    action: str  # what a person should do


@dataclass(frozen=True)
class RotationReport:
    """What ``smsreg credentials rotate --due`` did, and what it left to a person."""

    totp_reencrypted: int
    left: list[DueItem] = field(default_factory=list)


def due(tx: Tx, ctx: Context, *, within_days: int | None = None) -> list[DueItem]:
    """Everything due within ``within_days`` (default: each kind's own setting), soonest
    first; items without a date (a key problem) last."""
    if within_days is not None and not 0 <= within_days <= MAX_WITHIN_DAYS:
        raise InvalidInput.field("within_days", f"must be 0 to {MAX_WITHIN_DAYS}")
    now = ctx.clock.now()
    names = {row.id: row.username for row in tx.all("SELECT id, username FROM staff_accounts")}
    items = [*_passwords(tx, ctx, now=now, within_days=within_days)]
    for key in api_keys.due(tx, ctx, within_days=within_days):
        items.append(
            DueItem(
                kind="api_key",
                id=key.id,
                owner=_owner(key.created_by, names),
                name=key.name,
                due_at=key.due_at,
                state=key.state,
                action=f"smsreg api-keys rotate {key.id}, then hand the new key to its client",
            )
        )
    items += _second_factors(tx, ctx, names=names)
    far = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(items, key=lambda item: (item.due_at or far, item.kind, item.id))


def rotate_due(tx: Tx, ctx: Context, *, actor: str = "cli") -> RotationReport:
    """Rotate what needs no person (TOTP secrets onto the active phone key); report the rest."""
    done = totp.reencrypt(tx, ctx, actor=actor)
    return RotationReport(totp_reencrypted=done, left=due(tx, ctx))


def _owner(created_by: str, names: dict[str, str]) -> str:
    if created_by.startswith("staff:"):
        name = names.get(created_by.removeprefix("staff:"))
        return f"{created_by} ({name})" if name else created_by
    return created_by


def _passwords(tx: Tx, ctx: Context, *, now: dt.datetime, within_days: int | None) -> list[DueItem]:
    settings = ctx.settings
    if settings.password_max_age_days == 0:
        return []
    days = settings.password_due_within_days if within_days is None else within_days
    born_before = now + dt.timedelta(days=days) - dt.timedelta(days=settings.password_max_age_days)
    rows = tx.all(
        "SELECT id, username, display_name, password_changed_at FROM staff_accounts "
        "WHERE disabled_at IS NULL AND password_changed_at <= :born_before ORDER BY id",
        {"born_before": born_before},
    )
    items = []
    for row in rows:
        end = passwords.expires_at(settings, row.password_changed_at)
        expired = end is not None and end <= now
        items.append(
            DueItem(
                kind="password",
                id=row.id,
                owner=row.username,
                name=row.display_name,
                due_at=end,
                state="overdue" if expired else "due",
                action=(
                    "the person changes it (PUT /v1/staff/me/password); until then their "
                    "sessions can only do that"
                    if expired
                    else "the person changes it (PUT /v1/staff/me/password)"
                ),
            )
        )
    return items


def _second_factors(tx: Tx, ctx: Context, *, names: dict[str, str]) -> list[DueItem]:
    """TOTP secrets and recovery codes under keys that are not the active ones."""
    items = []
    phone = ctx.keys.phone
    for row in tx.all(
        "SELECT t.staff_id, t.secret_key_id FROM staff_totp t JOIN staff_accounts a "
        "ON a.id = t.staff_id WHERE a.disabled_at IS NULL AND t.secret_key_id <> :active "
        "ORDER BY t.staff_id",
        {"active": phone.active_id},
    ):
        missing = row.secret_key_id not in phone.keys
        items.append(
            DueItem(
                kind="totp_secret",
                id=row.staff_id,
                owner=names.get(row.staff_id, row.staff_id),
                name=f"phone key {row.secret_key_id}",
                due_at=None,
                state="key_missing" if missing else "old_key",
                action=(
                    "an admin resets the TOTP (DELETE /v1/staff/{id}/totp); the person enrols "
                    "again, or puts the phone key back"
                    if missing
                    else "smsreg credentials rotate --due (re-encrypts it)"
                ),
            )
        )
    token = ctx.keys.token
    for row in tx.all(
        "SELECT r.staff_id, r.key_id, count(*) AS n FROM staff_recovery_codes r "
        "JOIN staff_accounts a ON a.id = r.staff_id WHERE a.disabled_at IS NULL "
        "AND r.used_at IS NULL GROUP BY r.staff_id, r.key_id ORDER BY r.staff_id"
    ):
        if row.key_id in token.keys:
            continue
        items.append(
            DueItem(
                kind="recovery_codes",
                id=row.staff_id,
                owner=names.get(row.staff_id, row.staff_id),
                name=f"{row.n} code(s) under token key {row.key_id}",
                due_at=None,
                state="key_missing",
                action="the person makes new ones (POST /v1/staff/me/totp/recovery-codes)",
            )
        )
    return items
