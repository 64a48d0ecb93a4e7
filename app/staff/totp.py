"""The staff second factor: TOTP (RFC 6238, pyotp) and ten one-time recovery codes.

The TOTP secret is encrypted like a phone number (AES-256-GCM under the phone key
ring, its key id beside it, the account id bound as associated data), because the
server must read it back to check a code. Recovery codes are only compared, so they
are stored as a keyed hash (HMAC under the token key ring, like session tokens). A
code is accepted once: the last accepted 30-second step is kept and a code of that
step or an earlier one is refused, so one seen over a shoulder cannot be replayed.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging
from dataclasses import dataclass

import pyotp

from app.audit.events import Tag, record_event
from app.core.config import Settings
from app.core.context import Context
from app.core.crypto import CryptoError
from app.core.db import Row, Tx
from app.core.errors import AppError, FieldProblem, Forbidden, InvalidInput, Unauthenticated
from app.staff import accounts, recovery_codes
from app.staff.accounts import Staff

log = logging.getLogger("smsreg.staff.totp")

TOTP_ENROLMENT_REQUIRED = "totp_enrolment_required"
_DIGITS = 6


class TotpEnrolmentRequired(Forbidden):
    slug = "totp-enrolment-required"
    title = "This role needs a second factor: enrol TOTP first (POST /v1/staff/me/totp)"


class TotpRequired(Unauthenticated):
    slug = "totp-required"
    title = "This account needs its TOTP code (field totp) or a recovery code"


class TotpAlreadyEnrolled(AppError):
    status = 409
    slug = "totp-already-enrolled"
    title = "TOTP is already enrolled for this account"


class TotpNotEnrolled(AppError):
    status = 409
    slug = "totp-not-enrolled"
    title = "No TOTP enrolment to confirm or use: start one first"


class WrongCode(AppError):
    status = 422
    slug = "wrong-code"
    title = "The code is not valid"
    commit = True  # a wrong code counts towards the account's lockout


class SecondFactorLocked(AppError):
    status = 429
    slug = "too-many-failures"
    title = "Too many wrong passwords or codes: the account is locked for a while"


@dataclass(frozen=True)
class Enrolment:
    """A started enrolment: the secret and its URI, shown this once."""

    secret: str
    provisioning_uri: str


def is_required(settings: Settings, role: str) -> bool:
    """Whether accounts of this role must have a second factor."""
    return role in settings.totp_required_roles


def _aad(staff_id: str) -> bytes:
    return b"staff_totp:" + staff_id.encode()


def _row(tx: Tx, staff_id: str) -> Row | None:
    lock = "" if tx.sqlite else " FOR UPDATE"
    return tx.one(
        "SELECT staff_id, secret_ciphertext, secret_key_id, created_at, confirmed_at, "  # noqa: S608
        f"last_used_step FROM staff_totp WHERE staff_id = :id{lock}",
        {"id": staff_id},
    )


def status(tx: Tx, ctx: Context, *, staff: Staff) -> Row:
    """Whether the signed-in person has TOTP, and how many recovery codes are left."""
    row = _row(tx, staff.id)
    return Row(
        enrolled=row is not None and row.confirmed_at is not None,
        pending=row is not None and row.confirmed_at is None,
        confirmed_at=row.confirmed_at if row is not None else None,
        required=is_required(ctx.settings, staff.role),
        recovery_codes_left=recovery_codes.left(tx, staff.id),
    )


def start_enrolment(tx: Tx, ctx: Context, *, staff: Staff) -> Enrolment:
    """A new secret, stored encrypted and pending until a first code confirms it."""
    row = _row(tx, staff.id)
    if row is not None and row.confirmed_at is not None:
        raise TotpAlreadyEnrolled("TOTP is already enrolled; an admin can reset it")
    now = ctx.clock.now()
    secret = pyotp.random_base32()  # 160 bits, RFC 4226's recommended length
    key_id, sealed = ctx.keys.encrypt(secret, context=_aad(staff.id))
    tx.execute("DELETE FROM staff_totp WHERE staff_id = :id", {"id": staff.id})
    tx.execute(
        "INSERT INTO staff_totp (staff_id, secret_ciphertext, secret_key_id, created_at) "
        "VALUES (:id, :sealed, :key_id, :now)",
        {"id": staff.id, "sealed": sealed, "key_id": key_id, "now": now},
    )
    record_event(tx, Tag.STAFF_TOTP_ENROLMENT_STARTED, actor=staff.actor, at=now, subject=staff.id)
    uri = pyotp.TOTP(secret).provisioning_uri(
        name=staff.username, issuer_name=ctx.settings.totp_issuer
    )
    return Enrolment(secret=secret, provisioning_uri=uri)


def confirm_enrolment(tx: Tx, ctx: Context, *, staff: Staff, code: str) -> list[str]:
    """Confirm a pending enrolment with its first code; the recovery codes, shown once."""
    row = _row(tx, staff.id)
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
    tx.execute(
        "UPDATE staff_totp SET confirmed_at = :now, last_used_step = :step WHERE staff_id = :id",
        {"now": now, "step": step, "id": staff.id},
    )
    record_event(tx, Tag.STAFF_TOTP_ENROLLED, actor=staff.actor, at=now, subject=staff.id)
    return recovery_codes.issue(tx, ctx, staff=staff, now=now)


def new_recovery_codes(tx: Tx, ctx: Context, *, staff: Staff, code: str) -> list[str]:
    """Replace every recovery code with ten new ones, proving the second factor first.

    A wrong code counts towards the account's lockout, and while it is locked this is
    refused: a stolen session cannot guess its way to recovery codes.
    """
    account = accounts.get_for_update(tx, staff.id)
    row = _row(tx, staff.id)
    if account is None or row is None or row.confirmed_at is None:
        raise TotpNotEnrolled("TOTP is not enrolled for this account")
    now = ctx.clock.now()
    if accounts.is_locked(account, now):
        raise SecondFactorLocked(f"locked until {account.locked_until.isoformat()}")
    step = _matching_step(ctx, row, code, now)
    if step is None:
        accounts.count_failure(tx, ctx, account=account, now=now)
        record_event(
            tx,
            Tag.STAFF_LOGIN_FAILED,
            actor=staff.actor,
            at=now,
            subject=staff.id,
            details={"reason": "wrong_totp", "during": "recovery_codes"},
        )
        raise WrongCode(
            "the code is not valid (or was used already)",
            errors=[FieldProblem(location="body", field="code", detail="is not valid")],
        )
    _accept(tx, ctx, row=row, step=step)
    return recovery_codes.issue(tx, ctx, staff=staff, now=now)


def second_factor(
    tx: Tx, ctx: Context, *, account: Row, totp: str | None, recovery_code: str | None
) -> str | None:
    """At login, after the password: None if the second factor passes (or the account has
    none), else why not. TotpRequired when the account has one and none was sent."""
    row = _row(tx, account.id)
    if row is None or row.confirmed_at is None:
        return None
    now = ctx.clock.now()
    if totp:
        step = _matching_step(ctx, row, totp, now)
        if step is None:
            return "wrong_totp"
        _accept(tx, ctx, row=row, step=step)
        return None
    if recovery_code:
        used = recovery_codes.use(tx, ctx, account=account, code=recovery_code)
        return None if used else "wrong_recovery_code"
    raise TotpRequired(
        "this account needs its TOTP code",
        errors=[FieldProblem(location="body", field="totp", detail="is required")],
    )


def enrolled(tx: Tx, account_id: str) -> bool:
    """Whether an account has a confirmed TOTP secret."""
    return (
        tx.scalar(
            "SELECT count(*) AS n FROM staff_totp WHERE staff_id = :id "
            "AND confirmed_at IS NOT NULL",
            {"id": account_id},
        )
        > 0
    )


def remove(tx: Tx, *, account_id: str) -> tuple[bool, int]:
    """Delete an account's TOTP secret and recovery codes: (had a secret, codes deleted)."""
    had = tx.execute("DELETE FROM staff_totp WHERE staff_id = :id", {"id": account_id}) > 0
    return had, recovery_codes.remove(tx, account_id=account_id)


