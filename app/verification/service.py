"""Start, resend and read verifications (checks: app/verification/checking.py). Services
never commit: the caller's unit does."""

from __future__ import annotations

import datetime as dt
import math

import orjson

from app.audit.events import Tag, record_event
from app.clients.service import Client
from app.core.context import Context
from app.core.crypto import verification_aad
from app.core.errors import RateLimited
from app.core.ids import new_ordered_id
from app.core.metrics import LIMIT_REFUSALS
from app.core.phone import Phone, mask, parse_mobile, reading_region
from app.core.tx import Tx
from app.sms import outbox
from app.sms.templates import language_for
from app.verification import codes, idempotency, limits, pumping
from app.verification import repository as repo
from app.verification.repository import ForRedemption, Verification
from app.verification.schemas import DeliveryPublic, VerificationPublic, VerificationStart
from app.verification.states import (
    VerificationNotFound,
    refusal,
    state,
)


async def _limit_send(
    tx: Tx, ctx: Context, *, phone: Phone, ip: str, now: dt.datetime
) -> limits.Allowed:
    """The shared send limits and the pumping guard (the number's own limits are checked
    by the write that records the send); the hits the send adds once it commits."""
    counters = ctx.counters
    if counters is None:
        raise RuntimeError("sends need the process's shared counters (Context.counters)")
    prefix_index = limits.prefix_index(ctx, phone)
    client = limits.client_index(ctx, ip)
    allowed = await limits.check(
        tx,
        limits.send_limits(ctx, phone=phone, client=client, prefix=prefix_index),
        now=now,
        prefix=prefix_index,
        counters=counters,
    )
    await pumping.watch(
        tx,
        ctx,
        prefix_index=prefix_index,
        prefix=phone.prefix(ctx.settings.prefix_digits),
        region=phone.region,
        now=now,
        blocked_until=allowed.blocked_until,
        hour_sends=allowed.counts.get(f"p:{prefix_index}", 0),
    )
    allowed.hits.append(limits.source_hit(prefix=prefix_index, client=client, now=now))
    # Shared buckets are counted once the send has committed, by the process's single
    # writer: written here, every start would wait for the one before it to commit.
    counters.add_after_commit(tx, allowed.hits)
    return allowed


class StartResult:
    """The answer to a start, and whether it was replayed from an earlier request."""

    __slots__ = ("public", "replayed")

    def __init__(self, public: VerificationPublic, *, replayed: bool) -> None:
        self.public = public
        self.replayed = replayed


def number_to_start(ctx: Context, data: VerificationStart) -> Phone:
    """The number a start names, read in the region its ``country`` or ``locale`` implies
    (InvalidInput naming ``phone`` or ``country`` otherwise)."""
    s = ctx.settings
    return parse_mobile(
        data.phone,
        default_region=s.default_region,
        allowed_regions=s.allowed_regions,
        region=reading_region(
            country=data.country,
            locale=data.locale,
            default_region=s.default_region,
            allowed_regions=s.allowed_regions,
        ),
    )


