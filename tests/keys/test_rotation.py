"""`smsreg keys rotate phone|index`: while the service writes, interrupted, resumed."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import sqlalchemy as sa

from app.core.crypto import subscriber_aad
from app.core.ids import new_id
from app.core.tx import Tx
from app.keys import repository as repo
from app.keys import rotation
from app.models.subscriber import Subscriber
from app.models.types import table
from tests.keys.helpers import (
    Node,
    find,
    new_client,
    node,
    number,
    numbers_by_subscriber,
    numbers_by_verification,
    register,
    rows,
    start,
)


class Interrupted(Exception):
    """Stands for Ctrl-C or a killed process between two batches."""


class Deadlock(Exception):
    """What PostgreSQL answers a deadlock victim with, as the driver hands it over."""

    sqlstate = "40P01"


async def rotate(n: Node, family: str, **kw):
    size = kw.pop("batch_size", 4)
    return await rotation.rotate(n.db, n.ctx, family=family, batch_size=size, pause=0, **kw)


async def assert_fully_rotated(after: Node, registered: dict[str, str]) -> None:
    """Only t2 keys: every number decrypts, every lookup finds its one subscriber."""
    subscribers = await numbers_by_subscriber(after)  # raises if one does not decrypt
    assert sorted(subscribers.values()) == sorted(set(subscribers.values())), "a duplicate"
    assert set(subscribers.values()) == set(registered)
    for e164, subscriber_id in registered.items():
        assert await find(after, e164) == subscriber_id
    await numbers_by_verification(after)  # raises if one does not decrypt
    for row in await rows(after, "subscribers") + await rows(after, "verifications"):
        assert row.phone_key_id == "t2"
        assert row.phone_index.startswith("t2:")
    for row in await rows(after, "verifications"):
        assert row.prefix_index.startswith("t2:")


async def test_rotation_while_the_service_writes(old, new, nodes, after, clock):
    client = await new_client(old)
    registered = {number(i): await register(old, client, number(i)) for i in range(40)}
    for i in range(40, 50):  # pending verifications started under t1
        await start(old, client, number(i), "coupon_delivery")
    writes = {"done": 0, "errors": []}
    stop = threading.Event()

    def service() -> None:  # the running service, already on the t2 settings
        async def main() -> None:
            # Another process: its own event loop and database.
            service_node = node(new.settings, clock)
            i = 0
            try:
                while not stop.is_set() or i < 30:
                    e164 = number(i % 70)  # numbers registered under t1, pending ones, new ones
                    try:
                        subscriber_id = await register(service_node, client, e164)
                        if registered.setdefault(e164, subscriber_id) != subscriber_id:
                            writes["errors"].append(f"{e164} got a second subscriber")
                    except Exception as exc:  # noqa: BLE001 (reported below)
                        writes["errors"].append(repr(exc))
                    writes["done"] += 1
                    i += 1
            finally:
                await service_node.close()

        asyncio.run(main())

    def interleave(_batch: rotation.Batch) -> None:
        # Each batch waits for the service to write once more: the two really overlap.
        seen = writes["done"]
        deadline = time.monotonic() + 5
        while writes["done"] == seen and time.monotonic() < deadline:
            time.sleep(0.001)

    writer = threading.Thread(target=service)
    rotator = nodes(**{f: ("t2", "t1") for f in ("phone", "index", "code", "token")})
    writer.start()
    try:
        reports = await rotate(rotator, "phone", on_batch=interleave)
        reports += await rotate(rotator, "index", on_batch=interleave)
    finally:
        stop.set()
        await asyncio.to_thread(writer.join)
    assert writes["errors"] == []
    assert all(report.after == 0 for report in reports), reports
    assert all(not report.failed for report in reports)
    assert sum(report.rewritten for report in reports) > 0
    await assert_fully_rotated(after, registered)


async def test_an_interrupted_rotation_resumes(old, new, after):
    client = await new_client(old)
    registered = {number(i): await register(old, client, number(i)) for i in range(15)}
    for family in ("phone", "index"):
        seen: list[rotation.Batch] = []

        def stop_after_two(batch: rotation.Batch, seen=seen) -> None:
            if batch.seen:
                seen.append(batch)
            if len(seen) == 2:
                raise Interrupted

        with pytest.raises(Interrupted):
            await rotate(new, family, on_batch=stop_after_two)
        left = await new.call(rotation.remaining, family=family)
        assert sum(b.rewritten for b in seen) == 8
        assert sum(left.values()) == 30 - 8  # 15 subscribers and their 15 verifications
        # Half-way, the service reads every row and finds every number.
        await numbers_by_subscriber(new)
        await numbers_by_verification(new)
        for e164, sid in registered.items():
            assert await find(new, e164) == sid
        reports = await rotate(new, family)  # the resume: whatever is not on t2 yet
        assert sum(r.rewritten for r in reports) == sum(left.values())
        assert all(r.after == 0 and not r.failed for r in reports)
    await assert_fully_rotated(after, registered)


async def test_a_crash_inside_a_batch_changes_nothing_of_it(old, new, after, monkeypatch):
    client = await new_client(old)
    registered = {number(i): await register(old, client, number(i)) for i in range(6)}
    before = await rows(old, "subscribers")
    encrypt, calls = new.ctx.keys.encrypt, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("killed mid-batch")
        return encrypt(*args, **kwargs)

    monkeypatch.setattr(new.ctx.keys, "encrypt", failing)
    with pytest.raises(RuntimeError):
        await rotate(new, "phone", batch_size=10)
    assert await rows(old, "subscribers") == before  # the open batch rolled back whole
    monkeypatch.setattr(new.ctx.keys, "encrypt", encrypt)
    assert all(r.after == 0 for r in await rotate(new, "phone"))
    assert all(r.after == 0 for r in await rotate(new, "index"))
    await assert_fully_rotated(after, registered)


async def test_a_row_changed_meanwhile_is_never_overwritten(old, new):
    client = await new_client(old)
    await register(old, client, number(1))
    (stale,) = await new.run(
        lambda tx: repo.phone_batch(tx, table="subscribers", active_id="t2", after="", limit=9)
    )
    (verification,) = await new.run(
        lambda tx: repo.phone_batch(tx, table="verifications", active_id="t2", after="", limit=9)
    )
    await rotate(new, "phone")  # the row moves on (as a concurrent writer would move it)
    fresh = await rows(new, "subscribers")

    async def stale_writes(tx: Tx) -> tuple[bool, bool]:
        return (
            await repo.rewrite_subscriber(
                tx, row=stale, phone_index=stale.phone_index, ciphertext=b"x" * 40, key_id="t2"
            ),
            await repo.rewrite_verification_phone(
                tx, row=verification, ciphertext=b"x", key_id="t2"
            ),
        )

    assert await new.run(stale_writes) == (False, False)
    assert await rows(new, "subscribers") == fresh
    await numbers_by_verification(new)


async def test_a_second_subscriber_for_one_number_is_reported_not_merged(old, new):
    client = await new_client(old)
    first = await register(old, client, number(7))
    # A duplicate made behind the service's back (e.g. a process without t1 in its ring),
    # written straight as a row: the service itself never makes one.
    index = new.ctx.keys.blind_index(number(7), kind="number")
    key_id, ciphertext = new.ctx.keys.encrypt(number(7), context=subscriber_aad(index))
    second = new_id("sub")
    now = new.ctx.clock.now()

    async def duplicate(tx: Tx) -> None:
        await tx.execute(
            sa.insert(table(Subscriber)).values(
                id=second,
                phone_ciphertext=ciphertext,
                phone_key_id=key_id,
                phone_index=index,
                created_at=now,
                last_verified_at=now,
            )
        )

    await new.run(duplicate)
    assert second != first
    before = await rows(new, "subscribers")
    reports = {r.table: r for r in await rotate(new, "index")}
    assert reports["subscribers"].failed == [first]
    assert reports["subscribers"].after == 1
    assert await rows(new, "subscribers") == before  # neither row touched, nothing merged
    assert await find(new, number(7)) in {first, second}


async def test_a_batch_picked_as_deadlock_victim_is_run_again(old, new, nodes, monkeypatch):
    client = await new_client(old)
    registered = {number(i): await register(old, client, number(i)) for i in range(3)}
    real, calls = rotation.run_batch, []

    async def victim_once(tx, ctx, **kwargs):
        calls.append(kwargs["table"])
        done = await real(tx, ctx, **kwargs)
        if len(calls) == 1:  # after its writes: they must be rolled back, then redone
            raise sa.exc.OperationalError("UPDATE subscribers", None, Deadlock("deadlock"))
        return done

    monkeypatch.setattr(rotation, "run_batch", victim_once)
    reports = await rotate(new, "phone", batch_size=10)
    assert calls[:2] == ["subscribers", "subscribers"]
    assert {r.table: r.rewritten for r in reports} == {"subscribers": 3, "verifications": 3}
    only_t2 = nodes(phone=("t2",))
    assert sorted((await numbers_by_subscriber(only_t2)).values()) == sorted(registered)
