"""The staff second factor: TOTP (RFC 6238, pyotp), with one-time recovery codes beside it.

The TOTP secret is encrypted like a phone number (AES-256-GCM under the phone key
ring, its key id beside it, the account id bound as associated data), because the
server must read it back to check a code. A code is accepted once: the last accepted
30-second step is kept and a code of that step or an earlier one is refused, so one
seen over a shoulder cannot be replayed.

These functions know an account only by its id: the lockout a wrong code counts
towards, and who may do what, are the staff area's (app.staff.second_factor).
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import unicodedata
from dataclasses import dataclass

import pyotp

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.crypto import CryptoError, totp_aad
from app.core.errors import AppError, FieldProblem, InvalidInput, Unauthenticated
from app.core.tx import Tx
from app.credentials import recovery_codes
from app.credentials import repository as repo
from app.models.staff_mfa import StaffTotp

log = logging.getLogger("smsreg.credentials.totp")

_DIGITS = 6
# Why a login was refused: the right TOTP code, but one already used (not counted).
REPLAYED_TOTP = "replayed_totp"
REPLAYED_RECOVERY_CODE = "replayed_recovery_code"
# The refusals that are no guess, and count towards no lockout.
REPLAYS = frozenset({REPLAYED_TOTP, REPLAYED_RECOVERY_CODE})


class TotpRequired(Unauthenticated):
    slug = "totp-required"
    title = "This account needs its TOTP code (field totp) or a recovery code"
    # What the login recorded of the attempt (not a failure) is kept.
    commit = True


class TotpAlreadyEnrolled(AppError):
    status = 409
    slug = "totp-already-enrolled"
    title = "TOTP is already enrolled for this account"


class TotpNotEnrolled(AppError):
    status = 409
    slug = "totp-not-enrolled"
    title = "No TOTP enrolment to confirm or use: start one first"


@dataclass(frozen=True)
class Enrolment:
    """A started enrolment: the secret and its URI, shown this once."""

    secret: str
    provisioning_uri: str


@dataclass(frozen=True)
class TotpStatus:
    """Whether an account has TOTP, and how many recovery codes are left."""

    enrolled: bool
    pending: bool
    confirmed_at: dt.datetime | None
    required: bool
    recovery_codes_left: int


async def status(tx: Tx, ctx: Context, *, staff_id: str, required: bool) -> TotpStatus:
    """An account's second factor; ``required``: whether its role must have one."""
    row = await repo.totp_of(tx, staff_id)
    return TotpStatus(
        enrolled=row is not None and row.confirmed_at is not None,
        pending=row is not None and row.confirmed_at is None,
        confirmed_at=row.confirmed_at if row is not None else None,
        required=required,
        recovery_codes_left=await recovery_codes.left(tx, staff_id),
    )


async def start_enrolment(
    tx: Tx, ctx: Context, *, staff_id: str, username: str, actor: str
) -> Enrolment:
    """A new secret, stored encrypted and pending until a first code confirms it."""
    row = await repo.totp_of(tx, staff_id, for_update=True)
    if row is not None and row.confirmed_at is not None:
        raise TotpAlreadyEnrolled("TOTP is already enrolled; an admin can reset it")
    now = ctx.clock.now()
    secret = pyotp.random_base32()  # 160 bits, RFC 4226's recommended length
    key_id, sealed = ctx.keys.encrypt(secret, context=totp_aad(staff_id))
    await repo.replace_totp(
        tx,
        StaffTotp(
            staff_id=staff_id, secret_ciphertext=sealed, secret_key_id=key_id, created_at=now
        ),
    )
    await record_event(tx, Tag.STAFF_TOTP_ENROLMENT_STARTED, actor=actor, at=now, subject=staff_id)
    return _enrolment(ctx, secret, username)


