"""Check a verification's code, and approve it: the only way a number enters the registry."""

from __future__ import annotations

import datetime as dt

from app.clients.service import Client
from app.core.context import Context
from app.core.crypto import subscriber_aad, verification_aad
from app.core.errors import FieldProblem, InvalidInput
from app.core.ids import new_id
from app.core.tx import Tx
from app.purposes import policy
from app.registry import service as registry
from app.verification import codes, pumping
from app.verification import repository as repo
from app.verification.repository import ForCheck
from app.verification.schemas import CheckResultPublic, VerificationCheck
from app.verification.states import VerificationNotFound, WrongCode, refusal, state


async def check(
    tx: Tx, ctx: Context, *, client: Client, verification_id: str, data: VerificationCheck
) -> CheckResultPublic:
    """Approve the verification if the code is right; every check counts as an attempt.

    The code is derived from what the verification was started with, which never
    changes; the write that counts the check takes the verification's state as it is
    then (a concurrent check's result included), so every check is counted and none
    past the limit.
    """
    now = ctx.clock.now()
    row = await repo.get_for_check(tx, verification_id=verification_id, client_id=client.id)
    if row is None:
        raise VerificationNotFound()
    if state(row, now) != "pending":
        raise refusal(row, now)  # not live: nothing to count
    if len(data.code) != row.code_length:
        # A typo that cannot be the code (the SMS shows how long it is): said as such,
        # not counted against the person's tries, and no help to a guesser.
        raise InvalidInput.field("code", f"must be {row.code_length} digits")
    expected = codes.derive(ctx.keys.code, row)
    if not codes.matches(expected, data.code):
        left = row.max_attempts - row.attempts - 1
        failed = await repo.count_failed_attempt(
            tx, verification=row, now=now, actor=client.actor, details={"attempts_left": left}
        )
        if failed is None:
            raise VerificationNotFound()
        if not failed.counted:
            raise refusal(failed.before, now)  # a concurrent check got there first
        left = failed.before.max_attempts - failed.before.attempts - 1
        raise WrongCode(
            f"the code is not correct; {left} attempt(s) left",
            errors=[FieldProblem(location="body", field="code", detail="is not correct")],
            attempts_left=left,
        )
    approved = await _approve(tx, ctx, row=row, actor=client.actor, now=now)
    if approved is None:
        raise VerificationNotFound()
    if not approved.counted:
        raise refusal(approved.before, now)  # a concurrent check got there first
    return CheckResultPublic(
        id=row.id, status="approved", purpose=row.purpose, subscriber_id=approved.subscriber_id
    )


async def _approve(
    tx: Tx, ctx: Context, *, row: ForCheck, actor: str, now: dt.datetime
) -> repo.Checked | None:
    """Approve a checked verification; numbers enter the registry only here, for a
    purpose that registers them.

    While the index ring holds older keys (a rotation, app/keys/rotation.py) the number's
    index is recomputed under every key: the subscriber may still be indexed under an
    older one, and the verification may have been started under it.
    """
    index = ctx.keys.index
    rotating = index.rotating or not row.phone_index.startswith(index.active_id + ":")
    e164 = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=verification_aad(row.id)
    )
    indexes = list(ctx.keys.blind_indexes(e164, kind="number")) if rotating else [row.phone_index]
    subscriber_id = None
    register = None
    if not policy(row.purpose).registers:
        # Proving control of a number to act on one's own data registers nothing.
        subscriber_id = await registry.find_id(tx, phone_index=indexes)
    else:
        if rotating:
            # Processes may briefly disagree on the active key while a new one is rolled
            # out; the index under the ring's lowest key id is the same in all of them, so
            # two first approvals of one number cannot insert it twice, under two keys.
            await tx.lock("subscriber:" + indexes[index.ids().index(min(index.keys))])
        key_id, ciphertext = ctx.keys.encrypt(e164, context=subscriber_aad(indexes[0]))
        if rotating:
            await registry.move_to_index(
                tx, phone_index=indexes[0], ciphertext=ciphertext, key_id=key_id, older=indexes[1:]
            )
        register = {
            "new_subscriber": new_id("sub"),
            "ciphertext": ciphertext,
            "key_id": key_id,
            "phone_index": indexes[0],
        }
    return await repo.approve(
        tx,
        verification=row,
        now=now,
        actor=actor,
        approvals_bucket=None
        if row.prefix_index is None
        else pumping.approvals_bucket(row.prefix_index),
        subscriber_id=subscriber_id,
        register=register,
    )
