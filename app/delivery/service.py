"""Campaign delivery: queue one message per subscriber with a live opt-in, and none other.

A delivery is created in one transaction (validated texts, the opt-out line appended)
and then queued in batches, each its own short transaction, walking the subscribers
verified for coupon_delivery in id order (keyset), so memory stays flat and SQLite's
write lock is never held for long. The delivery row keeps the cursor: a request that
dies half-way is resumed by its repeat. One message per subscriber per campaign is
guaranteed by a unique index, and a repeat of a campaign id replays the first answer.
Whether a message is still wanted is decided again when it is sent (see app.sms.outbox).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from app.audit.events import Tag, record_event
from app.consent import repository as consents
from app.core.context import Context
from app.core.db import Database, Row, Tx, xact_lock
from app.core.errors import AppError, FieldProblem, InvalidInput, NotFound
from app.core.ids import new_id, new_ordered_id
from app.delivery import repository as repo
from app.delivery.schemas import (
    CampaignDeliveryPublic,
    CampaignDeliveryStatePublic,
    DeliveryCounts,
    DeliveryCreate,
)
from app.delivery.segments import bad_character, segments
from app.sms import outbox
from app.staff.api_keys import Client

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

    delivery: Row
    replayed: bool


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


def start(tx: Tx, ctx: Context, *, client: Client, data: DeliveryCreate) -> Started:
    """Create the delivery of a campaign (nothing queued yet), or find the first one."""
    texts = render_texts(ctx, data)
    fingerprint = hashlib.sha256(
        orjson.dumps([texts, data.default_locale], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()
    xact_lock(tx, f"delivery:{client.id}:{data.campaign_id}")
    existing = repo.by_campaign(tx, client_id=client.id, campaign_id=data.campaign_id)
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
    row = Row(
        id=new_id("dlv"),
        client_id=client.id,
        campaign_id=data.campaign_id,
        purpose=consents.DELIVERY_PURPOSE,
        fingerprint=fingerprint,
        default_locale=data.default_locale,
        status=QUEUING,
        cursor=None,
        eligible=0,
        queued=0,
        skipped=0,
        created_at=now,
        queued_at=None,
    )
    repo.insert(tx, row, texts)
    record_event(
        tx,
        Tag.DELIVERY_CREATED,
        actor=f"api_key:{client.id}",
        at=now,
        subject=row.id,
        details={"campaign_id": data.campaign_id, "locales": sorted(texts)},
    )
    return Started(delivery=row, replayed=False)


def queue_batch(tx: Tx, ctx: Context, *, delivery_id: str) -> Row:
    """Queue the next batch of the audience; the delivery as it stands afterwards."""
    d = repo.get(tx, delivery_id=delivery_id, lock=True)
    if d is None:
        raise DeliveryNotFound()
    if d.status != QUEUING:
        return d
    size = ctx.settings.delivery_batch_size
    batch = consents.audience(tx, purpose=d.purpose, after=d.cursor or "", limit=size)
    languages = set(repo.locales(tx, delivery_id=d.id))
    now = ctx.clock.now()
    expires_at = now + dt.timedelta(hours=ctx.settings.delivery_ttl_hours)
    messages: list[dict[str, Any]] = [
        {
            "id": new_ordered_id("msg"),
            "delivery_id": d.id,
            "subscriber_id": person.subscriber_id,
            "locale": person.locale if person.locale in languages else d.default_locale,
            "now": now,
            "expires_at": expires_at,
        }
        for person in batch
        if person.status == consents.OPTED_IN
    ]
    outbox.enqueue_campaign(tx, messages)
    d["eligible"] += len(batch)
    d["queued"] += len(messages)
    if batch:
        d["cursor"] = batch[-1].subscriber_id
    if len(batch) < size:
        d["queued"] = repo.count_queued(tx, delivery_id=d.id)  # what the table holds
        d["status"], d["queued_at"] = QUEUED, now
    d["skipped"] = d.eligible - d.queued
    repo.save_progress(tx, d)
    if d.status == QUEUED:
        record_event(
            tx,
            Tag.DELIVERY_QUEUED,
            actor="delivery",
            at=now,
            subject=d.id,
            details={"eligible": d.eligible, "queued": d.queued, "skipped": d.skipped},
        )
    return d


async def finish(db: Database, ctx: Context, started: Started) -> CampaignDeliveryPublic:
    """Queue every batch that is left, one transaction each; the delivery's answer."""
    d = started.delivery
    while d.status == QUEUING:
        d = await db.run(queue_batch, ctx, delivery_id=d.id)
        await asyncio.sleep(0)  # let other requests in between batches
    return await db.run(_public_of, d)


def _public_of(tx: Tx, d: Row) -> CampaignDeliveryPublic:
    return _public(d, repo.locales(tx, delivery_id=d.id))


def _public(d: Row, languages: list[str]) -> CampaignDeliveryPublic:
    return CampaignDeliveryPublic(
        id=d.id,
        campaign_id=d.campaign_id,
        purpose=d.purpose,
        status=d.status,
        default_locale=d.default_locale,
        locales=languages,
        counts=DeliveryCounts(eligible=d.eligible, queued=d.queued, skipped=d.skipped),
        created_at=d.created_at,
        queued_at=d.queued_at,
    )


def read(tx: Tx, ctx: Context, *, client: Client, delivery_id: str) -> CampaignDeliveryStatePublic:
    """A delivery of this client with its messages counted per state."""
    d = repo.get(tx, delivery_id=delivery_id, client_id=client.id)
    if d is None:
        raise DeliveryNotFound()
    states: dict[str, int] = {}
    for row in repo.tallies(tx, delivery_id=d.id):
        state = row.delivery_status or {"pending": "queued"}.get(row.status, row.status)
        states[state] = states.get(state, 0) + int(row.n)
    public = _public(d, repo.locales(tx, delivery_id=d.id))
    return CampaignDeliveryStatePublic(**public.model_dump(), states=states)
