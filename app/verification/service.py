"""Start, resend, check and read verifications. Services never commit: the caller's unit does."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from app.audit.events import Tag, record_event
from app.core.context import Context
from app.core.db import Row, Tx, xact_lock
from app.core.errors import AppError, FieldProblem, InvalidInput, NotFound, RateLimited
from app.core.ids import new_ordered_id
from app.registry import repository as registry
from app.sms import outbox
from app.sms.templates import language_for
from app.staff.api_keys import Client
from app.verification import codes, limits, pumping
from app.verification import repository as repo
from app.verification.phone import Phone, mask, parse_mobile
from app.verification.schemas import (
    CheckResultPublic,
    DeliveryPublic,
    VerificationCheck,
    VerificationPublic,
    VerificationStart,
)

MAX_IDEMPOTENCY_KEY = 255


class VerificationNotFound(NotFound):
    slug = "verification-not-found"
    title = "No such verification"


class VerificationExpired(AppError):
    status = 410
    slug = "verification-expired"
    title = "The code has expired; start a new verification"


class VerificationSuperseded(AppError):
    status = 410
    slug = "verification-superseded"
    title = "A newer verification for this number replaced this one"


class AlreadyApproved(AppError):
    status = 409
    slug = "verification-already-approved"
    title = "This verification was already approved; a code works once"


class AttemptsExhausted(AppError):
    status = 429
    slug = "attempts-exhausted"
    title = "Too many wrong codes; start a new verification"


class WrongCode(AppError):
    status = 422
    slug = "invalid-code"
    title = "The code is not correct"
    commit = True  # the failed attempt must count even though the request fails


class IdempotencyKeyReused(AppError):
    status = 422
    slug = "idempotency-key-reused"
    title = "This Idempotency-Key was used for a different request"


@dataclass(frozen=True)
class StartResult:
    """The answer to a start, and whether it was replayed from an earlier request."""

    body: dict[str, Any]
    replayed: bool


def _fingerprint(ctx: Context, request: bytes, *, key_id: str | None = None) -> str:
    # Keyed, because a plain hash of a request with a phone number is reversible.
    return hashlib.sha256(ctx.keys.index.mac(request, key_id=key_id)).hexdigest()


def _state(row: Row, now: dt.datetime) -> str:
    if row.status != "pending":
        return str(row.status)
    if row.expires_at <= now:
        return "expired"
    if row.attempts >= row.max_attempts:
        return "exhausted"
    return "pending"


def _refusal(row: Row, now: dt.datetime) -> AppError:
    state = _state(row, now)
    return {
        "approved": AlreadyApproved(),
        "expired": VerificationExpired(),
        "superseded": VerificationSuperseded(),
    }.get(state, AttemptsExhausted(attempts_left=0))


def _public(tx: Tx, ctx: Context, row: Row, now: dt.datetime) -> VerificationPublic:
    phone = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=outbox.verification_aad(row.id)
    )
    delivery = repo.latest_delivery(tx, verification_id=row.id)
    return VerificationPublic(
        id=row.id,
        status=_state(row, now),
        purpose=row.purpose,
        phone_masked=mask(phone),
        expires_at=row.expires_at,
        resend_after=row.last_sent_at + dt.timedelta(seconds=ctx.settings.resend_cooldown_seconds),
        attempts_left=max(0, row.max_attempts - row.attempts),
        subscriber_id=row.subscriber_id,
        delivery=None
        if delivery is None
        else DeliveryPublic(
            state=delivery.delivery_status
            or {"pending": "queued"}.get(delivery.status, delivery.status),
            error_code=delivery.error_code,
            sent_at=delivery.sent_at,
        ),
    )


def _check_idempotency_key(key: str) -> None:
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not key.isprintable() or not key.isascii():
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


def start(
    tx: Tx,
    ctx: Context,
    *,
    client: Client,
    data: VerificationStart,
    ip: str,
    idempotency_key: str | None,
) -> StartResult:
    """Start a verification and queue its SMS, or replay the first answer to a repeated key."""
    s = ctx.settings
    phone = parse_mobile(
        data.phone, default_region=s.default_region, allowed_regions=s.allowed_regions
    )
    now = ctx.clock.now()
    replace_key = False
    fingerprint = ""
    if idempotency_key is not None:
        _check_idempotency_key(idempotency_key)
        request = orjson.dumps([phone.e164, data.purpose, data.locale])
        fingerprint = _fingerprint(ctx, request)
        xact_lock(tx, f"idem:{client.id}:{idempotency_key}")
        stored = repo.get_idempotent(tx, client_id=client.id, key=idempotency_key)
        if stored is not None:
            if now - stored.created_at < dt.timedelta(hours=s.idempotency_ttl_hours):
                if stored.fingerprint != fingerprint and stored.fingerprint not in (
                    _fingerprint(ctx, request, key_id=k) for k in ctx.keys.index.ids()[1:]
                ):  # the first answer may have been fingerprinted under an older index key
                    raise IdempotencyKeyReused()
                return StartResult(body=stored.response, replayed=True)
            replace_key = True

    # Under every index key in the ring (one, unless a rotation is under way): the
    # active key's index is stored, the others find what was indexed before.
    phone_indexes = ctx.keys.blind_indexes(phone.e164, kind="number")
    phone_index = phone_indexes[0]
    prefix_index = limits.prefix_index(ctx, phone)
    send_limits = limits.send_limits(
        ctx, phone=phone, ip=ip, number_index=phone_index, prefix=prefix_index
    )
    limits.enforce(
        tx, send_limits, now=now, before_counting=_guard(tx, ctx, phone, prefix_index, now)
    )
    verification_id = new_ordered_id("ver")
    key_id, ciphertext = ctx.keys.encrypt(
        phone.e164, context=outbox.verification_aad(verification_id)
    )
    repo.supersede_pending(
        tx, client_id=client.id, phone_indexes=phone_indexes, purpose=data.purpose
    )
    expires_at = now + dt.timedelta(seconds=s.code_ttl_seconds)
    row = {
        "id": verification_id,
        "client_id": client.id,
        "purpose": data.purpose,
        # The message language is settled now (request's locale, else the number's
        # country), so the outbox never has to parse the number again.
        "locale": language_for(data.locale, phone.region),
        "phone_ciphertext": ciphertext,
        "phone_key_id": key_id,
        "phone_index": phone_index,
        "code_salt": codes.new_salt(),
        "code_key_id": ctx.keys.code.active_id,
        "code_length": s.code_length,
        "status": "pending",
        "attempts": 0,
        "max_attempts": s.max_check_attempts,
        "send_count": 1,
        "created_at": now,
        "expires_at": expires_at,
        "last_sent_at": now,
        "approved_at": None,
        "subscriber_id": None,
        "prefix_index": prefix_index,
    }
    repo.insert(tx, row)
    outbox.enqueue(tx, verification_id=verification_id, now=now, expires_at=expires_at)
    record_event(
        tx,
        Tag.VERIFICATION_STARTED,
        actor=f"api_key:{client.id}",
        at=now,
        subject=verification_id,
        details={"purpose": data.purpose},
    )
    body = started_body(
        verification_id=verification_id,
        purpose=data.purpose,
        phone_masked=phone.masked(),
        expires_at=expires_at,
        resend_after=now + dt.timedelta(seconds=s.resend_cooldown_seconds),
        attempts_left=s.max_check_attempts,
    )
    if idempotency_key is not None:
        repo.save_idempotent(
            tx,
            {
                "client_id": client.id,
                "key": idempotency_key,
                "fingerprint": fingerprint,
                "status_code": 201,
                "response": body,
                "created_at": now,
            },
            replace=replace_key,
        )
    return StartResult(body=body, replayed=False)


def started_body(
    *,
    verification_id: str,
    purpose: str,
    phone_masked: str,
    expires_at: dt.datetime,
    resend_after: dt.datetime,
    attempts_left: int,
) -> dict[str, Any]:
    """A new verification as :class:`VerificationPublic` writes it in JSON, built directly.

    Building the model and dumping it again cost ~1.5% of a start for values that are
    ours and already right; a test holds this to the model's own JSON.
    """
    return {
        "id": verification_id,
        "status": "pending",
        "purpose": purpose,
        "phone_masked": phone_masked,
        "expires_at": _json_time(expires_at),
        "resend_after": _json_time(resend_after),
        "attempts_left": attempts_left,
        "delivery": {"state": "queued", "error_code": None, "sent_at": None},
        "subscriber_id": None,
    }


def _json_time(value: dt.datetime) -> str:
    # As pydantic writes an aware time in JSON: ISO 8601, UTC as "Z".
    return value.isoformat().replace("+00:00", "Z")


def _guard(
    tx: Tx, ctx: Context, phone: Phone, prefix_index: str, now: dt.datetime
) -> Callable[[Mapping[str, int]], None]:
    """The pumping guard's say on one send, once the send limits allowed it."""

    def watch(counted: Mapping[str, int]) -> None:
        pumping.watch(
            tx,
            ctx,
            prefix_index=prefix_index,
            prefix=phone.prefix(ctx.settings.prefix_digits),
            region=phone.region,
            now=now,
            hour_sends=counted.get(f"p:{prefix_index}"),
        )

    return watch


