"""Expiry with an injected clock: password maximum age, API key maximum age and grace
period, session lifetime and idle timeout."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.staff.helpers import (
    CHEAP_HASHING,
    PASSWORD,
    bearer,
    create_staff,
    login,
    staff_auth,
)

STRONG = "violet tugboat quantum marmalade"
DAY = dt.timedelta(days=1)


async def signed_in(client, username: str) -> dict[str, str]:
    answer = await login(client, username)
    assert answer.status_code == 201, answer.text
    return bearer(answer.json()["token"])


async def test_password_maximum_age(client, app, clock):
    await create_staff(app, "admin", username="root")
    created = clock.now()
    clock.set(created + 90 * DAY - dt.timedelta(seconds=1))
    early = await login(client, "root")
    assert early.json()["restrictions"] == []
    assert early.json()["password_expires_at"] == (created + 90 * DAY).isoformat().replace(
        "+00:00", "Z"
    )
    early_headers = bearer(early.json()["token"])
    assert (await client.get("/v1/staff", headers=early_headers)).status_code == 200

    clock.advance(seconds=1)  # 90 days: past the maximum age
    # A session opened before is restricted from now on, too.
    during = await client.get("/v1/staff", headers=early_headers)
    assert during.status_code == 403 and during.json()["type"].endswith("/password-expired")

    late = await login(client, "root")
    assert late.status_code == 201 and late.json()["restrictions"] == ["password_expired"]
    headers = bearer(late.json()["token"])
    for method, path, body in [
        ("GET", "/v1/staff", None),
        ("POST", "/v1/staff/invitations", {"bad": "input"}),
        ("POST", "/v1/api-keys", {}),
        ("POST", "/v1/staff/me/totp/recovery-codes", {"code": "123456"}),
    ]:
        refused = await client.request(method, path, json=body, headers=headers)
        assert refused.status_code == 403, path
        assert refused.json()["type"].endswith("/password-expired")
    me = await client.get("/v1/staff/me", headers=headers)
    assert me.status_code == 200 and me.json()["restrictions"] == ["password_expired"]

    changed = await client.put(
        "/v1/staff/me/password",
        json={"current_password": PASSWORD, "new_password": STRONG},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert (await client.get("/v1/staff", headers=headers)).status_code == 200
    after = await client.get("/v1/staff/me", headers=headers)
    assert after.json()["restrictions"] == []
    assert after.json()["password_expires_at"] == (clock.now() + 90 * DAY).isoformat().replace(
        "+00:00", "Z"
    )
    # The other session, opened with the old password, ended with the change.
    assert (await client.get("/v1/staff/me", headers=early_headers)).status_code == 401


class TestNoMaximumAge:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {**CHEAP_HASHING, "password_max_age_days": 0}

    async def test_zero_disables_it(self, client, app, clock):
        await create_staff(app, "admin", username="root")
        clock.advance(days=3650)
        answer = await login(client, "root")
        assert answer.json()["restrictions"] == []
        assert answer.json()["password_expires_at"] is None
        headers = bearer(answer.json()["token"])
        assert (await client.get("/v1/staff", headers=headers)).status_code == 200


async def test_api_key_maximum_age(client, app, clock):
    admin = await staff_auth(app, client, "admin", username="root")
    made = await client.post(
        "/v1/api-keys", json={"name": "frontend", "scopes": ["verifications:write"]}, headers=admin
    )
    key = bearer(made.json()["token"])
    start = clock.now()
    clock.set(start + 180 * DAY - dt.timedelta(microseconds=1))
    assert (await client.get("/v1/verifications/ver_madeup", headers=key)).status_code == 404
    clock.set(start + 180 * DAY)
    assert (await client.get("/v1/verifications/ver_madeup", headers=key)).status_code == 401


async def test_api_key_grace_period(client, app, clock):
    admin = await staff_auth(app, client, "admin", username="root")
    made = await client.post(
        "/v1/api-keys", json={"name": "frontend", "scopes": ["verifications:write"]}, headers=admin
    )
    old = bearer(made.json()["token"])
    clock.advance(days=60)
    admin = await signed_in(client, "root")
    rotated = await client.post(f"/v1/api-keys/{made.json()['key']['id']}/rotate", headers=admin)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["old"]["state"] == "rotated"
    new = bearer(rotated.json()["token"])

    clock.advance(hours=24, microseconds=-1)  # the last moment of the grace period
    assert (await client.get("/v1/verifications/ver_madeup", headers=old)).status_code == 404
    clock.advance(microseconds=1)
    assert (await client.get("/v1/verifications/ver_madeup", headers=old)).status_code == 401
    assert (await client.get("/v1/verifications/ver_madeup", headers=new)).status_code == 404
    listed = await client.get("/v1/api-keys", headers=await signed_in(client, "root"))
    states = {key["id"]: key["state"] for key in listed.json()["api_keys"]}
    assert states == {
        made.json()["key"]["id"]: "expired",
        rotated.json()["new"]["id"]: "active",
    }


async def test_session_lifetime(client, app, clock):
    await create_staff(app, "operator", username="op")
    headers = await signed_in(client, "op")
    for _ in range(35):  # busy all along: 35 x 20 min = 11 h 40 min
        clock.advance(minutes=20)
        assert (await client.get("/v1/staff/me", headers=headers)).status_code == 200
    clock.advance(minutes=19, seconds=59)
    assert (await client.get("/v1/staff/me", headers=headers)).status_code == 200
    clock.advance(seconds=1)  # 12 h after the login, however busy
    assert (await client.get("/v1/staff/me", headers=headers)).status_code == 401


async def test_session_idle_timeout(client, app, clock):
    await create_staff(app, "operator", username="op")
    headers = await signed_in(client, "op")
    clock.advance(minutes=29, seconds=59)
    assert (await client.get("/v1/staff/me", headers=headers)).status_code == 200
    clock.advance(minutes=29, seconds=59)  # counted from the last request
    assert (await client.get("/v1/staff/me", headers=headers)).status_code == 200
    clock.advance(minutes=30)
    assert (await client.get("/v1/staff/me", headers=headers)).status_code == 401
