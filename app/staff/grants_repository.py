"""Queries on role-grant proposals and invitations (SQLAlchemy Core on the SQLModel tables)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from app.core.tx import Tx
from app.models.staff import StaffInvitation, StaffRoleGrant
from app.models.types import table

grants = table(StaffRoleGrant)
invitations = table(StaffInvitation)
_g = grants.c
_i = invitations.c


# -- grant proposals ----------------------------------------------------------------------


def _grant(row: Any) -> StaffRoleGrant:
    return StaffRoleGrant(**row._mapping)


async def insert_grant(tx: Tx, grant: StaffRoleGrant) -> None:
    """Store a new proposal."""
    await tx.execute(sa.insert(grants).values(grant.model_dump()))


async def get_grant(tx: Tx, grant_id: str, *, for_update: bool = False) -> StaffRoleGrant | None:
    """One proposal, or None; ``for_update`` holds it until commit (PostgreSQL)."""
    statement = sa.select(grants).where(_g.id == grant_id)
    if for_update and not tx.sqlite:
        statement = statement.with_for_update()
    row = (await tx.execute(statement)).one_or_none()
    return None if row is None else _grant(row)


async def list_grants(tx: Tx, *, status: str | None, limit: int) -> list[StaffRoleGrant]:
    """Proposals, newest first, optionally of one stored status."""
    statement = sa.select(grants).order_by(_g.proposed_at.desc(), _g.id.desc()).limit(limit)
    if status is not None:
        statement = statement.where(_g.status == status)
    return [_grant(row) for row in await tx.execute(statement)]


async def pending_grant_for(tx: Tx, staff_id: str, *, now: dt.datetime) -> StaffRoleGrant | None:
    """An account's live pending proposal (not past its end), or None."""
    row = (
        await tx.execute(
            sa.select(grants).where(
                _g.staff_id == staff_id, _g.status == "pending", _g.expires_at > now
            )
        )
    ).first()
    return None if row is None else _grant(row)


async def confirmed_grant_of(tx: Tx, staff_id: str, role: str) -> bool:
    """Whether a proposal to grant this role to this account was confirmed."""
    found = await tx.scalar(
        sa.select(sa.func.count())
        .select_from(grants)
        .where(_g.staff_id == staff_id, _g.role == role, _g.status == "confirmed")
    )
    return bool(found)


async def pending_grants(
    tx: Tx, *, proposed_by: str | None = None, staff_id: str | None = None
) -> list[StaffRoleGrant]:
    """Pending proposals made by someone, or for an account."""
    statement = sa.select(grants).where(_g.status == "pending").order_by(_g.id)
    if proposed_by is not None:
        statement = statement.where(_g.proposed_by == proposed_by)
    if staff_id is not None:
        statement = statement.where(_g.staff_id == staff_id)
    return [_grant(row) for row in await tx.execute(statement)]


async def decide_grant(
    tx: Tx, grant_id: str, *, status: str, by: str, at: dt.datetime, reason: str | None
) -> bool:
    """Close a pending proposal; False if it was no longer pending."""
    result = await tx.execute(
        sa.update(grants)
        .where(_g.id == grant_id, _g.status == "pending")
        .values(status=status, decided_by=by, decided_at=at, reason=reason)
    )
    return result.rowcount == 1


# -- invitations ---------------------------------------------------------------------------


def _invitation(row: Any) -> StaffInvitation:
    return StaffInvitation(**row._mapping)


async def insert_invitation(tx: Tx, invitation: StaffInvitation) -> None:
    """Store a new invitation (its token only as a keyed hash)."""
    await tx.execute(sa.insert(invitations).values(invitation.model_dump()))


async def invitation_by_hashes(
    tx: Tx, hashes: Sequence[str], *, for_update: bool = False
) -> StaffInvitation | None:
    """The invitation whose token hashes to one of ``hashes``, or None."""
    statement = sa.select(invitations).where(_i.token_hash.in_(list(hashes)))
    if for_update and not tx.sqlite:
        statement = statement.with_for_update()
    row = (await tx.execute(statement)).first()
    return None if row is None else _invitation(row)


async def get_invitation(
    tx: Tx, invitation_id: str, *, for_update: bool = False
) -> StaffInvitation | None:
    """One invitation, or None."""
    statement = sa.select(invitations).where(_i.id == invitation_id)
    if for_update and not tx.sqlite:
        statement = statement.with_for_update()
    row = (await tx.execute(statement)).one_or_none()
    return None if row is None else _invitation(row)


async def open_invitations(
    tx: Tx, *, now: dt.datetime, created_by: str | None = None, staff_id: str | None = None
) -> list[StaffInvitation]:
    """Invitations neither redeemed, revoked nor expired, oldest first."""
    statement = (
        sa.select(invitations)
        .where(_i.redeemed_at.is_(None), _i.revoked_at.is_(None), _i.expires_at > now)
        .order_by(_i.created_at, _i.id)
    )
    if created_by is not None:
        statement = statement.where(_i.created_by == created_by)
    if staff_id is not None:
        statement = statement.where(_i.staff_id == staff_id)
    return [_invitation(row) for row in await tx.execute(statement)]


async def redeemed_invitations(tx: Tx, staff_ids: Sequence[str]) -> dict[str, StaffInvitation]:
    """The invitation each of these accounts' owners finished enrolling with, by account
    id (the latest, should there be more); an account whose owner has not is left out.
    One statement for a whole list of proposals."""
    if not staff_ids:
        return {}
    rows = await tx.execute(
        sa.select(invitations)
        .where(_i.staff_id.in_(sorted(set(staff_ids))), _i.redeemed_at.is_not(None))
        .order_by(_i.redeemed_at)
    )
    return {invitation.staff_id: invitation for invitation in map(_invitation, rows)}


async def update_invitation(tx: Tx, invitation_id: str, **values: Any) -> None:
    """Change columns of one invitation (password set, redeemed, revoked)."""
    await tx.execute(sa.update(invitations).where(_i.id == invitation_id).values(**values))
