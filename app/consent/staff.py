"""A subscriber as staff see it: the registry's masked view, with its consent.

The registry sits below consent and must not import it, so the view that shows both is
composed here, one layer up; the access log and the audit events are the registry's
(app.registry.service.search_by_number and read).
"""

from __future__ import annotations

from app.consent import service
from app.consent.schemas import ConsentSummaryPublic, SubscriberSearchResult, SubscriberStaffView
from app.core.context import Context
from app.core.tx import Tx
from app.registry import service as registry
from app.registry.schemas import PurposePublic
from app.registry.service import MaskedSubscriber
from app.staff.auth import Staff


async def _view(tx: Tx, masked: MaskedSubscriber) -> SubscriberStaffView:
    return SubscriberStaffView(
        id=masked.id,
        phone_masked=masked.phone_masked,
        purposes=[
            PurposePublic(purpose=p.purpose, verified_at=p.verified_at) for p in masked.purposes
        ],
        consents=[
            ConsentSummaryPublic.model_validate(consent)
            for consent in await service.current(tx, subscriber_id=masked.id)
        ],
        created_at=masked.created_at,
        last_verified_at=masked.last_verified_at,
    )


async def search(
    tx: Tx, ctx: Context, *, staff: Staff, phone: str, ip: str
) -> SubscriberSearchResult:
    """The subscriber holding a number, masked, with its consent; the search is logged."""
    found = await registry.search_by_number(tx, ctx, staff=staff, phone=phone, ip=ip)
    return SubscriberSearchResult(subscribers=[await _view(tx, masked) for masked in found])


async def read(
    tx: Tx, ctx: Context, *, staff: Staff, subscriber_id: str, ip: str
) -> SubscriberStaffView:
    """One subscriber by id, masked, with its consent; logged."""
    masked = await registry.read(tx, ctx, staff=staff, subscriber_id=subscriber_id, ip=ip)
    return await _view(tx, masked)