async def pending_enrolment(
    tx: Tx, ctx: Context, *, staff_id: str, username: str
) -> Enrolment | None:
    """The secret of an enrolment not yet confirmed, to show again after a mistyped first
    code (a new secret would silently break the entry already added to the app)."""
    row = await repo.totp_of(tx, staff_id)
    if row is None or row.confirmed_at is not None:
        return None
    secret = _secret(ctx, row)
    return None if secret is None else _enrolment(ctx, secret, username)


def _enrolment(ctx: Context, secret: str, username: str) -> Enrolment:
    """A secret with the ``otpauth://`` address an authenticator app reads it from."""
    uri = pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ctx.settings.totp_issuer)
    return Enrolment(secret=secret, provisioning_uri=uri)


async def confirm_enrolment(
    tx: Tx, ctx: Context, *, staff_id: str, actor: str, code: str
) -> list[str]:
    """Confirm a pending enrolment with its first code; the recovery codes, shown once."""
    row = await repo.totp_of(tx, staff_id, for_update=True)
    if row is None:
        raise TotpNotEnrolled("start an enrolment first (POST /v1/staff/me/totp)")
    if row.confirmed_at is not None:
        raise TotpAlreadyEnrolled("TOTP is already enrolled")
    now = ctx.clock.now()
    step = _matching_step(ctx, row, code, now)
    if step is None:
        # Nothing is written: the person holds the secret just shown, so guessing here
        # gains nothing.
        raise InvalidInput.field("code", "is not the current code of the new secret")
    await repo.confirm_totp(tx, staff_id=staff_id, at=now, step=step)
    await record_event(tx, Tag.STAFF_TOTP_ENROLLED, actor=actor, at=now, subject=staff_id)
    return await recovery_codes.issue(tx, ctx, staff_id=staff_id, actor=actor, now=now)


async def confirmed_secret(tx: Tx, staff_id: str) -> StaffTotp:
    """An account's confirmed secret, held until commit; TotpNotEnrolled if there is none."""
    row = await repo.totp_of(tx, staff_id, for_update=True)
    if row is None or row.confirmed_at is None:
        raise TotpNotEnrolled("TOTP is not enrolled for this account")
    return row


async def accept(tx: Tx, ctx: Context, *, secret: StaffTotp, code: str) -> bool:
    """Whether ``code`` is a current code not used before; if so it is used up now."""
    step = _matching_step(ctx, secret, code, ctx.clock.now())
    if step is None:
        return False
    await repo.accept_step(tx, staff_id=secret.staff_id, step=step)
    if secret.secret_key_id != ctx.keys.phone.active_id:
        # Moved to the active phone key on the way, so an old key can leave the ring.
        plain = _secret(ctx, secret)
        if plain is not None:
            await _store(tx, ctx, staff_id=secret.staff_id, secret=plain)
    return True


async def second_factor(
    tx: Tx, ctx: Context, *, staff_id: str, totp: str | None, recovery_code: str | None
) -> str | None:
    """At login, after the password: None if the second factor passes (or the account has
    none), else why not. TotpRequired when the account has one and none was sent."""
    row = await repo.totp_of(tx, staff_id, for_update=True)
    if row is None or row.confirmed_at is None:
        return None
    if totp:
        if await accept(tx, ctx, secret=row, code=totp):
            return None
        # The right code, already used: the same login sent twice at once, or again within
        # its 30 seconds. Refused, as every replay; REPLAYED_TOTP is not a guess, so it
        # does not count towards the account's lockout.
        return REPLAYED_TOTP if used_before(ctx, row, totp) else "wrong_totp"
    if recovery_code:
        if await recovery_codes.use(tx, ctx, staff_id=staff_id, code=recovery_code):
            return None
        # Spent already: the same login sent twice, or two at once. As a replayed TOTP
        # code, no guess: it does not count towards the lockout.
        replayed = await recovery_codes.spent(tx, ctx, staff_id=staff_id, code=recovery_code)
        return REPLAYED_RECOVERY_CODE if replayed else "wrong_recovery_code"
    raise TotpRequired(
        "this account needs its TOTP code",
        errors=[FieldProblem(location="body", field="totp", detail="is required")],
    )


