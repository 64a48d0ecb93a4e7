"""A start's ``Idempotency-Key``: the first answer to a key is stored with the start and
replayed to a repeat of the same request within ``idempotency_ttl_hours``; the same key
with a different request is refused."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import NamedTuple

from app.core.context import Context
from app.core.errors import FieldProblem, InvalidInput
from app.core.tx import Tx
from app.verification import repository as repo
from app.verification.schemas import VerificationPublic
from app.verification.states import IdempotencyKeyReused

MAX_KEY = 255


class Looked(NamedTuple):
    """What a key's lookup found: the first answer to replay (None: start anew), the
    request's fingerprint to store, and whether an expired record is to be replaced."""

    first: VerificationPublic | None
    fingerprint: str
    replace: bool


def fingerprint(ctx: Context, request: bytes, *, key_id: str | None = None) -> str:
    """The request's keyed hash: a plain hash of a request with a number is reversible."""
    return hashlib.sha256(ctx.keys.index.mac(request, key_id=key_id)).hexdigest()


def check_key(key: str) -> None:
    """Refuse a key that is empty, too long or not printable ASCII."""
    if not 1 <= len(key) <= MAX_KEY or not key.isprintable() or not key.isascii():
        raise InvalidInput(
            "Idempotency-Key: must be 1 to 255 printable ASCII characters",
            errors=[
                FieldProblem(
                    location="header",
                    field="Idempotency-Key",
                    detail="must be 1 to 255 printable ASCII characters",
                )
            ],
        )


async def look_up(
    tx: Tx, ctx: Context, *, client_id: str, key: str, request: bytes, now: dt.datetime
) -> Looked:
    """The key's first answer, under a lock on the key held to the end of the unit, so
    two starts with one key make one verification."""
    check_key(key)
    mine = fingerprint(ctx, request)
    await tx.lock(f"idem:{client_id}:{key}")
    stored = await repo.get_idempotent(tx, client_id=client_id, key=key)
    if stored is None:
        return Looked(None, mine, replace=False)
    if now - stored.created_at >= dt.timedelta(hours=ctx.settings.idempotency_ttl_hours):
        return Looked(None, mine, replace=True)
    if stored.fingerprint != mine and stored.fingerprint not in (
        fingerprint(ctx, request, key_id=k) for k in ctx.keys.index.ids()[1:]
    ):  # the first answer may have been fingerprinted under an older index key
        raise IdempotencyKeyReused()
    return Looked(VerificationPublic.model_validate(stored.response), mine, replace=False)
