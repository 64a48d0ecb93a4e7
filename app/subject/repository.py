"""Every query on the subject's own tables: sessions and the request register."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from app.core import sql
from app.core.tx import Tx
from app.models.subject import SubjectRequest, SubjectSession
from app.models.types import table

sessions = table(SubjectSession)
requests = table(SubjectRequest)


# -- sessions ---------------------------------------------------------------------------


async def insert_session(tx: Tx, session: SubjectSession) -> None:
    """Store a new session (its token only as a keyed hash)."""
    await tx.execute(sa.insert(sessions).values(session.model_dump()))


async def session_by_hashes(tx: Tx, hashes: Sequence[str]) -> SubjectSession | None:
    """The session whose token hashes to one of ``hashes`` (one per token key)."""
    row = (
        await tx.execute(sa.select(sessions).where(sessions.c.token_hash.in_(list(hashes))))
    ).first()
    return None if row is None else SubjectSession(**row._mapping)


async def get_session(tx: Tx, session_id: str) -> SubjectSession | None:
    """One session by id, or None."""
    row = (await tx.execute(sa.select(sessions).where(sessions.c.id == session_id))).first()
    return None if row is None else SubjectSession(**row._mapping)


async def end_session(tx: Tx, *, session_id: str, at: dt.datetime) -> None:
    """Revoke one session."""
    c = sessions.c
    await tx.execute(
        sa.update(sessions).where(c.id == session_id, c.revoked_at.is_(None)).values(revoked_at=at)
    )


# -- the request register ---------------------------------------------------------------


async def insert_request(tx: Tx, request: SubjectRequest) -> None:
    """Add a request to the register."""
    await tx.execute(sa.insert(requests).values(request.model_dump()))


async def get_request(tx: Tx, request_id: str, *, lock: bool = False) -> SubjectRequest | None:
    """One request, or None (locked until commit with ``lock``, on PostgreSQL)."""
    query = sa.select(requests).where(requests.c.id == request_id)
    if lock:
        query = query.with_for_update()
    row = (await tx.execute(query)).one_or_none()
    return None if row is None else SubjectRequest(**row._mapping)


async def requests_recorded_by(tx: Tx, actor: str) -> tuple[int, SubjectRequest | None]:
    """How many requests a person recorded, and the newest of them."""
    c = requests.c
    row = (await tx.execute(sql.made_by(requests, c.recorded_by, actor, c.received_at))).first()
    return (0, None) if row is None else (row.made, SubjectRequest(**sql.without_made(row)))


async def close_request(tx: Tx, *, request_id: str, values: dict[str, Any]) -> bool:
    """Close an open request with ``values``; False if it was not open."""
    c = requests.c
    done = await tx.execute(
        sa.update(requests).where(c.id == request_id, c.status == "open").values(**values)
    )
    return bool(done.rowcount)


async def list_requests(
    tx: Tx, *, status: str | None, subscriber_id: str | None, limit: int
) -> list[SubjectRequest]:
    """Open requests first, by due date; then closed ones, the latest answered first (a
    long register's cut then leaves out the oldest answers, never the open queue)."""
    c = requests.c
    query = sa.select(requests)
    if status is not None:
        query = query.where(c.status == status)
    if subscriber_id is not None:
        query = query.where(c.subscriber_id == subscriber_id)
    is_open = c.status == "open"
    query = query.order_by(
        sa.case((is_open, 0), else_=1),
        sa.case((is_open, c.due_at)),
        c.done_at.desc(),
        c.id,
    ).limit(limit)
    return [SubjectRequest(**row._mapping) for row in await tx.execute(query)]


async def last_receipt(tx: Tx, *, subscriber_id: str, kind: str) -> dict[str, Any] | None:
    """The receipt of the subscriber's latest done request of ``kind`` that has one."""
    c = requests.c
    query = (
        sa.select(c.receipt)
        .where(
            c.subscriber_id == subscriber_id,
            c.kind == kind,
            c.status == "done",
            c.receipt.is_not(None),
        )
        .order_by(c.done_at.desc(), c.id.desc())
        .limit(1)
    )
    receipt: dict[str, Any] | None = await tx.scalar(query)
    return receipt