def reset(tx: Tx, ctx: Context, *, staff: Staff | None, account_id: str) -> Row:
    """Remove an account's second factor (a lost phone) and end its sessions at once.

    An admin's action (not on their own account), or the command line (``staff`` None).
    If the role requires TOTP, the next login can only enrol again.
    """
    if staff is not None and staff.id == account_id:
        raise accounts.OwnAccount("another admin must reset this account's TOTP")
    account = accounts.get_for_update(tx, account_id)
    if account is None:
        raise accounts.StaffNotFound(f"no staff account {account_id}")
    now = ctx.clock.now()
    had, codes = remove(tx, account_id=account_id)
    ended = accounts.end_sessions(tx, account_id=account_id, now=now)
    actor = staff.actor if staff is not None else "cli"
    details = {"had_totp": had, "recovery_codes_removed": codes, "sessions_ended": ended}
    record_event(tx, Tag.STAFF_TOTP_RESET, actor=actor, at=now, subject=account_id, details=details)
    return Row(staff_id=account_id, **details)


def reencrypt(tx: Tx, ctx: Context, *, actor: str) -> int:
    """Re-encrypt every TOTP secret not under the active phone key; how many."""
    active = ctx.keys.phone.active_id
    rows = tx.all(
        "SELECT staff_id, secret_ciphertext, secret_key_id FROM staff_totp "
        "WHERE secret_key_id <> :active ORDER BY staff_id",
        {"active": active},
    )
    done = 0
    for row in rows:
        try:
            secret = ctx.keys.decrypt(
                row.secret_ciphertext, key_id=row.secret_key_id, context=_aad(row.staff_id)
            )
        except CryptoError:
            continue  # its key is gone: reported by `smsreg credentials due`
        _store_secret(tx, ctx, staff_id=row.staff_id, secret=secret)
        done += 1
    if done:
        record_event(
            tx, Tag.STAFF_TOTP_REENCRYPTED, actor=actor, at=ctx.clock.now(),
            details={"secrets": done, "key_id": active},
        )  # fmt: skip
    return done


