"""Sessions: absolute and idle expiry, revocation at once, roles read afresh, passwords."""

from __future__ import annotations

import pytest

from tests.conftest import count_rows
from tests.staff.helpers import PASSWORD, bearer, create_staff, events, login, rows, staff_auth


async def me(client, headers) -> int:
    return (await client.get("/v1/staff/me", headers=headers)).status_code


async def test_absolute_lifetime_ends_even_a_busy_session(client, app, clock):
    await create_staff(app, "operator", username="hanako")
    headers = bearer((await login(client, "hanako")).json()["token"])
    # Used every 20 minutes (well within the idle timeout) for 11 h 40 min ...
    for _ in range(35):
        clock.advance(minutes=20)
        assert await me(client, headers) == 200
    clock.advance(minutes=19, seconds=59)
    assert await me(client, headers) == 200
    clock.advance(seconds=1)  # ... and at 12 h it ends.
    answer = await client.get("/v1/staff/me", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["type"].endswith("/unauthenticated")


@pytest.mark.parametrize(
    "settings_overrides",
    [
        {
            "session_max_hours": 2,
            "session_idle_minutes": 5,
            "password_hash_time_cost": 1,
            "password_hash_memory_kib": 1024,
            "password_hash_parallelism": 1,
        }
    ],
)
async def test_lifetimes_follow_the_settings(client, app, clock):
    await create_staff(app, "operator", username="hanako")
    body = (await login(client, "hanako")).json()
    assert body["session"]["expires_at"] == "2026-11-22T02:00:00Z"
    assert body["session"]["idle_expires_at"] == "2026-11-22T00:05:00Z"
    clock.advance(minutes=5)
    assert await me(client, bearer(body["token"])) == 401


async def test_idle_timeout_and_activity_extends_it(client, app, clock):
    await create_staff(app, "operator", username="hanako")
    headers = bearer((await login(client, "hanako")).json()["token"])
    clock.advance(minutes=29, seconds=59)
    answer = await client.get("/v1/staff/me", headers=headers)
    assert answer.status_code == 200
    assert answer.json()["session"]["idle_expires_at"] == "2026-11-22T00:59:59Z"
    clock.advance(minutes=29, seconds=59)
    assert await me(client, headers) == 200
    clock.advance(minutes=30)  # 30 minutes without a request
    assert await me(client, headers) == 401


async def test_a_refused_action_still_counts_as_activity(client, app, clock):
    await create_staff(app, "auditor", username="kim")
    headers = bearer((await login(client, "kim")).json()["token"])
    clock.advance(minutes=20)
    assert (await client.post("/v1/staff/invitations", json={}, headers=headers)).status_code == 403
    clock.advance(minutes=20)  # 40 minutes after login, 20 after the refused request
    assert await me(client, headers) == 200
    # The same for a route that runs in the request's own transaction.
    clock.advance(minutes=20)
    refused = await client.delete("/v1/staff/stf_someone/sessions", headers=headers)
    assert refused.status_code == 403
    clock.advance(minutes=20)  # 40 minutes after /me, 20 after the refused request
    assert await me(client, headers) == 200


async def test_logout_ends_the_session_at_once(client, app):
    await create_staff(app, "operator", username="hanako")
    first = bearer((await login(client, "hanako")).json()["token"])
    second = bearer((await login(client, "hanako")).json()["token"])
    answer = await client.delete("/v1/staff/sessions/current", headers=first)
    assert answer.status_code == 204
    assert await me(client, first) == 401
    assert (await client.delete("/v1/staff/sessions/current", headers=first)).status_code == 401
    assert await me(client, second) == 200, "only the session logged out ends"
    assert len(events(app, "staff:session:logged_out")) == 1


async def test_admin_ends_every_session_of_an_account(client, app):
    admin = await staff_auth(app, client, "admin")
    target = await create_staff(app, "operator", username="hanako")
    sessions = [bearer((await login(client, "hanako")).json()["token"]) for _ in range(2)]
    answer = await client.delete(f"/v1/staff/{target.id}/sessions", headers=admin)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"staff_id": target.id, "sessions_ended": 2}
    for headers in sessions:
        assert await me(client, headers) == 401
    assert (await login(client, "hanako")).status_code == 201, "the account itself still works"
    assert len(events(app, "staff:session:revoked_all")) == 1

    unknown = await client.delete("/v1/staff/stf_nobody/sessions", headers=admin)
    assert unknown.status_code == 404
    bad = await client.delete("/v1/staff/not-an-id/sessions", headers=admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "staff_id"
    operator = bearer((await login(client, "hanako")).json()["token"])
    refused = await client.delete(f"/v1/staff/{target.id}/sessions", headers=operator)
    assert refused.status_code == 403


async def test_disabling_an_account_ends_its_sessions_at_once(client, app):
    admin = await staff_auth(app, client, "admin")
    target = await create_staff(app, "operator", username="hanako")
    headers = bearer((await login(client, "hanako")).json()["token"])
    assert await me(client, headers) == 200
    answer = await client.post(f"/v1/staff/{target.id}/disable", headers=admin)
    assert answer.status_code == 200, answer.text
    assert await me(client, headers) == 401


async def test_a_role_change_applies_to_live_sessions_at_once(client, app):
    admin = await staff_auth(app, client, "admin")
    target = await create_staff(app, "operator", username="hanako")
    headers = bearer((await login(client, "hanako")).json()["token"])
    search = {"phone": "090-1234-5678"}
    assert (
        await client.post("/v1/subscribers/search", json=search, headers=headers)
    ).status_code == 200
    changed = await client.put(
        f"/v1/staff/{target.id}/role", json={"role": "auditor"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    refused = await client.post("/v1/subscribers/search", json=search, headers=headers)
    assert refused.status_code == 403
    assert (await client.get("/v1/access-log", headers=headers)).status_code == 200


async def test_a_role_change_opens_and_closes_staff_routes_at_once(client, app):
    """The same property on the staff area's own routes (the test above uses the
    registry's): the role is read afresh on every request."""
    admin = await staff_auth(app, client, "admin")
    target = await create_staff(app, "operator", username="hanako")
    headers = bearer((await login(client, "hanako")).json()["token"])
    assert (await client.get("/v1/staff", headers=headers)).status_code == 403
    changed = await client.put(
        f"/v1/staff/{target.id}/role", json={"role": "auditor"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert (await client.get("/v1/staff", headers=headers)).status_code == 200
    back = await client.put(f"/v1/staff/{target.id}/role", json={"role": "operator"}, headers=admin)
    assert back.status_code == 200, back.text
    assert (await client.get("/v1/staff", headers=headers)).status_code == 403


async def test_tampered_and_foreign_tokens_are_refused(client, app):
    await create_staff(app, "operator", username="hanako")
    token = (await login(client, "hanako")).json()["token"]
    for bad in (
        token[:-1] + ("A" if token[-1] != "A" else "B"),
        "smsreg_ss_" + "x" * 43,
        "smsreg_ss_" + "x" * 500,
        token.replace("smsreg_ss_", "smsreg_sk_"),
        "",
    ):
        answer = await client.get("/v1/staff/me", headers=bearer(bad))
        assert answer.status_code == 401, bad
    for header in ({"Authorization": token}, {"Authorization": f"Basic {token}"}, {}):
        assert (await client.get("/v1/staff/me", headers=header)).status_code == 401


async def test_change_own_password(client, app, clock):
    await create_staff(app, "operator", username="hanako")
    current = bearer((await login(client, "hanako")).json()["token"])
    other = bearer((await login(client, "hanako")).json()["token"])
    new_password = "a brand new passphrase"
    clock.advance(minutes=1)

    wrong = await client.put(
        "/v1/staff/me/password",
        json={"current_password": "not it at all", "new_password": new_password},
        headers=current,
    )
    assert wrong.status_code == 422, wrong.text
    assert wrong.json()["type"].endswith("/wrong-password")
    assert wrong.json()["errors"][0]["field"] == "current_password"
    assert rows(app, "SELECT failed_logins FROM staff_accounts")[0]["failed_logins"] == 1

    weak = await client.put(
        "/v1/staff/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=current,
    )
    assert weak.status_code == 422 and weak.json()["errors"][0]["field"] == "new_password"

    ok = await client.put(
        "/v1/staff/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=current,
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["password_changed_at"] == "2026-11-22T00:01:00Z"
    assert await me(client, current) == 200
    assert await me(client, other) == 401, "the other sessions end"
    assert (await login(client, "hanako")).status_code == 401
    assert (await login(client, "hanako", new_password)).status_code == 201
    assert len(events(app, "staff:account:password_changed")) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "current_password"),
        ({"current_password": PASSWORD}, "new_password"),
        ({"current_password": PASSWORD, "new_password": "y" * 1025}, "new_password"),
        ({"current_password": "", "new_password": "long enough passphrase"}, "current_password"),
        ({"current_password": PASSWORD, "new_password": "long enough!", "x": 1}, "x"),
    ],
)
async def test_password_change_bad_input(client, app, body, field):
    await create_staff(app, "operator", username="hanako")
    headers = bearer((await login(client, "hanako")).json()["token"])
    before = rows(app, "SELECT password_hash FROM staff_accounts")
    answer = await client.put("/v1/staff/me/password", json=body, headers=headers)
    assert answer.status_code == 422, answer.text
    assert field in {error["field"] for error in answer.json()["errors"]}
    assert rows(app, "SELECT password_hash FROM staff_accounts") == before
    assert count_rows(app, "staff_sessions") == 1