def resend(
    tx: Tx, ctx: Context, *, client: Client, verification_id: str, ip: str
) -> VerificationPublic:
    """Send the same code again, after the cooldown and within every send limit."""
    now = ctx.clock.now()
    row = repo.get(tx, verification_id=verification_id, client_id=client.id, lock=True)
    if row is None:
        raise VerificationNotFound()
    if _state(row, now) != "pending":
        raise _refusal(row, now)
    ready = row.last_sent_at + dt.timedelta(seconds=ctx.settings.resend_cooldown_seconds)
    if now < ready:
        raise RateLimited(
            "wait before asking for another SMS",
            retry_after=math.ceil((ready - now).total_seconds()),
            limit="resend_cooldown",
        )
    s = ctx.settings
    e164 = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=outbox.verification_aad(row.id)
    )
    phone = parse_mobile(e164, default_region=s.default_region, allowed_regions=s.allowed_regions)
    prefix_index = limits.prefix_index(ctx, phone)
    limits.enforce(
        tx,
        limits.send_limits(ctx, phone=phone, ip=ip, prefix=prefix_index),
        now=now,
        before_counting=_guard(tx, ctx, phone, prefix_index, now),
    )
    repo.mark_resent(tx, verification_id=row.id, now=now)
    outbox.enqueue(tx, verification_id=row.id, now=now, expires_at=row.expires_at)
    record_event(
        tx,
        Tag.VERIFICATION_RESENT,
        actor=f"api_key:{client.id}",
        at=now,
        subject=row.id,
        details={"send_count": row.send_count + 1},
    )
    fresh = repo.get(tx, verification_id=row.id, client_id=client.id)
    return _public(tx, ctx, fresh or row, now)


