"""Which staff credentials are near or past their end: the items of `smsreg credentials due`.

This module judges passwords and second factors; the report that adds the service API
keys and names each owner is app.staff.credentials_due (the staff layer may read both
accounts and keys, this one neither).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.core.context import Context
from app.core.tx import Tx
from app.credentials import passwords
from app.credentials import repository as repo
from app.models.staff import StaffAccount


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


def password_horizon(ctx: Context, *, within_days: int | None) -> dt.datetime | None:
    """Passwords changed at or before this instant are due (None: passwords never expire)."""
    settings = ctx.settings
    if settings.password_max_age_days == 0:
        return None
    days = settings.password_due_within_days if within_days is None else within_days
    return (
        ctx.clock.now()
        + dt.timedelta(days=days)
        - dt.timedelta(days=settings.password_max_age_days)
    )


def password_items(ctx: Context, accounts: Iterable[StaffAccount]) -> list[DueItem]:
    """The due items of these accounts' passwords (those :func:`password_horizon` found)."""
    now = ctx.clock.now()
    items = []
    for account in accounts:
        end = passwords.expires_at(ctx.settings, account.password_changed_at)
        expired = end is not None and end <= now
        items.append(
            DueItem(
                kind="password",
                id=account.id,
                owner=account.username,
                name=account.display_name,
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


async def second_factor_items(tx: Tx, ctx: Context, *, owners: Mapping[str, str]) -> list[DueItem]:
    """TOTP secrets and recovery codes under keys that are not the active ones, of the
    accounts in ``owners`` (account id -> username: the live accounts)."""
    items = []
    phone = ctx.keys.phone
    for row in await repo.totps_not_under(tx, phone.active_id):
        if row.staff_id not in owners:
            continue
        missing = row.secret_key_id not in phone.keys
        items.append(
            DueItem(
                kind="totp_secret",
                id=row.staff_id,
                owner=owners[row.staff_id],
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
    for codes in await repo.unused_codes_by_key(tx):
        if codes.staff_id not in owners or codes.key_id in token.keys:
            continue
        items.append(
            DueItem(
                kind="recovery_codes",
                id=codes.staff_id,
                owner=owners[codes.staff_id],
                name=f"{codes.n} code(s) under token key {codes.key_id}",
                due_at=None,
                state="key_missing",
                action="the person makes new ones (POST /v1/staff/me/totp/recovery-codes)",
            )
        )
    return items