# -- codes -----------------------------------------------------------------------------


def _secret(ctx: Context, row: Row) -> str | None:
    try:
        return ctx.keys.decrypt(
            row.secret_ciphertext, key_id=row.secret_key_id, context=_aad(row.staff_id)
        )
    except CryptoError:
        # The phone key this secret needs is not in the ring (removed before
        # `smsreg credentials rotate --due` re-encrypted it): no code can match.
        log.warning(
            "totp secret unreadable", extra={"staff_id": row.staff_id, "key_id": row.secret_key_id}
        )
        return None


def _matching_step(ctx: Context, row: Row, code: str, now: dt.datetime) -> int | None:
    """The 30-second step whose code this is, within the allowed drift and later than the
    last accepted one; None if there is none."""
    typed = "".join(code.split())
    if len(typed) != _DIGITS or not typed.isdigit():
        return None
    secret = _secret(ctx, row)
    if secret is None:
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    last = row.last_used_step if row.last_used_step is not None else -1
    drift = ctx.settings.totp_drift_steps
    found = None
    for step in range(current - drift, current + drift + 1):
        # Every candidate is compared, in constant time, whatever matched before.
        if hmac.compare_digest(totp.generate_otp(step), typed) and step > last:
            found = step
    return found


def _accept(tx: Tx, ctx: Context, *, row: Row, step: int) -> None:
    """Remember the accepted step; move the secret to the active phone key on the way."""
    tx.execute(
        "UPDATE staff_totp SET last_used_step = :step WHERE staff_id = :id",
        {"step": step, "id": row.staff_id},
    )
    if row.secret_key_id != ctx.keys.phone.active_id:
        secret = _secret(ctx, row)
        if secret is not None:
            _store_secret(tx, ctx, staff_id=row.staff_id, secret=secret)


def _store_secret(tx: Tx, ctx: Context, *, staff_id: str, secret: str) -> None:
    key_id, sealed = ctx.keys.encrypt(secret, context=_aad(staff_id))
    tx.execute(
        "UPDATE staff_totp SET secret_ciphertext = :sealed, secret_key_id = :key_id "
        "WHERE staff_id = :id",
        {"sealed": sealed, "key_id": key_id, "id": staff_id},
    )