def check(
    tx: Tx, ctx: Context, *, client: Client, verification_id: str, data: VerificationCheck
) -> CheckResultPublic:
    """Approve the verification if the code is right; every check counts as an attempt.

    The row is read and held first (SQLite's write lock is taken at BEGIN IMMEDIATE,
    PostgreSQL's row lock by FOR UPDATE), so concurrent checks of one verification run
    one after another and each is counted: a right code approves and counts in one
    statement, a wrong one counts in one (two statements in all instead of three).
    """
    now = ctx.clock.now()
    row = repo.get_for_check(tx, verification_id=verification_id, client_id=client.id)
    if row is None:
        raise VerificationNotFound()
    if _state(row, now) != "pending":
        raise _refusal(row, now)  # not live: nothing to count
    expected = codes.derive(
        ctx.keys.code,
        key_id=row.code_key_id,
        verification_id=row.id,
        purpose=row.purpose,
        salt=row.code_salt,
        length=row.code_length,
    )
    actor = f"api_key:{client.id}"
    if not codes.matches(expected, data.code):
        if not repo.count_attempt(tx, verification_id=row.id, now=now):
            raise _refusal(row, now)  # unreachable while the row is held
        left = row.max_attempts - row.attempts - 1
        record_event(
            tx,
            Tag.VERIFICATION_CHECK_FAILED,
            actor=actor,
            at=now,
            subject=row.id,
            details={"attempts_left": left},
        )
        raise WrongCode(
            f"the code is not correct; {left} attempt(s) left",
            errors=[FieldProblem(location="body", field="code", detail="is not correct")],
            attempts_left=left,
        )
    subscriber_id = _register(tx, ctx, row=row, now=now)
    if not repo.approve(tx, verification_id=row.id, now=now, subscriber_id=subscriber_id):
        raise AlreadyApproved()
    pumping.count_approval(tx, prefix_index=row.prefix_index, now=now)
    record_event(
        tx,
        Tag.VERIFICATION_APPROVED,
        actor=actor,
        at=now,
        subject=row.id,
        details={"purpose": row.purpose, "subscriber_id": subscriber_id},
    )
    return CheckResultPublic(
        id=row.id, status="approved", purpose=row.purpose, subscriber_id=subscriber_id
    )


