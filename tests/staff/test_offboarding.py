"""Offboarding: afterwards every door is tried, and every one is closed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from app.clients import service as clients
from tests.conftest import call
from tests.credentials.helpers import (
    TOTP_ON,
    code_at,
    enrolled_staff,
    invoke_async,
    login_with,
    use_cli,
)
from tests.staff.helpers import bearer, create_staff, events, login, rows, staff_auth

SCOPES = ["verifications:write"]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(TOTP_ON)


async def works(client, token: str) -> bool:
    """Whether an API key still authenticates (a made-up id: 404 once it does)."""
    answer = await client.get("/v1/verifications/ver_madeup", headers=bearer(token))
    assert answer.status_code in (401, 404), answer.text
    return answer.status_code == 404


async def new_key(client, headers: dict[str, str], name: str) -> dict[str, Any]:
    made = await client.post("/v1/api-keys", json={"name": name, "scopes": SCOPES}, headers=headers)
    assert made.status_code == 201, made.text
    return {"id": made.json()["key"]["id"], "token": made.json()["token"]}


async def rotate(client, headers: dict[str, str], key_id: str) -> dict[str, Any]:
    done = await client.post(f"/v1/api-keys/{key_id}/rotate", headers=headers)
    assert done.status_code == 200, done.text
    return {"id": done.json()["new"]["id"], "token": done.json()["token"]}


def leaver_id(app) -> str:
    return str(rows(app, "SELECT id FROM staff_accounts WHERE username = 'leaver'")[0]["id"])


def state(app) -> dict[str, Any]:
    """What an offboarding would change, to show that a refused one changed nothing."""
    return {
        "keys": rows(app, "SELECT id, expires_at, rotated_to FROM api_keys ORDER BY id"),
        "sessions": rows(app, "SELECT id, revoked_at FROM staff_sessions ORDER BY id"),
        "accounts": rows(app, "SELECT id, disabled_at FROM staff_accounts ORDER BY id"),
        "totp": rows(app, "SELECT staff_id FROM staff_totp ORDER BY staff_id"),
        "codes": len(rows(app, "SELECT id FROM staff_recovery_codes")),
        "history": len(rows(app, "SELECT id FROM staff_permission_history")),
        "offboarded": len(events(app, "staff:account:offboarded")),
    }


async def scene(app, client, clock) -> dict[str, Any]:
    """An admin ("root") and a departing admin ("leaver") with TOTP, two sessions and keys:
    one plain, one they rotated themselves, one root rotated; root's own and a CLI key."""
    root, _root_secret, _ = await enrolled_staff(app, client, clock, "admin", "root")
    leaver, secret, codes = await enrolled_staff(app, client, clock, "admin", "leaver")
    clock.advance(seconds=30)
    second = await login_with(client, "leaver", totp=code_at(secret, clock.now()))
    plain = await new_key(client, leaver, "plain")
    self_rotated = await new_key(client, leaver, "self-rotated")
    successor = await rotate(client, leaver, self_rotated["id"])
    other_rotated = await new_key(client, leaver, "root-rotated")
    roots_successor = await rotate(client, root, other_rotated["id"])
    roots_own = await new_key(client, root, "roots-own")
    cli_key = await call(app, clients.create, name="from-cli", scopes=SCOPES, created_by="cli")
    return {
        "root": root,
        "sessions": [leaver, bearer(second.json()["token"])],
        "secret": secret,
        "codes": codes,
        "theirs": [plain, self_rotated, successor, other_rotated],
        "others": [roots_successor, roots_own, {"id": cli_key.key.id, "token": cli_key.token}],
        "plain": plain,
        "successor": successor,
        "ending": [self_rotated, other_rotated],
    }