async def enrolled(tx: Tx, staff_id: str) -> bool:
    """Whether an account has a confirmed TOTP secret."""
    return await repo.totp_confirmed(tx, staff_id)


async def remove(tx: Tx, *, staff_id: str) -> tuple[bool, int]:
    """Delete an account's TOTP secret and recovery codes: (had a secret, codes deleted)."""
    had = await repo.delete_totp(tx, staff_id)
    return had, await recovery_codes.remove(tx, staff_id=staff_id)


async def reencrypt(tx: Tx, ctx: Context, *, actor: str) -> int:
    """Re-encrypt every TOTP secret not under the active phone key; how many."""
    active = ctx.keys.phone.active_id
    done = 0
    for row in await repo.totps_not_under(tx, active):
        plain = _secret(ctx, row, quiet=True)
        if plain is None:
            continue  # its key is gone: reported by `smsreg credentials due`
        await _store(tx, ctx, staff_id=row.staff_id, secret=plain)
        done += 1
    if done:
        await record_event(
            tx, Tag.STAFF_TOTP_REENCRYPTED, actor=actor, at=ctx.clock.now(),
            details={"secrets": done, "key_id": active},
        )  # fmt: skip
    return done


# -- codes -----------------------------------------------------------------------------


def _secret(ctx: Context, row: StaffTotp, *, quiet: bool = False) -> str | None:
    try:
        return ctx.keys.decrypt(
            row.secret_ciphertext, key_id=row.secret_key_id, context=totp_aad(row.staff_id)
        )
    except CryptoError:
        # The phone key this secret needs is not in the ring (removed before
        # `smsreg credentials rotate --due` re-encrypted it): no code can match.
        if not quiet:
            log.warning(
                "totp secret unreadable",
                extra={"staff_id": row.staff_id, "key_id": row.secret_key_id},
            )
        return None


def _typed(code: str) -> str | None:
    """The code as six ASCII digits, as a Japanese input method's full-width ones too; None
    if it is not one (compare_digest takes ASCII only)."""
    typed = "".join(unicodedata.normalize("NFKC", code).split())
    if len(typed) != _DIGITS or not (typed.isascii() and typed.isdigit()):
        return None
    return typed


def used_before(ctx: Context, row: StaffTotp, code: str) -> bool:
    """Whether ``code`` is the code of a step within the drift that was already accepted."""
    step = _step_of(ctx, row, code, ctx.clock.now(), quiet=True)
    return step is not None and row.last_used_step is not None and step <= row.last_used_step


def _matching_step(ctx: Context, row: StaffTotp, code: str, now: dt.datetime) -> int | None:
    """The 30-second step whose code this is, within the allowed drift and later than the
    last accepted one; None if there is none."""
    step = _step_of(ctx, row, code, now)
    last = row.last_used_step if row.last_used_step is not None else -1
    return step if step is not None and step > last else None


def _step_of(
    ctx: Context, row: StaffTotp, code: str, now: dt.datetime, *, quiet: bool = False
) -> int | None:
    """The latest step within the allowed drift whose code this is, used or not; None if
    there is none (or the secret cannot be read)."""
    typed = _typed(code)
    if typed is None:
        return None
    secret = _secret(ctx, row, quiet=quiet)
    if secret is None:
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    drift = ctx.settings.totp_drift_steps
    found = None
    for step in range(current - drift, current + drift + 1):
        # Every candidate is compared, in constant time, whatever matched before.
        if hmac.compare_digest(totp.generate_otp(step), typed):
            found = step
    return found


async def _store(tx: Tx, ctx: Context, *, staff_id: str, secret: str) -> None:
    key_id, sealed = ctx.keys.encrypt(secret, context=totp_aad(staff_id))
    await repo.store_secret(tx, staff_id=staff_id, ciphertext=sealed, key_id=key_id)