def _register(tx: Tx, ctx: Context, *, row: Row, now: dt.datetime) -> str | None:
    """Numbers enter the registry only here, after a successful check, for their purpose."""
    index = ctx.keys.index
    if index.rotating or not row.phone_index.startswith(index.active_id + ":"):
        return _register_rotating(tx, ctx, row=row, now=now)
    if row.purpose == "data_subject":
        # Proving control of a number to act on one's own data registers nothing.
        return registry.find_id(tx, phone_index=row.phone_index)
    e164 = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=outbox.verification_aad(row.id)
    )
    key_id, ciphertext = ctx.keys.encrypt(e164, context=registry.subscriber_aad(row.phone_index))
    return registry.upsert_verified(
        tx,
        phone_index=row.phone_index,
        ciphertext=ciphertext,
        key_id=key_id,
        purpose=row.purpose,
        now=now,
    )


def _register_rotating(tx: Tx, ctx: Context, *, row: Row, now: dt.datetime) -> str | None:
    """:func:`_register` while the index ring holds older keys (see app/keys/rotation.py).

    The number's index is recomputed under every key: the subscriber may still be
    indexed under an older one, and the verification may have been started under it.
    """
    e164 = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=outbox.verification_aad(row.id)
    )
    indexes = ctx.keys.blind_indexes(e164, kind="number")
    if row.purpose == "data_subject":
        return registry.find_id(tx, phone_index=indexes)
    # Processes may briefly disagree on the active key while a new one is rolled out;
    # the index under the ring's lowest key id is the same in all of them, so two
    # first approvals of one number cannot insert it twice, under two keys.
    first = min(ctx.keys.index.keys)
    xact_lock(tx, "subscriber:" + indexes[ctx.keys.index.ids().index(first)])
    key_id, ciphertext = ctx.keys.encrypt(e164, context=registry.subscriber_aad(indexes[0]))
    return registry.upsert_verified(
        tx,
        phone_index=indexes[0],
        ciphertext=ciphertext,
        key_id=key_id,
        purpose=row.purpose,
        now=now,
        older_indexes=indexes[1:],
    )


def read(tx: Tx, ctx: Context, *, client: Client, verification_id: str) -> VerificationPublic:
    """One verification with its delivery state."""
    row = repo.get(tx, verification_id=verification_id, client_id=client.id)
    if row is None:
        raise VerificationNotFound()
    return _public(tx, ctx, row, ctx.clock.now())