async def test_every_door_is_closed(client, app, clock):
    s = await scene(app, client, clock)
    staff_id = leaver_id(app)
    # A grace period asked for on purpose (the default is 0: see the next test).
    answer = await client.post(
        f"/v1/staff/{staff_id}/offboard", json={"grace_hours": 24}, headers=s["root"]
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert body["staff"]["disabled_at"] is not None and body["disabled_now"] is True
    assert body["sessions_ended"] == 3  # enrolment, first TOTP login, second login
    assert body["totp_removed"] is True and body["recovery_codes_removed"] == 10
    assert sorted(k["old"]["id"] for k in body["rotated_keys"]) == sorted(
        [s["plain"]["id"], s["successor"]["id"]]
    )
    assert sorted(k["id"] for k in body["ending_keys"]) == sorted(k["id"] for k in s["ending"])
    fresh = [k["token"] for k in body["rotated_keys"]]
    root_id = rows(app, "SELECT id FROM staff_accounts WHERE username = 'root'")[0]["id"]
    assert all(k["new"]["created_by"] == f"staff:{root_id}" for k in body["rotated_keys"])

    # Old sessions: closed at once.
    for headers in s["sessions"]:
        assert (await client.get("/v1/staff/me", headers=headers)).status_code == 401
    # Old password with a good TOTP code, or with a recovery code: closed.
    clock.advance(seconds=30)
    assert (
        await login_with(client, "leaver", totp=code_at(s["secret"], clock.now()))
    ).status_code == 401
    assert (await login_with(client, "leaver", recovery_code=s["codes"][0])).status_code == 401
    assert rows(app, "SELECT * FROM staff_totp WHERE staff_id = :id", id=staff_id) == []
    assert rows(app, "SELECT * FROM staff_recovery_codes WHERE staff_id = :id", id=staff_id) == []

    # With a grace period asked for, every key they created still works for it (the
    # clients need time to switch), then dies; the successors, root's keys and the CLI's live on.
    for key in s["theirs"]:
        assert await works(client, key["token"])
    clock.advance(hours=24)
    for key in s["theirs"]:
        assert not await works(client, key["token"]), key
    for token in fresh + [k["token"] for k in s["others"]]:
        assert await works(client, token)

    history = rows(
        app,
        "SELECT change, old_role, new_role, actor FROM staff_permission_history "
        "WHERE staff_id = :id ORDER BY id",
        id=staff_id,
    )
    # (The test made the account straight in the database: there is no grant row.)
    assert history == [
        {"change": "revoke", "old_role": "admin", "new_role": None, "actor": f"staff:{root_id}"},
        {"change": "offboard", "old_role": "admin", "new_role": None, "actor": f"staff:{root_id}"},
    ]
    (event,) = events(app, "staff:account:offboarded")
    assert event["actor"] == f"staff:{root_id}" and event["subject"] == staff_id
    assert event["details"]["sessions_ended"] == 3
    assert len(event["details"]["rotated"]) == 2 and len(event["details"]["ending"]) == 2
    audit = "\n".join(str(e) for e in rows(app, "SELECT * FROM audit_events"))
    assert not any(token in audit for token in fresh)
    # The permission history shows it to auditors too.
    auditor = await staff_auth(app, client, "auditor", username="aud")
    detail = await client.get(f"/v1/staff/{staff_id}", headers=auditor)
    assert [h["change"] for h in detail.json()["permission_history"]] == ["revoke", "offboard"]


async def test_by_default_their_keys_end_at_once(client, app, clock):
    s = await scene(app, client, clock)
    answer = await client.post(f"/v1/staff/{leaver_id(app)}/offboard", headers=s["root"])
    assert answer.status_code == 200, answer.text
    for key in s["theirs"]:
        assert not await works(client, key["token"]), key
    for key in s["others"]:
        assert await works(client, key["token"])


async def test_refusals_change_nothing(client, app, clock):
    s = await scene(app, client, clock)
    staff_id = leaver_id(app)
    root_id = rows(app, "SELECT id FROM staff_accounts WHERE username = 'root'")[0]["id"]
    operator = await staff_auth(app, client, "operator", username="op")
    before = state(app)
    cases = [
        (f"/v1/staff/{root_id}/offboard", None, s["root"], 403, "own-account"),
        ("/v1/staff/stf_nobody/offboard", None, s["root"], 404, "staff-not-found"),
        ("/v1/staff/not-an-id/offboard", None, s["root"], 422, "invalid-input"),
        (f"/v1/staff/{staff_id}/offboard", {"grace_hours": -1}, s["root"], 422, "invalid-input"),
        (f"/v1/staff/{staff_id}/offboard", {"grace_hours": 721}, s["root"], 422, "invalid-input"),
        (f"/v1/staff/{staff_id}/offboard", {"grace_hours": True}, s["root"], 422, "invalid-input"),
        (f"/v1/staff/{staff_id}/offboard", {"grace_hours": "5"}, s["root"], 422, "invalid-input"),
        (f"/v1/staff/{staff_id}/offboard", {"grace": 1}, s["root"], 422, "invalid-input"),
        (f"/v1/staff/{staff_id}/offboard", None, operator, 403, "forbidden"),
        (f"/v1/staff/{staff_id}/offboard", None, {}, 401, "unauthenticated"),
    ]
    for path, body, headers, status, slug in cases:
        answer = await client.post(path, json=body, headers=headers)
        assert answer.status_code == status, (path, body, answer.text)
        assert answer.json()["type"].endswith("/" + slug)
    assert state(app) == before


async def test_an_already_disabled_account_still_has_its_keys_rotated(client, app, clock):
    s = await scene(app, client, clock)
    staff_id = leaver_id(app)
    disabled = await client.post(f"/v1/staff/{staff_id}/disable", headers=s["root"])
    assert disabled.status_code == 200
    for key in s["theirs"]:
        assert await works(client, key["token"])  # disabling alone leaves the keys

    answer = await client.post(f"/v1/staff/{staff_id}/offboard", headers=s["root"])
    assert answer.status_code == 200
    assert answer.json()["disabled_now"] is False and answer.json()["sessions_ended"] == 0
    assert len(answer.json()["rotated_keys"]) == 2
    changes = [r["change"] for r in rows(
        app, "SELECT change FROM staff_permission_history WHERE staff_id = :id ORDER BY id",
        id=staff_id,
    )]  # fmt: skip
    assert changes == ["revoke", "offboard"]

    # Again: nothing of theirs is left to rotate (the successors are root's).
    again = await client.post(f"/v1/staff/{staff_id}/offboard", headers=s["root"])
    assert again.json()["rotated_keys"] == []
    # ... and the history says once that the account was offboarded; the audit, each time.
    assert len(rows(app, "SELECT id FROM staff_permission_history WHERE staff_id = :id",
                    id=staff_id)) == 2  # fmt: skip
    assert len(events(app, "staff:account:offboarded")) == 2


@pytest.fixture
def real_time(clock):
    clock.set(dt.datetime.now(dt.UTC))  # the command line runs on the system clock


async def test_the_command_line_offboards_by_username(
    client, app, clock, settings, monkeypatch, real_time
):
    s = await scene(app, client, clock)
    use_cli(settings, monkeypatch)
    unknown = await invoke_async("staff", "offboard", "nobody")
    assert unknown.exit_code == 1 and "no staff account" in unknown.output

    done = await invoke_async("staff", "offboard", "leaver", "--grace-hours", "1")
    assert done.exit_code == 0, done.output
    assert "offboarded" in done.output and "disabled now" in done.output
    assert "3 session(s) ended" in done.output and "TOTP removed" in done.output
    tokens = [line.rsplit(" ", 1)[1] for line in done.output.splitlines() if "shown once" in line]
    assert len(tokens) == 2 and all(t.startswith("smsreg_sk_") for t in tokens)
    for token in tokens:
        assert await works(client, token)
    clock.advance(hours=1, seconds=1)
    for key in s["theirs"]:
        assert not await works(client, key["token"])
    (event,) = events(app, "staff:account:offboarded")
    assert event["actor"] == "cli"


async def test_offboarding_the_last_admin_is_refused_whole(
    client, app, clock, settings, monkeypatch, real_time
):
    """The command line may offboard anyone, but not the last active admin: and when it is
    refused, nothing of it happened (one transaction)."""
    leaver, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "leaver")
    key = await new_key(client, leaver, "plain")
    await create_staff(app, "operator", username="op")
    before = state(app)
    use_cli(settings, monkeypatch)
    refused = await invoke_async("staff", "offboard", "leaver")
    assert refused.exit_code == 1 and "last active admin" in refused.output
    assert state(app) == before
    assert await works(client, key["token"])
    assert (await client.get("/v1/staff/me", headers=leaver)).status_code == 200
    assert (await login(client, "op")).status_code == 201
