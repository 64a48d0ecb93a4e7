"""Per-IP and per-prefix limits, and one limit across replicas."""

from __future__ import annotations

import pytest

from tests.fixtures.flows import start


@pytest.fixture
def settings_overrides():
    return {"sends_per_ip_hour": 3, "sends_per_prefix_hour": 4, "trusted_proxies": ["10.0.0.0/8"]}


async def test_per_ip_limit_uses_the_client_address(client, app, auth):
    numbers = iter(f"080-{11 + i}00-{i:04d}" for i in range(20))  # distinct prefixes
    for _ in range(3):
        assert (await start(client, auth, phone=next(numbers))).status_code == 201
    limited = await start(client, auth, phone=next(numbers))
    assert limited.status_code == 429
    assert limited.json()["limit"] == "ip_hour"


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(app, auth):
    import httpx

    numbers = iter(f"070-{11 + i}00-{i:04d}" for i in range(20))  # distinct prefixes
    proxy = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=proxy, base_url="http://testserver") as via_proxy:
        for client_ip in ("198.51.100.1", "198.51.100.2"):
            headers = {"X-Forwarded-For": f"192.0.2.99, {client_ip}"}
            for _ in range(3):
                answer = await start(via_proxy, auth, phone=next(numbers), headers=headers)
                assert answer.status_code == 201
            refused = await start(via_proxy, auth, phone=next(numbers), headers=headers)
            assert refused.status_code == 429

    # From an untrusted peer the header is ignored: every request counts against the peer.
    direct = httpx.ASGITransport(app=app, client=("198.51.100.50", 5000))
    async with httpx.AsyncClient(transport=direct, base_url="http://testserver") as spoofer:
        for i in range(3):
            headers = {"X-Forwarded-For": f"203.0.113.{i}"}
            assert (
                await start(spoofer, auth, phone=next(numbers), headers=headers)
            ).status_code == 201
        headers = {"X-Forwarded-For": "203.0.113.200"}
        assert (await start(spoofer, auth, phone=next(numbers), headers=headers)).status_code == 429


@pytest.mark.parametrize(
    ("first", "same_client", "another_client"),
    [
        # One IPv6 host may use any address of its /64: it is one client.
        ("2001:db8:5::1", ["2001:db8:5::2", "2001:db8:5:0:1::5"], "2001:db8:5:1::1"),
        # An IPv4 address written as IPv6 is that IPv4 address.
        ("203.0.113.7", ["::ffff:203.0.113.7", "::ffff:cb00:7107"], "203.0.113.8"),
        # An IPv4 client behind NAT64 (or 6to4, Teredo) is its IPv4 address: not one
        # count shared by every IPv4 client behind the translator (one /64).
        ("64:ff9b::c633:6407", ["198.51.100.7", "2002:c633:6407::1"], "64:ff9b::c633:6408"),
    ],
)
async def test_a_client_cannot_pass_its_limit_by_rewriting_its_address(
    app, auth, first, same_client, another_client
):
    import httpx

    numbers = iter(f"080-{51 + i}00-{i:04d}" for i in range(20))  # distinct prefixes
    proxy = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=proxy, base_url="http://testserver") as via_proxy:

        async def from_(address: str):
            headers = {"X-Forwarded-For": address}
            return await start(via_proxy, auth, phone=next(numbers), headers=headers)

        for address in [first, *same_client]:
            assert (await from_(address)).status_code == 201
        for address in [first, *same_client]:
            refused = await from_(address)
            assert refused.status_code == 429 and refused.json()["limit"] == "ip_hour"
        assert (await from_(another_client)).status_code == 201


