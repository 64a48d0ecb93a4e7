"""What still uses each key of each ring (``smsreg keys status``)."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import sqlalchemy as sa

from app.core.tx import Tx
from app.keys.repository.tables import (
    PHONE_TABLES,
    TOKEN_TABLES,
    erased_redemptions,
    pumping_blocks,
    staff_invitations,
    staff_recovery_codes,
    staff_totp,
    subscribers,
    verifications,
)


class Usage(NamedTuple):
    """Rows (of one table and column) that still need one key id."""

    what: str
    key_id: str
    rows: int


def _key_of(tx: Tx, column: sa.ColumnElement[str]) -> sa.ColumnElement[str]:
    # The key id is the part of a blind index before the first ":".
    if tx.sqlite:
        return sa.func.substr(column, 1, sa.func.instr(column, ":") - 1)
    return sa.func.split_part(column, ":", 1)


def _usage_statements(
    tx: Tx, *, family: str, now: dt.datetime
) -> list[tuple[str, sa.Select[str, int]]]:
    def per_key(
        what: str, key: sa.ColumnElement[str], *where: sa.ColumnElement[bool]
    ) -> tuple[str, sa.Select[str, int]]:
        statement = sa.select(key.label("key_id"), sa.func.count().label("rows"))
        return what, statement.where(*where).group_by(key)

    if family == "phone":
        return [
            per_key(f"{name}.phone_key_id", t.c.phone_key_id) for name, t in PHONE_TABLES.items()
        ] + [
            # Staff TOTP secrets are sealed with the phone ring too; `smsreg credentials
            # rotate --due` re-encrypts them.
            per_key("staff_totp.secret_key_id", staff_totp.c.secret_key_id),
        ]
    if family == "index":
        return [
            per_key(f"{t.name}.{column.name}", _key_of(tx, column), column.is_not(None))
            for t, column in (
                (subscribers, subscribers.c.phone_index),
                (verifications, verifications.c.phone_index),
                (verifications, verifications.c.prefix_index),
                (pumping_blocks, pumping_blocks.c.prefix_index),
                (erased_redemptions, erased_redemptions.c.phone_index),
            )
        ]
    if family == "code":
        c = verifications.c
        live = (c.status == "pending", c.expires_at > now)
        return [per_key("verifications.code_key_id (live)", c.code_key_id, *live)]
    if family == "token":
        invitation = staff_invitations.c
        return [
            per_key(
                f"{t.name}.token_key_id (live)",
                t.c.token_key_id,
                t.c.revoked_at.is_(None),
                t.c.expires_at > now,
            )
            for t in TOKEN_TABLES
        ] + [
            per_key(
                "staff_invitations.token_key_id (open)",
                invitation.token_key_id,
                invitation.revoked_at.is_(None),
                invitation.redeemed_at.is_(None),
                invitation.expires_at > now,
            ),
            per_key(
                "staff_recovery_codes.key_id (unused)",
                staff_recovery_codes.c.key_id,
                staff_recovery_codes.c.used_at.is_(None),
            ),
        ]
    raise ValueError(f"unknown key family {family!r}")


async def usage(tx: Tx, *, family: str, now: dt.datetime) -> list[Usage]:
    """(what, key_id, rows) for every key id rows of one family name, active or not.

    ``what`` names the table and column. Only rows that still need the key count:
    for codes the live verifications, for tokens the live API keys and sessions, the
    open staff invitations and the unused recovery codes.
    """
    out: list[Usage] = []
    for what, statement in _usage_statements(tx, family=family, now=now):
        for row in await tx.execute(statement):
            key_id, rows = tuple(row)
            out.append(Usage(what=what, key_id=key_id, rows=int(rows)))
    return out
