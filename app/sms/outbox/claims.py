"""Claiming due messages for a worker, and giving up on those no longer wanted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from app.audit.events import Tag, event, record_events
from app.core.sql import Sql
from app.core.tx import Tx
from app.sms.outbox.messages import CAMPAIGN, CODE, Claimed, MessageId

_KINDS = (CODE, CAMPAIGN)  # claimed in this order: a campaign's backlog never delays a code
_GIVE_UP = (
    "UPDATE outbox_messages SET status = 'unknown', claimed_until = NULL "
    "WHERE kind IN ({kinds}) AND status = 'sending' AND claimed_until <= :now "
    "AND send_started_at IS NOT NULL RETURNING id"
)
# Two candidate sets per kind, each read straight off (kind, status, next_attempt_at): one
# OR over both made SQLite sort every due row of a backlog on each claim. Only claims that
# ran out before their message was handed to the carrier are taken back.
_STALE = (
    "SELECT id, next_attempt_at FROM outbox_messages WHERE kind = {kind} "
    "AND status = 'sending' AND claimed_until <= :now AND send_started_at IS NULL "
    "LIMIT :limit{lock}"
)
_DUE = (
    "SELECT id, next_attempt_at FROM outbox_messages WHERE kind = {kind} "
    "AND status = 'pending' AND next_attempt_at <= :now ORDER BY next_attempt_at "
    "LIMIT :limit{lock}"
)
_TAKE = (
    "UPDATE outbox_messages SET status = 'sending', claimed_until = :lease, "
    "claim_token = claim_token + 1, attempts = attempts + 1 WHERE id IN ({candidates}) "
    "RETURNING id, kind, verification_id, delivery_id, subscriber_id, locale, attempts, "
    "expires_at, claim_token"
)
_GIVE_UP_AUDIT = (
    "INSERT INTO audit_events (tag, actor, subject, at, details) "
    "SELECT CAST(:unknown AS varchar), 'outbox', id, CAST(:now AS timestamptz), "
    "CAST('{}' AS json) FROM gone"
)


_GIVE_UP_SQL = Sql(_GIVE_UP.format(kinds=":kind"), MessageId)
_CLAIM_SQLITE = Sql(
    f"WITH stale AS ({_STALE.format(kind=':kind', lock='')}), "  # noqa: S608 (fixed text)
    f"due AS ({_DUE.format(kind=':kind', lock='')}) "
    + _TAKE.format(
        candidates="SELECT id FROM (SELECT id FROM stale UNION ALL SELECT id FROM due) "
        "AS candidates LIMIT :limit"
    ),
    Claimed,
)


def _claim_postgres() -> Sql[Claimed]:
    # One statement for every kind: settle the claims that ran out mid-send as unknown
    # (audited), then take the stale and due messages of each kind in order. Rows another
    # worker's claim has locked are skipped, not waited for.
    kinds = ", ".join(f":{kind}" for kind in _KINDS)
    parts = [f"gone AS ({_GIVE_UP.format(kinds=kinds)})", f"audited AS ({_GIVE_UP_AUDIT})"]
    candidates = []
    lock = " FOR UPDATE SKIP LOCKED"
    for rank, (kind, query) in enumerate((k, q) for k in _KINDS for q in (_STALE, _DUE)):
        parts.append(f"c{rank} AS ({query.format(kind=':' + kind, lock=lock)})")
        candidates.append(f"SELECT id, {rank} AS rank, next_attempt_at FROM c{rank}")  # noqa: S608
    union = " UNION ALL ".join(candidates)
    ordered = (
        f"SELECT id FROM ({union}) AS candidates "  # noqa: S608 (fixed text)
        "ORDER BY rank, next_attempt_at LIMIT :limit"
    )
    text = f"WITH {', '.join(parts)} {_TAKE.format(candidates=ordered)}"
    return Sql(text, Claimed)  # fixed text: only the kinds' fixed names vary


_CLAIM_POSTGRES = _claim_postgres()


async def claim(tx: Tx, *, now: dt.datetime, lease: dt.timedelta, limit: int) -> list[Claimed]:
    """Take up to ``limit`` due messages under a lease, codes first; rows another worker
    holds are skipped. A claim that ran out after its message was handed to the carrier
    is settled as ``unknown`` instead of being taken back. The unit's final statement:
    render what was claimed in a unit of its own."""
    if not tx.sqlite:
        params = {
            "code": CODE,
            "campaign": CAMPAIGN,
            "unknown": Tag.SMS_UNKNOWN.value,
            "now": now,
            "lease": now + lease,
            "limit": limit,
        }
        taken = await tx.fetch_final(_CLAIM_POSTGRES, params)
        return sorted(taken, key=lambda m: _KINDS.index(m.kind))  # RETURNING has no order
    claimed: list[Claimed] = []
    for kind in _KINDS:
        if len(claimed) >= limit:
            break
        gone = await tx.fetch(_GIVE_UP_SQL, {"kind": kind, "now": now})
        if gone:
            await record_events(
                tx,
                [event(Tag.SMS_UNKNOWN, actor="outbox", at=now, subject=row.id) for row in gone],
            )
        params = {"kind": kind, "now": now, "lease": now + lease, "limit": limit - len(claimed)}
        claimed += await tx.fetch(_CLAIM_SQLITE, params)
    return claimed


_EXPIRE = Sql(
    "UPDATE outbox_messages SET status = 'expired', claimed_until = NULL "
    "WHERE id = :id AND claim_token = :token AND status = 'sending'"
)


async def expire(tx: Tx, messages: Sequence[Claimed], *, now: dt.datetime) -> None:
    """Drop claimed messages whose reason is gone (a code expired or no longer pending)."""
    if not messages:
        return
    await tx.run_many(_EXPIRE, [{"id": m.id, "token": m.token} for m in messages])
    await record_events(
        tx, [event(Tag.SMS_EXPIRED, actor="outbox", at=now, subject=m.id) for m in messages]
    )


_CANCEL = Sql(
    "UPDATE outbox_messages SET status = 'cancelled', claimed_until = NULL, "
    "error_code = :reason WHERE id = :id AND claim_token = :token AND status = 'sending'"
)


async def cancel(tx: Tx, messages: Sequence[Claimed], *, now: dt.datetime, reason: str) -> None:
    """Settle claimed messages that must not be sent (an opt-out, a recipient gone)."""
    if not messages:
        return
    await tx.run_many(_CANCEL, [{"id": m.id, "token": m.token, "reason": reason} for m in messages])
    await record_events(
        tx,
        [
            event(
                Tag.SMS_CANCELLED,
                actor="outbox",
                at=now,
                subject=m.id,
                details={"reason": reason, "subscriber_id": m.subscriber_id},
            )
            for m in messages
        ],
    )
