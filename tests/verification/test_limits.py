"""Resend cooldown and send limits, at their boundaries, shared through the database."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from app.clients import service as clients
from app.core.context import Context
from app.core.counters import CounterBuffer
from app.core.db import Database
from app.core.errors import AppError
from app.verification import service
from app.verification.repository import SHARED_COUNT_PROGRESS, shared_counts_sql
from app.verification.schemas import VerificationStart
from tests.conftest import count_rows, snapshot
from tests.fixtures.flows import PHONE_E164, check, sent_code, start


async def resend(client, auth, verification_id, headers=None):
    return await client.post(
        f"/v1/verifications/{verification_id}/resend", headers={**auth, **(headers or {})}
    )


async def test_resend_repeats_the_same_code_after_the_cooldown(client, app, carrier, clock, auth):
    verification_id = (await start(client, auth)).json()["id"]
    first = await sent_code(app, carrier)
    clock.advance(seconds=29)
    early = await resend(client, auth, verification_id)
    assert early.status_code == 429
    assert early.headers["Retry-After"] == "1"
    assert early.json()["limit"] == "resend_cooldown"
    clock.advance(seconds=1)
    again = await resend(client, auth, verification_id)
    assert again.status_code == 202, again.text
    assert await sent_code(app, carrier) == first
    assert len(carrier.to(PHONE_E164)) == 2
    assert (await check(client, auth, verification_id, first)).status_code == 200


async def test_a_resent_code_says_the_minutes_it_has_left(client, app, carrier, clock, auth):
    """The resend is the same code with the same expiry: its SMS promised the full ten
    minutes however little was left."""
    verification_id = (await start(client, auth)).json()["id"]
    await sent_code(app, carrier)
    clock.advance(minutes=8, seconds=25)  # 95 seconds left
    assert (await resend(client, auth, verification_id)).status_code == 202
    await sent_code(app, carrier)
    first, again = (sent.body for sent in carrier.to(PHONE_E164))
    assert "（10分間有効）" in first and "（1分間有効）" in again, (first, again)


async def test_resend_of_a_finished_verification_is_refused(client, app, carrier, clock, auth):
    verification_id = (await start(client, auth)).json()["id"]
    assert (
        await check(client, auth, verification_id, await sent_code(app, carrier))
    ).status_code == 200
    clock.advance(seconds=30)
    assert (await resend(client, auth, verification_id)).status_code == 409
    other = (await start(client, auth, phone="090-5555-6666")).json()["id"]
    clock.advance(minutes=10)
    assert (await resend(client, auth, other)).status_code == 410
    assert (await resend(client, auth, "ver_missing")).status_code == 404


async def test_five_sends_per_number_per_hour(client, app, clock, auth):
    verification_id = (await start(client, auth)).json()["id"]
    for _ in range(4):
        clock.advance(seconds=30)
        assert (await resend(client, auth, verification_id)).status_code == 202
    clock.advance(seconds=30)
    before = await snapshot(app)
    limited = await resend(client, auth, verification_id)
    assert limited.status_code == 429
    assert limited.json()["limit"] == "number_hour"
    # The first send was 150 s ago; the window frees it after 3600 s.
    assert limited.headers["Retry-After"] == str(3600 - 150)
    assert await snapshot(app) == before
    # A new start for the same number is limited too: the limit follows the number.
    assert (await start(client, auth)).status_code == 429
    clock.advance(seconds=3600 - 150)
    assert (await start(client, auth)).status_code == 201


async def test_the_self_service_pages_count_a_numbers_sends_apart(client, app, clock, auth):
    """An anonymous caller of the self-service pages learned from their refusals how
    often the coupon site had texted a number, and could use its allowance up. The pages
    have a window of their own, with smaller limits: a number gets at most both."""
    s = app.state.ctx.settings
    for _ in range(2):
        assert (await start(client, auth)).status_code == 201
        clock.advance(seconds=1)
    clock.advance(seconds=60)
    anonymous = [
        await client.post("/v1/subject/verifications", json={"phone": PHONE_E164})
        for _ in range(s.self_service_sends_per_number_hour + 1)
    ]
    assert [answer.status_code for answer in anonymous] == [201] * (
        s.self_service_sends_per_number_hour
    ) + [429]
    refused = anonymous[-1]
    assert refused.json()["limit"] == "number_hour"
    # Its wait dates its own first send, not the site's.
    assert refused.headers["Retry-After"] == "3600"
    # The site's own allowance is as it left it.
    for _ in range(s.sends_per_number_hour - 2):
        assert (await start(client, auth)).status_code == 201
    assert (await start(client, auth)).status_code == 429


async def test_a_number_gets_at_most_both_windows_a_day(client, app, clock, auth):
    """Both kinds of caller, alternating for hours, reach the sum of their day limits."""
    s = app.state.ctx.settings
    sent = 0
    for _hour in range(4):
        for _ in range(s.sends_per_number_hour):
            sent += (await start(client, auth)).status_code == 201
            sent += (
                await client.post("/v1/subject/verifications", json={"phone": PHONE_E164})
            ).status_code == 201
            clock.advance(seconds=1)
        clock.advance(hours=1)
    assert sent == s.sends_per_number_day + s.self_service_sends_per_number_day


async def test_ten_sends_per_number_per_day(client, app, clock, auth):
    for hour in range(2):
        for _ in range(5):
            assert (await start(client, auth)).status_code == 201, hour
            clock.advance(seconds=1)
        clock.advance(hours=1)
    limited = await start(client, auth)
    assert limited.status_code == 429
    assert limited.json()["limit"] == "number_day"
    clock.advance(hours=22)
    assert (await start(client, auth)).status_code == 201


def _threaded_starts(app, token: str, n: int) -> list[int]:
    """Starts for one number from n threads, each with its own event loop, database
    connection and counters, released together once each has authenticated: real
    concurrency on both databases."""
    ready = threading.Barrier(n, timeout=30)

    def one(_: int) -> int:
        async def attempt() -> int:
            db = Database(app.state.db.url)
            shared = app.state.ctx
            ctx = Context(
                settings=shared.settings,
                keys=shared.keys,
                clock=shared.clock,
                counters=CounterBuffer(db, shared_counts_sql, SHARED_COUNT_PROGRESS),
            )
            try:
                async with db.transaction() as tx:
                    client = await clients.authenticate(tx, ctx, token=token)
                ready.wait()
                async with db.transaction() as tx:
                    await service.start(
                        tx,
                        ctx,
                        client=client,
                        data=VerificationStart(phone=PHONE_E164, purpose="coupon_usage"),
                        ip="203.0.113.9",
                        idempotency_key=None,
                    )
                return 201
            except AppError as exc:
                return exc.status
            finally:
                await ctx.counters.close()
                await db.dispose()

        return asyncio.run(attempt())

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


async def test_twenty_concurrent_starts_send_a_number_no_more_than_its_limit(app, api_key):
    """The number's row is checked and extended by one statement each: of twenty starts
    racing for one number, exactly the hourly limit (5) get through."""
    results = _threaded_starts(app, api_key, 20)
    assert sorted(results) == [201] * 5 + [429] * 15, results
    assert count_rows(app, "verifications") == 5
    assert count_rows(app, "outbox_messages") == 5
