"""While a rotation is under way, lookups find rows under every key in the ring."""

from __future__ import annotations

import datetime as dt

import pytest

from app.core.ids import new_id
from app.keys import rotation
from app.verification.pumping import PrefixBlocked
from app.verification.service import IdempotencyKeyReused
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


def count(n: Node, table: str) -> int:
    return len(rows(n, table))


def test_a_number_registered_under_the_old_key_is_found_not_registered_twice(old, new, after):
    client = new_client(old)
    first = register(old, client, number(1))
    assert find(new, number(1)) == first
    # Verified again by the service on the new key: the same subscriber, moved to t2.
    assert register(new, client, number(1), "coupon_delivery") == first
    (subscriber,) = rows(new, "subscribers")
    assert subscriber.phone_index.startswith("t2:") and subscriber.phone_key_id == "t2"
    assert numbers_by_subscriber(after) == {first: number(1)}
    purposes = new.db.call(lambda tx: tx.all("SELECT purpose FROM subscriber_purposes"))
    assert sorted(p.purpose for p in purposes) == ["coupon_delivery", "coupon_usage"]


def test_a_check_started_under_the_old_key_registers_into_the_same_subscriber(old, new):
    client = new_client(old)
    first = register(old, client, number(2))
    pending = start(old, client, number(2), "coupon_delivery")  # indexed under t1
    assert check(new, client, pending) == first
    assert count(new, "subscribers") == 1


def test_a_data_subject_check_finds_a_subscriber_under_the_old_key(old, new):
    client = new_client(old)
    first = register(old, client, number(3))
    assert register(new, client, number(3), "data_subject") == first
    # Started under t1, checked on t2 settings: still found.
    assert check(new, client, start(old, client, number(3), "data_subject")) == first
    assert count(new, "subscribers") == 1


def test_a_new_start_supersedes_one_started_under_the_old_key(old, new):
    client = new_client(old)
    older = start(old, client, number(4))
    start(new, client, number(4))
    status = {row.id: row.status for row in rows(new, "verifications")}
    assert status[older] == "superseded"


def test_an_idempotent_retry_across_the_key_switch_is_replayed(old, new):
    client = new_client(old)
    first = start(old, client, number(5), idempotency_key="order-1")
    assert start(new, client, number(5), idempotency_key="order-1") == first
    assert count(new, "verifications") == 1
    with pytest.raises(IdempotencyKeyReused):
        start(new, client, number(6), idempotency_key="order-1")


def test_a_pumping_block_holds_after_index_rotation(old, new, after, clock):
    prefix = "+819020"  # number(i)'s country code and first four national digits
    block_index = old.ctx.keys.blind_index(prefix, kind="prefix")

    def block(tx) -> None:
        tx.execute(
            "INSERT INTO pumping_blocks (id, prefix_index, prefix, region, blocked_at, ends_at, "
            "sends, approvals) VALUES (:id, :index, :prefix, 'JP', :now, :until, 40, 0)",
            {
                "id": new_id("blk"),
                "index": block_index,
                "prefix": prefix,
                "now": clock.now(),
                "until": clock.now() + dt.timedelta(hours=1),
            },
        )

    old.db.call(block)
    client = new_client(old)
    with pytest.raises(PrefixBlocked):
        start(old, client, number(8))
    reports = rotation.rotate(new.db, new.ctx, family="index", batch_size=10, pause=0)
    assert {r.table: r.rewritten for r in reports}["pumping_blocks"] == 1
    with pytest.raises(PrefixBlocked):
        start(after, client, number(8))
    (row,) = rows(after, "pumping_blocks")
    assert row.prefix_index == after.ctx.keys.blind_index(prefix, kind="prefix")
