"""Concurrent redemptions: threads on their own connections, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.clients import service as clients
from app.core.db import Database
from app.coupons import service
from app.coupons.schemas import RedemptionCreate
from tests.conftest import call, count_rows
from tests.coupons.helpers import approved, jp, redeem, redeem_status, threaded_redemptions


async def test_twenty_threads_redeem_exactly_once(client, app, carrier, coupon_auth, token):
    sub = (await approved(client, app, carrier, coupon_auth, jp(30)))["subscriber_id"]
    results = await threaded_redemptions(app, token, [("C1", {"subscriber_id": sub})] * 20)
    assert results.count(201) == 1, results
    assert results.count(409) == 19
    assert count_rows(app, "coupon_redemptions") == 1


async def test_two_verifications_of_one_number_at_once(client, app, carrier, coupon_auth, token):
    """Two accounts on one number, each with its own fresh verification, at the same time."""
    first = await approved(client, app, carrier, coupon_auth, jp(31))
    second = await approved(client, app, carrier, coupon_auth, jp(31))
    requests = [("C1", {"verification_id": first["id"]}), ("C1", {"verification_id": second["id"]})]
    results = await threaded_redemptions(app, token, requests * 5)
    assert results.count(201) == 1, results
    assert set(results) == {201, 409}
    assert count_rows(app, "coupon_redemptions") == 1


async def test_one_verification_for_many_coupons_at_once(client, app, carrier, coupon_auth, token):
    checked = await approved(client, app, carrier, coupon_auth, jp(32))
    requests = [(f"C{i}", {"verification_id": checked["id"]}) for i in range(12)]
    results = await threaded_redemptions(app, token, requests)
    assert results.count(201) == 1, results
    assert results.count(409) == 11
    assert count_rows(app, "coupon_redemptions") == 1


class TestLimitThree:
    @pytest.fixture
    def settings_overrides(self):
        return {"coupon_redemption_limits": {"THRICE": 3}}

    async def test_twenty_threads_redeem_exactly_the_limit(
        self, client, app, carrier, coupon_auth, token
    ):
        sub = (await approved(client, app, carrier, coupon_auth, jp(33)))["subscriber_id"]
        results = await threaded_redemptions(app, token, [("THRICE", {"subscriber_id": sub})] * 20)
        assert results.count(201) == 3, results
        assert count_rows(app, "coupon_redemptions") == 3

    async def test_a_redemption_in_flight_makes_the_next_wait_and_count_it(
        self, client, app, carrier, coupon_auth, token
    ):
        """The count is taken under a lock: the second waits for the first, then counts it.

        Without the lock the second would count 0, take the same place and be refused by
        the unique key when the first commits, although the limit allows three.
        """
        sub = (await approved(client, app, carrier, coupon_auth, jp(36)))["subscriber_id"]
        caller = await call(app, clients.authenticate, token=token)
        redeemed, release = threading.Event(), threading.Event()

        def first() -> None:
            """A redemption whose transaction stays open until told to commit."""

            async def hold() -> None:
                db = Database(app.state.db.url)  # its own connection, as another process
                try:
                    async with db.transaction() as tx:
                        await service.redeem(
                            tx,
                            app.state.ctx,
                            client=caller,
                            coupon_id="THRICE",
                            data=RedemptionCreate(subscriber_id=sub),
                        )
                        redeemed.set()
                        assert release.wait(timeout=30)
                finally:
                    await db.dispose()

            asyncio.run(hold())

        with ThreadPoolExecutor(max_workers=2) as pool:
            holding = pool.submit(first)
            assert redeemed.wait(timeout=30), "the first redemption did not get through"
            second = pool.submit(redeem_status, app, caller, "THRICE", {"subscriber_id": sub})
            time.sleep(0.5)
            assert not second.done(), "the second redemption did not wait for the first"
            release.set()
            holding.result(timeout=30)
            assert second.result(timeout=30) == 201
        listed = await client.get(
            f"/v1/coupons/THRICE/redemptions?subscriber_id={sub}", headers=coupon_auth
        )
        assert (len(listed.json()["redemptions"]), listed.json()["remaining"]) == (2, 1)


async def test_concurrent_http_requests_redeem_exactly_once(client, app, carrier, coupon_auth):
    sub = (await approved(client, app, carrier, coupon_auth, jp(34)))["subscriber_id"]
    answers = await asyncio.gather(
        *(redeem(client, coupon_auth, "C1", subscriber_id=sub) for _ in range(10))
    )
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [201] + [409] * 9, statuses


async def test_the_database_refuses_a_duplicate_even_without_the_count(
    client, app, carrier, coupon_auth, monkeypatch
):
    """If the service's count were stale, the unique key still refuses the row: a 409."""
    sub = (await approved(client, app, carrier, coupon_auth, jp(35)))["subscriber_id"]
    assert (await redeem(client, coupon_auth, "C1", subscriber_id=sub)).status_code == 201

    async def stale_tally(tx, **_):
        return 0, 0

    monkeypatch.setattr(service.repo, "tally", stale_tally)
    answer = await redeem(client, coupon_auth, "C1", subscriber_id=sub)
    assert answer.status_code == 409
    assert answer.json()["type"].endswith("/coupon-already-redeemed")
    assert count_rows(app, "coupon_redemptions") == 1
