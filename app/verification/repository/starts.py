"""What a start (and a resend) writes, one statement on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.dialects import postgresql

from app.audit.events import Tag
from app.core.sql import Sql
from app.core.tx import Tx
from app.models import verification as models
from app.models.types import table
from app.verification.repository.reads import NewVerification
from app.verification.repository.windows import (
    COUNTED,
    Counted,
    SendWindow,
    count_send_sqlite,
    window_upsert,
)

_VERIFICATIONS = table(models.Verification)
_INSERT_COLUMNS = ", ".join(NewVerification._fields)
_STATE = "status, attempts, send_count, last_sent_at"  # their values at a start: fixed
_STATE_VALUES = "'pending', 0, 1, :created_at"
_INSERT_VERIFICATION = f"INSERT INTO verifications ({_INSERT_COLUMNS}, {_STATE}) "  # noqa: S608
_ENQUEUE_COLUMNS = (
    "INSERT INTO outbox_messages (id, kind, verification_id, status, attempts, created_at, "
    "next_attempt_at, expires_at) "
)
_ENQUEUE_CODE = (
    _ENQUEUE_COLUMNS + "VALUES (:message_id, 'code', :id, 'pending', 0, :created_at, "
    ":created_at, :expires_at)"
)
_SUPERSEDE = (
    "UPDATE verifications SET status = 'superseded' WHERE phone_index IN ({indexes}) "
    "AND client_id = :client_id AND purpose = :purpose AND status = 'pending'"
)
_AUDIT_COLUMNS = "INSERT INTO audit_events (tag, actor, subject, at, details) "
_AUDIT = _AUDIT_COLUMNS + "VALUES (:tag, :actor, :id, :created_at, :details)"


def _marks(name: str, n: int) -> str:
    return ", ".join(f":{name}{i}" for i in range(n))


def _typed(columns: Iterable[str]) -> str:
    # In INSERT ... SELECT, PostgreSQL cannot infer a parameter's type from its column.
    dialect = postgresql.dialect()
    return ", ".join(
        f"CAST(:{name} AS {_VERIFICATIONS.c[name].type.compile(dialect=dialect)})"
        for name in columns
    )


@functools.cache
def _start_sqlite(indexes: int) -> tuple[Sql[Any], ...]:
    values = ", ".join(":" + name for name in NewVerification._fields)
    return (
        Sql(_SUPERSEDE.format(indexes=_marks("i", indexes))),
        Sql(f"{_INSERT_VERIFICATION} VALUES ({values}, {_STATE_VALUES})"),
        Sql(_ENQUEUE_CODE),
        Sql(_AUDIT),
    )


@functools.cache
def _start_postgres(indexes: int, limits: int) -> Sql[Counted]:
    # One statement: count the send in the number's row; only if it fits, supersede the
    # client's older code for the number, insert the verification and its SMS, and audit.
    # Every part reads the snapshot from before the statement, so the new row cannot be
    # superseded by its own start.
    supersede = _SUPERSEDE.format(indexes=_marks("i", indexes))
    started = (
        f"{_INSERT_VERIFICATION} SELECT {_typed(NewVerification._fields)}, "  # noqa: S608
        "'pending', 0, 1, CAST(:created_at AS timestamptz) FROM sent"
    )
    queued = (
        _ENQUEUE_COLUMNS  # noqa: S608 (fixed text)
        + "SELECT CAST(:message_id AS varchar), 'code', CAST(:id AS varchar), "
        "'pending', 0, CAST(:created_at AS timestamptz), CAST(:created_at AS timestamptz), "
        "CAST(:expires_at AS timestamptz) FROM sent"
    )
    audited = (
        _AUDIT_COLUMNS  # noqa: S608 (fixed text)
        + "SELECT CAST(:tag AS varchar), CAST(:actor AS varchar), CAST(:id AS varchar), "
        "CAST(:created_at AS timestamptz), CAST(:details AS json) FROM sent"
    )
    return Sql(
        f"WITH sent AS ({window_upsert(limits)}), "  # noqa: S608 (fixed text)
        f"superseded AS ({supersede} AND EXISTS (SELECT 1 FROM sent)), "
        f"started AS ({started}), queued AS ({queued}), "
        f"audited AS ({audited}) {COUNTED}",
        Counted,
    )


async def record_start(
    tx: Tx,
    verification: NewVerification,
    *,
    window: SendWindow,
    message_id: str,
    phone_indexes: Sequence[str],
    actor: str,
    details: dict[str, Any],
) -> Counted:
    """Count the send in the number's limits and, only if they allow it, write the rest
    of a start: supersede the client's older pending verification of the number (under
    every index key in the ring), insert the verification and its code SMS, and audit.

    The unit's final statement: on PostgreSQL all of it is one statement, which needs
    no transaction around it.
    """
    params: dict[str, Any] = verification._asdict()
    params.update(
        message_id=message_id, tag=Tag.VERIFICATION_STARTED.value, actor=actor, details=details
    )
    params.update((f"i{i}", index) for i, index in enumerate(phone_indexes))
    if not tx.sqlite:
        params.update(window.params())
        sql = _start_postgres(len(phone_indexes), len(window.limits))
        return (await tx.fetch_final(sql, params))[0]  # a SELECT without FROM: one row
    counted = await count_send_sqlite(tx, window)
    if counted.counted:
        *statements, last = _start_sqlite(len(phone_indexes))
        for sql in statements:
            await tx.run(sql, params)
        await tx.run_final(last, params)
    return counted


_RESENT = Sql(
    "UPDATE verifications SET send_count = send_count + 1, last_sent_at = :now WHERE id = :id"
)
_ENQUEUE = Sql(_ENQUEUE_CODE)


async def record_resend(
    tx: Tx, *, verification_id: str, message_id: str, now: dt.datetime, expires_at: dt.datetime
) -> None:
    """Count one more send of a verification and queue its SMS again (its number's
    limits have counted it: :func:`count_send`)."""
    await tx.run(_RESENT, {"id": verification_id, "now": now})
    await tx.run(
        _ENQUEUE,
        {
            "message_id": message_id,
            "id": verification_id,
            "created_at": now,
            "expires_at": expires_at,
        },
    )
