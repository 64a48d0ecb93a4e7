"""While a rotation is under way, lookups find rows under every key in the ring."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from app.core.ids import new_id
from app.keys import rotation
from app.models.pumping import PumpingBlock
from app.models.types import table
from app.verification.pumping import PrefixBlocked
from app.verification.states import IdempotencyKeyReused
from tests.keys.helpers import (
    Node,
    check,
    find,
    new_client,
    number,
    numbers_by_subscriber,
    register,
    rows,
    start,
)


async def count(n: Node, name: str) -> int:
    return len(await rows(n, name))


async def test_a_number_registered_under_the_old_key_is_found_not_registered_twice(old, new, after):
    client = await new_client(old)
    first = await register(old, client, number(1))
    assert await find(new, number(1)) == first
    # Verified again by the service on the new key: the same subscriber, moved to t2.
    assert await register(new, client, number(1), "coupon_delivery") == first
    (subscriber,) = await rows(new, "subscribers")
    assert subscriber.phone_index.startswith("t2:") and subscriber.phone_key_id == "t2"
    assert await numbers_by_subscriber(after) == {first: number(1)}
    purposes = await rows(new, "subscriber_purposes")
    assert sorted(p.purpose for p in purposes) == ["coupon_delivery", "coupon_usage"]


async def test_a_check_started_under_the_old_key_registers_into_the_same_subscriber(old, new):
    client = await new_client(old)
    first = await register(old, client, number(2))
    pending = await start(old, client, number(2), "coupon_delivery")  # indexed under t1
    assert await check(new, client, pending) == first
    assert await count(new, "subscribers") == 1


async def test_a_data_subject_check_finds_a_subscriber_under_the_old_key(old, new):
    client = await new_client(old)
    first = await register(old, client, number(3))
    assert await register(new, client, number(3), "data_subject") == first
    # Started under t1, checked on t2 settings: still found.
    assert await check(new, client, await start(old, client, number(3), "data_subject")) == first
    assert await count(new, "subscribers") == 1


async def test_a_new_start_supersedes_one_started_under_the_old_key(old, new):
    client = await new_client(old)
    older = await start(old, client, number(4))
    await start(new, client, number(4))
    status = {row.id: row.status for row in await rows(new, "verifications")}
    assert status[older] == "superseded"


async def test_an_idempotent_retry_across_the_key_switch_is_replayed(old, new):
    client = await new_client(old)
    first = await start(old, client, number(5), idempotency_key="order-1")
    assert await start(new, client, number(5), idempotency_key="order-1") == first
    assert await count(new, "verifications") == 1
    with pytest.raises(IdempotencyKeyReused):
        await start(new, client, number(6), idempotency_key="order-1")


async def test_a_pumping_block_holds_after_index_rotation(old, new, after, clock):
    prefix = "+819020"  # number(i)'s country code and first four national digits
    block_index = old.ctx.keys.blind_index(prefix, kind="prefix")

    async def block(tx) -> None:
        # Written as the guard writes one when it trips (a send burst is not the point).
        await tx.execute(
            sa.insert(table(PumpingBlock)).values(
                id=new_id("blk"),
                prefix_index=block_index,
                prefix=prefix,
                region="JP",
                blocked_at=clock.now(),
                ends_at=clock.now() + dt.timedelta(hours=1),
                sends=40,
                approvals=0,
            )
        )

    await old.run(block)
    client = await new_client(old)
    with pytest.raises(PrefixBlocked):
        await start(old, client, number(8))
    reports = await rotation.rotate(new.db, new.ctx, family="index", batch_size=10, pause=0)
    assert {r.table: r.rewritten for r in reports}["pumping_blocks"] == 1
    with pytest.raises(PrefixBlocked):
        await start(after, client, number(8))
    (row,) = await rows(after, "pumping_blocks")
    assert row.prefix_index == after.ctx.keys.blind_index(prefix, kind="prefix")