async def test_per_prefix_limit(app, auth):
    import httpx

    same_prefix = [f"090-7777-{i:04d}" for i in range(6)]
    for i, number in enumerate(same_prefix[:4]):
        peer = httpx.ASGITransport(app=app, client=(f"198.51.100.{i}", 5000))
        async with httpx.AsyncClient(transport=peer, base_url="http://testserver") as http:
            assert (await start(http, auth, phone=number)).status_code == 201
    peer = httpx.ASGITransport(app=app, client=("198.51.100.99", 5000))
    async with httpx.AsyncClient(transport=peer, base_url="http://testserver") as http:
        limited = await start(http, auth, phone=same_prefix[4])
        assert limited.status_code == 429
        assert limited.json()["limit"] == "prefix_hour"
        assert (await start(http, auth, phone="090-8888-0001")).status_code == 201


async def test_limits_hold_across_app_instances(app, settings, clock, carrier, auth):
    """Two replicas on one database enforce one limit."""
    import httpx

    from app.main import create_app

    replica = create_app(settings, clock=clock, sender=carrier)
    numbers = iter(f"080-{31 + i}00-{i:04d}" for i in range(10))
    for index, instance in enumerate((app, replica, app)):
        transport = httpx.ASGITransport(app=instance, client=("198.51.100.7", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            assert (await start(http, auth, phone=next(numbers))).status_code == 201, index
        # A replica's shared counts reach the database a few milliseconds after its
        # answer (one writer per process): what the other replica sees from then on.
        await instance.state.ctx.counters.flush()
    transport = httpx.ASGITransport(app=replica, client=("198.51.100.7", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        assert (await start(http, auth, phone=next(numbers))).status_code == 429
    await replica.state.db.dispose()


async def test_a_write_of_counts_committing_during_a_read_is_counted_exactly_once(app):
    """A read of the shared counts that began before this process's writer committed
    misses that write in the table: the buffer must still supply it, once it has left
    the buffer as well; a read that began after the commit must not add it again."""
    import contextlib
    import datetime as dt

    import sqlalchemy as sa

    from app.verification.limits import counts_sql

    db, counters, now = app.state.db, app.state.ctx.counters, app.state.ctx.clock.now()
    bucket, since = "i:counted-during-a-read", now - dt.timedelta(hours=1)
    params = {"prefix": "-", "now": now, "b0": bucket, "s0": since, "writer": counters.writer}

    async with contextlib.AsyncExitStack() as held_back:
        if not db.sqlite:  # the writer waits for this lock to record its write
            blocker = await held_back.enter_async_context(db.transaction())
            await blocker.execute(sa.text("LOCK TABLE shared_count_writers IN SHARE MODE"))
        async with db.transaction() as tx:
            counters.add_after_commit(tx, [(bucket, now)] * 3)
        # On SQLite a unit holds the process's writer back until it ends.
        async with db.transaction() as tx:
            early = await tx.fetch_one(counts_sql(1), params)
    await counters.flush()  # the write commits and leaves the buffer
    assert early is not None and early.h0 == 0, "the read began before the write"
    assert early.h0 + counters.unflushed(bucket, since, seen=early.seen) == 3

    async with db.transaction() as tx:
        late = await tx.fetch_one(counts_sql(1), params)
    assert late is not None and late.h0 == 3
    assert late.h0 + counters.unflushed(bucket, since, seen=late.seen) == 3


async def test_reads_racing_the_writer_count_every_send_once(app):
    """Counts added one by one, each read while the process's writer is writing it: every
    read sees exactly what was counted before it, whichever side of the read the write
    commits on."""
    import datetime as dt

    from app.verification.limits import counts_sql

    db, counters, now = app.state.db, app.state.ctx.counters, app.state.ctx.clock.now()
    bucket, since = "i:raced", now - dt.timedelta(hours=1)
    params = {"prefix": "-", "now": now, "b0": bucket, "s0": since, "writer": counters.writer}
    wrong = []
    for counted in range(1, 201):
        async with db.transaction() as tx:
            counters.add_after_commit(tx, [(bucket, now)])
        async with db.transaction() as tx:
            read = await tx.fetch_one(counts_sql(1), params)
        assert read is not None
        seen = read.h0 + counters.unflushed(bucket, since, seen=read.seen)
        if seen != counted:
            wrong.append((counted, seen))
    assert not wrong
