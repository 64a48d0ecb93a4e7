"""Coupon redemptions: per number, fresh verifications only, one verification per redemption."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from tests.conftest import count_rows, sync_engine
from tests.coupons.helpers import approved, bearer, jp, make_key, redeem
from tests.fixtures.flows import start


def audit(app, tag: str) -> list[dict]:
    with sync_engine(app).connect() as conn:
        rows = conn.execute(
            sa.text("SELECT actor, subject, details FROM audit_events WHERE tag = :t ORDER BY id"),
            {"t": tag},
        )
        return [dict(row._mapping) for row in rows]


async def test_redeem_with_a_fresh_verification(client, app, carrier, coupon_auth, token):
    checked = await approved(client, app, carrier, coupon_auth, jp(1))
    answer = await redeem(client, coupon_auth, "SPRING-2026", verification_id=checked["id"])
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["id"].startswith("red_")
    assert body["coupon_id"] == "SPRING-2026"
    assert body["subscriber_id"] == checked["subscriber_id"]
    assert body["verification_id"] == checked["id"]
    assert (body["limit"], body["remaining"]) == (1, 0)
    assert dt.datetime.fromisoformat(body["redeemed_at"]) == app.state.ctx.clock.now()
    assert jp(1) not in answer.text and jp(1)[3:] not in answer.text

    events = audit(app, "coupon:redeemed")
    assert len(events) == 1
    assert events[0]["subject"] == body["id"]
    assert events[0]["actor"].startswith("api_key:")
    assert jp(1)[3:] not in str(events[0]["details"])


async def test_second_redemption_by_the_same_number_is_refused(client, app, carrier, coupon_auth):
    first = await approved(client, app, carrier, coupon_auth, jp(2))
    assert (await redeem(client, coupon_auth, "C1", verification_id=first["id"])).status_code == 201

    # By subscriber id ...
    again = await redeem(client, coupon_auth, "C1", subscriber_id=first["subscriber_id"])
    assert again.status_code == 409
    problem = again.json()
    assert problem["type"].endswith("/coupon-already-redeemed")
    assert (problem["limit"], problem["redeemed"]) == (1, 1)
    assert again.headers["content-type"] == "application/problem+json"

    # ... and through a different verification of the same number (another account).
    second = await approved(client, app, carrier, coupon_auth, jp(2))
    assert second["id"] != first["id"] and second["subscriber_id"] == first["subscriber_id"]
    other = await redeem(client, coupon_auth, "C1", verification_id=second["id"])
    assert other.status_code == 409
    assert other.json()["type"].endswith("/coupon-already-redeemed")
    assert count_rows(app, "coupon_redemptions") == 1
    # The refusals are kept in the audit log even though the requests failed.
    assert len(audit(app, "coupon:redemption_refused")) == 2

    # Another coupon, or another number, is not affected.
    assert (
        await redeem(client, coupon_auth, "C2", verification_id=second["id"])
    ).status_code == 201
    third = await approved(client, app, carrier, coupon_auth, jp(3))
    assert (await redeem(client, coupon_auth, "C1", verification_id=third["id"])).status_code == 201


async def test_the_limit_holds_across_service_clients(client, app, carrier, coupon_auth):
    """Coupon ids are one namespace: a second key (or a rotated one) starts no fresh count."""
    first = await approved(client, app, carrier, coupon_auth, jp(4))
    assert (await redeem(client, coupon_auth, "C1", verification_id=first["id"])).status_code == 201
    other_auth = bearer(await make_key(app, name="second-frontend"))
    theirs = await approved(client, app, carrier, other_auth, jp(4))
    refused = await redeem(client, other_auth, "C1", verification_id=theirs["id"])
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/coupon-already-redeemed")


async def test_redeem_by_subscriber(client, app, carrier, coupon_auth):
    checked = await approved(client, app, carrier, coupon_auth, jp(5))
    answer = await redeem(client, coupon_auth, "C1", subscriber_id=checked["subscriber_id"])
    assert answer.status_code == 201, answer.text
    assert answer.json()["verification_id"] is None


async def test_verification_window(client, app, carrier, clock, coupon_auth):
    late = await approved(client, app, carrier, coupon_auth, jp(6))
    in_time = await approved(client, app, carrier, coupon_auth, jp(7))
    clock.advance(minutes=10, microseconds=-1)  # the last moment of the window
    assert (
        await redeem(client, coupon_auth, "C1", verification_id=in_time["id"])
    ).status_code == 201
    clock.advance(microseconds=1)  # exactly the window: too late
    answer = await redeem(client, coupon_auth, "C1", verification_id=late["id"])
    assert answer.status_code == 410
    problem = answer.json()
    assert problem["type"].endswith("/verification-approval-expired")
    assert problem["errors"][0]["field"] == "verification_id"
    # The number may still redeem once it is verified again.
    fresh = await approved(client, app, carrier, coupon_auth, jp(6))
    assert (await redeem(client, coupon_auth, "C1", verification_id=fresh["id"])).status_code == 201


class TestWindowSetting:
    @pytest.fixture
    def settings_overrides(self):
        return {"coupon_verification_window_minutes": 2}

    async def test_window_is_a_setting(self, client, app, carrier, clock, coupon_auth):
        checked = await approved(client, app, carrier, coupon_auth, jp(8))
        clock.advance(minutes=2)
        answer = await redeem(client, coupon_auth, "C1", verification_id=checked["id"])
        assert answer.status_code == 410


async def test_wrong_purpose_is_refused(client, app, carrier, coupon_auth):
    delivery = await approved(client, app, carrier, coupon_auth, jp(9), purpose="coupon_delivery")
    by_verification = await redeem(client, coupon_auth, "C1", verification_id=delivery["id"])
    assert by_verification.status_code == 409
    problem = by_verification.json()
    assert problem["type"].endswith("/not-verified-for-purpose")
    assert problem["errors"][0]["field"] == "verification_id"

    by_subscriber = await redeem(client, coupon_auth, "C1", subscriber_id=delivery["subscriber_id"])
    assert by_subscriber.status_code == 409
    assert by_subscriber.json()["errors"][0]["field"] == "subscriber_id"

    subject = await approved(client, app, carrier, coupon_auth, jp(9), purpose="data_subject")
    answer = await redeem(client, coupon_auth, "C1", verification_id=subject["id"])
    assert answer.status_code == 409
    assert count_rows(app, "coupon_redemptions") == 0


async def test_unapproved_verification_is_refused(client, app, carrier, coupon_auth):
    pending = await start(client, coupon_auth, phone=jp(10))
    answer = await redeem(client, coupon_auth, "C1", verification_id=pending.json()["id"])
    assert answer.status_code == 409
    assert answer.json()["type"].endswith("/verification-not-approved")


async def test_other_clients_and_unknown_verifications_are_not_found(
    client, app, carrier, coupon_auth
):
    theirs = await approved(client, app, carrier, coupon_auth, jp(11))
    other_auth = bearer(await make_key(app, name="other"))
    foreign = await redeem(client, other_auth, "C1", verification_id=theirs["id"])
    assert foreign.status_code == 404
    assert foreign.json()["type"].endswith("/verification-not-found")
    missing = await redeem(client, coupon_auth, "C1", verification_id="ver_doesnotexist")
    assert missing.status_code == 404
    unknown = await redeem(client, coupon_auth, "C1", subscriber_id="sub_doesnotexist")
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/subscriber-not-found")
    assert count_rows(app, "coupon_redemptions") == 0


async def test_a_verification_backs_one_redemption(client, app, carrier, coupon_auth):
    checked = await approved(client, app, carrier, coupon_auth, jp(12))
    first = await redeem(client, coupon_auth, "C1", verification_id=checked["id"])
    assert first.status_code == 201
    reused = await redeem(client, coupon_auth, "C2", verification_id=checked["id"])
    assert reused.status_code == 409
    problem = reused.json()
    assert problem["type"].endswith("/verification-already-used")
    # A retry after a lost answer can tell that its redemption was recorded.
    assert problem["redemption_id"] == first.json()["id"]
    assert count_rows(app, "coupon_redemptions") == 1


class TestPerCouponLimits:
    @pytest.fixture
    def settings_overrides(self):
        return {"coupon_redemption_limits": {"TWICE": 2}}

    async def test_a_coupon_may_allow_more(self, client, app, carrier, coupon_auth):
        sub = (await approved(client, app, carrier, coupon_auth, jp(13)))["subscriber_id"]
        one = await redeem(client, coupon_auth, "TWICE", subscriber_id=sub)
        assert (one.status_code, one.json()["remaining"]) == (201, 1)
        two = await redeem(client, coupon_auth, "TWICE", subscriber_id=sub)
        assert (two.status_code, two.json()["remaining"]) == (201, 0)
        three = await redeem(client, coupon_auth, "TWICE", subscriber_id=sub)
        assert three.status_code == 409
        assert three.json()["limit"] == 2
        # Other coupons keep the default of one.
        assert (await redeem(client, coupon_auth, "ONCE", subscriber_id=sub)).status_code == 201
        assert (await redeem(client, coupon_auth, "ONCE", subscriber_id=sub)).status_code == 409


class TestDefaultLimit:
    @pytest.fixture
    def settings_overrides(self):
        return {"coupon_redemptions_per_number": 3}

    async def test_default_limit_is_a_setting(self, client, app, carrier, coupon_auth):
        sub = (await approved(client, app, carrier, coupon_auth, jp(14)))["subscriber_id"]
        codes = [
            (await redeem(client, coupon_auth, "C1", subscriber_id=sub)).status_code
            for _ in range(4)
        ]
        assert codes == [201, 201, 201, 409]


async def test_coupon_ids_are_case_sensitive_exact_strings(client, app, carrier, coupon_auth):
    sub = (await approved(client, app, carrier, coupon_auth, jp(15)))["subscriber_id"]
    for coupon_id in ("a.b_c-D", "A.B_C-D", "x" * 64, "1"):
        answer = await redeem(client, coupon_auth, coupon_id, subscriber_id=sub)
        assert answer.status_code == 201, (coupon_id, answer.text)
        assert answer.json()["coupon_id"] == coupon_id
