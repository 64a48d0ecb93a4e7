"""Every query on campaign deliveries and their texts."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from app.core.tx import Tx
from app.models.campaign import Delivery, DeliveryText
from app.models.types import table

deliveries = table(Delivery)
texts = table(DeliveryText)
_d = deliveries.c
_t = texts.c
# What queuing a batch moves forward.
_PROGRESS = ("status", "cursor", "eligible", "queued", "skipped", "queued_at")


async def by_campaign(tx: Tx, *, client_id: str, campaign_id: str) -> Delivery | None:
    """The client's delivery of a campaign, if any."""
    row = (
        await tx.execute(
            sa.select(deliveries).where(_d.client_id == client_id, _d.campaign_id == campaign_id)
        )
    ).one_or_none()
    return None if row is None else Delivery(**row._mapping)


async def get(
    tx: Tx, *, delivery_id: str, client_id: str | None = None, lock: bool = False
) -> Delivery | None:
    """One delivery (of this client, when given); ``lock`` holds it until commit."""
    statement = sa.select(deliveries).where(_d.id == delivery_id)
    if client_id is not None:
        statement = statement.where(_d.client_id == client_id)
    if lock and not tx.sqlite:
        statement = statement.with_for_update()
    row = (await tx.execute(statement)).one_or_none()
    return None if row is None else Delivery(**row._mapping)


async def insert(tx: Tx, delivery: Delivery, *, bodies: dict[str, str]) -> None:
    """A new delivery and its text per language."""
    await tx.execute(sa.insert(deliveries).values(delivery.model_dump()))
    await tx.execute(
        sa.insert(texts).values(
            [
                DeliveryText(delivery_id=delivery.id, locale=locale, body=body).model_dump()
                for locale, body in sorted(bodies.items())
            ]
        )
    )


async def locales(tx: Tx, *, delivery_id: str) -> list[str]:
    """The languages a delivery has a text in."""
    rows = await tx.execute(
        sa.select(_t.locale).where(_t.delivery_id == delivery_id).order_by(_t.locale)
    )
    return [row.locale for row in rows]


async def bodies(tx: Tx, delivery_ids: Sequence[str]) -> dict[tuple[str, str], str]:
    """The texts of deliveries, by (delivery id, locale)."""
    if not delivery_ids:
        return {}
    rows = await tx.execute(
        sa.select(_t.delivery_id, _t.locale, _t.body).where(_t.delivery_id.in_(delivery_ids))
    )
    return {(row.delivery_id, row.locale): row.body for row in rows}


async def save_progress(tx: Tx, delivery: Delivery) -> None:
    """Record how far queuing got (and that it finished)."""
    await tx.execute(
        sa.update(deliveries)
        .where(_d.id == delivery.id)
        .values(delivery.model_dump(include=set(_PROGRESS)))
    )
