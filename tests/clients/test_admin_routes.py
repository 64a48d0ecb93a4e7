"""The admins' API-key routes (/v1/api-keys) over HTTP, signed in with a second factor."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.credentials.helpers import TOTP_ON, enrolled_staff
from tests.staff.helpers import bearer, events, rows, staff_auth

SCOPES = ["verifications:write"]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return dict(TOTP_ON)


def key_rows(app) -> list[dict[str, Any]]:
    return rows(app, "SELECT id, expires_at, revoked_at, rotated_to FROM api_keys ORDER BY id")


async def works(client, token: str) -> bool:
    answer = await client.get("/v1/verifications/ver_madeup", headers=bearer(token))
    return answer.status_code == 404


async def test_admins_create_and_list_keys(client, app, clock):
    admin, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    root_id = rows(app, "SELECT id FROM staff_accounts")[0]["id"]
    made = await client.post(
        "/v1/api-keys",
        json={"name": "coupon-frontend", "scopes": SCOPES, "expires_days": 30},
        headers=admin,
    )
    assert made.status_code == 201
    assert made.headers["cache-control"] == "no-store"
    token = made.json()["token"]
    key = made.json()["key"]
    # The listed prefix is the readable label only: no character of the secret.
    assert token.startswith("smsreg_sk_") and key["prefix"] == "smsreg_sk_"
    assert key["created_by"] == f"staff:{root_id}" and key["state"] == "active"
    assert key["expires_at"] == (clock.now() + dt.timedelta(days=30)).isoformat().replace(
        "+00:00", "Z"
    )
    assert await works(client, token)
    (event,) = events(app, "service:api_key:created")
    assert event["actor"] == f"staff:{root_id}"

    # The self-service pages' own row (made by their first code) is no key of anyone's.
    sent = await client.post("/v1/subject/verifications", json={"phone": "+819012340000"})
    assert sent.status_code == 201, sent.text
    listed = await client.get("/v1/api-keys", headers=admin)
    assert listed.status_code == 200
    assert [k["id"] for k in listed.json()["api_keys"]] == [key["id"]]
    assert token not in listed.text and "token_hash" not in listed.text
    stored = rows(app, "SELECT token_hash FROM api_keys")[0]["token_hash"]
    assert token not in stored


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "", "scopes": SCOPES}, "name"),
        ({"name": "   ", "scopes": SCOPES}, "name"),
        ({"name": "x" * 101, "scopes": SCOPES}, "name"),
        ({"name": "a\x00b", "scopes": SCOPES}, "name"),  # PostgreSQL refuses a NUL: was a 500
        ({"name": "two\nlines", "scopes": SCOPES}, "name"),
        ({"name": "k\x85abc\x9b31m", "scopes": SCOPES}, "name"),  # C1 controls, as C0
        ({"name": "\u202e", "scopes": SCOPES}, "name"),  # a direction override alone
        ({"name": "coupon\u200b-frontend", "scopes": SCOPES}, "name"),  # a look-alike
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["everything"]}, "scopes.0"),
        ({"name": "x", "scopes": SCOPES, "expires_days": 0}, "expires_days"),
        ({"name": "x", "scopes": SCOPES, "expires_days": 181}, "expires_days"),
        ({"name": "x", "scopes": SCOPES, "expires_days": "30"}, "expires_days"),
        ({"name": "x", "scopes": SCOPES, "expires_days": True}, "expires_days"),
        ({"name": "x", "scopes": SCOPES, "expires_days": "soon"}, "expires_days"),
        ({"name": "x", "scopes": SCOPES, "created_by": "cli"}, "created_by"),
    ],
)
async def test_bad_key_input_creates_nothing(client, app, clock, body, field):
    admin = await staff_auth(app, client, "auditor", username="aud")  # the wrong role first
    refused = await client.post("/v1/api-keys", json=body, headers=admin)
    assert refused.status_code == 403  # authorisation before validation
    admin, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    answer = await client.post("/v1/api-keys", json=body, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.json()["errors"][0]["field"] == field
    assert key_rows(app) == []
    assert events(app, "service:api_key:created") == []


async def test_revoke_and_rotate_refusals_change_nothing(client, app, clock):
    admin, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    made = (
        await client.post("/v1/api-keys", json={"name": "a", "scopes": SCOPES}, headers=admin)
    ).json()
    key_id, token = made["key"]["id"], made["token"]

    revoked = await client.post(f"/v1/api-keys/{key_id}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert not await works(client, token)
    before = (key_rows(app), len(rows(app, "SELECT id FROM audit_events")))

    for action in ("revoke", "rotate"):
        again = await client.post(f"/v1/api-keys/{key_id}/{action}", headers=admin)
        assert again.status_code == 409, action
        assert again.json()["type"].endswith("/api-key-revoked")
    for action in ("revoke", "rotate"):
        unknown = await client.post(f"/v1/api-keys/key_nobody/{action}", headers=admin)
        assert unknown.status_code == 404
        malformed = await client.post(f"/v1/api-keys/nokey/{action}", headers=admin)
        assert malformed.status_code == 422
    assert (key_rows(app), len(rows(app, "SELECT id FROM audit_events"))) == before


async def test_rotation_over_http(client, app, clock):
    admin, _secret, _codes = await enrolled_staff(app, client, clock, "admin", "root")
    made = (
        await client.post("/v1/api-keys", json={"name": "a", "scopes": SCOPES}, headers=admin)
    ).json()
    key_id = made["key"]["id"]
    for grace in (-1, 721, "long", "5", True, 5.5):
        bad = await client.post(
            f"/v1/api-keys/{key_id}/rotate", json={"grace_hours": grace}, headers=admin
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "grace_hours"
    assert len(key_rows(app)) == 1

    rotated = await client.post(
        f"/v1/api-keys/{key_id}/rotate", json={"grace_hours": 2}, headers=admin
    )
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    body = rotated.json()
    assert body["old"]["rotated_to"] == body["new"]["id"] and body["old"]["state"] == "rotated"
    assert body["new"]["rotated_from"] == key_id
    twice = await client.post(f"/v1/api-keys/{key_id}/rotate", headers=admin)
    assert twice.status_code == 409 and twice.json()["type"].endswith("/api-key-already-rotated")
    clock.advance(hours=2)
    assert not await works(client, made["token"])
    assert await works(client, body["token"])