async def start(
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
    phone = number_to_start(ctx, data)
    now = ctx.clock.now()
    looked = None
    if idempotency_key is not None:
        request = orjson.dumps([phone.e164, data.purpose, data.locale])
        looked = await idempotency.look_up(
            tx, ctx, client_id=client.id, key=idempotency_key, request=request, now=now
        )
        if looked.first is not None:
            return StartResult(looked.first, replayed=True)

    # Under every index key in the ring (one, unless a rotation is under way): the
    # active key's index is stored, the others find what was indexed before.
    phone_indexes = ctx.keys.blind_indexes(phone.e164, kind="number")
    await _limit_send(tx, ctx, phone=phone, ip=ip, now=now)
    verification_id = new_ordered_id("ver")
    key_id, ciphertext = ctx.keys.encrypt(phone.e164, context=verification_aad(verification_id))
    expires_at = now + dt.timedelta(seconds=s.code_ttl_seconds)
    verification = repo.NewVerification(
        id=verification_id,
        client_id=client.id,
        purpose=data.purpose,
        # The message language is settled now (request's locale, else the number's
        # country), so the outbox never has to parse the number again.
        locale=language_for(data.locale, phone.region),
        phone_ciphertext=ciphertext,
        phone_key_id=key_id,
        phone_index=phone_indexes[0],
        code_salt=codes.new_salt(),
        code_key_id=ctx.keys.code.active_id,
        code_length=s.code_length,
        max_attempts=s.max_check_attempts,
        created_at=now,
        expires_at=expires_at,
        prefix_index=limits.prefix_index(ctx, phone),
    )
    if idempotency_key is not None and looked is not None:  # stored before the final write
        public = _started(ctx, verification, phone)
        await repo.save_idempotent(
            tx,
            client_id=client.id,
            key=idempotency_key,
            fingerprint=looked.fingerprint,
            response=public.model_dump(mode="json"),
            now=now,
            replace=looked.replace,
        )
    counted = await repo.record_start(
        tx,
        verification,
        window=limits.number_window(
            ctx, number_index=phone_indexes[0], now=now, self_service=client.self_service
        ),
        message_id=outbox.new_message_id(),
        phone_indexes=phone_indexes,
        actor=client.actor,
        details={"purpose": data.purpose},
    )
    if not counted.counted:
        raise limits.number_refusal(ctx, counted.sent_at, now, self_service=client.self_service)
    return StartResult(_started(ctx, verification, phone), replayed=False)


def _started(ctx: Context, verification: repo.NewVerification, phone: Phone) -> VerificationPublic:
    return VerificationPublic(
        id=verification.id,
        status="pending",
        purpose=verification.purpose,
        phone_masked=phone.masked(),
        expires_at=verification.expires_at,
        resend_after=verification.created_at
        + dt.timedelta(seconds=ctx.settings.resend_cooldown_seconds),
        attempts_left=verification.max_attempts,
        delivery=DeliveryPublic(state="queued"),
    )


async def resend(
    tx: Tx, ctx: Context, *, client: Client, verification_id: str, ip: str
) -> VerificationPublic:
    """Send the same code again, after the cooldown and within every send limit."""
    now = ctx.clock.now()
    row = await repo.get(tx, verification_id=verification_id, client_id=client.id, lock=True)
    if row is None:
        raise VerificationNotFound()
    if state(row, now) != "pending":
        raise refusal(row, now)
    s = ctx.settings
    ready = row.last_sent_at + dt.timedelta(seconds=s.resend_cooldown_seconds)
    if now < ready:
        LIMIT_REFUSALS.labels("resend_cooldown").inc()
        raise RateLimited(
            "wait before asking for another SMS",
            retry_after=math.ceil((ready - now).total_seconds()),
            limit="resend_cooldown",
        )
    e164 = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=verification_aad(row.id)
    )
    phone = parse_mobile(e164, default_region=s.default_region, allowed_regions=s.allowed_regions)
    number_index = ctx.keys.blind_index(phone.e164, kind="number")
    await _limit_send(tx, ctx, phone=phone, ip=ip, now=now)
    window = limits.number_window(
        ctx, number_index=number_index, now=now, self_service=client.self_service
    )
    counted = await repo.count_send(tx, window)
    if not counted.counted:
        raise limits.number_refusal(ctx, counted.sent_at, now, self_service=client.self_service)
    await repo.record_resend(
        tx,
        verification_id=row.id,
        message_id=outbox.new_message_id(),
        now=now,
        expires_at=row.expires_at,
    )
    await record_event(
        tx,
        Tag.VERIFICATION_RESENT,
        actor=client.actor,
        at=now,
        subject=row.id,
        details={"send_count": row.send_count + 1},
    )
    fresh = await repo.get(tx, verification_id=row.id, client_id=client.id)
    return await _public(tx, ctx, fresh or row, now)


async def _public(tx: Tx, ctx: Context, row: Verification, now: dt.datetime) -> VerificationPublic:
    phone = ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=verification_aad(row.id)
    )
    delivery = await repo.latest_delivery(tx, verification_id=row.id)
    return VerificationPublic(
        id=row.id,
        status=state(row, now),
        purpose=row.purpose,
        phone_masked=mask(phone),
        expires_at=row.expires_at,
        resend_after=row.last_sent_at + dt.timedelta(seconds=ctx.settings.resend_cooldown_seconds),
        attempts_left=max(0, row.max_attempts - row.attempts),
        subscriber_id=row.subscriber_id,
        delivery=None
        if delivery is None
        else DeliveryPublic(
            state=outbox.delivery_state(delivery.status, delivery.delivery_status),
            error_code=delivery.error_code,
            sent_at=delivery.sent_at,
        ),
    )


async def read(tx: Tx, ctx: Context, *, client: Client, verification_id: str) -> VerificationPublic:
    """One verification with its delivery state."""
    row = await repo.get(tx, verification_id=verification_id, client_id=client.id)
    if row is None:
        raise VerificationNotFound()
    return await _public(tx, ctx, row, ctx.clock.now())


async def newest_instead(
    tx: Tx, ctx: Context, *, client: Client, verification_id: str
) -> str | None:
    """For a verification superseded by a newer start for the same number and purpose, the
    newest one still pending (whose code was sent), or None."""
    return await repo.newer_pending(
        tx, verification_id=verification_id, client_id=client.id, now=ctx.clock.now()
    )


async def for_redemption(tx: Tx, *, verification_id: str, client_id: str) -> ForRedemption | None:
    """A verification of this client as a coupon redemption it backs needs it (None:
    unknown, or another client's). Held until commit, so two redemptions backed by one
    verification run one after the other."""
    return await repo.for_redemption(tx, verification_id=verification_id, client_id=client_id)


async def approved_number(
    tx: Tx, ctx: Context, *, verification_id: str, client_id: str
) -> str | None:
    """The number (E.164) an approved verification of this client proved control of;
    None if it is unknown, another client's or not approved."""
    row = await repo.get(tx, verification_id=verification_id, client_id=client_id)
    if row is None or row.status != "approved":
        return None
    return ctx.keys.decrypt(
        row.phone_ciphertext, key_id=row.phone_key_id, context=verification_aad(row.id)
    )
