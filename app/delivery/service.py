"""Campaign delivery: queue one message per subscriber with a live opt-in, and none other.

A delivery is created in one transaction (validated texts, the opt-out line appended)
and then queued in batches, each its own short transaction, walking the subscribers
verified for coupon_delivery in id order (keyset), so memory stays flat and SQLite's
write lock is never held for long. The delivery row keeps the cursor: a request that
dies half-way is resumed by its repeat. One message per subscriber per campaign is
guaranteed by a unique index, and a repeat of a campaign id replays the first answer.
Whether a message is still wanted is decided again when it is sent
(app.delivery.messages).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from dataclasses import dataclass

import orjson

from app.audit.events import Tag, record_event
from app.clients.service import Client
from app.consent import service as consent
from app.core.context import Context
from app.core.db import Database
from app.core.errors import AppError, FieldProblem, InvalidInput, NotFound
from app.core.ids import new_id, new_ordered_id
from app.core.tx import Tx
from app.delivery import repository as repo
from app.delivery.schemas import (
    CampaignDeliveryPublic,
    CampaignDeliveryStatePublic,
    DeliveryCounts,
    DeliveryCreate,
)
from app.delivery.segments import bad_character, segments
from app.models.campaign import Delivery
from app.purposes import Purpose
from app.registry import service as registry
from app.sms import campaigns
from app.sms.campaigns import CampaignMessage

PURPOSE = Purpose.COUPON_DELIVERY.value
QUEUING = "queuing"
QUEUED = "queued"


class DeliveryNotFound(NotFound):
    slug = "delivery-not-found"
    title = "No such delivery"


class CampaignIdReused(AppError):
    status = 409
    slug = "campaign-id-reused"
    title = "This campaign_id was already used with other texts"


@dataclass(frozen=True)
class Started:
    """A delivery just created, or the one a repeated campaign id already made."""

    delivery: Delivery
    replayed: bool


@dataclass(frozen=True)
class Delivered:
    """A delivery once every batch is queued, as its client sees it."""

    public: CampaignDeliveryPublic
    replayed: bool


KOREAN_AD_MARK = "(광고)"


def render_texts(ctx: Context, data: DeliveryCreate) -> dict[str, str]:
    """The full SMS per language (text, then the opt-out line), or InvalidInput."""
    s = ctx.settings
    if data.default_locale not in data.messages:
        raise InvalidInput.field("default_locale", "must be one of the languages in messages")
    texts: dict[str, str] = {}
    for language, raw in sorted(data.messages.items()):
        field = f"messages.{language}"
        text = raw.replace("\r\n", "\n").strip()
        if not text:
            raise InvalidInput.field(field, "must not be blank")
        bad = bad_character(text)
        if bad is not None:
            raise InvalidInput.field(field, f"holds a control character (U+{ord(bad):04X})")
        if language == "ko" and not text.startswith(KOREAN_AD_MARK):
            # 정보통신망법 Art. 50(4): an advertising message starts with (광고).
            raise InvalidInput.field(field, f"must start with {KOREAN_AD_MARK}")
        full = f"{text}\n{s.delivery_opt_out_lines[language]}"
        parts = segments(full)
        if parts > s.delivery_max_segments:
            raise InvalidInput.field(
                field,
                f"is {parts} SMS parts with the opt-out line; at most "
                f"{s.delivery_max_segments} are allowed",
            )
        texts[language] = full
    return texts


async def start(tx: Tx, ctx: Context, *, client: Client, data: DeliveryCreate) -> Started:
    """Create the delivery of a campaign (nothing queued yet), or find the first one."""
    texts = render_texts(ctx, data)
    fingerprint = hashlib.sha256(
        orjson.dumps([texts, data.default_locale], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    await tx.lock(f"delivery:{client.id}:{data.campaign_id}")
    existing = await repo.by_campaign(tx, client_id=client.id, campaign_id=data.campaign_id)
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise CampaignIdReused(
                f"campaign {data.campaign_id} was delivered with other texts",
                errors=[
                    FieldProblem(
                        location="body", field="campaign_id", detail="already used, other texts"
                    )
                ],
            )
        return Started(delivery=existing, replayed=True)
    now = ctx.clock.now()
    delivery = Delivery(
        id=new_id("dlv"),
        client_id=client.id,
        campaign_id=data.campaign_id,
        purpose=PURPOSE,
        fingerprint=fingerprint,
        default_locale=data.default_locale,
        status=QUEUING,
        created_at=now,
    )
    await repo.insert(tx, delivery, bodies=texts)
    await record_event(
        tx,
        Tag.DELIVERY_CREATED,
        actor=client.actor,
        at=now,
        subject=delivery.id,
        details={"campaign_id": data.campaign_id, "locales": sorted(texts)},
    )
    return Started(delivery=delivery, replayed=False)


async def queue_batch(tx: Tx, ctx: Context, *, delivery_id: str) -> Delivery:
    """Queue the next batch of the audience; the delivery as it stands afterwards."""
    d = await repo.get(tx, delivery_id=delivery_id, lock=True)
    if d is None:
        raise DeliveryNotFound()
    if d.status != QUEUING:
        return d
    size = ctx.settings.delivery_batch_size
    batch = await consent.audience(tx, purpose=d.purpose, after=d.cursor or "", limit=size)
    # The batch's subscribers are kept from being deleted until this commits: an erasure
    # waits, then removes their messages with the rest; one in progress is waited for,
    # and its subscriber gets nothing. (Row locks, not the subscribers' advisory locks:
    # a batch of thousands would fill PostgreSQL's lock table.)
    present = await registry.present(tx, [person.subscriber_id for person in batch])
    languages = set(await repo.locales(tx, delivery_id=d.id))
    now = ctx.clock.now()
    expires_at = now + dt.timedelta(hours=ctx.settings.delivery_ttl_hours)
    messages = [
        CampaignMessage(
            id=new_ordered_id("msg"),
            delivery_id=d.id,
            subscriber_id=person.subscriber_id,
            locale=person.locale if person.locale in languages else d.default_locale,
            created_at=now,
            expires_at=expires_at,
        )
        for person in batch
        if person.status == consent.OPTED_IN and person.subscriber_id in present
    ]
    await campaigns.enqueue(tx, messages)
    await registry.contacted(tx, [m.subscriber_id for m in messages], at=now)
    d.eligible += len(batch)
    d.queued += len(messages)
    if batch:
        d.cursor = batch[-1].subscriber_id
    if len(batch) < size:
        d.queued = await campaigns.count_for(tx, delivery_id=d.id)  # what the table holds
        # Queued: the walk is over, and its place (a subscriber's id) is kept no longer.
        d.status, d.queued_at, d.cursor = QUEUED, now, None
    d.skipped = d.eligible - d.queued
    await repo.save_progress(tx, d)
    if d.status == QUEUED:
        await record_event(
            tx,
            Tag.DELIVERY_QUEUED,
            actor="delivery",
            at=now,
            subject=d.id,
            details={"eligible": d.eligible, "queued": d.queued, "skipped": d.skipped},
        )
    return d


async def deliver(db: Database, ctx: Context, *, client: Client, data: DeliveryCreate) -> Delivered:
    """Create (or find) a campaign's delivery, then queue every batch that is left.

    Each step is its own short transaction, so this takes the database, not a
    transaction: a campaign to every subscriber must not hold SQLite's write lock (or a
    PostgreSQL row lock) for as long as all of it takes.
    """
    async with db.transaction() as tx:
        started = await start(tx, ctx, client=client, data=data)
    d = started.delivery
    while d.status == QUEUING:
        async with db.transaction() as tx:
            d = await queue_batch(tx, ctx, delivery_id=d.id)
        await asyncio.sleep(0)  # let other requests in between batches
    async with db.transaction() as tx:
        public = _public(d, await repo.locales(tx, delivery_id=d.id))
    return Delivered(public=public, replayed=started.replayed)


def _public(d: Delivery, languages: list[str]) -> CampaignDeliveryPublic:
    return CampaignDeliveryPublic.model_validate(
        {
            "id": d.id,
            "campaign_id": d.campaign_id,
            "purpose": d.purpose,
            "status": d.status,
            "default_locale": d.default_locale,
            "locales": languages,
            "counts": DeliveryCounts(eligible=d.eligible, queued=d.queued, skipped=d.skipped),
            "created_at": d.created_at,
            "queued_at": d.queued_at,
        }
    )


async def read(
    tx: Tx, ctx: Context, *, client: Client, delivery_id: str
) -> CampaignDeliveryStatePublic:
    """A delivery of this client with its messages counted per state."""
    d = await repo.get(tx, delivery_id=delivery_id, client_id=client.id)
    if d is None:
        raise DeliveryNotFound()
    public = _public(d, await repo.locales(tx, delivery_id=d.id))
    counted = await campaigns.states_of(tx, delivery_id=d.id)
    return CampaignDeliveryStatePublic(
        **public.model_dump(), states=counted.states, cancelled_reasons=counted.cancelled_reasons
    )
