"""A redemption against a stop of coupon use or an erasure that commits while it runs.

PostgreSQL only (on SQLite units run one at a time). The test holds the redemption's
own advisory lock from another connection, so the redemption stops after checking the
number's purpose: a stop or an erasure sent then must wait for it, never commit under it.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager

from app.subject import erasure
from app.subject import service as subject_service
from app.subject.sessions import Subject
from tests.conftest import advisory_lock_held, call
from tests.coupons.helpers import approved, bearer, jp, make_key, redeem

COUPON = "race-1"


def redemption_lock_held(app, subscriber_id: str) -> AbstractContextManager[None]:
    return advisory_lock_held(app, f"coupon:{COUPON}:{subscriber_id}")


async def _subscriber(client, app, carrier) -> tuple[dict[str, str], str]:
    auth = bearer(await make_key(app))
    sid = (await approved(client, app, carrier, auth, jp(1)))["subscriber_id"]
    return auth, sid


async def test_a_stop_of_coupon_use_waits_for_a_redemption_that_checked_it(
    client, app, carrier, clock
):
    auth, sid = await _subscriber(client, app, carrier)
    subject = Subject(session_id="", subscriber_id=sid, expires_at=clock.now())
    with redemption_lock_held(app, sid):
        redeeming = asyncio.create_task(redeem(client, auth, COUPON, subscriber_id=sid))
        await asyncio.sleep(0.3)  # checked the purpose, waits for its lock
        stopping = asyncio.create_task(call(app, subject_service.stop_usage, subject=subject))
        await asyncio.sleep(0.3)
        assert not redeeming.done() and not stopping.done()
    assert (await redeeming).status_code == 201
    assert await stopping
    after = await redeem(client, auth, COUPON, subscriber_id=sid)
    assert after.status_code == 409 and after.json()["type"].endswith("/not-verified-for-purpose")


async def test_an_erasure_waits_for_a_redemption_and_a_later_one_is_a_404(
    client, app, carrier, clock
):
    auth, sid = await _subscriber(client, app, carrier)
    with redemption_lock_held(app, sid):
        redeeming = asyncio.create_task(redeem(client, auth, COUPON, subscriber_id=sid))
        await asyncio.sleep(0.3)
        erasing = asyncio.create_task(
            call(app, erasure.erase, subscriber_id=sid, actor="test", channel="letter")
        )
        await asyncio.sleep(0.3)
        assert not redeeming.done() and not erasing.done()
    assert (await redeeming).status_code == 201
    await erasing
    after = await redeem(client, auth, COUPON, subscriber_id=sid)
    assert after.status_code == 404


async def test_a_stop_of_coupon_use_refuses_a_redemption_by_an_earlier_verification(
    client, app, carrier, clock
):
    """Approved before the stop, used after it: the stop counts (any database)."""
    auth = bearer(await make_key(app))
    checked = await approved(client, app, carrier, auth, jp(2))
    subject = Subject(session_id="", subscriber_id=checked["subscriber_id"], expires_at=clock.now())
    assert await call(app, subject_service.stop_usage, subject=subject)
    refused = await redeem(client, auth, COUPON, verification_id=checked["id"])
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/not-verified-for-purpose")
    assert refused.json()["errors"][0]["field"] == "verification_id"
