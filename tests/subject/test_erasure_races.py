"""An erasure against a redemption or an approval of the same number, interleaved so that
the erasure is under way when the other begins (PostgreSQL only: on SQLite units run
one at a time). Whatever the order, neither ends in a deadlock or a 500: erasures and
redemptions take the subscriber's lock before any row lock, approvals take none.

The subscriber's row is held from another connection, so the erasure stops at its last
delete while the other request starts; then both are let go."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from app.subject import erasure
from tests.conftest import call, sync_engine
from tests.coupons.helpers import approved, bearer, jp, make_key, redeem
from tests.fixtures.flows import check, sent_code, start


@contextmanager
def subscriber_row_held(app, sid):
    engine = sync_engine(app)
    if engine.dialect.name != "postgresql":
        pytest.skip("units run one at a time on SQLite")
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1 FROM subscribers WHERE id = :s FOR UPDATE"), {"s": sid})
        yield
        conn.rollback()


async def _race(app, sid, other):
    """Erasure queues on the subscriber's row first, then `other` starts; both released."""
    with subscriber_row_held(app, sid):
        erasing = asyncio.create_task(
            call(app, erasure.erase, subscriber_id=sid, actor="test", channel="letter")
        )
        await asyncio.sleep(0.3)
        racing = asyncio.create_task(other())
        await asyncio.sleep(0.3)
    results = await asyncio.gather(erasing, racing, return_exceptions=True)
    return results


async def test_a_redemption_by_verification_and_an_erasure(client, app, carrier):
    auth = bearer(await make_key(app))
    ok = await approved(client, app, carrier, auth, jp(1))
    sid, vid = ok["subscriber_id"], ok["id"]
    res = await _race(app, sid, lambda: redeem(client, auth, "c1", verification_id=vid))
    assert not any(isinstance(r, Exception) for r in res), res
    assert res[1].status_code != 500, res[1].text


async def test_a_redemption_by_subscriber_and_an_erasure(client, app, carrier):
    auth = bearer(await make_key(app))
    ok = await approved(client, app, carrier, auth, jp(2))
    sid = ok["subscriber_id"]
    res = await _race(app, sid, lambda: redeem(client, auth, "c1", subscriber_id=sid))
    assert not any(isinstance(r, Exception) for r in res), res
    assert res[1].status_code != 500, res[1].text


async def test_an_approval_and_an_erasure(client, app, carrier):
    auth = bearer(await make_key(app))
    ok = await approved(client, app, carrier, auth, jp(3))
    sid = ok["subscriber_id"]
    started = await start(client, auth, phone=jp(3), purpose="coupon_usage")
    code = await sent_code(app, carrier, jp(3))
    res = await _race(app, sid, lambda: check(client, auth, started.json()["id"], code))
    assert not any(isinstance(r, Exception) for r in res), res
    assert res[1].status_code != 500, res[1].text
